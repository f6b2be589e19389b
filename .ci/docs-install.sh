#!/usr/bin/env bash
# The docs' install path, as a new user takes it: pack the library, run README's and getting-started's exact
# `npm install` lines (the package name replaced by the tarball) in an empty folder, check the installed size of the
# library and its own dependencies, then run getting-started's emulator program and first test there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/llm-docs-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

tarball="$work/$(cd "$repo" && npm pack --silent --pack-destination "$work" | tail -1)"

# `npm install …` lines of a page's first ```sh block after "## Install" (a trailing `# comment` dropped).
install_lines() {
  awk '/^## Install/ {section=1} section && /^```sh/ {block=1; next} block && /^```/ {exit} block && /^npm install/' "$1" \
    | sed -E 's/[[:space:]]+#.*$//; s#(^| )effect-llm-resilience( |$)#\1'"$tarball"'\2#'
}

run_install() {
  local page="$1" dir="$2"
  mkdir -p "$dir"
  (cd "$dir" && npm init -y >/dev/null && npm pkg set type=module)
  local lines
  lines="$(install_lines "$repo/$page")"
  [ -n "$lines" ] || { echo "no npm install line in $page"; exit 1; }
  while IFS= read -r line; do
    echo "[$page] $line"
    (cd "$dir" && eval "$line --no-audit --no-fund --loglevel=error")
  done <<< "$lines"
}

run_install README.md "$work/readme"
# Installed size of the library and its own (transitive) dependencies: effect, @effect/platform and the SDKs are
# the user's. Budget: 25 MB.
(cd "$work/readme" && node --input-type=module -e '
  import { readFileSync } from "node:fs"
  import { execFileSync } from "node:child_process"
  const seen = new Set()
  const visit = (name) => {
    if (seen.has(name)) return
    seen.add(name)
    const pkg = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8"))
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep)
  }
  visit("effect-llm-resilience")
  const kb = Number(execFileSync("du", ["-sck", ...[...seen].map((n) => `node_modules/${n}`)], { encoding: "utf8" })
    .trim().split("\n").at(-1).split("\t")[0])
  console.log(`installed: effect-llm-resilience and its dependencies (${[...seen].join(", ")}): ${(kb / 1024).toFixed(1)} MB`)
  if (kb > 25 * 1024) { console.error("over the 25 MB budget"); process.exit(1) }
')

gs="$work/getting-started"
run_install docs/getting-started.md "$gs"
# getting-started's TypeScript blocks: the emulator program and the first test.
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs"
  const [page, dir] = process.argv.slice(1)
  const blocks = [...readFileSync(page, "utf8").matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1])
  const pick = (marker, file) => {
    const block = blocks.find((b) => b.includes(marker))
    if (block === undefined) { console.error(`no block with ${marker}`); process.exit(1) }
    writeFileSync(`${dir}/${file}`, block)
  }
  pick("ProviderEmulator.make", "emulator.ts")
  pick("it.effect(", "first.test.ts")
' "$repo/docs/getting-started.md" "$gs"
(cd "$gs" && timeout 120 "$repo/node_modules/.bin/tsx" emulator.ts | tee "$work/emulator.out")
grep -q "Hi from the emulator" "$work/emulator.out"
(cd "$gs" && timeout 120 npx vitest run first.test.ts)
echo "docs install ok"
