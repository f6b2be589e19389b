/**
 * @effect/ai interop over real HTTP: an @effect/ai-only application against a chain of the real SDK providers whose
 * primary fails (mockttp) and whose backup is the emulator (aimock); and @effect/ai-openai models as tiers, their
 * errors classified (status, error code, Retry-After).
 */
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Ai from "../../src/Ai.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Resilient from "../../src/Resilient.js"
import { responseBody, sseOf, textStreamEvents } from "../support/openai-responses.js"
import { JSON_HEADERS, SECRET_KEY, SSE_HEADERS, useLoopbackServers } from "../support/openai-servers.js"

const servers = useLoopbackServers()
const apiKey = Redacted.make(SECRET_KEY)
const liveScoped = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope>) =>
  it.live(name, () => Effect.scoped(body()))

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

/** A primary that answers every call with HTTP 503 (OpenAI's "engine overloaded"), and the aimock backup. */
const chainLayer = (name: string) =>
  Effect.gen(function*() {
    const prefix = `/down-${name}`
    const down = yield* Effect.promise(() =>
      servers.http.forPost(`${prefix}/v1/chat/completions`).thenReply(
        503,
        JSON.stringify({ error: { type: "server_error", message: "overloaded" } }),
        JSON_HEADERS
      )
    )
    const config: Resilient.Config = {
      chain: [
        {
          provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}${prefix}/v1` }),
          retry: false
        },
        { provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: servers.aimock.url }), retry: false }
      ]
    }
    return { down, layer: Ai.layerChain(config) }
  })

describe("an @effect/ai application on a resilient chain, over real HTTP", () => {
  liveScoped(
    "generateText with a Toolkit: OpenAI is down, Anthropic (emulated) calls the tool, then answers",
    () =>
      Effect.gen(function*() {
        const { down, layer } = yield* chainLayer("tools")
        servers.aimock.onToolResult("toolu_e2e_1", { content: "It is sunny in Paris, 21 °C." })
        servers.aimock.onMessage("e2e-weather-in-paris", {
          toolCalls: [{ id: "toolu_e2e_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }]
        })
        const { first, second } = yield* Effect.gen(function*() {
          const prompt = Prompt.make("e2e-weather-in-paris")
          const first = yield* LanguageModel.generateText({ prompt, toolkit: WeatherKit })
          const second = yield* LanguageModel.generateText({
            prompt: Prompt.merge(prompt, Prompt.fromResponseParts(first.content)),
            toolkit: WeatherKit
          })
          return { first, second }
        }).pipe(Effect.provide(WeatherHandlers), Effect.provide(layer))

        expect(first.toolCalls.map((call) => [call.id, call.name, call.params])).toEqual([
          ["toolu_e2e_1", "get_weather", { city: "Paris" }]
        ])
        expect(first.toolResults.map((result) => result.result)).toEqual([{ sky: "sunny", celsius: 21 }])
        expect(second.text).toBe("It is sunny in Paris, 21 °C.")
        const served = Option.getOrThrow(Ai.servedOf(second.content))
        expect(served.servedBy).toBe("anthropic:claude-sonnet-4-6")
        expect(served.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
          ["openai:gpt-4.1", "Overloaded"]
        ])
        expect((yield* Effect.promise(() => down.getSeenRequests())).length).toBe(2)
        // The second answer is the emulator's fixture for a tool result answering toolu_e2e_1: the result reached it.
        const sent = servers.aimock.getRequests().map((entry) => JSON.stringify(entry.body))
        expect(sent.some((body) => body.includes("toolu_e2e_1") && body.includes("sunny"))).toBe(true)
      })
  )

  liveScoped(
    "streamText: deltas from the emulated backup, the finish part says who served after which failure",
    () =>
      Effect.gen(function*() {
        const { layer } = yield* chainLayer("stream")
        servers.aimock.onMessage("e2e-stream-hello", { content: "Hello from the backup" }, { chunkSize: 5 })
        const parts = yield* LanguageModel.streamText({ prompt: "e2e-stream-hello" }).pipe(
          Stream.runCollect,
          Effect.provide(layer)
        )
        const list = [...parts]
        const deltas = list.flatMap((part) => part.type === "text-delta" ? [part.delta] : [])
        expect(deltas.length).toBeGreaterThan(1)
        expect(deltas.join("")).toBe("Hello from the backup")
        const served = Option.getOrThrow(Ai.servedOf(list))
        expect(served.servedBy).toBe("anthropic:claude-sonnet-4-6")
        expect(served.attempts[0]?.reason).toBe("Overloaded")
      })
  )

  liveScoped(
    "generateObject: the object comes from the emulated backup, decoded by @effect/ai",
    () =>
      Effect.gen(function*() {
        const { layer } = yield* chainLayer("object")
        servers.aimock.onMessage("e2e-forecast-paris", { content: "{\"city\":\"Paris\",\"celsius\":21}" })
        const response = yield* LanguageModel.generateObject({ prompt: "e2e-forecast-paris", schema: Forecast }).pipe(
          Effect.provide(layer)
        )
        expect(response.value).toEqual({ city: "Paris", celsius: 21 })
        expect(Option.getOrThrow(Ai.servedOf(response.content)).servedBy).toBe("anthropic:claude-sonnet-4-6")
      })
  )
})

/** An @effect/ai-openai model (Responses API) at `apiUrl`, as a tier's provider. */
const effectOpenAi = (apiUrl: string, name = "effect-openai") =>
  Ai.provider({ name, model: "gpt-4o-mini", tokenizer: "openai" }).pipe(
    Effect.provide(
      OpenAiLanguageModel.layer({ model: "gpt-4o-mini" }).pipe(
        Layer.provide(OpenAiClient.layer({ apiKey, apiUrl })),
        Layer.provide(FetchHttpClient.layer)
      )
    )
  )

describe("@effect/ai-openai models as tiers, over real HTTP", () => {
  liveScoped(
    "a 429 with Retry-After is RateLimited with its Retry-After; the emulated second tier serves",
    () =>
      Effect.gen(function*() {
        const prefix = "/limited"
        yield* Effect.promise(() =>
          servers.http.forPost(`${prefix}/v1/responses`).thenReply(
            429,
            JSON.stringify({ error: { type: "requests", code: "rate_limit_exceeded", message: "slow down" } }),
            { ...JSON_HEADERS, "retry-after": "7", "x-request-id": "req_limited" }
          )
        )
        const limited = yield* effectOpenAi(`${servers.http.url}${prefix}/v1`, "limited")
        const failure = yield* Effect.flip(limited.complete({ messages: [{ role: "user", content: "hi" }] }))
        expect(failure._tag).toBe("HardFailure")
        if (failure._tag !== "HardFailure") return
        expect(failure.reason).toBe("RateLimited")
        expect(failure.status).toBe(429)
        expect(failure.retryable).toBe(true)
        expect(failure.providerCode).toBe("rate_limit_exceeded")
        expect(failure.requestId).toBe("req_limited")
        expect(failure.retryAfter !== undefined ? Duration.toMillis(failure.retryAfter) : undefined).toBe(7_000)
        expect(JSON.stringify(failure)).not.toContain(SECRET_KEY)

        yield* Effect.promise(() =>
          servers.http.forPost("/hello/v1/responses").thenReply(
            200,
            JSON.stringify(responseBody({ output: [{ type: "message", text: "Hello from @effect/ai-openai" }] })),
            JSON_HEADERS
          )
        )
        const client = yield* Resilient.make({
          chain: [
            { provider: limited, retry: false },
            { provider: effectOpenAi(`${servers.http.url}/hello/v1`), retry: false }
          ]
        })
        const result = yield* client.complete({
          messages: [{ role: "user", content: "e2e-tier-hello" }],
          temperature: 0.2
        })
        expect(result.content).toBe("Hello from @effect/ai-openai")
        expect(result.servedBy).toBe("effect-openai:gpt-4o-mini")
        expect(result.attempts.map((attempt) => [attempt.label, attempt.reason, attempt.retryAfterMs])).toEqual([
          ["limited:gpt-4o-mini", "RateLimited", 7_000]
        ])
        expect(result.notes).toEqual([
          "temperature not applied: an @effect/ai model takes it from its own provider config"
        ])
        expect(result.usage).toEqual({
          inputTokens: 12,
          outputTokens: 5,
          totalTokens: 17,
          cachedInputTokens: 0,
          reasoningTokens: 0
        })
      })
  )

  liveScoped(
    "an unreachable host is Connection; a 401 is Unauthorized and not retryable",
    () =>
      Effect.gen(function*() {
        const dead = yield* effectOpenAi("http://127.0.0.1:9/v1", "dead")
        const unreachable = yield* Effect.flip(dead.complete({ messages: [{ role: "user", content: "hi" }] }))
        expect(unreachable._tag === "HardFailure" ? [unreachable.reason, unreachable.retryable] : []).toEqual([
          "Connection",
          true
        ])
        yield* Effect.promise(() =>
          servers.http.forPost("/denied/v1/responses").thenReply(
            401,
            JSON.stringify({ error: { type: "invalid_request_error", code: "invalid_api_key", message: "bad key" } }),
            JSON_HEADERS
          )
        )
        const denied = yield* effectOpenAi(`${servers.http.url}/denied/v1`, "denied")
        const unauthorized = yield* Effect.flip(denied.complete({ messages: [{ role: "user", content: "hi" }] }))
        expect(unauthorized._tag === "HardFailure" ? [unauthorized.reason, unauthorized.retryable] : []).toEqual([
          "Unauthorized",
          false
        ])
      })
  )

  liveScoped("tool calls and streams through an @effect/ai-openai tier", () =>
    Effect.gen(function*() {
      const toolEndpoint = yield* Effect.promise(() =>
        servers.http.forPost("/tools/v1/responses").thenReply(
          200,
          JSON.stringify(responseBody({
            output: [{
              type: "function_call",
              callId: "call_T1",
              name: "get_weather",
              arguments: "{\"city\":\"Oslo\"}"
            }]
          })),
          JSON_HEADERS
        )
      )
      const tier = yield* effectOpenAi(`${servers.http.url}/tools/v1`)
      const tools = [{
        name: "get_weather",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
      }]
      const result = yield* tier.complete({ messages: [{ role: "user", content: "e2e-tier-tools" }], tools })
      expect(result.finishReason).toBe("tool_calls")
      expect(result.toolCalls?.map((call) => [call.id, call.name, JSON.parse(call.arguments)])).toEqual([
        ["call_T1", "get_weather", { city: "Oslo" }]
      ])
      const [seen] = yield* Effect.promise(() => toolEndpoint.getSeenRequests())
      const sent = (yield* Effect.promise(() => seen!.body.getJson())) as { tools: Array<Record<string, unknown>> }
      expect(sent.tools).toEqual([{
        type: "function",
        name: "get_weather",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        strict: true
      }])

      yield* Effect.promise(() =>
        servers.http.forPost("/streams/v1/responses").thenReply(
          200,
          sseOf(textStreamEvents(["Stream", "ed through", " @effect/ai"])),
          SSE_HEADERS
        )
      )
      const streaming = yield* effectOpenAi(`${servers.http.url}/streams/v1`)
      const chunks = yield* Stream.runCollect(
        streaming.stream({ messages: [{ role: "user", content: "e2e-tier-stream" }] })
      )
      const list = [...chunks]
      const text = list.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : []).join("")
      expect(text).toBe("Streamed through @effect/ai")
      const end = list.at(-1)
      expect(end?._tag).toBe("StreamEnd")
      expect(end?._tag === "StreamEnd" ? end.finishReason : undefined).toBe("stop")
    }))
})
