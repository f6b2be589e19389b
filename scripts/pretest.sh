#!/usr/bin/env bash
# `npm test`'s set-up (the `pretest` script): the Redis and Prometheus integration tests need Debian's redis-server
# and prometheus (with promtool). Installs the missing ones with apt-get when it can (root on a Debian-like system),
# otherwise stops with the one command to run.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${LLM_TEST_NO_INSTALL:-}" ]; then
  echo "pretest: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "pretest: the integration tests need ${missing[*]}. Install them, then run npm test again:" >&2
echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
