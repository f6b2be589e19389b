import { describe, it } from "@effect/vitest"
import { assertTrue, deepStrictEqual, strictEqual } from "@effect/vitest/utils"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { anthropicRateLimit, openAiRateLimit } from "../src/internal/headers.js"
import { type CompletionResult, makeUsage, type RateLimitInfo } from "../src/Llm.js"
import { DegradedResponse, type RateLimitExceeded } from "../src/LlmError.js"
import type { Service } from "../src/LlmProvider.js"
import * as RateLimit from "../src/RateLimit.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const KEY = "openai:gpt-4o"

const result = (overrides: Partial<CompletionResult> = {}): CompletionResult => ({
  content: "ok",
  usage: makeUsage(10, 10),
  model: "gpt-4o",
  provider: "openai",
  finishReason: "stop",
  latencyMs: 1,
  ...overrides
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") return exit.cause.error
  throw new Error(`expected a failure, got ${Exit.isSuccess(exit) ? "success" : exit.cause._tag}`)
}

const rejection = <A, E>(effect: Effect.Effect<A, E | RateLimitExceeded>) =>
  Effect.map(Effect.flip(effect), (error) => {
    if (typeof error !== "object" || error === null || !("_tag" in error) || error._tag !== "RateLimitExceeded") {
      throw new Error(`expected RateLimitExceeded, got ${String(error)}`)
    }
    return error as RateLimitExceeded
  })

const millis = (duration: Duration.Duration) => Duration.toMillis(duration)

/** A provider whose results carry the given rate-limit info. */
const withRateLimit = (provider: Service, info: () => RateLimitInfo | undefined): Service => ({
  ...provider,
  complete: (request) =>
    Effect.map(provider.complete(request), (r) => {
      const rateLimit = info()
      return rateLimit === undefined ? r : { ...r, rateLimit }
    })
})

const ask = (content: string, maxTokens?: number) => ({
  messages: [{ role: "user" as const, content }],
  ...(maxTokens !== undefined ? { maxTokens } : {})
})

/** Admission times in `starts` never exceed `limit` (weighted by `weight`) in any half-open 60 s window. */
const windowTotals = (starts: ReadonlyArray<{ at: number; weight: number }>, from: number) => {
  let total = 0
  for (const start of starts) if (start.at >= from && start.at < from + 60_000) total += start.weight
  return total
}

describe("RateLimit", () => {
  describe("options", () => {
    const cases: ReadonlyArray<[RateLimit.Options, string]> = [
      [{ limits: { rpm: 0 } }, "limits.rpm"],
      [{ limits: { concurrency: -1 } }, "limits.concurrency"],
      [{ limits: { tpm: 1.5 } }, "limits.tpm"],
      [{ limits: { tpm: Number.NaN } }, "limits.tpm"],
      [{ perKey: { openai: { rpm: -5 } } }, "perKey.openai.rpm"],
      [{ perKey: { "openai:gpt-4o": { concurrency: 0 } } }, "perKey.openai:gpt-4o.concurrency"],
      [{ maxWait: -1 }, "maxWait"],
      [{ maxWait: "soon" as Duration.DurationInput }, "maxWait"],
      [{ outputTokenEstimate: -1 }, "outputTokenEstimate"],
      [{ mode: "sometimes" as RateLimit.Mode }, "mode"]
    ]
    for (const [options, field] of cases) {
      it.effect(`rejects ${JSON.stringify(options)} naming ${field}`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(RateLimit.make(options))
          strictEqual(error._tag, "InvalidOptions")
          strictEqual(error.field, field)
        }))
    }

    it.effect("accepts Infinity as no limit, and per-key overrides merge field by field, most specific first", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({
          limits: { concurrency: 4, rpm: 100, tpm: 10_000 },
          perKey: { openai: { rpm: 50, tpm: Infinity }, "openai:gpt-4o": { rpm: 10 } }
        })
        deepStrictEqual((yield* limiter.snapshot({ name: "openai", model: "gpt-4o" })).limits, {
          concurrency: 4,
          rpm: 10,
          tpm: Infinity
        })
        deepStrictEqual((yield* limiter.snapshot("openai:gpt-4.1")).limits, { concurrency: 4, rpm: 50, tpm: Infinity })
        deepStrictEqual((yield* limiter.snapshot("anthropic:claude")).limits, {
          concurrency: 4,
          rpm: 100,
          tpm: 10_000
        })
      }))
  })

  describe("concurrency", () => {
    it.effect("wait mode hands permits over in FIFO order, one waiter per release", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1 } })
        const arrivals: Array<number> = []
        const starts: Array<number> = []
        const fibers: Array<Fiber.RuntimeFiber<void, RateLimitExceeded>> = []
        for (let i = 0; i < 6; i++) {
          fibers.push(
            yield* Effect.fork(
              Effect.suspend(() => {
                arrivals.push(i)
                return limiter.limit(KEY)(
                  Effect.sync(() => starts.push(i)).pipe(Effect.zipRight(Effect.sleep("1 second")))
                )
              })
            )
          )
          yield* Effect.yieldNow()
        }
        const waiting = yield* limiter.snapshot(KEY)
        strictEqual(waiting.inFlight, 1)
        strictEqual(waiting.waiting, 5)
        deepStrictEqual(starts, [arrivals[0]])
        yield* TestClock.adjust("1 second")
        strictEqual(starts.length, 2, "one release resumes exactly one waiter")
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.joinAll(fibers)
        deepStrictEqual(starts, arrivals)
        strictEqual(arrivals.length, 6)
        strictEqual((yield* limiter.snapshot(KEY)).inFlight, 0)
      }))

    it.effect("a newcomer that would fit never overtakes a waiting head (no barging)", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { tpm: 1_000 }, maxWait: "2 minutes" })
        yield* limiter.limit(KEY, { tokens: 900 })(Effect.void)
        const order: Array<string> = []
        const big = yield* Effect.fork(limiter.limit(KEY, { tokens: 500 })(Effect.sync(() => order.push("big"))))
        yield* Effect.yieldNow()
        const small = yield* Effect.fork(limiter.limit(KEY, { tokens: 50 })(Effect.sync(() => order.push("small"))))
        yield* Effect.yieldNow()
        strictEqual((yield* limiter.snapshot(KEY)).waiting, 2)
        deepStrictEqual(order, [])
        yield* TestClock.adjust("60 seconds")
        yield* Fiber.join(big)
        yield* Fiber.join(small)
        deepStrictEqual(order, ["big", "small"])
      }))

    it.effect("fail-fast refuses at once with the blocking limit", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1, rpm: 2 }, mode: "fail-fast" })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(limiter.limit(KEY)(Deferred.await(gate)))
        yield* Effect.yieldNow()
        const busy = yield* rejection(limiter.limit(KEY)(Effect.void))
        strictEqual(busy.key, KEY)
        strictEqual(busy.limit, "concurrency")
        yield* Deferred.succeed(gate, void 0)
        yield* Fiber.join(holder)
        yield* TestClock.adjust("10 seconds")
        yield* limiter.limit(KEY)(Effect.void)
        const overRpm = yield* rejection(limiter.limit(KEY)(Effect.void))
        strictEqual(overRpm.limit, "requests")
        strictEqual(millis(overRpm.retryAfter), 50_000, "the first request leaves the window at 60 s")
      }))

    it.effect("wait mode fails at maxWait, and at once when the wait is known to exceed it", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1, rpm: 2 }, maxWait: "5 seconds" })
        const holder = yield* Effect.fork(limiter.limit(KEY)(Effect.sleep("10 seconds")))
        yield* Effect.yieldNow()
        const waiter = yield* Effect.fork(limiter.limit(KEY)(Effect.void))
        yield* TestClock.adjust("4999 millis")
        assertTrue((yield* Fiber.poll(waiter))._tag === "None", "still waiting before maxWait")
        yield* TestClock.adjust("1 millis")
        const late = failureOf(yield* Fiber.await(waiter))
        strictEqual(late._tag, "RateLimitExceeded")
        strictEqual(late.limit, "concurrency")
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(holder)
        // Two requests in the window (the holder and one more); the third would wait ~50 s, more than 5 s.
        yield* limiter.limit(KEY)(Effect.void)
        const before = yield* Clock.currentTimeMillis
        const known = yield* rejection(limiter.limit(KEY)(Effect.void))
        strictEqual(yield* Clock.currentTimeMillis, before, "failed without waiting")
        strictEqual(known.limit, "requests")
        strictEqual(millis(known.retryAfter), 50_000)
      }))

    it.effect("the fallback classification: a breaker ignores RateLimitExceeded", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1 }, mode: "fail-fast" })
        const breaker = yield* CircuitBreaker.make({ key: KEY, consecutiveFailures: 1 })
        const gate = yield* Deferred.make<void>()
        yield* Effect.fork(limiter.limit(KEY)(Deferred.await(gate)))
        yield* Effect.yieldNow()
        for (let i = 0; i < 3; i++) {
          yield* rejection(breaker.execute(limiter.limit(KEY)(Effect.void)))
        }
        strictEqual(yield* breaker.state, "Closed")
      }))
  })

  describe("windows under saturation (TestClock)", () => {
    it.effect("RPM: no 60 s window admits more than the limit, and each admits at least 98 % of it", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { rpm: 100 }, maxWait: "infinity" })
        const starts: Array<{ at: number; weight: number }> = []
        const task = limiter.limit(KEY)(
          Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => starts.push({ at, weight: 1 })))
        )
        // 10 arrivals every 5 s (120 a minute) against 100 a minute, for four minutes. (Each TestClock step polls
        // every forked fiber, so arrivals come in bursts to keep the test fast.)
        for (let tick = 0; tick < 48; tick++) {
          for (let i = 0; i < 10; i++) yield* Effect.fork(task)
          yield* TestClock.adjust("5 seconds")
        }
        const end = yield* Clock.currentTimeMillis
        assertTrue(starts.length >= 390, `admitted ${starts.length}`)
        for (const start of starts) {
          assertTrue(windowTotals(starts, start.at) <= 100, `window from ${start.at} over the limit`)
        }
        for (let from = 0; from + 60_000 <= end; from += 500) {
          const total = windowTotals(starts, from)
          assertTrue(total <= 100 && total >= 98, `window from ${from} admitted ${total}`)
        }
      }))

    it.effect("TPM: no 60 s window charges more than the limit, and each charges at least 98 % of it", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { tpm: 10_000 }, maxWait: "infinity" })
        const starts: Array<{ at: number; weight: number }> = []
        const task = (tokens: number) =>
          limiter.limit(KEY, { tokens })(
            Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => starts.push({ at, weight: tokens })))
          )
        // 1,050 tokens every 5 s (12,600 a minute) against 10,000 a minute, in calls of 250 and 150 tokens.
        for (let tick = 0; tick < 48; tick++) {
          for (const tokens of [250, 150, 250, 150, 250]) yield* Effect.fork(task(tokens))
          yield* TestClock.adjust("5 seconds")
        }
        const end = yield* Clock.currentTimeMillis
        for (const start of starts) {
          assertTrue(windowTotals(starts, start.at) <= 10_000, `window from ${start.at} over the limit`)
        }
        // The limit is reached within the first minute; from then on the queue never empties.
        for (let from = 60_000; from + 60_000 <= end; from += 500) {
          const total = windowTotals(starts, from)
          assertTrue(total <= 10_000 && total >= 9_800, `window from ${from} charged ${total}`)
        }
      }))
  })

  describe("token charging", () => {
    const scripted = (usage: ReturnType<typeof makeUsage>) =>
      ScriptedProvider.make({ name: "openai", model: "gpt-4o", script: [ScriptedProvider.success("hi", { usage })] })

    it.effect("charges countTokens + maxTokens up front, then refunds down to the real usage", () =>
      Effect.gen(function*() {
        const provider = yield* scripted(makeUsage(150, 50))
        const limiter = yield* RateLimit.make({ limits: { tpm: 1_000 }, mode: "fail-fast" })
        const request = ask("x".repeat(400), 700)
        const estimate = yield* limiter.estimate(provider, request)
        strictEqual(estimate, (yield* provider.countTokens(request.messages)) + 700)
        const gate = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          limiter.call(provider, request, (r) => Effect.zipRight(Deferred.await(gate), provider.complete(r)))
        )
        yield* Effect.yieldNow()
        strictEqual((yield* limiter.snapshot(provider)).tokensInWindow, estimate, "the estimate while it runs")
        yield* Deferred.succeed(gate, void 0)
        yield* Fiber.join(fiber)
        strictEqual((yield* limiter.snapshot(provider)).tokensInWindow, 200, "reconciled down to 150 + 50")
        // The refund made room: a second 800-token estimate fits (200 + 800 <= 1,000).
        yield* limiter.limit(provider, { tokens: 800 })(Effect.void)
      }))

    it.effect("counts the prompt only where tokens are limited: a TPM limit, or a token budget in the headers", () =>
      Effect.gen(function*() {
        const provider = yield* scripted(makeUsage(10, 10))
        let counted = 0
        const counting: Service = {
          ...provider,
          countTokens: (messages) => Effect.zipRight(Effect.sync(() => counted++), provider.countTokens(messages))
        }
        const concurrencyOnly = yield* RateLimit.make({ limits: { concurrency: 4 } })
        yield* concurrencyOnly.call(counting, ask("hello"))
        strictEqual(counted, 0, "no TPM limit and no token headers: no tokenizer pass")
        strictEqual((yield* concurrencyOnly.snapshot(counting)).tokensInWindow, 0)
        yield* concurrencyOnly.observe(counting, {
          remainingTokens: 5_000,
          resetTokens: Duration.seconds(30)
        })
        yield* concurrencyOnly.call(counting, ask("hello"))
        strictEqual(counted, 1, "the provider reported a token budget: calls are charged against it")
        const tokenLimited = yield* RateLimit.make({ limits: { tpm: 10_000 } })
        yield* tokenLimited.call(counting, ask("hello"))
        strictEqual(counted, 2, "a TPM limit: every call is estimated")
      }))

    it.effect("charges the difference when the real usage is above the estimate", () =>
      Effect.gen(function*() {
        const provider = yield* scripted(makeUsage(100, 800))
        const limiter = yield* RateLimit.make({
          limits: { tpm: 1_000 },
          mode: "fail-fast",
          outputTokenEstimate: 10
        })
        yield* limiter.call(provider, ask("short"))
        strictEqual((yield* limiter.snapshot(provider)).tokensInWindow, 900)
        const refused = yield* rejection(limiter.limit(provider, { tokens: 200 })(Effect.void))
        strictEqual(refused.limit, "tokens")
        strictEqual(millis(refused.retryAfter), 60_000)
      }))

    it.effect("a request's model picks the key, and a failed call returns its token charge", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4o",
          script: [ScriptedProvider.failure("ServerError", { status: 500 })]
        })
        const limiter = yield* RateLimit.make({ limits: { tpm: 5_000 } })
        const error = yield* Effect.flip(limiter.call(provider, { ...ask("hi", 100), model: "gpt-4o-mini" }))
        strictEqual(error._tag, "HardFailure")
        const snapshot = yield* limiter.snapshot("openai:gpt-4o-mini")
        strictEqual(snapshot.requestsInWindow, 1)
        strictEqual(snapshot.tokensInWindow, 0)
        strictEqual((yield* limiter.snapshot(provider)).requestsInWindow, 0)
      }))

    it.effect("an estimate above tpm can never be admitted: it fails at once, even in wait mode", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { tpm: 1_000 }, maxWait: "infinity" })
        const refused = yield* rejection(limiter.limit(KEY, { tokens: 1_001 })(Effect.void))
        strictEqual(refused.limit, "tokens")
        assertTrue(!Duration.isFinite(refused.retryAfter))
        strictEqual((yield* limiter.snapshot(KEY)).waiting, 0)
      }))

    it.effect("a DegradedResponse is reconciled from the result it carries", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { tpm: 10_000 } })
        const degraded = new DegradedResponse({
          provider: "openai",
          model: "gpt-4o",
          retryable: false,
          reason: "Truncated",
          result: result({ usage: makeUsage(300, 4_000) })
        })
        yield* Effect.flip(limiter.limit(KEY, { tokens: 1_000 })(Effect.fail(degraded)))
        strictEqual((yield* limiter.snapshot(KEY)).tokensInWindow, 4_300)
      }))

    it.effect("an invalid request is refused before it takes anything", () =>
      Effect.gen(function*() {
        const provider = yield* scripted(makeUsage(1, 1))
        const limiter = yield* RateLimit.make({ limits: { rpm: 1 } })
        const error = yield* Effect.flip(limiter.call(provider, { messages: [] }))
        strictEqual(error._tag, "InvalidRequest")
        strictEqual((yield* limiter.snapshot(provider)).requestsInWindow, 0)
      }))

    it.effect("a stream holds its permit until it ends and is reconciled from its StreamEnd", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4o",
          script: [
            ScriptedProvider.success("abc", {
              usage: makeUsage(20, 3),
              chunks: ["a", "b", "c"],
              chunkDelay: "1 second"
            })
          ]
        })
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1, tpm: 10_000 } })
        const fiber = yield* Effect.fork(Stream.runCollect(limiter.stream(provider, ask("stream me", 500))))
        yield* TestClock.adjust("1 second")
        const during = yield* limiter.snapshot(provider)
        strictEqual(during.inFlight, 1)
        assertTrue(during.tokensInWindow >= 500)
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(fiber)
        const after = yield* limiter.snapshot(provider)
        strictEqual(after.inFlight, 0)
        strictEqual(after.tokensInWindow, 23)
      }))
  })

  describe("adaptation to the provider", () => {
    it.effect("OpenAI x-ratelimit-remaining-requests 0 with reset 20s holds the key until the reset", () =>
      Effect.gen(function*() {
        const info = openAiRateLimit(
          new Headers({
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20s"
          })
        )
        const limiter = yield* RateLimit.make({ limits: { rpm: 500 }, mode: "fail-fast" })
        yield* limiter.limit(KEY)(Effect.succeed(result({ ...(info !== undefined ? { rateLimit: info } : {}) })))
        const snapshot = yield* limiter.snapshot(KEY)
        strictEqual(snapshot.provider.remainingRequests, 0)
        strictEqual(snapshot.provider.requestsResetAt, 20_000)
        const refused = yield* rejection(limiter.limit(KEY)(Effect.void))
        strictEqual(refused.limit, "requests")
        strictEqual(millis(refused.retryAfter), 20_000)
        yield* TestClock.adjust("20 seconds")
        yield* limiter.limit(KEY)(Effect.void)
      }))

    it.effect("OpenAI x-ratelimit-remaining-tokens with a 6m0s reset caps the tokens until then", () =>
      Effect.gen(function*() {
        const info = openAiRateLimit(
          new Headers({ "x-ratelimit-remaining-tokens": "1000", "x-ratelimit-reset-tokens": "6m0s" })
        )
        assertTrue(info !== undefined)
        const limiter = yield* RateLimit.make({ limits: { tpm: 200_000 }, mode: "fail-fast" })
        yield* limiter.limit(KEY)(Effect.succeed(result({ rateLimit: info })))
        yield* limiter.limit(KEY, { tokens: 600 })(Effect.succeed(result({ usage: makeUsage(500, 100) })))
        const refused = yield* rejection(limiter.limit(KEY, { tokens: 600 })(Effect.void))
        strictEqual(refused.limit, "tokens")
        strictEqual(millis(refused.retryAfter), 360_000)
        yield* limiter.limit(KEY, { tokens: 400 })(Effect.void)
        yield* TestClock.adjust("6 minutes")
        yield* limiter.limit(KEY, { tokens: 5_000 })(Effect.void)
      }))

    it.effect("Anthropic anthropic-ratelimit-* with RFC 3339 resets, through a provider's results", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.parse("2026-11-23T10:00:00Z"))
        const now = yield* Clock.currentTimeMillis
        const info = anthropicRateLimit(
          new Headers({
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "1",
            "anthropic-ratelimit-requests-reset": "2026-11-23T10:00:30Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "39000",
            "anthropic-ratelimit-tokens-reset": "2026-11-23T10:00:05Z"
          }),
          now
        )
        let served = 0
        const provider = withRateLimit(
          yield* ScriptedProvider.make({
            name: "anthropic",
            model: "claude-sonnet-4-6",
            script: [ScriptedProvider.success("ok")]
          }),
          () => served++ === 0 ? info : undefined
        )
        const limiter = yield* RateLimit.make({ limits: { rpm: 50 }, mode: "fail-fast" })
        yield* limiter.call(provider, ask("first"))
        const snapshot = yield* limiter.snapshot(provider)
        strictEqual(snapshot.provider.remainingRequests, 1)
        strictEqual(snapshot.provider.requestsResetAt, now + 30_000)
        strictEqual(snapshot.provider.tokensResetAt, now + 5_000)
        yield* limiter.call(provider, ask("second: the one request left"))
        const refused = yield* rejection(limiter.call(provider, ask("third")))
        strictEqual(refused.limit, "requests")
        strictEqual(millis(refused.retryAfter), 30_000)
        yield* TestClock.adjust("30 seconds")
        yield* limiter.call(provider, ask("after the reset"))
      }))

    it.effect("malformed or partial header values are ignored, never fatal", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { rpm: 10 }, mode: "fail-fast" })
        const junk: ReadonlyArray<unknown> = [
          { remainingRequests: -1, resetRequests: Duration.seconds(10) },
          { remainingRequests: Number.NaN, resetRequests: Duration.seconds(10) },
          { remainingRequests: 0, resetRequests: Duration.infinity },
          { remainingRequests: 0, resetRequests: "10s" },
          { remainingRequests: 0 },
          { remainingTokens: "0", resetTokens: Duration.seconds(10) },
          "x-ratelimit-remaining-requests: 0",
          null
        ]
        for (const rateLimit of junk) {
          yield* limiter.limit(KEY)(Effect.succeed({ ...result(), rateLimit }))
        }
        // Also straight from unparseable headers.
        const parsed = openAiRateLimit(
          new Headers({ "x-ratelimit-remaining-requests": "none", "x-ratelimit-reset-requests": "later" })
        )
        strictEqual(parsed, undefined)
        const snapshot = yield* limiter.snapshot(KEY)
        strictEqual(snapshot.requestsInWindow, junk.length)
        strictEqual(snapshot.provider.remainingRequests, undefined)
        strictEqual(snapshot.provider.remainingTokens, undefined)
        yield* limiter.limit(KEY)(Effect.void)
      }))

    it.effect("a 429 without Retry-After pauses the key 1 s, doubling while 429s repeat, reset by an answer", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4o",
          script: [
            ScriptedProvider.failure("RateLimited", { status: 429 }),
            ScriptedProvider.failure("RateLimited", { status: 429 }),
            ScriptedProvider.failure("RateLimited", { status: 429 }),
            ScriptedProvider.success("ok"),
            ScriptedProvider.failure("RateLimited", { status: 429 })
          ]
        })
        const limiter = yield* RateLimit.make({ limits: { rpm: 100 } })
        const pauses: Array<number | undefined> = []
        for (let i = 0; i < 5; i++) {
          const now = yield* Clock.currentTimeMillis
          yield* Effect.either(limiter.call(provider, ask(`${i}`)))
          const paused = (yield* limiter.snapshot(provider)).pausedUntil
          pauses.push(paused === undefined ? undefined : paused - now)
          yield* TestClock.adjust("1 minute")
        }
        deepStrictEqual(pauses.slice(0, 3), [1_000, 2_000, 4_000])
        deepStrictEqual(pauses[4], 1_000)
      }))

    it.effect("a 429 with Retry-After pauses the key: waiters resume at the end, fail-fast says paused", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4o",
          script: [
            ScriptedProvider.failure("RateLimited", { status: 429, retryAfter: "10 seconds" }),
            ScriptedProvider.success("ok")
          ]
        })
        const limiter = yield* RateLimit.make({ limits: { rpm: 100 } })
        const first = yield* Effect.flip(limiter.call(provider, ask("a")))
        strictEqual(first._tag, "HardFailure")
        strictEqual((yield* limiter.snapshot(provider)).pausedUntil, 10_000)
        const waiter = yield* Effect.fork(limiter.call(provider, ask("b")))
        yield* TestClock.adjust("9999 millis")
        assertTrue((yield* Fiber.poll(waiter))._tag === "None")
        yield* TestClock.adjust("1 millis")
        strictEqual((yield* Fiber.join(waiter)).content, "ok")
        const calls = yield* provider.calls
        deepStrictEqual(calls.map((call) => call.at), [0, 10_000])

        const failFast = yield* RateLimit.make({ mode: "fail-fast" })
        yield* failFast.pause(KEY, "3 seconds")
        const refused = yield* rejection(failFast.limit(KEY)(Effect.void))
        strictEqual(refused.limit, "paused")
        strictEqual(millis(refused.retryAfter), 3_000)
      }))

    it.effect("adaptive: false ignores headers and Retry-After", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ mode: "fail-fast", adaptive: false })
        yield* limiter.limit(KEY)(
          Effect.succeed(result({ rateLimit: { remainingRequests: 0, resetRequests: Duration.seconds(30) } }))
        )
        yield* limiter.limit(KEY)(Effect.void)
      }))
  })

  describe("the layer", () => {
    it.effect("RateLimit.layer provides the service to RateLimit.limit and RateLimit.call", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("ok")] })
        const answer = yield* RateLimit.call(provider, ask("hi"))
        strictEqual(answer.content, "ok")
        const value = yield* Effect.succeed(42).pipe(RateLimit.limit(provider))
        strictEqual(value, 42)
        const limiter = yield* RateLimit.RateLimiter
        strictEqual((yield* limiter.snapshot(provider)).requestsInWindow, 2)
      }).pipe(Effect.provide(RateLimit.layer({ limits: { rpm: 10 } }))))
  })
})
