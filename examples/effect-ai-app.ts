/**
 * An application written against @effect/ai only — `LanguageModel.generateText` with a `Toolkit`, `streamText`,
 * `generateObject` — served by a resilient chain (OpenAI, then Anthropic) through `effect-llm-resilience/ai`. It runs
 * against the embedded provider emulator: real SDKs over real HTTP on 127.0.0.1, no keys, no network.
 *
 * OpenAI is down (503) the whole time: every call is served by Anthropic, and the finish part of each answer says so.
 * The program checks that this happened (it exits 1 otherwise).
 *
 *   npm run build && npx tsx examples/effect-ai-app.ts
 */
import { LanguageModel, Prompt, Tool, Toolkit } from "@effect/ai"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Option, Redacted, Schema, Stream } from "effect"
import { Anthropic, OpenAi } from "effect-llm-resilience"
import * as Ai from "effect-llm-resilience/ai"
import { ProviderEmulator } from "effect-llm-resilience/testing"

// ── The application: plain @effect/ai. ────────────────────────────────────────────────────────────────────────────

const GetWeather = Tool.make("get_weather", {
  description: "Current weather of a city",
  parameters: { city: Schema.String },
  success: Schema.Struct({ city: Schema.String, celsius: Schema.Number })
})
const WeatherKit = Toolkit.make(GetWeather)
const WeatherHandlers = WeatherKit.toLayer({ get_weather: ({ city }) => Effect.succeed({ city, celsius: 21 }) })

const Trip = Schema.Struct({ city: Schema.String, days: Schema.Number })

const app = Effect.gen(function*() {
  const servedBy: Array<string> = []
  const note = (label: string, parts: Parameters<typeof Ai.servedOf>[0]) =>
    Effect.gen(function*() {
      const served = Option.getOrThrow(Ai.servedOf(parts))
      servedBy.push(served.servedBy)
      const passed = served.attempts.map((attempt) => `${attempt.label} ${attempt.reason ?? attempt.error}`)
      yield* Console.log(`  ${label} → ${served.servedBy} (passed over: ${passed.join(", ") || "none"})`)
    })

  // 1. A tool call: the chain's model calls get_weather, @effect/ai runs it, the result goes back for the answer.
  const prompt = Prompt.make("What is the weather in Paris?")
  const first = yield* LanguageModel.generateText({ prompt, toolkit: WeatherKit })
  yield* note(`tool call ${first.toolCalls.map((call) => call.name).join()}`, first.content)
  const second = yield* LanguageModel.generateText({
    prompt: Prompt.merge(prompt, Prompt.fromResponseParts(first.content)),
    toolkit: WeatherKit
  })
  yield* note(`answer "${second.text}"`, second.content)

  // 2. A stream.
  const parts = yield* Stream.runCollect(LanguageModel.streamText({ prompt: "Say hello" }))
  const text = [...parts].flatMap((part) => part.type === "text-delta" ? [part.delta] : []).join("")
  yield* note(`stream "${text}"`, [...parts])

  // 3. A structured output.
  const trip = yield* LanguageModel.generateObject({ prompt: "Plan a trip", schema: Trip })
  yield* note(`object ${JSON.stringify(trip.value)}`, trip.content)
  return servedBy
})

// ── The wiring: the chain is the application's LanguageModel. ─────────────────────────────────────────────────────

const program = Effect.gen(function*() {
  const emulator = yield* ProviderEmulator.make
  emulator.mock.on(
    { model: "gpt-4.1" },
    () => ({ status: 503, error: { message: "The server is overloaded", type: "server_error" } })
  )
  emulator.mock.onToolResult("toolu_weather", { content: "It is 21 °C in Paris." })
  emulator.mock.onMessage("What is the weather in Paris?", {
    toolCalls: [{ id: "toolu_weather", name: "get_weather", arguments: JSON.stringify({ city: "Paris" }) }]
  })
  emulator.mock.onMessage("Say hello", { content: "Hello from the backup" }, { chunkSize: 4 })
  emulator.mock.onMessage("Plan a trip", { content: JSON.stringify({ city: "Lisbon", days: 3 }) })

  const apiKey = Redacted.make("emulator-accepts-any-key")
  const ModelLive = Ai.layerChain({
    chain: [
      { provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: emulator.openAiBaseUrl }), retry: false },
      { provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: emulator.anthropicBaseUrl }) }
    ]
  })

  const servedBy = yield* app.pipe(Effect.provide(WeatherHandlers), Effect.provide(ModelLive))
  if (servedBy.length !== 4 || servedBy.some((label) => label !== "anthropic:claude-sonnet-4-6")) {
    return yield* Effect.dieMessage(`unexpected servers: ${servedBy.join(", ")}`)
  }
  yield* Console.log("\nEvery @effect/ai call was served by Anthropic while OpenAI was down.")
})

program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error), NodeRuntime.runMain)
