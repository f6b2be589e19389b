/**
 * An application written only against @effect/ai (`LanguageModel.generateText` with a Toolkit, `streamText`,
 * `generateObject`) served by a resilient chain whose primary fails: ScriptedProvider under TestClock.
 */
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Ai from "../../src/Ai.js"
import * as Quality from "../../src/Quality.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const GetWeather = Tool.make("get_weather", {
  description: "Current weather of a city",
  parameters: { city: Schema.String },
  success: Schema.Struct({ sky: Schema.String, celsius: Schema.Number })
})
const WeatherKit = Toolkit.make(GetWeather)
const WeatherHandlers = WeatherKit.toLayer({
  get_weather: ({ city }) => Effect.succeed({ sky: city === "Paris" ? "sunny" : "grey", celsius: 21 })
})

const Forecast = Schema.Struct({ city: Schema.String, celsius: Schema.Number })

/** A chain of a failing primary and a scripted backup, as the application's `LanguageModel`. */
const chainOf = (
  backupScript: ScriptedProvider.Script,
  options: { readonly primaryRetries?: boolean; readonly backupQuality?: Quality.Check } = {}
) =>
  Effect.gen(function*() {
    const primary = yield* ScriptedProvider.make({
      name: "primary",
      model: "p-1",
      script: [ScriptedProvider.failure("Overloaded", { status: 529 })]
    })
    const backup = yield* ScriptedProvider.make({ name: "backup", model: "b-1", script: backupScript })
    const client = yield* Resilient.make({
      chain: [
        {
          provider: primary,
          retry: options.primaryRetries === true
            ? {
              budget: false,
              policies: {
                Overloaded: { maxAttempts: 3, backoff: "exponential", baseDelay: "1 second", jitter: 0 }
              }
            }
            : false,
          breaker: false
        },
        { provider: backup, breaker: false, quality: options.backupQuality, price: { inputPer1k: 1, outputPer1k: 2 } }
      ]
    })
    const model = yield* Ai.make(client)
    return { primary, backup, layer: Layer.succeed(LanguageModel.LanguageModel, model) }
  })

describe("a resilient chain as @effect/ai's LanguageModel (ScriptedProvider, TestClock)", () => {
  it.scoped("generateText with a Toolkit: the primary fails, the backup calls the tool, @effect/ai runs it", () =>
    Effect.gen(function*() {
      const { backup, layer } = yield* chainOf([
        ScriptedProvider.success("", {
          toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }],
          usage: { inputTokens: 30, outputTokens: 7, totalTokens: 37 }
        }),
        ScriptedProvider.success("Sunny, 21 °C in Paris.")
      ])
      const app = Effect.gen(function*() {
        const prompt = Prompt.make("What is the weather in Paris?")
        const first = yield* LanguageModel.generateText({ prompt, toolkit: WeatherKit })
        const next = Prompt.merge(prompt, Prompt.fromResponseParts(first.content))
        const second = yield* LanguageModel.generateText({ prompt: next, toolkit: WeatherKit })
        return { first, second }
      })
      const { first, second } = yield* app.pipe(Effect.provide(WeatherHandlers), Effect.provide(layer))

      expect(first.toolCalls.map((call) => [call.id, call.name, call.params])).toEqual([
        ["call_1", "get_weather", { city: "Paris" }]
      ])
      expect(first.toolResults.map((result) => result.result)).toEqual([{ sky: "sunny", celsius: 21 }])
      expect(first.finishReason).toBe("tool-calls")
      expect(first.usage.inputTokens).toBe(30)
      expect(first.usage.totalTokens).toBe(37)
      expect(second.text).toBe("Sunny, 21 °C in Paris.")
      const served = Option.getOrThrow(Ai.servedOf(second.content))
      expect(served.servedBy).toBe("backup:b-1")
      expect(served.fallbackFrom).toBe("primary:p-1")
      expect(served.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
        ["primary:p-1", "Overloaded"]
      ])
      // Cost of the first answer: 30 input tokens at $1 / 1k, 7 output tokens at $2 / 1k.
      expect(Option.getOrThrow(Ai.servedOf(first.content)).costUsd).toBeCloseTo(0.044, 10)

      // What the backup was sent: the tool's JSON Schema, then the call and its result translated back.
      const calls = yield* backup.calls
      expect(calls[0]!.request.tools).toEqual([{
        name: "get_weather",
        description: "Current weather of a city",
        parameters: {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
          additionalProperties: false
        }
      }])
      expect(calls[0]!.request.toolChoice).toBe("auto")
      const messages = calls[1]!.request.messages
      expect(messages.map((message) => message.role)).toEqual(["user", "assistant", "tool"])
      expect(messages[1]!.toolCalls).toEqual([{ id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }])
      expect(messages[2]!.toolCallId).toBe("call_1")
      expect(JSON.parse(String(messages[2]!.content))).toEqual({ sky: "sunny", celsius: 21 })
    }))

  it.scoped("retries on the primary follow the TestClock before the ladder fails over", () =>
    Effect.gen(function*() {
      const { backup, layer, primary } = yield* chainOf([ScriptedProvider.success("from the backup")], {
        primaryRetries: true
      })
      const fiber = yield* LanguageModel.generateText({ prompt: "hi" }).pipe(Effect.provide(layer), Effect.fork)
      yield* TestClock.adjust("999 millis")
      expect((yield* primary.calls).length).toBe(1)
      expect((yield* backup.calls).length).toBe(0)
      yield* TestClock.adjust("10 seconds")
      const response = yield* Fiber.join(fiber)
      expect(response.text).toBe("from the backup")
      expect((yield* primary.calls).map((call) => call.at)).toEqual([0, 1_000, 3_000])
      const served = Option.getOrThrow(Ai.servedOf(response.content))
      expect(served.attempts[0]!.reason).toBe("Overloaded")
    }))

  it.scoped("streamText: text deltas from the backup, then a finish part saying who served", () =>
    Effect.gen(function*() {
      const { layer } = yield* chainOf([ScriptedProvider.success("Hello there", { chunks: ["Hel", "lo ", "there"] })])
      const parts = yield* LanguageModel.streamText({ prompt: "hi" }).pipe(
        Stream.runCollect,
        Effect.provide(layer)
      )
      const list = [...parts]
      expect(list.filter((part) => part.type === "text-delta").map((part) => part.delta)).toEqual([
        "Hel",
        "lo ",
        "there"
      ])
      expect(list.map((part) => part.type)).toEqual([
        "text-start",
        "text-delta",
        "text-delta",
        "text-delta",
        "text-end",
        "response-metadata",
        "finish"
      ])
      const served = Option.getOrThrow(Ai.servedOf(list))
      expect(served.servedBy).toBe("backup:b-1")
      expect(served.attempts.map((attempt) => attempt.reason)).toEqual(["Overloaded"])
    }))

  it.scoped("streamText with a Toolkit: the streamed tool call is run by @effect/ai", () =>
    Effect.gen(function*() {
      const { layer } = yield* chainOf([
        ScriptedProvider.success("", {
          toolCalls: [{ id: "call_9", name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }],
          toolCallChunkSize: 5
        })
      ])
      const parts = yield* LanguageModel.streamText({ prompt: "Oslo?", toolkit: WeatherKit }).pipe(
        Stream.runCollect,
        Effect.provide(WeatherHandlers),
        Effect.provide(layer)
      )
      const list = [...parts]
      const deltas = list.flatMap((part) => part.type === "tool-params-delta" ? [part.delta] : [])
      expect(deltas.join("")).toBe("{\"city\":\"Oslo\"}")
      const result = list.find((part) => part.type === "tool-result")
      expect(result?.type === "tool-result" ? result.result : undefined).toEqual({ sky: "grey", celsius: 21 })
      const finish = list.find((part) => part.type === "finish")
      expect(finish?.type === "finish" ? finish.reason : undefined).toBe("tool-calls")
    }))

  it.scoped("generateObject: the schema is sent as a JSON-schema output and the answer decoded", () =>
    Effect.gen(function*() {
      const { backup, layer } = yield* chainOf([ScriptedProvider.success("{\"city\":\"Paris\",\"celsius\":21}")])
      const response = yield* LanguageModel.generateObject({ prompt: "Forecast for Paris", schema: Forecast }).pipe(
        Effect.provide(layer)
      )
      expect(response.value).toEqual({ city: "Paris", celsius: 21 })
      const format = (yield* backup.calls)[0]!.request.responseFormat
      expect(format).toEqual({
        type: "json_schema",
        name: "generateObject",
        schema: {
          type: "object",
          properties: { city: { type: "string" }, celsius: { type: "number" } },
          required: ["city", "celsius"],
          additionalProperties: false
        }
      })
    }))

  it.scoped("every step failing: an AiError carrying FallbackExhausted with each step's hard or soft reason", () =>
    Effect.gen(function*() {
      // The backup answers text where JSON is required: a soft failure (SchemaMismatch / FormatViolation).
      const { layer } = yield* chainOf([ScriptedProvider.success("not json")], { backupQuality: Quality.json })
      const error = yield* LanguageModel.generateText({ prompt: "hi" }).pipe(Effect.provide(layer), Effect.flip)
      expect(error._tag).toBe("UnknownError")
      expect(error.module).toBe("effect-llm-resilience")
      const failure = Option.getOrThrow(Ai.failureOf(error))
      expect(failure._tag).toBe("FallbackExhausted")
      if (failure._tag !== "FallbackExhausted") return
      expect(failure.attempts.map((attempt) => [attempt.label, attempt.error])).toEqual([
        ["primary:p-1", "HardFailure"],
        ["backup:b-1", "SoftFailure"]
      ])
      expect(failure.attempts[0]!.reason).toBe("Overloaded")
      expect(error.message).toContain("Overloaded")
    }))

  it.scoped("a prompt the chain cannot take is a MalformedInput naming the part, before any call", () =>
    Effect.gen(function*() {
      const { backup, layer, primary } = yield* chainOf([ScriptedProvider.success("unused")])
      const pdf = Prompt.make([{
        role: "user",
        content: [{ type: "file", mediaType: "application/pdf", data: new Uint8Array([1, 2, 3]) }]
      }])
      const error = yield* LanguageModel.generateText({ prompt: pdf }).pipe(Effect.provide(layer), Effect.flip)
      expect(error._tag).toBe("MalformedInput")
      expect(error.message).toContain("prompt.content[0].content[0]")
      expect((yield* primary.calls).length + (yield* backup.calls).length).toBe(0)
    }))

  it.scoped("request defaults the chain refuses: MalformedInput carrying the InvalidRequest", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("unused")] })
      const client = yield* Resilient.make({ chain: [{ provider: primary }] })
      const model = yield* Ai.make(client, { request: { temperature: 5 } })
      const error = yield* LanguageModel.generateText({ prompt: "hi" }).pipe(
        Effect.provideService(LanguageModel.LanguageModel, model),
        Effect.flip
      )
      expect(error._tag).toBe("MalformedInput")
      const failure = Option.getOrThrow(Ai.failureOf(error))
      expect(failure._tag === "InvalidRequest" ? failure.issues.map((issue) => issue.field) : []).toEqual([
        "temperature"
      ])
    }))
})
