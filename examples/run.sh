#!/usr/bin/env bash
# `npm run examples`: runs every example and fails if one of them fails. The programs check their own outcome
# (failover happened, costs add up) and exit non-zero otherwise; the example test runs under its own vitest config,
# since the root vitest.config.ts runs only the library's test/ suite.
#
# The examples import "effect-llm-resilience" by its package name, which resolves to dist/ through package.json's
# "exports", as it would for a user. CI builds first; a fresh checkout is built here when dist/ is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ ! -f dist/index.js ] || [ ! -f dist/testing/index.js ] || [ ! -f dist/ai.js ]; then
  step "dist/ is missing: npm run build"
  npm run build
fi

step "examples/chat-service.ts: OpenAI → Anthropic → local, with outages"
timeout 120 npx tsx examples/chat-service.ts

step "examples/batch-summariser.ts: cost-first with rate limits"
timeout 120 npx tsx examples/batch-summariser.ts

step "examples/tool-agent.ts: an agent loop with two tools, its primary down after the first turn"
timeout 120 npx tsx examples/tool-agent.ts

step "examples/effect-ai-app.ts: an @effect/ai application (tools, stream, structured output) on a resilient chain"
timeout 120 npx tsx examples/effect-ai-app.ts

step "examples/breaker-timing.test.ts: breaker timing under TestClock"
timeout 120 npx vitest run --config examples/vitest.config.ts

step "examples passed"
