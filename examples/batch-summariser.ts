/**
 * A batch summariser: any of three models will do, so each document goes to the cheapest one that has quota left.
 * `strategy: "cost-first"` orders the providers by price per call; per-model RPM limits make a full provider
 * refuse at once (its wait would exceed `maxWait`), and the document moves on to the next-cheapest one. The batch
 * runs at most four documents at a time, and reports who summarised what and the total cost.
 *
 * Runs against the embedded provider emulator (real SDKs, 127.0.0.1, no keys), and checks its own outcome.
 *
 *   npm run build && npx tsx examples/batch-summariser.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Redacted } from "effect"
import { Anthropic, OpenAi, OpenAiCompatible, Resilient } from "effect-llm-resilience"
import { ProviderEmulator } from "effect-llm-resilience/testing"

const documents = Array.from({ length: 12 }, (_, i) => ({
  id: `incident-${String(i + 1).padStart(2, "0")}`,
  text: `Incident report ${i + 1}: the checkout service returned errors for ${5 + i} minutes after a deploy. `
    + "The on-call engineer rolled back the change, and a fix is under review."
}))

// ── The job: summarise one document through `Resilient`, cheapest provider first. ─────────────────────────────────

const summarise = (document: (typeof documents)[number]) =>
  Resilient.complete({
    messages: [
      { role: "system", content: "Summarise the document in one sentence." },
      { role: "user", content: document.text }
    ],
    maxTokens: 60,
    temperature: 0
  }).pipe(Effect.map((summary) => ({ id: document.id, summary })))

const program = Effect.gen(function*() {
  const emulator = yield* ProviderEmulator.make

  // Every model answers, reporting token usage as a provider would: the cost is computed from it.
  for (const model of ["claude-sonnet-4-6", "gpt-4.1-mini", "llama3.1"]) {
    emulator.mock.on({ model }, {
      content: `(${model}) Checkout errors after a deploy; rolled back, fix in review.`,
      usage: { prompt_tokens: 52, completion_tokens: 14, input_tokens: 52, output_tokens: 14 }
    })
  }

  const apiKey = Redacted.make("emulator-accepts-any-key")
  const ResilientLive = Resilient.layer({
    // Listed best first; `cost-first` reorders them per call: local ($0), gpt-4.1-mini, claude-sonnet-4-6.
    // (A single call can also ask for it: `Resilient.complete(request, { strategy: "cost-first" })`.)
    strategy: "cost-first",
    chain: [
      {
        provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: emulator.anthropicBaseUrl }),
        price: { inputPer1k: 0.003, outputPer1k: 0.015 }, // USD per 1,000 tokens
        limits: { rpm: 50, tpm: 30_000 }
      },
      {
        provider: OpenAi.make({ model: "gpt-4.1-mini", apiKey, baseURL: emulator.openAiBaseUrl }),
        price: { inputPer1k: 0.0004, outputPer1k: 0.0016 },
        limits: { rpm: 5, tpm: 200_000 }
      },
      {
        // A self-hosted model costs nothing per token, but the box only takes 4 requests a minute.
        provider: OpenAiCompatible.make({ name: "local", model: "llama3.1", baseURL: emulator.openAiBaseUrl }),
        price: { inputPer1k: 0, outputPer1k: 0 }, // without a price, cost-first would put it last
        limits: { rpm: 4 }
      }
    ],
    // A call waits for capacity at most 2 seconds; a 60-second RPM window is known to be too long, so the call is
    // refused at once (`RateLimitExceeded`) and the chain moves on. Breakers ignore such local refusals.
    rateLimit: { mode: "wait", maxWait: "2 seconds" }
  })

  // Bounded concurrency: at most four documents in flight, results in document order.
  const results = yield* Effect.forEach(documents, summarise, { concurrency: 4 }).pipe(
    Effect.provide(ResilientLive)
  )

  for (const { id, summary } of results) {
    const spilled = summary.attempts.map((step) => `${step.label} ${step.error}`)
    yield* Console.log(
      `${id}  ${summary.servedBy.padEnd(28)} $${summary.costUsd.toFixed(6)}`
        + (spilled.length > 0 ? `  (passed over: ${spilled.join(", ")})` : "")
    )
  }

  // The report: documents, tokens and cost per provider.
  const byProvider = new Map<string, { documents: number; tokens: number; costUsd: number }>()
  for (const { summary } of results) {
    const row = byProvider.get(summary.servedBy) ?? { documents: 0, tokens: 0, costUsd: 0 }
    byProvider.set(summary.servedBy, {
      documents: row.documents + 1,
      tokens: row.tokens + summary.usage.totalTokens,
      costUsd: row.costUsd + summary.costUsd
    })
  }
  const line = (provider: string, count: string, tokens: string, cost: string) =>
    `${provider.padEnd(30)}${count.padStart(10)}${tokens.padStart(8)}${cost.padStart(12)}`
  yield* Console.log(`\n${line("provider", "documents", "tokens", "cost")}`)
  for (const [provider, row] of byProvider) {
    yield* Console.log(line(provider, String(row.documents), String(row.tokens), `$${row.costUsd.toFixed(6)}`))
  }
  const total = results.reduce((sum, { summary }) => sum + summary.costUsd, 0)
  const tokens = results.reduce((sum, { summary }) => sum + summary.usage.totalTokens, 0)
  yield* Console.log(line("total", String(results.length), String(tokens), `$${total.toFixed(6)}`))

  // The program checks its own outcome: the cheapest provider first, each one up to its RPM, nothing left over.
  const served = (key: string) => byProvider.get(key)?.documents ?? 0
  const expected = { "local:llama3.1": 4, "openai:gpt-4.1-mini": 5, "anthropic:claude-sonnet-4-6": 3 }
  for (const [key, count] of Object.entries(expected)) {
    if (served(key) !== count) {
      return yield* Effect.dieMessage(`${key} summarised ${served(key)} documents, expected ${count}`)
    }
  }
  // 5 × gpt-4.1-mini (52 in, 14 out) + 3 × claude-sonnet-4-6 (52 in, 14 out); the local model is free.
  const expectedTotal = 5 * (0.052 * 0.0004 + 0.014 * 0.0016) + 3 * (0.052 * 0.003 + 0.014 * 0.015)
  if (Math.abs(total - expectedTotal) > 1e-12) {
    return yield* Effect.dieMessage(`total cost ${total}, expected ${expectedTotal}`)
  }
})

// Silence the library's per-request log events; this program prints its own report.
program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error), NodeRuntime.runMain)
