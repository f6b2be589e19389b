/**
 * The OpenAI provider over the real `openai` SDK and real HTTP, against loopback servers:
 * aimock for fixture-driven chat completions, mockttp for headers, broken bodies, resets and hanging requests.
 */
import type { LLMock } from "@copilotkit/aimock"
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { assertFalse, assertTrue, deepStrictEqual, strictEqual } from "@effect/vitest/utils"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { countTokens as cl100kCount } from "gpt-tokenizer/encoding/cl100k_base"
import { countTokens as o200kCount } from "gpt-tokenizer/encoding/o200k_base"
import { PassThrough } from "node:stream"
import OpenAI from "openai"
import type { ChatMessage, CompletionRequestInput } from "../../src/Llm.js"
import { messageText } from "../../src/Llm.js"
import type { HardReason } from "../../src/LlmError.js"
import { LlmProvider } from "../../src/LlmProvider.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Resilient from "../../src/Resilient.js"
import {
  apiKey,
  asHard,
  asInvalid,
  ask,
  bodyOf,
  chunkEvent,
  collect,
  completionJson,
  deltaTexts,
  exactly,
  type HttpMock,
  journalFor,
  JSON_HEADERS,
  SECRET_KEY,
  sse,
  SSE_HEADERS,
  startAimock,
  startMockttp
} from "../support/openai-servers.js"

const MODEL = "gpt-4o"
const TRUNCATED = "abcdefghijklmnopqrstuvwxyz"

let mock: LLMock
let http: HttpMock

const openAi = (baseURL?: string, timeout?: Duration.DurationInput) =>
  OpenAi.make({ apiKey, model: MODEL, baseURL: baseURL ?? `${mock.url}/v1`, timeout })

const millis = (duration: Duration.Duration | undefined): number | undefined =>
  duration === undefined ? undefined : Duration.toMillis(duration)

/** Fails the test if the promise does not settle in time (server-side observations over real HTTP). */
const within = <A>(promise: () => Promise<A>, what: string) =>
  Effect.promise(promise).pipe(
    Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

interface HttpErrorCase {
  readonly marker: string
  readonly status: number
  readonly error: { readonly message: string; readonly type: string; readonly code?: string }
  readonly retryAfter?: number
  readonly reason: HardReason
  readonly retryable: boolean
  readonly providerCode: string
}

// Bodies as OpenAI sends them (type and code included), served by aimock with its own x-request-id.
const httpErrorCases: ReadonlyArray<HttpErrorCase> = [
  {
    marker: "rate-limited",
    status: 429,
    retryAfter: 7,
    error: {
      message: "Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500, Requested 1.",
      type: "requests",
      code: "rate_limit_exceeded"
    },
    reason: "RateLimited",
    retryable: true,
    providerCode: "rate_limit_exceeded"
  },
  {
    marker: "quota-exhausted",
    status: 429,
    error: {
      message: "You exceeded your current quota, please check your plan and billing details.",
      type: "insufficient_quota",
      code: "insufficient_quota"
    },
    reason: "QuotaExhausted",
    retryable: false,
    providerCode: "insufficient_quota"
  },
  {
    marker: "server-error-500",
    status: 500,
    error: {
      message: "The server had an error while processing your request. Sorry about that!",
      type: "server_error"
    },
    reason: "ServerError",
    retryable: true,
    providerCode: "server_error"
  },
  {
    marker: "overloaded-503",
    status: 503,
    error: {
      message: "That model is currently overloaded with other requests. You can retry your request.",
      type: "server_error"
    },
    reason: "Overloaded",
    retryable: true,
    providerCode: "server_error"
  },
  {
    marker: "bad-request-400",
    status: 400,
    error: { message: "Invalid value for 'stop'.", type: "invalid_request_error", code: "invalid_value" },
    reason: "BadRequest",
    retryable: false,
    providerCode: "invalid_value"
  },
  {
    marker: "unprocessable-422",
    status: 422,
    error: { message: "Unprocessable request.", type: "invalid_request_error" },
    reason: "BadRequest",
    retryable: false,
    providerCode: "invalid_request_error"
  },
  {
    marker: "context-length",
    status: 400,
    error: {
      message:
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.",
      type: "invalid_request_error",
      code: "context_length_exceeded"
    },
    reason: "ContextLengthExceeded",
    retryable: false,
    providerCode: "context_length_exceeded"
  },
  {
    marker: "unauthorized-401",
    status: 401,
    // The server quotes the key back: nothing the library prints may repeat it.
    error: {
      message: `Incorrect API key provided: ${SECRET_KEY}.`,
      type: "invalid_request_error",
      code: "invalid_api_key"
    },
    reason: "Unauthorized",
    retryable: false,
    providerCode: "invalid_api_key"
  },
  {
    marker: "forbidden-403",
    status: 403,
    error: {
      message: "Country, region, or territory not supported",
      type: "request_forbidden",
      code: "unsupported_country_region_territory"
    },
    reason: "Forbidden",
    retryable: false,
    providerCode: "unsupported_country_region_territory"
  },
  {
    marker: "not-found-404",
    status: 404,
    error: {
      message: "The model `gpt-9` does not exist or you do not have access to it.",
      type: "invalid_request_error",
      code: "model_not_found"
    },
    reason: "NotFound",
    retryable: false,
    providerCode: "model_not_found"
  },
  {
    marker: "content-filter-400",
    status: 400,
    error: {
      message: "The response was filtered due to the prompt triggering the content management policy.",
      type: "invalid_request_error",
      code: "content_filter"
    },
    reason: "ContentFiltered",
    retryable: false,
    providerCode: "content_filter"
  }
]

beforeAll(async () => {
  ;[mock, http] = await Promise.all([startAimock(), startMockttp()])
  for (const c of httpErrorCases) {
    mock.on({ userMessage: exactly(c.marker) }, {
      error: c.error,
      status: c.status,
      ...(c.retryAfter !== undefined ? { retryAfter: c.retryAfter } : {})
    })
  }
  mock.on({ userMessage: exactly("hello") }, {
    content: "Hello from the emulator",
    usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 }
  })
  mock.on({ userMessage: exactly("finish-length") }, { content: "cut off mid", finishReason: "length" })
  mock.on({ userMessage: exactly("filtered-200") }, { content: "I can", finishReason: "content_filter" })
  mock.on({ userMessage: exactly("stream-ok") }, {
    content: "The quick brown fox jumps",
    usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 }
  }, { chunkSize: 6, latency: 10 })
  // aimock destroys the socket right after writing the last chunk, which may not reach the client.
  mock.on({ userMessage: exactly("stream-truncated") }, { content: TRUNCATED }, {
    chunkSize: 4,
    latency: 5,
    truncateAfterChunks: 4
  })
  mock.on({ userMessage: exactly("stream-filtered") }, { content: "Some text", finishReason: "content_filter" }, {
    chunkSize: 4
  })
  mock.on({ userMessage: /^(params-.*|model-override|layer-config|secret-ok)$/ }, { content: "ok" })
})

afterAll(async () => {
  await Promise.all([mock.stop(), http.server.stop()])
})

describe("OpenAi provider over HTTP", () => {
  describe("HTTP errors become typed HardFailures", () => {
    for (const c of httpErrorCases) {
      it.effect(`HTTP ${c.status} (${c.providerCode}) is ${c.reason}, retryable ${c.retryable}`, () =>
        Effect.gen(function*() {
          const llm = yield* openAi()
          const error = asHard(yield* Effect.flip(llm.complete(ask(c.marker))))
          strictEqual(error._tag, "HardFailure")
          strictEqual(error.reason, c.reason)
          strictEqual(error.status, c.status)
          strictEqual(error.retryable, c.retryable)
          strictEqual(error.providerCode, c.providerCode)
          strictEqual(error.provider, "openai")
          strictEqual(error.model, MODEL)
          const entry = journalFor(mock, c.marker).at(-1)
          assertTrue(entry !== undefined, "the request reached the server")
          strictEqual(error.requestId, entry.headers["x-request-id"])
          assertTrue(typeof error.requestId === "string" && error.requestId.length > 0)
        }))
    }

    it.effect("429 with retry-after seconds carries the hint", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const error = asHard(yield* Effect.flip(llm.complete(ask("rate-limited"))))
        strictEqual(millis(error.retryAfter), 7_000)
      }))

    it.effect("insufficient_quota on a 429 is not retryable even with retry-after", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const error = asHard(yield* Effect.flip(llm.complete(ask("quota-exhausted"))))
        strictEqual(error.reason, "QuotaExhausted")
        strictEqual(error.retryable, false)
      }))

    it.effect("429 with retry-after-ms prefers it over retry-after", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("retry-after-ms")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            429,
            JSON.stringify({ error: { message: "Rate limit reached", type: "tokens", code: "rate_limit_exceeded" } }),
            { ...JSON_HEADERS, "retry-after-ms": "1500", "retry-after": "30", "x-request-id": "req_rl_ms" }
          )
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("slow down"))))
        strictEqual(error.reason, "RateLimited")
        strictEqual(error.retryable, true)
        strictEqual(error.status, 429)
        strictEqual(millis(error.retryAfter), 1_500)
        strictEqual(error.requestId, "req_rl_ms")
      }))

    it.live("429 with retry-after as an HTTP date is the time until that date", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("retry-after-date")
        const at = new Date(Date.now() + 120_000).toUTCString()
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            429,
            JSON.stringify({ error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } }),
            { ...JSON_HEADERS, "retry-after": at }
          )
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("slow down"))))
        strictEqual(error.reason, "RateLimited")
        strictEqual(error.retryable, true)
        const hint = millis(error.retryAfter)
        // An HTTP date has whole seconds: up to one second earlier, minus the request's own time.
        assertTrue(hint !== undefined && hint > 115_000 && hint <= 120_000, `retryAfter was ${hint}`)
      }))

    it.effect("x-should-retry: false makes a retryable reason non-retryable", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("should-retry-false")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            500,
            JSON.stringify({ error: { message: "no", type: "server_error" } }),
            { ...JSON_HEADERS, "x-should-retry": "false" }
          )
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("do not retry"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(error.retryable, false)
      }))

    it.effect("502 with an HTML body from a proxy is ServerError", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("bad-gateway")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", {
            "content-type": "text/html"
          })
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("through a proxy"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(error.status, 502)
        strictEqual(error.retryable, true)
      }))

    it.effect("503 with a plain-text body is Overloaded", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("unavailable")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(503, "upstream connect error or disconnect/reset before headers", {
            "content-type": "text/plain"
          })
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("busy"))))
        strictEqual(error.reason, "Overloaded")
        strictEqual(error.status, 503)
        strictEqual(error.retryable, true)
      }))

    it.effect("408 is Timeout", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("request-timeout")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(408, JSON.stringify({ error: { message: "Request timed out." } }), {
            ...JSON_HEADERS,
            "x-request-id": "req_408"
          })
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("too slow"))))
        strictEqual(error.reason, "Timeout")
        strictEqual(error.status, 408)
        strictEqual(error.retryable, true)
        strictEqual(error.requestId, "req_408")
      }))

    it.effect("a connection reset is Connection, retryable, and is not retried by the SDK", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("reset")
        const endpoint = yield* Effect.promise(() => http.server.forPost(path).thenResetConnection())
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("reset me"))))
        strictEqual(error.reason, "Connection")
        strictEqual(error.retryable, true)
        strictEqual(error.status, undefined)
        strictEqual((yield* Effect.promise(() => endpoint.getSeenRequests())).length, 1)
      }))

    it.effect("a connection closed without a response is Connection", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("close")
        yield* Effect.promise(() => http.server.forPost(path).thenCloseConnection())
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("close me"))))
        strictEqual(error.reason, "Connection")
        strictEqual(error.retryable, true)
      }))

    it.live("a request timeout against a server that never answers is Timeout", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("hang-request-timeout")
        yield* Effect.promise(() => http.server.forPost(path).thenTimeout())
        const llm = yield* openAi(baseURL)
        const started = Date.now()
        const error = asHard(yield* Effect.flip(llm.complete(ask("anyone there?", { timeout: 200 }))))
        const elapsed = Date.now() - started
        strictEqual(error.reason, "Timeout")
        strictEqual(error.retryable, true)
        strictEqual(error.status, undefined)
        assertTrue(elapsed >= 150 && elapsed < 3_000, `took ${elapsed} ms`)
      }))

    it.live("the provider's timeout option applies when the request has none", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("hang-provider-timeout")
        yield* Effect.promise(() => http.server.forPost(path).thenTimeout())
        const llm = yield* openAi(baseURL, "200 millis")
        const started = Date.now()
        const error = asHard(yield* Effect.flip(llm.complete(ask("anyone there?"))))
        strictEqual(error.reason, "Timeout")
        assertTrue(Date.now() - started < 3_000)
      }))

    it.effect("a malformed JSON body is ServerError with providerCode malformed_response", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("malformed-json")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(200, "{\"id\":\"chatcmpl-1\",\"choices\":[{\"mess", {
            ...JSON_HEADERS,
            "x-request-id": "req_malformed"
          })
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("garbled"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(error.providerCode, "malformed_response")
        strictEqual(error.retryable, true)
      }))

    it.effect("valid JSON of the wrong shape is ServerError malformed_response with the request id", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("wrong-shape")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(200, JSON.stringify({ object: "chat.completion", choices: [] }), {
            ...JSON_HEADERS,
            "x-request-id": "req_shape"
          })
        )
        const llm = yield* openAi(baseURL)
        const error = asHard(yield* Effect.flip(llm.complete(ask("shapeless"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(error.providerCode, "malformed_response")
        strictEqual(error.requestId, "req_shape")
      }))

    it.effect("a 200 whose finish_reason is content_filter is ContentFiltered", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const error = asHard(yield* Effect.flip(llm.complete(ask("filtered-200"))))
        strictEqual(error.reason, "ContentFiltered")
        strictEqual(error.status, 200)
        strictEqual(error.providerCode, "content_filter")
        strictEqual(error.retryable, false)
        strictEqual(error.partialContent, "I can")
        strictEqual(error.requestId, journalFor(mock, "filtered-200").at(-1)?.headers["x-request-id"])
      }))
  })

  describe("SDK retries are off", () => {
    for (const marker of ["server-error-500", "rate-limited", "overloaded-503"]) {
      it.effect(`after ${marker} the server saw exactly one request`, () =>
        Effect.gen(function*() {
          const before = journalFor(mock, marker).length
          const llm = yield* openAi()
          const error = asHard(yield* Effect.flip(llm.complete(ask(marker))))
          assertTrue(error.retryable)
          strictEqual(journalFor(mock, marker).length - before, 1)
        }))
    }

    it.effect("a pre-built client with maxRetries 5 still sends one request", () =>
      Effect.gen(function*() {
        const client = new OpenAI({ apiKey: SECRET_KEY, baseURL: `${mock.url}/v1`, maxRetries: 5 })
        const llm = yield* OpenAi.make({ client, model: MODEL })
        const before = journalFor(mock, "server-error-500").length
        const error = asHard(yield* Effect.flip(llm.complete(ask("server-error-500"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(journalFor(mock, "server-error-500").length - before, 1)
      }))
  })

  describe("success", () => {
    it.effect("returns content, the server's usage, finish reason, model, provider and request id", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        strictEqual(llm.name, "openai")
        strictEqual(llm.model, MODEL)
        strictEqual(llm.key, "openai:gpt-4o")
        const result = yield* llm.complete(ask("hello"))
        strictEqual(result.content, "Hello from the emulator")
        deepStrictEqual(result.usage, { inputTokens: 11, outputTokens: 5, totalTokens: 16 })
        strictEqual(result.finishReason, "stop")
        strictEqual(result.model, MODEL)
        strictEqual(result.provider, "openai")
        const entry = journalFor(mock, "hello").at(-1)
        strictEqual(result.requestId, entry?.headers["x-request-id"])
        strictEqual(bodyOf(entry!)["stream"], false)
      }))

    it.effect("finish_reason length maps to length", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const result = yield* llm.complete(ask("finish-length"))
        strictEqual(result.finishReason, "length")
        strictEqual(result.content, "cut off mid")
      }))

    it.effect("a request's model overrides the provider's default", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const result = yield* llm.complete(ask("model-override", { model: "gpt-4o-mini" }))
        strictEqual(result.model, "gpt-4o-mini")
        strictEqual(bodyOf(journalFor(mock, "model-override").at(-1)!)["model"], "gpt-4o-mini")
      }))

    it.effect("reads request id and x-ratelimit-* headers; Go-duration resets become Durations", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("rate-limit-headers")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            200,
            completionJson({ content: "fine", usage: { prompt_tokens: 20, completion_tokens: 2 } }),
            {
              ...JSON_HEADERS,
              "x-request-id": "req_abc123",
              "x-ratelimit-limit-requests": "500",
              "x-ratelimit-remaining-requests": "499",
              "x-ratelimit-reset-requests": "120ms",
              "x-ratelimit-limit-tokens": "30000",
              "x-ratelimit-remaining-tokens": "29950",
              "x-ratelimit-reset-tokens": "6m0s"
            }
          )
        )
        const llm = yield* openAi(baseURL)
        const result = yield* llm.complete(ask("how are my limits"))
        strictEqual(result.content, "fine")
        strictEqual(result.model, "gpt-4o-2024-08-06")
        strictEqual(result.requestId, "req_abc123")
        deepStrictEqual(result.usage, { inputTokens: 20, outputTokens: 2, totalTokens: 22 })
        const rateLimit = result.rateLimit
        assertTrue(rateLimit !== undefined)
        strictEqual(rateLimit.limitRequests, 500)
        strictEqual(rateLimit.remainingRequests, 499)
        strictEqual(millis(rateLimit.resetRequests), 120)
        strictEqual(rateLimit.limitTokens, 30_000)
        strictEqual(rateLimit.remainingTokens, 29_950)
        strictEqual(millis(rateLimit.resetTokens), 360_000)
      }))

    it.effect("responseFormat json, maxTokens, temperature and stopSequences reach the body", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        yield* llm.complete(ask("params-set", {
          responseFormat: "json",
          maxTokens: 42,
          temperature: 0.3,
          stopSequences: ["END", "STOP"]
        }))
        const body = bodyOf(journalFor(mock, "params-set").at(-1)!)
        deepStrictEqual(body["response_format"], { type: "json_object" })
        strictEqual(body["max_tokens"], 42)
        strictEqual(body["temperature"], 0.3)
        deepStrictEqual(body["stop"], ["END", "STOP"])
        strictEqual(body["model"], MODEL)
        deepStrictEqual(body["messages"], [{ role: "user", content: "params-set" }])
      }))

    it.effect("unset options are left out of the body; text format sends no response_format", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        yield* llm.complete(ask("params-unset", { responseFormat: "text" }))
        const body = bodyOf(journalFor(mock, "params-unset").at(-1)!)
        for (const key of ["response_format", "max_tokens", "temperature", "stop"]) {
          assertFalse(key in body, `${key} should not be sent`)
        }
      }))

    it.effect("layerConfig reads OPENAI_API_KEY, OPENAI_BASE_URL and defaults the model", () =>
      Effect.gen(function*() {
        const config = ConfigProvider.fromMap(
          new Map([["OPENAI_API_KEY", SECRET_KEY], ["OPENAI_BASE_URL", `${mock.url}/v1`]])
        )
        const layer = OpenAi.layerConfig.pipe(Layer.provide(Layer.setConfigProvider(config)))
        const result = yield* Effect.flatMap(LlmProvider, (llm) => llm.complete(ask("layer-config"))).pipe(
          Effect.provide(layer)
        )
        strictEqual(result.model, "gpt-4.1-mini")
        strictEqual(bodyOf(journalFor(mock, "layer-config").at(-1)!)["model"], "gpt-4.1-mini")
      }))
  })

  describe("streaming", () => {
    it.live("yields ContentDeltas then exactly one StreamEnd with usage and ttftMs", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const { received, result } = yield* collect(llm.stream(ask("stream-ok")))
        assertTrue(result._tag === "Right", "the stream succeeded")
        deepStrictEqual(deltaTexts(received), ["The qu", "ick br", "own fo", "x jump", "s"])
        const ends = received.filter((chunk) => chunk._tag === "StreamEnd")
        strictEqual(ends.length, 1)
        const end = received.at(-1)
        assertTrue(end !== undefined && end._tag === "StreamEnd", "the last chunk is the StreamEnd")
        strictEqual(end.finishReason, "stop")
        deepStrictEqual(end.usage, { inputTokens: 9, outputTokens: 5, totalTokens: 14 })
        strictEqual(end.model, MODEL)
        strictEqual(end.provider, "openai")
        const entry = journalFor(mock, "stream-ok").at(-1)
        strictEqual(end.requestId, entry?.headers["x-request-id"])
        // aimock waits 10 ms before each chunk; the first text is in the second chunk.
        assertTrue(end.ttftMs !== undefined && end.ttftMs >= 15, `ttftMs was ${end.ttftMs}`)
        assertTrue(end.latencyMs >= end.ttftMs, "ttft is within the latency")
        const body = bodyOf(entry!)
        strictEqual(body["stream"], true)
        deepStrictEqual(body["stream_options"], { include_usage: true })
      }))

    it.effect("a stream cut off mid-way fails with Connection and the text already delivered", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const { received, result } = yield* collect(llm.stream(ask("stream-truncated")))
        const texts = deltaTexts(received)
        strictEqual(texts[0], "abcd")
        strictEqual(received.length, texts.length, "no StreamEnd")
        assertTrue(result._tag === "Left", "the stream failed")
        const error = asHard(result.left)
        strictEqual(error.reason, "Connection")
        strictEqual(error.retryable, true)
        const partial = error.partialContent
        strictEqual(partial, texts.join(""))
        assertTrue(partial !== undefined && partial.length < TRUNCATED.length && TRUNCATED.startsWith(partial))
        strictEqual(journalFor(mock, "stream-truncated").at(-1)?.response.interrupted, true)
      }))

    it.effect("a stream that ends without a finish_reason fails with Connection / stream_incomplete", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("stream-no-finish")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            200,
            sse([chunkEvent({ content: "Hel" }), chunkEvent({ content: "lo, wor" }), "[DONE]"]),
            { ...SSE_HEADERS, "x-request-id": "req_incomplete" }
          )
        )
        const llm = yield* openAi(baseURL)
        const { received, result } = yield* collect(llm.stream(ask("unfinished")))
        deepStrictEqual(deltaTexts(received), ["Hel", "lo, wor"])
        assertTrue(result._tag === "Left")
        const error = asHard(result.left)
        strictEqual(error.reason, "Connection")
        strictEqual(error.providerCode, "stream_incomplete")
        strictEqual(error.partialContent, "Hello, wor")
        strictEqual(error.requestId, "req_incomplete")
        strictEqual(error.retryable, true)
      }))

    it.effect("an error event inside a 200 stream fails typed, with the partial text", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("stream-error-event")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            200,
            sse([
              chunkEvent({ content: "Par" }),
              chunkEvent({ content: "tial" }),
              {
                error: {
                  message: "The server had an error while processing your request.",
                  type: "server_error",
                  param: null,
                  code: null
                }
              },
              chunkEvent({ content: " never seen" }),
              chunkEvent({ finishReason: "stop" }),
              "[DONE]"
            ]),
            { ...SSE_HEADERS, "x-request-id": "req_sse_error" }
          )
        )
        const llm = yield* openAi(baseURL)
        const { received, result } = yield* collect(llm.stream(ask("explode midway")))
        deepStrictEqual(deltaTexts(received), ["Par", "tial"])
        assertTrue(result._tag === "Left")
        const error = asHard(result.left)
        strictEqual(error.reason, "ServerError")
        strictEqual(error.retryable, true)
        strictEqual(error.providerCode, "server_error")
        strictEqual(error.partialContent, "Partial")
        strictEqual(error.requestId, "req_sse_error")
      }))

    it.effect("an error event with a content_filter code inside a stream is ContentFiltered", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("stream-error-filter")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            200,
            sse([
              chunkEvent({ content: "Once upon" }),
              { error: { message: "filtered", type: "invalid_request_error", code: "content_filter" } }
            ]),
            SSE_HEADERS
          )
        )
        const llm = yield* openAi(baseURL)
        const { received, result } = yield* collect(llm.stream(ask("a story")))
        deepStrictEqual(deltaTexts(received), ["Once upon"])
        assertTrue(result._tag === "Left")
        const error = asHard(result.left)
        strictEqual(error.reason, "ContentFiltered")
        strictEqual(error.retryable, false)
        strictEqual(error.partialContent, "Once upon")
      }))

    it.effect("a stream finishing with content_filter fails ContentFiltered after its deltas", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const { received, result } = yield* collect(llm.stream(ask("stream-filtered")))
        deepStrictEqual(deltaTexts(received), ["Some", " tex", "t"])
        assertTrue(result._tag === "Left")
        const error = asHard(result.left)
        strictEqual(error.reason, "ContentFiltered")
        strictEqual(error.providerCode, "content_filter")
        strictEqual(error.partialContent, "Some text")
      }))

    it.effect("an HTTP error before the stream starts is a typed failure with no chunks", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const { received, result } = yield* collect(llm.stream(ask("rate-limited")))
        strictEqual(received.length, 0)
        assertTrue(result._tag === "Left")
        const error = asHard(result.left)
        strictEqual(error.reason, "RateLimited")
        strictEqual(error.status, 429)
        strictEqual(millis(error.retryAfter), 7_000)
      }))

    it.live("a consumer that stops early aborts the streaming HTTP request", () => {
      const body = new PassThrough()
      return Effect.gen(function*() {
        const { baseURL, path } = http.route("stream-stop-early")
        body.write(sse([chunkEvent({ content: "first" })]))
        yield* Effect.promise(() => http.server.forPost(path).thenStream(200, body, SSE_HEADERS))
        const aborted = http.requestAborted(path)
        const llm = yield* openAi(baseURL)
        const chunks = yield* llm.stream(ask("endless")).pipe(Stream.take(1), Stream.runCollect)
        deepStrictEqual(Chunk.toReadonlyArray(chunks), [{ _tag: "ContentDelta", text: "first" }])
        yield* within(() => aborted, "the server to see the stream aborted")
      }).pipe(Effect.ensuring(Effect.sync(() => body.destroy())))
    })
  })

  describe("invalid requests fail before any network call", () => {
    const PROMPT = "TOP-SECRET-PROMPT do not leak"
    const cases: ReadonlyArray<{ readonly name: string; readonly input: unknown; readonly field: string }> = [
      { name: "no messages", input: { messages: [] }, field: "messages" },
      {
        name: "empty content",
        input: { messages: [{ role: "user", content: PROMPT }, { role: "user", content: "   " }] },
        field: "messages[1].content"
      },
      {
        name: "negative maxTokens",
        input: { messages: [{ role: "user", content: PROMPT }], maxTokens: -5 },
        field: "maxTokens"
      },
      {
        name: "temperature 3",
        input: { messages: [{ role: "user", content: PROMPT }], temperature: 3 },
        field: "temperature"
      },
      { name: "unknown role", input: { messages: [{ role: "function", content: PROMPT }] }, field: "messages[0].role" },
      {
        name: "a tool result answering no call",
        input: { messages: [{ role: "user", content: PROMPT }, { role: "tool", toolCallId: "call_9", content: "{}" }] },
        field: "messages[1].toolCallId"
      },
      {
        name: "unknown extra field",
        input: { messages: [{ role: "user", content: PROMPT }], topK: 5 },
        field: "topK"
      }
    ]

    for (const c of cases) {
      it.effect(`${c.name} → InvalidRequest naming ${c.field}`, () =>
        Effect.gen(function*() {
          const llm = yield* openAi()
          const before = mock.getRequests().length
          const error = asInvalid(yield* Effect.flip(llm.complete(c.input as CompletionRequestInput)))
          strictEqual(error._tag, "InvalidRequest")
          strictEqual(error.field, c.field)
          strictEqual(error.issues[0]?.field, c.field)
          assertTrue(error.issues.every((issue) => issue.message.length > 0))
          assertFalse(error.message.includes("TOP-SECRET"), error.message)
          assertFalse(String(error).includes("TOP-SECRET"), String(error))
          assertTrue(error.message.includes(c.field), error.message)
          const streamed = asInvalid(yield* Effect.flip(Stream.runDrain(llm.stream(c.input as CompletionRequestInput))))
          strictEqual(streamed.field, c.field)
          strictEqual(mock.getRequests().length, before, "no request reached the server")
        }))
    }

    it.effect("every offending field is listed, the first one in field", () =>
      Effect.gen(function*() {
        const llm = yield* openAi()
        const before = mock.getRequests().length
        const error = asInvalid(
          yield* Effect.flip(llm.complete({ messages: [], temperature: 3, maxTokens: 0 }))
        )
        deepStrictEqual(error.issues.map((issue) => issue.field), ["messages", "temperature", "maxTokens"])
        strictEqual(error.field, "messages")
        strictEqual(mock.getRequests().length, before)
      }))
  })

  describe("interruption", () => {
    it.live("interrupting complete aborts the HTTP request the server is holding", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("interrupt-complete")
        yield* Effect.promise(() => http.server.forPost(path).thenTimeout())
        const seen = http.requestSeen(path)
        const aborted = http.requestAborted(path)
        const llm = yield* openAi(baseURL)
        const fiber = yield* Effect.fork(llm.complete(ask("never answered")))
        yield* within(() => seen, "the server to receive the request")
        const started = Date.now()
        const exit = yield* Fiber.interrupt(fiber)
        assertTrue(Exit.isInterrupted(exit), "the effect was interrupted")
        yield* within(() => aborted, "the server to see the request aborted")
        assertTrue(Date.now() - started < 3_000)
      }))
  })

  describe("secrets", () => {
    it.effect("the API key prints as <redacted> and never appears in a failure", () =>
      Effect.gen(function*() {
        strictEqual(String(apiKey), "<redacted>")
        strictEqual(JSON.stringify({ apiKey }), "{\"apiKey\":\"<redacted>\"}")
        strictEqual(Redacted.value(apiKey), SECRET_KEY)

        const reset = http.route("secret-reset")
        const resetEndpoint = yield* Effect.promise(() => http.server.forPost(reset.path).thenResetConnection())
        const malformed = http.route("secret-malformed")
        yield* Effect.promise(() => http.server.forPost(malformed.path).thenReply(200, "not json", JSON_HEADERS))

        const emulated = yield* openAi()
        const failures = [
          yield* Effect.flip(emulated.complete(ask("unauthorized-401"))),
          yield* Effect.flip(emulated.complete(ask("server-error-500"))),
          yield* Effect.flip(emulated.complete({ messages: [{ role: "user", content: SECRET_KEY }], temperature: 9 })),
          yield* Effect.flip(Stream.runDrain(emulated.stream(ask("stream-truncated")))),
          yield* Effect.flip(Effect.flatMap(openAi(reset.baseURL), (llm) => llm.complete(ask("secret-reset")))),
          yield* Effect.flip(Effect.flatMap(openAi(malformed.baseURL), (llm) => llm.complete(ask("secret-malformed"))))
        ]
        strictEqual(failures.length, 6)
        for (const failure of failures) {
          assertFalse(failure.message.includes(SECRET_KEY), failure.message)
          assertFalse(String(failure).includes(SECRET_KEY), String(failure))
        }
        // The key was really sent (aimock's journal redacts it; mockttp's does not).
        const [seen] = yield* Effect.promise(() => resetEndpoint.getSeenRequests())
        strictEqual(seen?.headers["authorization"], `Bearer ${SECRET_KEY}`)
      }))
  })

  describe("the API key from configuration", () => {
    it.scoped("Config.redacted: read through the ConfigProvider and sent; a missing one is InvalidOptions apiKey", () =>
      Effect.gen(function*() {
        const route = http.route("config-key")
        const endpoint = yield* Effect.promise(() =>
          http.server.forPost(route.path).thenReply(200, completionJson({ content: "from config" }), JSON_HEADERS)
        )
        const fromConfig = OpenAi.make({
          model: MODEL,
          apiKey: Config.redacted("OPENAI_API_KEY"),
          baseURL: route.baseURL
        })
        const llm = yield* fromConfig.pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", SECRET_KEY]])))
        )
        strictEqual((yield* llm.complete(ask("config-key"))).content, "from config")
        const [seen] = yield* Effect.promise(() => endpoint.getSeenRequests())
        strictEqual(seen?.headers["authorization"], `Bearer ${SECRET_KEY}`)

        const noKeys = Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
        const missing = yield* Effect.flip(noKeys(fromConfig))
        strictEqual(missing.field, "apiKey")
        assertTrue(missing.reason.includes("OPENAI_API_KEY"), missing.reason)
        // In a chain, the path says which tier.
        const chain = yield* Effect.flip(noKeys(Resilient.make({ chain: [{ provider: fromConfig }] })))
        strictEqual(chain.field, "chain[0].apiKey")
      }))
  })

  describe("options", () => {
    const invalid: ReadonlyArray<{ readonly name: string; readonly options: OpenAi.Options; readonly field: string }> =
      [
        {
          name: "baseURL that is not a URL",
          options: { apiKey, model: MODEL, baseURL: "not a url" },
          field: "baseURL"
        },
        {
          name: "non-http baseURL",
          options: { apiKey, model: MODEL, baseURL: "ftp://example.com/v1" },
          field: "baseURL"
        },
        { name: "blank model", options: { apiKey, model: "   " }, field: "model" },
        { name: "blank name", options: { apiKey, model: MODEL, name: "" }, field: "name" },
        { name: "zero timeout", options: { apiKey, model: MODEL, timeout: 0 }, field: "timeout" },
        { name: "negative timeout", options: { apiKey, model: MODEL, timeout: -5 }, field: "timeout" },
        { name: "infinite timeout", options: { apiKey, model: MODEL, timeout: Duration.infinity }, field: "timeout" }
      ]
    for (const c of invalid) {
      it.effect(`${c.name} → InvalidOptions naming ${c.field}`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(OpenAi.make(c.options))
          strictEqual(error._tag, "InvalidOptions")
          strictEqual(error.field, c.field)
          assertTrue(error.message.includes(c.field))
        }))
    }

    it.effect("a custom name is the provider name in results and errors", () =>
      Effect.gen(function*() {
        const llm = yield* OpenAi.make({ apiKey, model: MODEL, name: "azure-east", baseURL: `${mock.url}/v1` })
        strictEqual(llm.key, "azure-east:gpt-4o")
        strictEqual((yield* llm.complete(ask("hello"))).provider, "azure-east")
        const error = asHard(yield* Effect.flip(llm.complete(ask("server-error-500"))))
        strictEqual(error.provider, "azure-east")
        assertTrue(error.message.includes("azure-east/gpt-4o"), error.message)
      }))
  })

  describe("countTokens", () => {
    it.effect("counts gpt-4o prompts with o200k: content + 3 per message + 3", () =>
      Effect.gen(function*() {
        const messages: ReadonlyArray<ChatMessage> = [
          { role: "system", content: "You are a terse assistant." },
          { role: "user", content: "Déjà vu: 🚀 naïve café, 数据 tokens?" }
        ]
        const expected = messages.reduce((n, m) => n + o200kCount(messageText(m)), 0) + 3 * messages.length + 3
        const withCl100k = messages.reduce((n, m) => n + cl100kCount(messageText(m)), 0) + 3 * messages.length + 3
        assertTrue(expected !== withCl100k, "the sample tells the two encodings apart")
        const llm = yield* openAi()
        strictEqual(yield* llm.countTokens(messages), expected)
        strictEqual(yield* llm.countTokens([]), 3)
      }))
  })
})
