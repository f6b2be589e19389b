/**
 * A chat service on a three-provider chain — OpenAI, then Anthropic, then a local OpenAI-compatible model — run
 * against the embedded provider emulator: real SDKs over real HTTP on 127.0.0.1, no keys, no network.
 *
 * Midway, OpenAI starts answering 503; later Anthropic answers 529 too. The output shows who served each question
 * and why, and the program checks that the failover happened (it exits 1 otherwise).
 *
 *   npm run build && npx tsx examples/chat-service.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Redacted } from "effect"
import { Anthropic, OpenAi, OpenAiCompatible, Resilient } from "effect-llm-resilience"
import { ProviderEmulator } from "effect-llm-resilience/testing"
import { ChatResilience } from "./chat-resilience.js"

// ── The application: it asks `Resilient` for an answer and never picks a provider. ────────────────────────────────

const ask = (question: string) =>
  Effect.gen(function*() {
    const answer = yield* Resilient.complete({
      messages: [
        { role: "system", content: "You are a concise support agent." },
        { role: "user", content: question }
      ],
      maxTokens: 300
    })
    // `attempts` lists the providers tried before the one that answered, and why each one was passed over.
    const before = answer.attempts.map((step) =>
      `${step.label} ${step.skipped ? "skipped" : "failed"} (${step.reason ?? step.error})`
    )
    // For the printout, a peek at OpenAI's breaker: the `Resilient` service exposes every breaker by `provider:model`.
    const { breakers } = yield* Resilient.Resilient
    const breaker = breakers.get("openai:gpt-4.1")
    const openAiBreaker = breaker === undefined ? "none" : yield* breaker.state
    yield* Console.log(`  ${question}`)
    yield* Console.log(
      `    → ${answer.servedBy}${before.length > 0 ? `, after ${before.join(", ")}` : ""}`
        + `   [OpenAI breaker: ${openAiBreaker}]`
    )
    return answer
  })

// ── The demo: an emulator whose providers we can take down, and the chat policy built over it. ────────────────────

const program = Effect.gen(function*() {
  const emulator = yield* ProviderEmulator.make // stopped when the program's scope closes

  // aimock fixtures per model. A fixture may be a function of the request, so an outage is a flag away. (The library
  // classifies a 503 as `Overloaded` and a 529 too; both are hard failures that move on to the next provider.)
  const down = { openai: false, anthropic: false }
  const reachedOpenAi = { calls: 0 }
  const reply = (model: string) => ({
    content: `(${model}) Here is what to do.`,
    usage: { prompt_tokens: 30, completion_tokens: 8, input_tokens: 30, output_tokens: 8 }
  })
  emulator.mock.on({ model: "gpt-4.1" }, () => {
    reachedOpenAi.calls++
    return down.openai
      ? { status: 503, error: { message: "The server is overloaded", type: "server_error" } }
      : reply("gpt-4.1")
  })
  emulator.mock.on({ model: "claude-sonnet-4-6" }, () =>
    down.anthropic
      ? { status: 529, error: { message: "Overloaded", type: "overloaded_error" } }
      : reply("claude-sonnet-4-6"))
  emulator.mock.on({ model: "llama3.1" }, reply("llama3.1"))

  // The emulator accepts any key; real keys travel as `Redacted` values (e.g. from `Config.redacted`).
  const apiKey = Redacted.make("emulator-accepts-any-key")
  const ResilientLive = ChatResilience({
    primary: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: emulator.openAiBaseUrl }),
    backup: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: emulator.anthropicBaseUrl }),
    local: OpenAiCompatible.make({ name: "local", model: "llama3.1", baseURL: emulator.openAiBaseUrl })
  })

  const conversation = Effect.gen(function*() {
    yield* Console.log("All providers up:")
    const healthy = yield* Effect.forEach(["How do I reset my password?", "Can I change my username?"], ask)

    yield* Console.log("\nOpenAI outage (every call answers 503):")
    down.openai = true
    const outage = yield* Effect.forEach([
      "Where is my invoice?",
      "How do I add a team member?",
      "Is there a dark mode?", // the third failure in a row opens OpenAI's breaker
      "How do I export my data?" // OpenAI is skipped: no call is made while its breaker is open
    ], ask)

    yield* Console.log("\nAnthropic down as well (529 overloaded):")
    down.anthropic = true
    const worst = yield* ask("Do you have an API?")

    return { healthy, outage, worst }
  })

  const { healthy, outage, worst } = yield* conversation.pipe(Effect.provide(ResilientLive))

  // The program checks its own outcome, so `npm run examples` fails if failover did not happen.
  const servedBy = [...healthy, ...outage, worst].map((answer) => answer.servedBy)
  const expected = [
    ...Array<string>(2).fill("openai:gpt-4.1"),
    ...Array<string>(4).fill("anthropic:claude-sonnet-4-6"),
    "local:llama3.1"
  ]
  if (servedBy.join() !== expected.join()) {
    return yield* Effect.dieMessage(`unexpected failover: ${servedBy.join(", ")}`)
  }
  // 2 healthy calls + 3 failed ones; the breaker kept the last two questions away from OpenAI.
  if (reachedOpenAi.calls !== 5) {
    return yield* Effect.dieMessage(`OpenAI received ${reachedOpenAi.calls} calls, expected 5`)
  }
  yield* Console.log(
    `\nEvery question was answered. OpenAI received ${reachedOpenAi.calls} calls: 2 answered, 3 failed,`
      + " and none once its breaker had opened."
  )
})

// The library logs every request (one structured event each) and every breaker transition. This demo prints its
// own lines instead; see Observability.layerJsonLogger for the JSON-lines form of those events.
program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error), NodeRuntime.runMain)
