/**
 * The Anthropic provider, driven through the real `@anthropic-ai/sdk` over real HTTP against loopback servers:
 * aimock (a Messages API emulator) and mockttp (hand-written responses for what aimock cannot produce).
 */
import AnthropicClient from "@anthropic-ai/sdk"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { countTokens as cl100kCount } from "gpt-tokenizer/encoding/cl100k_base"
import type { MockedEndpoint, RequestRuleBuilder } from "mockttp"
import { PassThrough } from "node:stream"
import type { ChatMessage, CompletionRequestInput, StreamChunk } from "../../src/Llm.js"
import { messageText } from "../../src/Llm.js"
import { HardFailure, type HardReason, InvalidOptions, InvalidRequest } from "../../src/LlmError.js"
import { LlmProvider, type Service } from "../../src/LlmProvider.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import {
  type AnthropicServers,
  completeStream,
  contentBlockStart,
  contentBlockStop,
  errorBody,
  errorEvent,
  JSON_HEADERS,
  messageBody,
  messageDelta,
  messageStart,
  messageStop,
  ping,
  SSE_HEADERS,
  startAnthropicServers,
  streamPrefix,
  textDelta,
  uniquePrefix,
  uniqueToken
} from "../support/anthropic-servers.js"

const API_KEY = "sk-ant-SECRET-123"
const MODEL = "claude-x"
const USER: CompletionRequestInput = { messages: [{ role: "user", content: "Hello there" }] }

let servers: AnthropicServers

beforeAll(async () => {
  servers = await startAnthropicServers()
})

afterAll(async () => {
  await servers.stop()
})

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

interface Stub {
  /** The path the SDK posts to: `<prefix>/v1/messages`. */
  readonly path: string
  readonly baseURL: string
  readonly endpoint: MockedEndpoint
}

/** Registers a mockttp rule for a fresh `<prefix>/v1/messages` and returns the base URL that reaches it. */
const stub = (reply: (rule: RequestRuleBuilder) => Promise<MockedEndpoint>): Effect.Effect<Stub> =>
  Effect.promise(async () => {
    const prefix = uniquePrefix()
    const path = `${prefix}/v1/messages`
    const endpoint = await reply(servers.http.forPost(path))
    return { path, baseURL: `${servers.httpUrl}${prefix}`, endpoint }
  })

const provider = (
  baseURL: string,
  options: Partial<Pick<Anthropic.Options, "name" | "defaultMaxTokens" | "timeout" | "model">> = {}
): Effect.Effect<Service> =>
  Anthropic.make({ apiKey: Redacted.make(API_KEY), model: MODEL, baseURL, ...options }).pipe(Effect.orDie)

/** Requests mockttp started to receive on this path (completed or not). */
const initiatedOn = (path: string): number => servers.initiated.filter((seen) => seen === path).length

const sentBodies = (s: Stub): Effect.Effect<Array<unknown>> =>
  Effect.promise(async () => {
    const requests = await s.endpoint.getSeenRequests()
    return Promise.all(requests.map((request) => request.body.getJson()))
  })

const sentHeaders = (s: Stub) =>
  Effect.promise(async () => (await s.endpoint.getSeenRequests()).map((request) => request.headers))

/** The credential a request carried: `x-api-key`, or the token of `authorization: Bearer` (SDK 1.x sends the key so). */
const sentKey = (headers: Record<string, string | Array<string> | undefined> | undefined): string | undefined => {
  const apiKey = headers?.["x-api-key"]
  if (typeof apiKey === "string") return apiKey
  const authorization = headers?.["authorization"]
  return typeof authorization === "string" ? authorization.replace(/^Bearer /, "") : undefined
}

/** Polls a condition with real time, failing the test after two seconds. */
const eventually = (condition: () => boolean, what: string): Effect.Effect<void> =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => `timed out waiting for ${what}` }),
    Effect.orDie
  )

const asHard = (error: HardFailure | InvalidRequest | undefined): HardFailure => {
  if (error === undefined) throw new Error("expected a HardFailure, got no failure")
  if (error._tag !== "HardFailure") throw new Error(`expected a HardFailure, got ${error._tag}: ${error.message}`)
  return error
}

const asInvalid = (error: HardFailure | InvalidRequest | undefined): InvalidRequest => {
  if (error === undefined) throw new Error("expected an InvalidRequest, got no failure")
  if (error._tag !== "InvalidRequest") throw new Error(`expected an InvalidRequest, got ${error._tag}`)
  return error
}

const failure = (service: Service, request: CompletionRequestInput = USER): Effect.Effect<HardFailure> =>
  service.complete(request).pipe(
    Effect.flatMap((result) => Effect.dieMessage(`expected a failure, got content ${JSON.stringify(result.content)}`)),
    Effect.flip,
    Effect.map(asHard)
  )

interface Collected {
  readonly chunks: ReadonlyArray<StreamChunk>
  readonly error: HardFailure | InvalidRequest | undefined
}

/** Runs a stream to its end or first failure, keeping every chunk the consumer received. */
const collect = (stream: Stream.Stream<StreamChunk, HardFailure | InvalidRequest>): Effect.Effect<Collected> =>
  Effect.map(Stream.runCollect(Stream.either(stream)), (items) => {
    const all = Chunk.toReadonlyArray(items)
    return {
      chunks: all.flatMap((item) => Either.isRight(item) ? [item.right] : []),
      error: all.flatMap((item) => Either.isLeft(item) ? [item.left] : [])[0]
    }
  })

const texts = (chunks: ReadonlyArray<StreamChunk>): Array<string> =>
  chunks.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : [])

const millis = (duration: Duration.Duration | undefined): number | undefined =>
  duration === undefined ? undefined : Duration.toMillis(duration)

const withRequestId = (id: string, headers: Record<string, string> = JSON_HEADERS) => ({
  ...headers,
  "request-id": id
})

const aimockRequestsWith = (token: string) =>
  servers.aimock.getRequests().filter((entry) => JSON.stringify(entry.body).includes(token))

// ---------------------------------------------------------------------------------------------------------------
// HTTP failures
// ---------------------------------------------------------------------------------------------------------------

interface ErrorCase {
  readonly name: string
  readonly status: number
  readonly body: string
  readonly headers?: Record<string, string>
  readonly reason: HardReason
  readonly retryable: boolean
  readonly providerCode: string | undefined
  readonly retryAfterMs?: number
}

const errorCases: ReadonlyArray<ErrorCase> = [
  {
    name: "429 rate_limit_error with retry-after",
    status: 429,
    body: errorBody("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    headers: { "retry-after": "7" },
    reason: "RateLimited",
    retryable: true,
    providerCode: "rate_limit_error",
    retryAfterMs: 7000
  },
  {
    name: "402 billing_error",
    status: 402,
    body: errorBody("billing_error", "Your credit balance is too low to access the Anthropic API."),
    reason: "QuotaExhausted",
    retryable: false,
    providerCode: "billing_error"
  },
  {
    name: "500 api_error",
    status: 500,
    body: errorBody("api_error", "Internal server error"),
    reason: "ServerError",
    retryable: true,
    providerCode: "api_error"
  },
  {
    name: "500 api_error with x-should-retry: false",
    status: 500,
    body: errorBody("api_error", "Internal server error"),
    headers: { "x-should-retry": "false" },
    reason: "ServerError",
    retryable: false,
    providerCode: "api_error"
  },
  {
    name: "529 overloaded_error",
    status: 529,
    body: errorBody("overloaded_error", "Overloaded"),
    reason: "Overloaded",
    retryable: true,
    providerCode: "overloaded_error"
  },
  {
    name: "503 from a proxy (plain-text body)",
    status: 503,
    body: "upstream connect error or disconnect/reset before headers",
    headers: { "content-type": "text/plain" },
    reason: "Overloaded",
    retryable: true,
    providerCode: undefined
  },
  {
    name: "408 timeout_error",
    status: 408,
    body: errorBody("timeout_error", "Request timed out"),
    reason: "Timeout",
    retryable: true,
    providerCode: "timeout_error"
  },
  {
    name: "408 without a body",
    status: 408,
    body: "",
    headers: {},
    reason: "Timeout",
    retryable: true,
    providerCode: undefined
  },
  {
    name: "504 timeout_error",
    status: 504,
    body: errorBody("timeout_error", "Request timed out"),
    reason: "Timeout",
    retryable: true,
    providerCode: "timeout_error"
  },
  {
    name: "400 invalid_request_error",
    status: 400,
    body: errorBody("invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\""),
    reason: "BadRequest",
    retryable: false,
    providerCode: "invalid_request_error"
  },
  {
    name: "400 prompt is too long",
    status: 400,
    body: errorBody("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
    reason: "ContextLengthExceeded",
    retryable: false,
    providerCode: "invalid_request_error"
  },
  {
    name: "413 request_too_large",
    status: 413,
    body: errorBody("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    reason: "ContextLengthExceeded",
    retryable: false,
    providerCode: "request_too_large"
  },
  {
    name: "401 authentication_error",
    status: 401,
    body: errorBody("authentication_error", "invalid x-api-key"),
    reason: "Unauthorized",
    retryable: false,
    providerCode: "authentication_error"
  },
  {
    name: "403 permission_error",
    status: 403,
    body: errorBody("permission_error", "Your API key does not have permission to use the specified resource."),
    reason: "Forbidden",
    retryable: false,
    providerCode: "permission_error"
  },
  {
    name: "404 not_found_error",
    status: 404,
    body: errorBody("not_found_error", "model: claude-nope"),
    reason: "NotFound",
    retryable: false,
    providerCode: "not_found_error"
  }
]

describe("Anthropic provider", () => {
  describe("complete: HTTP failures (mockttp)", () => {
    for (const c of errorCases) {
      it.live(`${c.name} → ${c.reason}`, () =>
        Effect.gen(function*() {
          const requestId = `req_${c.status}_${c.reason}`
          const s = yield* stub((rule) =>
            rule.thenReply(c.status, c.body, withRequestId(requestId, { ...JSON_HEADERS, ...c.headers }))
          )
          const error = yield* failure(yield* provider(s.baseURL))
          expect(error).toBeInstanceOf(HardFailure)
          expect(error.reason).toBe(c.reason)
          expect(error.status).toBe(c.status)
          expect(error.retryable).toBe(c.retryable)
          expect(error.providerCode).toBe(c.providerCode)
          expect(error.requestId).toBe(requestId)
          expect(error.provider).toBe("anthropic")
          expect(error.model).toBe(MODEL)
          expect(millis(error.retryAfter)).toBe(c.retryAfterMs)
          expect(error.partialContent).toBeUndefined()
          expect(initiatedOn(s.path)).toBe(1)
        }))
    }

    it.live("retry-after as an HTTP date becomes the time until that date", () =>
      Effect.gen(function*() {
        const at = new Date(Date.now() + 20_000).toUTCString()
        const s = yield* stub((rule) =>
          rule.thenReply(429, errorBody("rate_limit_error", "slow down"), { ...JSON_HEADERS, "retry-after": at })
        )
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("RateLimited")
        const hint = millis(error.retryAfter)
        expect(hint).toBeGreaterThan(17_000)
        expect(hint).toBeLessThanOrEqual(20_000)
      }))

    it.live("a malformed retry-after is ignored, not fatal", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(429, errorBody("rate_limit_error", "slow down"), { ...JSON_HEADERS, "retry-after": "-3" })
        )
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("RateLimited")
        expect(error.retryable).toBe(true)
        expect(error.retryAfter).toBeUndefined()
      }))

    it.live("200 with stop_reason refusal → ContentFiltered carrying the text", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(
            200,
            messageBody({ content: [{ type: "text", text: "I can't help with that." }], stopReason: "refusal" }),
            withRequestId("req_refusal")
          )
        )
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("ContentFiltered")
        expect(error.retryable).toBe(false)
        expect(error.status).toBe(200)
        expect(error.providerCode).toBe("refusal")
        expect(error.requestId).toBe("req_refusal")
        expect(error.partialContent).toBe("I can't help with that.")
      }))

    it.live("a 200 whose body is not JSON → ServerError malformed_response", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenReply(200, "{\"id\": \"msg_1\", \"content\": [", JSON_HEADERS))
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("ServerError")
        expect(error.providerCode).toBe("malformed_response")
        expect(error.retryable).toBe(true)
      }))

    it.live("a 200 JSON body of the wrong shape → ServerError malformed_response with the request id", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, JSON.stringify({ id: "msg_1", content: "not a list" }), withRequestId("req_shape"))
        )
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("ServerError")
        expect(error.providerCode).toBe("malformed_response")
        expect(error.requestId).toBe("req_shape")
      }))

    it.live("a connection reset → Connection (retryable)", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenResetConnection())
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("Connection")
        expect(error.retryable).toBe(true)
        expect(error.status).toBeUndefined()
        expect(initiatedOn(s.path)).toBe(1)
      }))

    it.live("a connection closed without a response → Connection", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenCloseConnection())
        const error = yield* failure(yield* provider(s.baseURL))
        expect(error.reason).toBe("Connection")
        expect(error.retryable).toBe(true)
      }))

    it.live("a request's timeout against a server that never answers → Timeout, and the request is aborted", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenTimeout())
        const service = yield* provider(s.baseURL)
        const started = Date.now()
        const error = yield* failure(service, { ...USER, timeout: 200 })
        expect(Date.now() - started).toBeLessThan(3_000)
        expect(error.reason).toBe("Timeout")
        expect(error.retryable).toBe(true)
        expect(error.status).toBeUndefined()
        yield* eventually(() => servers.aborted.includes(s.path), "the server to see the request aborted")
      }))

    it.live("the provider's timeout option applies when the request sets none", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenTimeout())
        const error = yield* failure(yield* provider(s.baseURL, { timeout: "200 millis" }))
        expect(error.reason).toBe("Timeout")
      }))
  })

  describe("complete: aimock errors and SDK retries", () => {
    it.live("aimock 429 rate_limit_error → RateLimited with retryAfter, and exactly one request", () =>
      Effect.gen(function*() {
        const token = uniqueToken("aimock-429")
        servers.aimock.onMessage(token, {
          error: { message: "Rate limited", type: "rate_limit_error" },
          status: 429,
          retryAfter: 3
        })
        const service = yield* provider(servers.aimockUrl)
        const error = yield* failure(service, { messages: [{ role: "user", content: token }] })
        expect(error.reason).toBe("RateLimited")
        expect(error.status).toBe(429)
        expect(error.retryable).toBe(true)
        expect(error.providerCode).toBe("rate_limit_error")
        expect(millis(error.retryAfter)).toBe(3_000)
        expect(aimockRequestsWith(token)).toHaveLength(1)
      }))

    it.live("aimock 529 overloaded_error → Overloaded, and exactly one request", () =>
      Effect.gen(function*() {
        const token = uniqueToken("aimock-529")
        servers.aimock.onMessage(token, { error: { message: "Overloaded", type: "overloaded_error" }, status: 529 })
        const service = yield* provider(servers.aimockUrl)
        const error = yield* failure(service, { messages: [{ role: "user", content: token }] })
        expect(error.reason).toBe("Overloaded")
        expect(error.status).toBe(529)
        expect(error.retryable).toBe(true)
        expect(aimockRequestsWith(token)).toHaveLength(1)
      }))

    it.live("a pre-built client with maxRetries 4 still sends exactly one request on 529 and on 429", () =>
      Effect.gen(function*() {
        for (const [status, type] of [[529, "overloaded_error"], [429, "rate_limit_error"]] as const) {
          const s = yield* stub((rule) =>
            rule.thenReply(status, errorBody(type, "try later"), {
              ...JSON_HEADERS,
              "retry-after": "0",
              "x-should-retry": "true"
            })
          )
          const client = new AnthropicClient({ apiKey: "client-key", baseURL: s.baseURL, maxRetries: 4 })
          const service = yield* Anthropic.make({ client, model: MODEL }).pipe(Effect.orDie)
          const error = yield* failure(service)
          expect(error.status).toBe(status)
          expect(yield* sentBodies(s)).toHaveLength(1)
          expect(initiatedOn(s.path)).toBe(1)
        }
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Success
  // -------------------------------------------------------------------------------------------------------------

  describe("complete: success", () => {
    it.live("aimock: content, usage, finish reason and model from the Messages API", () =>
      Effect.gen(function*() {
        const token = uniqueToken("aimock-ok")
        servers.aimock.onMessage(token, {
          content: "Hi there!",
          usage: { input_tokens: 7, output_tokens: 3 },
          finishReason: "length",
          model: "claude-mock-1"
        })
        const service = yield* provider(servers.aimockUrl)
        const result = yield* service.complete({ messages: [{ role: "user", content: token }] })
        expect(result.content).toBe("Hi there!")
        expect(result.usage).toEqual({ inputTokens: 7, outputTokens: 3, totalTokens: 10 })
        expect(result.finishReason).toBe("length")
        expect(result.model).toBe("claude-mock-1")
        expect(result.provider).toBe("anthropic")
        const [entry, ...rest] = aimockRequestsWith(token)
        expect(rest).toHaveLength(0)
        expect(entry?.path).toBe("/v1/messages")
        expect(entry?.body).toMatchObject({ model: MODEL, max_tokens: 4096 })
      }))

    it.live("text blocks are concatenated, other blocks skipped; usage, model, request id, provider", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(
            200,
            messageBody({
              model: "claude-x-20250101",
              content: [
                { type: "thinking", thinking: "let me think", signature: "sig" },
                { type: "text", text: "Hello, " },
                { type: "tool_use", id: "toolu_1", name: "lookup", input: { q: "x" } },
                { type: "text", text: "world!" }
              ],
              inputTokens: 12,
              outputTokens: 34
            }),
            withRequestId("req_success")
          )
        )
        const result = yield* (yield* provider(s.baseURL)).complete(USER)
        expect(result.content).toBe("Hello, world!")
        expect(result.usage).toEqual({ inputTokens: 12, outputTokens: 34, totalTokens: 46 })
        expect(result.model).toBe("claude-x-20250101")
        expect(result.provider).toBe("anthropic")
        expect(result.finishReason).toBe("stop")
        expect(result.requestId).toBe("req_success")
        expect(result.latencyMs).toBeGreaterThanOrEqual(0)
        expect(result.rateLimit).toBeUndefined()
      }))

    for (
      const [stopReason, expected] of [
        ["end_turn", "stop"],
        ["max_tokens", "length"],
        ["stop_sequence", "stop"],
        ["tool_use", "tool_calls"]
      ] as const
    ) {
      it.live(`stop_reason ${stopReason} → finishReason ${expected}`, () =>
        Effect.gen(function*() {
          const s = yield* stub((rule) =>
            rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }], stopReason }), JSON_HEADERS)
          )
          const result = yield* (yield* provider(s.baseURL)).complete(USER)
          expect(result.finishReason).toBe(expected)
          expect(result.content).toBe("ok")
        }))
    }

    it.live("a custom name is the provider and part of the key", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), JSON_HEADERS)
        )
        const service = yield* provider(s.baseURL, { name: "claude-prod" })
        expect(service.name).toBe("claude-prod")
        expect(service.model).toBe(MODEL)
        expect(service.key).toBe(`claude-prod:${MODEL}`)
        expect((yield* service.complete(USER)).provider).toBe("claude-prod")
      }))

    it.live("anthropic-ratelimit-* headers become rateLimit, with RFC 3339 resets turned into durations", () =>
      Effect.gen(function*() {
        const now = Date.now()
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), {
            ...JSON_HEADERS,
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": new Date(now + 30_000).toISOString(),
            "anthropic-ratelimit-tokens-limit": "100000",
            "anthropic-ratelimit-tokens-remaining": "99000",
            "anthropic-ratelimit-tokens-reset": new Date(now + 60_000).toISOString()
          })
        )
        const { rateLimit } = yield* (yield* provider(s.baseURL)).complete(USER)
        expect(rateLimit).toMatchObject({
          limitRequests: 50,
          remainingRequests: 49,
          limitTokens: 100_000,
          remainingTokens: 99_000
        })
        const resetRequests = millis(rateLimit?.resetRequests)
        const resetTokens = millis(rateLimit?.resetTokens)
        expect(resetRequests).toBeGreaterThan(25_000)
        expect(resetRequests).toBeLessThanOrEqual(30_000)
        expect(resetTokens).toBeGreaterThan(55_000)
        expect(resetTokens).toBeLessThanOrEqual(60_000)
      }))

    it.live("a reset already in the past is zero; the input-tokens family stands in for a missing tokens family", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), {
            ...JSON_HEADERS,
            "anthropic-ratelimit-requests-reset": "2020-01-01T00:00:00Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000"
          })
        )
        const { rateLimit } = yield* (yield* provider(s.baseURL)).complete(USER)
        expect(millis(rateLimit?.resetRequests)).toBe(0)
        expect(rateLimit?.limitTokens).toBe(40_000)
        expect(rateLimit?.remainingTokens).toBe(39_000)
        expect(rateLimit?.limitRequests).toBeUndefined()
      }))

    it.live("malformed rate-limit headers are ignored, never fatal", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "still fine" }] }), {
            ...JSON_HEADERS,
            "anthropic-ratelimit-requests-limit": "fifty",
            "anthropic-ratelimit-requests-remaining": "-5",
            "anthropic-ratelimit-requests-reset": "not-a-date",
            "anthropic-ratelimit-tokens-limit": "1.5",
            "anthropic-ratelimit-tokens-remaining": "99",
            "anthropic-ratelimit-tokens-reset": ""
          })
        )
        const result = yield* (yield* provider(s.baseURL)).complete(USER)
        expect(result.content).toBe("still fine")
        expect(result.rateLimit).toEqual({ remainingTokens: 99 })
      }))

    it.live("only malformed rate-limit headers → no rateLimit at all", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), {
            ...JSON_HEADERS,
            "anthropic-ratelimit-requests-limit": "NaN",
            "anthropic-ratelimit-tokens-reset": "tomorrow-ish"
          })
        )
        const result = yield* (yield* provider(s.baseURL)).complete(USER)
        expect(result.rateLimit).toBeUndefined()
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Request shaping
  // -------------------------------------------------------------------------------------------------------------

  describe("request shaping (the body the server received)", () => {
    const okStub = () =>
      stub((rule) => rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), JSON_HEADERS))

    it.live("system messages go to `system` (joined) and are removed from `messages`; defaults applied", () =>
      Effect.gen(function*() {
        const s = yield* okStub()
        yield* (yield* provider(s.baseURL)).complete({
          messages: [
            { role: "system", content: "You are terse." },
            { role: "user", content: "Hi" },
            { role: "system", content: "Answer in French." },
            { role: "assistant", content: "Salut" },
            { role: "user", content: "Again" }
          ]
        })
        expect(yield* sentBodies(s)).toEqual([{
          model: MODEL,
          max_tokens: 4096,
          stream: false,
          system: "You are terse.\n\nAnswer in French.",
          messages: [
            { role: "user", content: "Hi" },
            { role: "assistant", content: "Salut" },
            { role: "user", content: "Again" }
          ]
        }])
        const [headers] = yield* sentHeaders(s)
        expect(sentKey(headers)).toBe(API_KEY)
        expect(headers?.["x-stainless-retry-count"]).toBe("0")
      }))

    it.live("max_tokens follows maxTokens, then defaultMaxTokens; request model overrides the default", () =>
      Effect.gen(function*() {
        const s = yield* okStub()
        const service = yield* provider(s.baseURL, { defaultMaxTokens: 1000 })
        yield* service.complete({ ...USER, maxTokens: 77, model: "claude-other" })
        yield* service.complete(USER)
        const bodies = yield* sentBodies(s)
        expect(bodies[0]).toMatchObject({ max_tokens: 77, model: "claude-other" })
        expect(bodies[1]).toMatchObject({ max_tokens: 1000, model: MODEL })
      }))

    it.live("temperature above 1 is clamped to 1, lower values pass through, absent stays absent", () =>
      Effect.gen(function*() {
        const s = yield* okStub()
        const service = yield* provider(s.baseURL)
        yield* service.complete({ ...USER, temperature: 1.7 })
        yield* service.complete({ ...USER, temperature: 0.3 })
        yield* service.complete(USER)
        const bodies = yield* sentBodies(s)
        expect(bodies[0]).toMatchObject({ temperature: 1 })
        expect(bodies[1]).toMatchObject({ temperature: 0.3 })
        expect(bodies[2]).not.toHaveProperty("temperature")
      }))

    it.live("stopSequences become stop_sequences", () =>
      Effect.gen(function*() {
        const s = yield* okStub()
        const service = yield* provider(s.baseURL)
        yield* service.complete({ ...USER, stopSequences: ["END", "###"] })
        yield* service.complete(USER)
        const bodies = yield* sentBodies(s)
        expect(bodies[0]).toMatchObject({ stop_sequences: ["END", "###"] })
        expect(bodies[1]).not.toHaveProperty("stop_sequences")
      }))

    it.live("responseFormat json appends a JSON instruction to the system prompt", () =>
      Effect.gen(function*() {
        const s = yield* okStub()
        const service = yield* provider(s.baseURL)
        yield* service.complete({
          messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "List three colours" }],
          responseFormat: "json"
        })
        yield* service.complete({ ...USER, responseFormat: "json" })
        yield* service.complete({ ...USER, responseFormat: "text" })
        const [withSystem, withoutSystem, text] = (yield* sentBodies(s)) as Array<{ readonly system?: string }>
        expect(withSystem?.system).toMatch(/^Be brief\.\n\n.*JSON/s)
        expect(withoutSystem?.system).toMatch(/JSON/)
        expect(withoutSystem?.system).not.toContain("Be brief.")
        expect(text).not.toHaveProperty("system")
      }))

    it.live("stream requests are sent with stream: true", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenReply(200, completeStream(["ok"]), SSE_HEADERS))
        yield* collect((yield* provider(s.baseURL)).stream({ ...USER, maxTokens: 9 }))
        expect(yield* sentBodies(s)).toEqual([{
          model: MODEL,
          max_tokens: 9,
          stream: true,
          messages: [{ role: "user", content: "Hello there" }]
        }])
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Streaming
  // -------------------------------------------------------------------------------------------------------------

  describe("stream", () => {
    it.live("success: ContentDelta chunks, then exactly one StreamEnd with usage, model, ttft, request id", () =>
      Effect.gen(function*() {
        const body = [
          messageStart({ model: "claude-x-20250101", inputTokens: 10 }),
          contentBlockStart(0),
          ping(),
          textDelta(0, "Hel"),
          textDelta(0, "lo"),
          contentBlockStop(0),
          contentBlockStart(1),
          textDelta(1, " world"),
          contentBlockStop(1),
          messageDelta("end_turn", 5),
          messageStop()
        ].join("")
        const s = yield* stub((rule) =>
          rule.thenReply(200, body, {
            ...withRequestId("req_stream", SSE_HEADERS),
            "anthropic-ratelimit-requests-remaining": "7"
          })
        )
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(error).toBeUndefined()
        expect(texts(chunks)).toEqual(["Hel", "lo", " world"])
        expect(chunks.slice(0, 3).every((chunk) => chunk._tag === "ContentDelta")).toBe(true)
        expect(chunks.filter((chunk) => chunk._tag === "StreamEnd")).toHaveLength(1)
        const end = chunks.at(-1)
        if (end?._tag !== "StreamEnd") throw new Error("the last chunk must be StreamEnd")
        expect(end.usage).toEqual({ inputTokens: 10, outputTokens: 5, totalTokens: 15 })
        expect(end.finishReason).toBe("stop")
        expect(end.model).toBe("claude-x-20250101")
        expect(end.provider).toBe("anthropic")
        expect(end.requestId).toBe("req_stream")
        expect(end.rateLimit).toEqual({ remainingRequests: 7 })
        expect(end.ttftMs).toBeTypeOf("number")
        expect(end.ttftMs).toBeGreaterThanOrEqual(0)
        expect(end.ttftMs).toBeLessThanOrEqual(end.latencyMs)
      }))

    it.live("max_tokens in message_delta → finishReason length", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, completeStream(["a", "b"], { stopReason: "max_tokens", outputTokens: 2 }), SSE_HEADERS)
        )
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(error).toBeUndefined()
        const end = chunks.at(-1)
        expect(end).toMatchObject({ _tag: "StreamEnd", finishReason: "length", usage: { outputTokens: 2 } })
      }))

    it.live("aimock: deltas reassemble the content; usage from message_start and message_delta", () =>
      Effect.gen(function*() {
        const token = uniqueToken("aimock-stream")
        servers.aimock.onMessage(token, {
          content: "Once upon a time",
          usage: { input_tokens: 11, output_tokens: 4 }
        }, { chunkSize: 4 })
        const service = yield* provider(servers.aimockUrl)
        const { chunks, error } = yield* collect(service.stream({ messages: [{ role: "user", content: token }] }))
        expect(error).toBeUndefined()
        expect(texts(chunks).length).toBeGreaterThan(1)
        expect(texts(chunks).join("")).toBe("Once upon a time")
        expect(chunks.at(-1)).toMatchObject({
          _tag: "StreamEnd",
          finishReason: "stop",
          usage: { inputTokens: 11, outputTokens: 4, totalTokens: 15 }
        })
      }))

    it.live("a stream that ends before message_stop → Connection with the delivered text as partialContent", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, streamPrefix(["Hel", "lo"]), withRequestId("req_cut", SSE_HEADERS))
        )
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(chunks).toEqual([{ _tag: "ContentDelta", text: "Hel" }, { _tag: "ContentDelta", text: "lo" }])
        const hard = asHard(error)
        expect(hard.reason).toBe("Connection")
        expect(hard.retryable).toBe(true)
        expect(hard.providerCode).toBe("stream_incomplete")
        expect(hard.partialContent).toBe("Hello")
        expect(hard.requestId).toBe("req_cut")
      }))

    it.live("a stream whose body is cut by the server mid-way → Connection, partial text matching the chunks", () =>
      Effect.gen(function*() {
        const body = new PassThrough()
        const s = yield* stub((rule) => rule.thenStream(200, body, SSE_HEADERS))
        const fiber = yield* Effect.fork(collect((yield* provider(s.baseURL)).stream(USER)))
        yield* eventually(() => initiatedOn(s.path) === 1, "the stream request")
        body.write(streamPrefix(["par", "tial"]))
        body.destroy(new Error("upstream went away"))
        const { chunks, error } = yield* Fiber.join(fiber)
        expect(texts(chunks)).toEqual(["par", "tial"])
        expect(chunks.every((chunk) => chunk._tag === "ContentDelta")).toBe(true)
        const hard = asHard(error)
        expect(hard.reason).toBe("Connection")
        expect(hard.partialContent).toBe("partial")
      }))

    it.live("aimock truncateAfterChunks → Connection; partialContent is exactly what the consumer received", () =>
      Effect.gen(function*() {
        const token = uniqueToken("aimock-truncate")
        const content = "This answer will be cut short by the server"
        servers.aimock.onMessage(token, { content }, { truncateAfterChunks: 4, chunkSize: 5 })
        const service = yield* provider(servers.aimockUrl)
        const { chunks, error } = yield* collect(service.stream({ messages: [{ role: "user", content: token }] }))
        const hard = asHard(error)
        expect(hard.reason).toBe("Connection")
        expect(hard.retryable).toBe(true)
        expect(chunks.every((chunk) => chunk._tag === "ContentDelta")).toBe(true)
        const received = texts(chunks).join("")
        expect(hard.partialContent ?? "").toBe(received)
        expect(content.startsWith(received)).toBe(true)
        expect(received.length).toBeLessThan(content.length)
      }))

    it.live("an overloaded_error event inside an HTTP 200 stream → Overloaded, retryable, with partialContent", () =>
      Effect.gen(function*() {
        const body = [
          messageStart(),
          contentBlockStart(0),
          textDelta(0, "Hel"),
          textDelta(0, "lo"),
          errorEvent("overloaded_error", "Overloaded")
        ].join("")
        const s = yield* stub((rule) => rule.thenReply(200, body, withRequestId("req_midstream", SSE_HEADERS)))
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(chunks).toEqual([{ _tag: "ContentDelta", text: "Hel" }, { _tag: "ContentDelta", text: "lo" }])
        const hard = asHard(error)
        expect(hard.reason).toBe("Overloaded")
        expect(hard.retryable).toBe(true)
        expect(hard.providerCode).toBe("overloaded_error")
        expect(hard.partialContent).toBe("Hello")
        expect(hard.requestId).toBe("req_midstream")
      }))

    for (
      const [type, reason, retryable] of [
        ["rate_limit_error", "RateLimited", true],
        ["api_error", "ServerError", true],
        ["some_new_error", "ServerError", true]
      ] as const
    ) {
      it.live(`an error event of type ${type} mid-stream → ${reason}`, () =>
        Effect.gen(function*() {
          const body = [messageStart(), contentBlockStart(0), textDelta(0, "partial"), errorEvent(type, "oops")]
            .join("")
          const s = yield* stub((rule) => rule.thenReply(200, body, SSE_HEADERS))
          const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
          expect(texts(chunks)).toEqual(["partial"])
          const hard = asHard(error)
          expect(hard.reason).toBe(reason)
          expect(hard.retryable).toBe(retryable)
          expect(hard.providerCode).toBe(type)
          expect(hard.partialContent).toBe("partial")
        }))
    }

    it.live("an HTTP 529 before any event → Overloaded, no chunks", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(529, errorBody("overloaded_error", "Overloaded"), withRequestId("req_529s"))
        )
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(chunks).toEqual([])
        const hard = asHard(error)
        expect(hard.reason).toBe("Overloaded")
        expect(hard.status).toBe(529)
        expect(hard.requestId).toBe("req_529s")
        expect(hard.partialContent).toBeUndefined()
        expect(initiatedOn(s.path)).toBe(1)
      }))

    it.live("a refusal stop_reason in a stream → ContentFiltered with the partial text", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, completeStream(["I won't"], { stopReason: "refusal" }), SSE_HEADERS)
        )
        const { chunks, error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        expect(texts(chunks)).toEqual(["I won't"])
        const hard = asHard(error)
        expect(hard.reason).toBe("ContentFiltered")
        expect(hard.retryable).toBe(false)
        expect(hard.partialContent).toBe("I won't")
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Validation
  // -------------------------------------------------------------------------------------------------------------

  describe("invalid requests never reach the server", () => {
    const SECRET_PROMPT = "my confidential prompt text"
    const invalid: ReadonlyArray<{ readonly name: string; readonly input: unknown; readonly field: string }> = [
      { name: "no messages", input: { messages: [] }, field: "messages" },
      { name: "empty content", input: { messages: [{ role: "user", content: "   " }] }, field: "messages[0].content" },
      {
        name: "unknown role",
        input: { messages: [{ role: "user", content: SECRET_PROMPT }, { role: "wizard", content: SECRET_PROMPT }] },
        field: "messages[1].role"
      },
      {
        name: "negative maxTokens",
        input: { messages: [{ role: "user", content: SECRET_PROMPT }], maxTokens: -5 },
        field: "maxTokens"
      }
    ]

    for (const c of invalid) {
      it.live(`${c.name} → InvalidRequest naming ${c.field} (complete and stream)`, () =>
        Effect.gen(function*() {
          const s = yield* stub((rule) =>
            rule.thenReply(200, messageBody({ content: [{ type: "text", text: "ok" }] }), JSON_HEADERS)
          )
          const service = yield* provider(s.baseURL)
          const input = c.input as CompletionRequestInput
          const fromComplete = asInvalid(yield* Effect.flip(Effect.asVoid(service.complete(input))))
          const { chunks, error } = yield* collect(service.stream(input))
          expect(chunks).toEqual([])
          const fromStream = asInvalid(error)
          for (const e of [fromComplete, fromStream]) {
            expect(e).toBeInstanceOf(InvalidRequest)
            expect(e.field).toBe(c.field)
            expect(e.issues.map((issue) => issue.field)).toContain(c.field)
            expect(e.message).toContain(c.field)
            expect(e.message).not.toContain(SECRET_PROMPT)
            expect(String(e)).not.toContain(SECRET_PROMPT)
            expect(JSON.stringify(e.issues)).not.toContain(SECRET_PROMPT)
          }
          expect(initiatedOn(s.path)).toBe(0)
          expect(yield* sentBodies(s)).toEqual([])
        }))
    }
  })

  // -------------------------------------------------------------------------------------------------------------
  // Interruption
  // -------------------------------------------------------------------------------------------------------------

  describe("interruption aborts the HTTP request", () => {
    it.live("complete against a server that never answers", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenTimeout())
        const service = yield* provider(s.baseURL)
        const fiber = yield* Effect.fork(service.complete(USER))
        yield* eventually(() => initiatedOn(s.path) === 1, "the request to reach the server")
        const exit = yield* Fiber.interrupt(fiber).pipe(
          Effect.timeoutFail({ duration: "1 second", onTimeout: () => "interrupt did not return promptly" }),
          Effect.orDie
        )
        expect(Exit.isInterrupted(exit)).toBe(true)
        yield* eventually(() => servers.aborted.includes(s.path), "the server to see the request aborted")
      }))

    it.live("stream interrupted while the server holds the body open", () => {
      const body = new PassThrough()
      return Effect.gen(function*() {
        const s = yield* stub((rule) => rule.thenStream(200, body, SSE_HEADERS))
        const service = yield* provider(s.baseURL)
        const received: Array<string> = []
        // A daemon, so that a fiber stuck in its finalizers cannot keep the test itself from finishing.
        const fiber = yield* Effect.forkDaemon(
          Stream.runForEach(service.stream(USER), (chunk) =>
            Effect.sync(() => {
              if (chunk._tag === "ContentDelta") received.push(chunk.text)
            }))
        )
        yield* eventually(() => initiatedOn(s.path) === 1, "the stream request")
        body.write(messageStart() + contentBlockStart(0) + textDelta(0, "first"))
        yield* eventually(() => received.length === 1, "the first delta")
        const exit = yield* Fiber.interrupt(fiber).pipe(
          Effect.timeoutFail({
            duration: "1 second",
            onTimeout: () => "interrupting the stream did not complete within 1 s (the HTTP request was not aborted)"
          }),
          Effect.orDie
        )
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(received).toEqual(["first"])
        yield* eventually(() => servers.aborted.includes(s.path), "the server to see the stream aborted")
      }).pipe(Effect.ensuring(Effect.sync(() => body.destroy())))
    })
  })

  // -------------------------------------------------------------------------------------------------------------
  // Secrets
  // -------------------------------------------------------------------------------------------------------------

  describe("the API key never leaks into failures", () => {
    it.live("across HTTP errors, resets, timeouts and stream errors", () =>
      Effect.gen(function*() {
        const failures: Array<HardFailure> = []
        const echo = errorBody("authentication_error", `invalid x-api-key: ${API_KEY}`)
        const scenarios: ReadonlyArray<(rule: RequestRuleBuilder) => Promise<MockedEndpoint>> = [
          (rule) => rule.thenReply(401, echo, withRequestId("req_leak")),
          (rule) => rule.thenReply(500, errorBody("api_error", "boom"), JSON_HEADERS),
          (rule) => rule.thenReply(200, "not json at all {", JSON_HEADERS),
          (rule) => rule.thenResetConnection(),
          (rule) => rule.thenTimeout()
        ]
        for (const scenario of scenarios) {
          const s = yield* stub(scenario)
          const service = yield* provider(s.baseURL, { timeout: 200 })
          failures.push(yield* failure(service))
          const [headers] = yield* sentHeaders(s)
          if (headers !== undefined) expect(sentKey(headers)).toBe(API_KEY)
        }
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageStart() + errorEvent("overloaded_error", `key ${API_KEY}`), SSE_HEADERS)
        )
        const { error } = yield* collect((yield* provider(s.baseURL)).stream(USER))
        failures.push(asHard(error))

        expect(failures.map((f) => f.reason)).toEqual([
          "Unauthorized",
          "ServerError",
          "ServerError",
          "Connection",
          "Timeout",
          "Overloaded"
        ])
        for (const f of failures) {
          expect(f.message).not.toContain(API_KEY)
          expect(String(f)).not.toContain(API_KEY)
          expect(f.message).not.toContain("SECRET")
        }
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Construction
  // -------------------------------------------------------------------------------------------------------------

  describe("make", () => {
    const key = Redacted.make(API_KEY)
    const bad: ReadonlyArray<{ readonly name: string; readonly options: Anthropic.Options; readonly field: string }> = [
      { name: "blank model", options: { apiKey: key, model: "  " }, field: "model" },
      { name: "blank name", options: { apiKey: key, model: MODEL, name: "" }, field: "name" },
      {
        name: "baseURL that is not a URL",
        options: { apiKey: key, model: MODEL, baseURL: "not a url" },
        field: "baseURL"
      },
      {
        name: "baseURL that is not http(s)",
        options: { apiKey: key, model: MODEL, baseURL: "ftp://example.com" },
        field: "baseURL"
      },
      {
        name: "non-integer defaultMaxTokens",
        options: { apiKey: key, model: MODEL, defaultMaxTokens: 1.5 },
        field: "defaultMaxTokens"
      },
      {
        name: "zero defaultMaxTokens",
        options: { apiKey: key, model: MODEL, defaultMaxTokens: 0 },
        field: "defaultMaxTokens"
      },
      { name: "negative timeout", options: { apiKey: key, model: MODEL, timeout: -1 }, field: "timeout" }
    ]

    for (const c of bad) {
      it.effect(`${c.name} → InvalidOptions naming ${c.field}`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Anthropic.make(c.options))
          expect(error).toBeInstanceOf(InvalidOptions)
          expect(error.field).toBe(c.field)
          expect(error.message).toContain(c.field)
          expect(error.message).not.toContain(API_KEY)
        }))
    }

    it.live("a pre-built client is used, and its baseURL honoured", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "from the client" }] }), JSON_HEADERS)
        )
        const client = new AnthropicClient({ apiKey: "client-key", baseURL: s.baseURL })
        const service = yield* Anthropic.make({ client, model: MODEL }).pipe(Effect.orDie)
        const result = yield* service.complete(USER)
        expect(result.content).toBe("from the client")
        const [headers] = yield* sentHeaders(s)
        expect(sentKey(headers)).toBe("client-key")
      }))

    it.live("layer provides LlmProvider", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "via layer" }] }), JSON_HEADERS)
        )
        const result = yield* Effect.flatMap(LlmProvider, (service) => service.complete(USER)).pipe(
          Effect.provide(Anthropic.layer({ apiKey: key, model: MODEL, baseURL: s.baseURL }))
        )
        expect(result.content).toBe("via layer")
      }))

    it.live("layerConfig reads the key, base URL and model from config", () =>
      Effect.gen(function*() {
        const s = yield* stub((rule) =>
          rule.thenReply(200, messageBody({ content: [{ type: "text", text: "via config" }] }), JSON_HEADERS)
        )
        const fromConfig = (entries: ReadonlyArray<readonly [string, string]>) =>
          Effect.provide(LlmProvider, Anthropic.layerConfig).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))
          )
        const base = [["ANTHROPIC_API_KEY", API_KEY], ["ANTHROPIC_BASE_URL", s.baseURL]] as const
        const configured = yield* fromConfig([...base, ["ANTHROPIC_MODEL", "claude-from-config"]])
        expect(configured.model).toBe("claude-from-config")
        expect((yield* configured.complete(USER)).content).toBe("via config")
        // Without ANTHROPIC_MODEL a default Claude model is used (and sent).
        const defaulted = yield* fromConfig(base)
        expect(defaulted.model).toMatch(/^claude-/)
        yield* defaulted.complete(USER)
        expect(yield* sentBodies(s)).toEqual([
          expect.objectContaining({ model: "claude-from-config" }),
          expect.objectContaining({ model: defaulted.model })
        ])
        for (const headers of yield* sentHeaders(s)) expect(sentKey(headers)).toBe(API_KEY)
      }))

    it.live("layerConfig without ANTHROPIC_API_KEY fails with a ConfigError", () =>
      Effect.gen(function*() {
        const error = yield* Effect.provide(LlmProvider, Anthropic.layerConfig).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
          Effect.flip
        )
        expect(error._tag).not.toBe("InvalidOptions")
        expect(String(error)).toContain("ANTHROPIC_API_KEY")
      }))
  })

  // -------------------------------------------------------------------------------------------------------------
  // Token counting
  // -------------------------------------------------------------------------------------------------------------

  describe("countTokens", () => {
    it.live("is ceil(1.2 × cl100k) + 4 per message", () =>
      Effect.gen(function*() {
        const service = yield* provider(servers.aimockUrl)
        const messages: ReadonlyArray<ChatMessage> = [
          { role: "system", content: "You are a helpful assistant who answers in full sentences." },
          { role: "user", content: "How many tokens does this sentence have, roughly speaking?" },
          { role: "assistant", content: "Quite a few — around a dozen." }
        ]
        const content = messages.reduce((sum, message) => sum + cl100kCount(messageText(message)), 0)
        const expected = Math.ceil(content * 1.2) + 4 * messages.length
        expect(yield* service.countTokens(messages)).toBe(expected)
        expect(yield* service.countTokens([{ role: "user", content: "hi" }])).toBe(
          Math.ceil(cl100kCount("hi") * 1.2) + 4
        )
        expect(yield* service.countTokens([])).toBe(0)
      }))
  })
})
