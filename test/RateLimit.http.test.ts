/**
 * The limiter over a real provider and real HTTP: `OpenAi.make` against aimock (`LLMock`) for a 429 with Retry-After,
 * and against mockttp for responses carrying custom `x-ratelimit-*` / `anthropic-ratelimit-*` headers (on successes and
 * on 429s, through both SDKs). Clock time is the TestClock's (no
 * sleeps happen: fail-fast mode shows what the limiter learned).
 */
import type { LLMock } from "@copilotkit/aimock"
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { assertTrue, strictEqual } from "@effect/vitest/utils"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import type { RateLimitExceeded } from "../src/LlmError.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as RateLimit from "../src/RateLimit.js"
import { errorBody as anthropicErrorBody, startAnthropicServers } from "./support/anthropic-servers.js"
import {
  apiKey,
  ask,
  completionJson,
  exactly,
  type HttpMock,
  JSON_HEADERS,
  startAimock,
  startMockttp
} from "./support/openai-servers.js"

const MODEL = "gpt-4o"

let mock: LLMock
let http: HttpMock

beforeAll(async () => {
  ;[mock, http] = await Promise.all([startAimock(), startMockttp()])
  mock.on({ userMessage: exactly("limiter-429") }, {
    error: { message: "Rate limit reached for gpt-4o", type: "requests", code: "rate_limit_exceeded" },
    status: 429,
    retryAfter: 7
  })
  mock.on({ userMessage: exactly("limiter-ok") }, {
    content: "fine",
    usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 }
  })
})

afterAll(async () => {
  await Promise.all([mock.stop(), http.server.stop()])
})

const rejection = <A, E>(effect: Effect.Effect<A, E | RateLimitExceeded>) =>
  Effect.map(Effect.flip(effect), (error) => {
    if (typeof error !== "object" || error === null || !("_tag" in error) || error._tag !== "RateLimitExceeded") {
      throw new Error(`expected RateLimitExceeded, got ${String(error)}`)
    }
    return error as RateLimitExceeded
  })

describe("RateLimit over HTTP", () => {
  it.effect("aimock: a 429 with Retry-After pauses the key; reconciliation uses the reported usage", () =>
    Effect.gen(function*() {
      const openai = yield* OpenAi.make({ apiKey, model: MODEL, baseURL: `${mock.url}/v1` })
      const limiter = yield* RateLimit.make({ limits: { rpm: 100, tpm: 10_000 }, mode: "fail-fast" })
      const ok = yield* limiter.call(openai, ask("limiter-ok", { maxTokens: 200 }))
      strictEqual(ok.content, "fine")
      strictEqual((yield* limiter.snapshot(openai)).tokensInWindow, 16, "the estimate was reconciled to 11 + 5")

      const failure = yield* Effect.flip(limiter.call(openai, ask("limiter-429")))
      strictEqual(failure._tag, "HardFailure")
      const snapshot = yield* limiter.snapshot(openai)
      strictEqual(snapshot.pausedUntil, 7_000)
      strictEqual(snapshot.tokensInWindow, 16, "the refused call's charge was returned")
      // aimock's 429 also says `x-ratelimit-remaining-tokens: 0`, reset in 6m0s: that holds the key longer than the
      // Retry-After pause, and the limiter reads it from the 429 as from a success.
      strictEqual(snapshot.provider.remainingTokens, 0)
      strictEqual(snapshot.provider.tokensResetAt, 360_000)
      const held = yield* rejection(limiter.call(openai, ask("limiter-ok")))
      strictEqual(held.key, `openai:${MODEL}`)
      strictEqual(held.limit, "tokens")
      strictEqual(Duration.toMillis(held.retryAfter), 360_000)
      strictEqual(mock.getRequests().length >= 2, true)
    }))

  it.effect("mockttp: x-ratelimit-remaining-* with Go-duration resets tighten the limiter", () =>
    Effect.gen(function*() {
      const { baseURL, path } = http.route("limiter-headers")
      const reply = (headers: Record<string, string>) =>
        Effect.promise(() =>
          http.server.forPost(path).once().thenReply(
            200,
            completionJson({ content: "fine", usage: { prompt_tokens: 20, completion_tokens: 5 } }),
            { ...JSON_HEADERS, ...headers }
          )
        )
      yield* reply({
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "2000",
        "x-ratelimit-reset-tokens": "6m0s"
      })
      yield* reply({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "12s",
        "x-ratelimit-remaining-tokens": "garbage",
        "x-ratelimit-reset-tokens": "later"
      })
      const openai = yield* OpenAi.make({ apiKey, model: MODEL, baseURL })
      // Locally the budget is generous; only the provider's headers can refuse these calls.
      const limiter = yield* RateLimit.make({ limits: { rpm: 500, tpm: 100_000 }, mode: "fail-fast" })

      const first = yield* limiter.call(openai, ask("first", { maxTokens: 50 }))
      assertTrue(first.rateLimit !== undefined)
      const afterFirst = yield* limiter.snapshot(openai)
      strictEqual(afterFirst.provider.remainingRequests, 3)
      strictEqual(afterFirst.provider.requestsResetAt, 30_000)
      strictEqual(afterFirst.provider.remainingTokens, 2_000)
      strictEqual(afterFirst.provider.tokensResetAt, 360_000)
      strictEqual(afterFirst.tokensInWindow, 25)

      const tooBig = yield* rejection(limiter.call(openai, ask("too big", { maxTokens: 5_000 })))
      strictEqual(tooBig.limit, "tokens")
      strictEqual(Duration.toMillis(tooBig.retryAfter), 360_000)

      yield* limiter.call(openai, ask("second", { maxTokens: 50 }))
      const afterSecond = yield* limiter.snapshot(openai)
      strictEqual(afterSecond.provider.remainingRequests, 0)
      strictEqual(afterSecond.provider.requestsResetAt, 12_000)
      // The malformed token headers of the second response changed nothing: the 6m0s token reset still holds.
      strictEqual(afterSecond.provider.tokensResetAt, 360_000)

      const noRequestsLeft = yield* rejection(limiter.call(openai, ask("third", { maxTokens: 50 })))
      strictEqual(noRequestsLeft.limit, "requests")
      strictEqual(Duration.toMillis(noRequestsLeft.retryAfter), 12_000)
    }))

  it.effect("mockttp: a 429's x-ratelimit-* headers tighten the limiter (OpenAI SDK), not only a success's", () =>
    Effect.gen(function*() {
      const { baseURL, path } = http.route("limiter-429-headers")
      yield* Effect.promise(() =>
        http.server.forPost(path).once().thenReply(
          429,
          JSON.stringify({ error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } }),
          {
            ...JSON_HEADERS,
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "45s",
            "x-ratelimit-remaining-tokens": "900",
            "x-ratelimit-reset-tokens": "2m0s"
          }
        )
      )
      const openai = yield* OpenAi.make({ apiKey, model: MODEL, baseURL })
      const limiter = yield* RateLimit.make({ limits: { rpm: 500, tpm: 100_000 }, mode: "fail-fast" })

      const failure = yield* Effect.flip(limiter.call(openai, ask("refused", { maxTokens: 50 })))
      strictEqual(failure._tag, "HardFailure")
      strictEqual(failure._tag === "HardFailure" ? failure.rateLimit?.remainingRequests : undefined, 0)
      const snapshot = yield* limiter.snapshot(openai)
      strictEqual(snapshot.provider.remainingRequests, 0)
      strictEqual(snapshot.provider.requestsResetAt, 45_000)
      strictEqual(snapshot.provider.remainingTokens, 900)
      strictEqual(snapshot.provider.tokensResetAt, 120_000)
      // Past the short default pause of a 429 without Retry-After, the headers still hold the key until their reset.
      yield* TestClock.adjust("2 seconds")
      const held = yield* rejection(limiter.call(openai, ask("again", { maxTokens: 50 })))
      strictEqual(held.limit, "requests")
      strictEqual(Duration.toMillis(held.retryAfter), 43_000)
    }))

  it.effect("mockttp: a 429's anthropic-ratelimit-* headers tighten the limiter (Anthropic SDK)", () =>
    Effect.gen(function*() {
      const servers = yield* Effect.acquireRelease(
        Effect.promise(() => startAnthropicServers()),
        (started) => Effect.promise(() => started.stop())
      )
      yield* Effect.promise(() =>
        servers.http.forPost("/a429/v1/messages").once().thenReply(
          429,
          anthropicErrorBody("rate_limit_error", "Number of requests has exceeded your rate limit"),
          {
            ...JSON_HEADERS,
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            // RFC 3339 resets, read against the TestClock (at 0): 45 s and 90 s from now.
            "anthropic-ratelimit-requests-reset": "1970-01-01T00:00:45Z",
            "anthropic-ratelimit-tokens-remaining": "1000",
            "anthropic-ratelimit-tokens-reset": "1970-01-01T00:01:30Z"
          }
        )
      )
      const claude = yield* Anthropic.make({
        apiKey,
        model: "claude-x",
        baseURL: `${servers.httpUrl}/a429`
      })
      const limiter = yield* RateLimit.make({ limits: { rpm: 500, tpm: 100_000 }, mode: "fail-fast" })

      const failure = yield* Effect.flip(limiter.call(claude, ask("refused", { maxTokens: 50 })))
      strictEqual(failure._tag, "HardFailure")
      const snapshot = yield* limiter.snapshot(claude)
      strictEqual(snapshot.provider.remainingRequests, 0)
      strictEqual(snapshot.provider.requestsResetAt, 45_000)
      strictEqual(snapshot.provider.remainingTokens, 1_000)
      strictEqual(snapshot.provider.tokensResetAt, 90_000)
      yield* TestClock.adjust("2 seconds")
      const held = yield* rejection(limiter.call(claude, ask("again", { maxTokens: 50 })))
      strictEqual(held.limit, "requests")
      strictEqual(Duration.toMillis(held.retryAfter), 43_000)
    }).pipe(Effect.scoped))
})
