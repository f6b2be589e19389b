import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  HashMap,
  Logger,
  LogLevel,
  Option,
  Queue,
  Ref,
  Schema,
  Stream,
  TestClock
} from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import type { CompletionResult } from "../src/Llm.js"
import {
  CircuitOpen,
  DegradedResponse,
  hardFailure,
  type HardReason,
  InvalidOptions,
  InvalidRequest,
  RetryBudgetExhausted,
  SoftFailure
} from "../src/LlmError.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const SECRET = "TOP-SECRET-PROMPT"
const request = { messages: [{ role: "user" as const, content: SECRET }] }

const hard = (reason: HardReason = "ServerError", retryAfter?: Duration.DurationInput) =>
  hardFailure({
    reason,
    provider: "p",
    model: "m",
    ...(retryAfter !== undefined ? { retryAfter: Duration.decode(retryAfter) } : {})
  })

const soft = new SoftFailure({ provider: "p", model: "m", reason: "SchemaMismatch", retryable: false })

const result: CompletionResult = {
  content: "partial",
  usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
  model: "m",
  provider: "p",
  finishReason: "length",
  latencyMs: 1
}
const degraded = new DegradedResponse({ provider: "p", model: "m", reason: "Truncated", retryable: false, result })

/** Runs a failing call through the breaker and returns what it failed with. */
const failWith = <E>(breaker: CircuitBreaker.CircuitBreaker, error: E) =>
  Effect.flip(breaker.execute(Effect.fail(error)))

/** The `CircuitOpen` a call is rejected with; a call that is admitted fails the test. */
const rejection = (breaker: CircuitBreaker.CircuitBreaker) =>
  breaker.execute(Effect.void).pipe(
    Effect.flatMap(() => Effect.dieMessage("expected the breaker to reject the call")),
    Effect.catchTag("CircuitOpen", Effect.succeed)
  )

const remainingMs = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.map(rejection(breaker), (error) => Duration.toMillis(error.remaining))

const succeed = (breaker: CircuitBreaker.CircuitBreaker) => breaker.execute(Effect.succeed("ok"))

const repeat = <A, E>(n: number, effect: Effect.Effect<A, E>) => Effect.replicateEffect(effect, n, { discard: true })

/** A call that sleeps on the Clock before it answers, so tests control its latency. */
const slowly = (breaker: CircuitBreaker.CircuitBreaker, ms: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(breaker.execute(Effect.sleep(Duration.millis(ms))))
    yield* TestClock.adjust(Duration.millis(ms))
    return yield* Fiber.join(fiber)
  })

const tripped = (options: CircuitBreaker.Options = {}) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ key: "k", ...options })
    yield* repeat(5, failWith(breaker, hard()))
    expect(yield* breaker.state).toBe("Open")
    return breaker
  })

describe("CircuitBreaker", () => {
  describe("options", () => {
    const rejects = (options: CircuitBreaker.Options, field: string) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(CircuitBreaker.make(options))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.field).toBe(field)
      })

    it.effect("names the field of every invalid option", () =>
      Effect.gen(function*() {
        yield* rejects({ consecutiveFailures: 0 }, "consecutiveFailures")
        yield* rejects({ consecutiveFailures: 2.5 }, "consecutiveFailures")
        yield* rejects({ failureRate: 101 }, "failureRate")
        yield* rejects({ failureRate: 0 }, "failureRate")
        yield* rejects({ window: 0 }, "window")
        yield* rejects({ window: 5, minimumCalls: 6 }, "minimumCalls")
        yield* rejects({ weights: { soft: 1.5 } }, "weights.soft")
        yield* rejects({ weights: { hard: -0.1 } }, "weights.hard")
        yield* rejects({ cooldown: -1 }, "cooldown")
        yield* rejects({ cooldown: "-5 seconds" }, "cooldown")
        yield* rejects({ cooldown: Duration.infinity }, "cooldown")
        yield* rejects({ probeTimeout: 0 }, "probeTimeout")
        yield* rejects({ probes: 0 }, "probes")
        yield* rejects({ successThreshold: -1 }, "successThreshold")
        yield* rejects({ latency: { multiplier: 1 } }, "latency.multiplier")
        yield* rejects({ latency: { baseline: -3 } }, "latency.baseline")
        yield* rejects({ slowCalls: { threshold: "1 second", rate: 150 } }, "slowCalls.rate")
        yield* rejects({ slowCalls: { threshold: -1 } }, "slowCalls.threshold")
        yield* rejects({ cooldownGrowth: { factor: 0.5 } }, "cooldownGrowth.factor")
        yield* rejects({ cooldown: "1 minute", cooldownGrowth: { max: "30 seconds" } }, "cooldownGrowth.max")
      }))

    it.effect("accepts the presets, a zero cooldown and disabled policies", () =>
      Effect.gen(function*() {
        for (const preset of [CircuitBreaker.presets.lenient, CircuitBreaker.presets.balanced]) {
          yield* CircuitBreaker.make(preset)
        }
        yield* CircuitBreaker.make({ ...CircuitBreaker.presets.strict, cooldown: 0, failureRate: false })
        yield* CircuitBreaker.make({ consecutiveFailures: false, latency: true, cooldownGrowth: true })
      }))

    it.effect("presets trip at their thresholds and cool down for their durations", () =>
      Effect.gen(function*() {
        const expected = { lenient: [10, 30_000], balanced: [5, 60_000], strict: [3, 120_000] } as const
        for (const name of ["lenient", "balanced", "strict"] as const) {
          const [threshold, cooldown] = expected[name]
          const breaker = yield* CircuitBreaker.make({ ...CircuitBreaker.presets[name], failureRate: false })
          yield* repeat(threshold - 1, failWith(breaker, hard()))
          expect(yield* breaker.state).toBe("Closed")
          yield* failWith(breaker, hard())
          expect(yield* remainingMs(breaker)).toBe(cooldown)
        }
      }))
  })

  describe("Closed → Open", () => {
    it.effect("opens after 5 consecutive hard failures and then never calls the provider", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.failure("ServerError")] })
        const breaker = yield* CircuitBreaker.make({ key: "openai:gpt-4.1" })
        for (let i = 0; i < 4; i++) {
          yield* Effect.flip(breaker.execute(provider.complete(request)))
          expect(yield* breaker.state).toBe("Closed")
        }
        yield* Effect.flip(breaker.execute(provider.complete(request)))
        expect(yield* breaker.state).toBe("Open")
        for (let i = 0; i < 100; i++) {
          const error = yield* Effect.flip(breaker.execute(provider.complete(request)))
          expect(error).toEqual(new CircuitOpen({ key: "openai:gpt-4.1", remaining: Duration.seconds(60) }))
        }
        expect((yield* provider.calls).length).toBe(5)
      }))

    it.effect("a success resets the consecutive count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ failureRate: false })
        yield* repeat(4, failWith(breaker, hard()))
        yield* succeed(breaker)
        yield* repeat(4, failWith(breaker, hard()))
        expect(yield* breaker.state).toBe("Closed")
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("soft and degraded failures weigh half in the consecutive count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, failureRate: false })
        yield* repeat(5, failWith(breaker, soft))
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(2.5)
        expect(yield* breaker.state).toBe("Closed")
        yield* failWith(breaker, degraded)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("Unauthorized and Forbidden open at once", () =>
      Effect.gen(function*() {
        for (const reason of ["Unauthorized", "Forbidden"] as const) {
          const registry = yield* CircuitBreaker.makeRegistry()
          const events = yield* registry.subscribe
          const breaker = yield* registry.get("k")
          yield* succeed(breaker)
          yield* failWith(breaker, hard(reason))
          expect(yield* breaker.state).toBe("Open")
          expect((yield* Queue.take(events)).reason).toBe("FatalFailure")
        }
      }).pipe(Effect.scoped))
  })

  describe("weighted failure rate", () => {
    const rateOnly = { consecutiveFailures: false, window: 20, minimumCalls: 10, failureRate: 50 } as const

    it.effect("waits for the minimum number of calls", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(rateOnly)
        yield* repeat(9, failWith(breaker, hard()))
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.snapshot).failureRate).toBe(100)
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("opens at exactly the threshold: 10 soft failures weigh 5 of 10", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(rateOnly)
        yield* repeat(9, failWith(breaker, soft))
        expect((yield* breaker.snapshot).failureRate).toBe(50)
        expect(yield* breaker.state).toBe("Closed")
        yield* failWith(breaker, soft)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("mixes weights: 2 hard + 3 soft + 1 degraded over 12 calls is 37.5 %", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make(rateOnly)
        yield* repeat(2, failWith(breaker, hard()))
        yield* repeat(3, failWith(breaker, soft))
        yield* failWith(breaker, degraded)
        yield* repeat(6, succeed(breaker))
        const snapshot = yield* breaker.snapshot
        expect(snapshot.calls).toBe(12)
        expect(snapshot.failureRate).toBeCloseTo(((2 + 1.5 + 0.5) / 12) * 100, 10)
        expect(snapshot.state).toBe("Closed")
        // 4.0 + 2 more hard = 6 of 14 = 42.9 %; 3 more = 7 of 15 = 46.7 %; then a soft: 7.5 of 16 = 46.9 %
        yield* repeat(3, failWith(breaker, hard()))
        yield* failWith(breaker, soft)
        expect(yield* breaker.state).toBe("Closed")
        // 8.5 of 17 = 50 %
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("custom weights apply", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ ...rateOnly, weights: { degraded: 0, soft: 1 } })
        yield* repeat(20, failWith(breaker, degraded))
        expect((yield* breaker.snapshot).failureRate).toBe(0)
        expect(yield* breaker.state).toBe("Closed")
        yield* repeat(10, failWith(breaker, soft))
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("the window slides: old failures leave it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          consecutiveFailures: false,
          window: 4,
          minimumCalls: 4,
          failureRate: 75
        })
        yield* repeat(2, failWith(breaker, hard()))
        yield* repeat(2, succeed(breaker))
        expect((yield* breaker.snapshot).failureRate).toBe(50)
        yield* succeed(breaker) // [F S S S]
        expect((yield* breaker.snapshot).failureRate).toBe(25)
        yield* repeat(2, failWith(breaker, hard())) // [S S F F]
        expect((yield* breaker.snapshot).failureRate).toBe(50)
        expect(yield* breaker.state).toBe("Closed")
        yield* failWith(breaker, hard()) // [S F F F]
        expect(yield* breaker.state).toBe("Open")
      }))
  })

  describe("latency", () => {
    it.effect("opens when P95 exceeds 3 × a fixed baseline", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          consecutiveFailures: false,
          failureRate: false,
          latency: { baseline: "100 millis" }
        })
        yield* repeat(18, slowly(breaker, 100))
        // Over 19 calls P95 is the 19th fastest: one slow call moves it.
        yield* slowly(breaker, 301)
        expect(yield* breaker.state).toBe("Open")
        const events = yield* Effect.flip(breaker.execute(Effect.void))
        expect(events).toBeInstanceOf(CircuitOpen)
      }))

    it.effect("over a full window of 20, one slow call is tolerated and two are not", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({
          consecutiveFailures: false,
          failureRate: false,
          latency: { baseline: "100 millis" }
        })
        const events = yield* registry.subscribe
        const breaker = yield* registry.get("k")
        yield* repeat(19, slowly(breaker, 100))
        yield* slowly(breaker, 300) // exactly 3 × is not slow
        yield* slowly(breaker, 1000) // [..., 300, 1000]: 1 slow of 20
        expect(yield* breaker.state).toBe("Closed")
        yield* slowly(breaker, 1000)
        expect(yield* breaker.state).toBe("Open")
        expect((yield* Queue.take(events)).reason).toBe("LatencyP95")
      }).pipe(Effect.scoped))

    it.effect("learns the baseline from successful calls", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({
          consecutiveFailures: false,
          failureRate: false,
          latency: true
        })
        const events = yield* registry.subscribe
        const breaker = yield* registry.get("k")
        // Before the baseline has seen minimumCalls samples nothing is judged slow.
        yield* slowly(breaker, 5000)
        yield* repeat(29, slowly(breaker, 200))
        const snapshot = yield* breaker.snapshot
        expect(snapshot.baselineMs).toBeGreaterThan(190)
        expect(snapshot.baselineMs).toBeLessThan(210)
        yield* slowly(breaker, 650)
        expect(yield* breaker.state).toBe("Closed")
        yield* slowly(breaker, 650)
        expect(yield* breaker.state).toBe("Open")
        expect((yield* Queue.take(events)).reason).toBe("LatencyP95")
      }).pipe(Effect.scoped))

    it.effect("opens on a slow-call rate over a fixed threshold", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({
          consecutiveFailures: false,
          failureRate: false,
          minimumCalls: 4,
          window: 4,
          slowCalls: { threshold: "10 seconds", rate: 50 }
        })
        const events = yield* registry.subscribe
        const breaker = yield* registry.get("k")
        yield* repeat(3, slowly(breaker, 1000))
        yield* slowly(breaker, 10_001)
        expect((yield* breaker.snapshot).slowCallRate).toBe(25)
        expect(yield* breaker.state).toBe("Closed")
        yield* slowly(breaker, 12_000)
        expect(yield* breaker.state).toBe("Open")
        expect((yield* Queue.take(events)).reason).toBe("SlowCallRate")
      }).pipe(Effect.scoped))
  })

  describe("ignored errors", () => {
    it.effect("caller faults and local rejections never count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, minimumCalls: 1, window: 1 })
        const ignored: ReadonlyArray<unknown> = [
          hard("BadRequest"),
          hard("ContextLengthExceeded"),
          hard("ContentFiltered"),
          new InvalidRequest({ field: "messages", issues: [] }),
          new RetryBudgetExhausted({ key: "k", failure: hard() }),
          new CircuitOpen({ key: "other", remaining: Duration.seconds(1) }),
          { _tag: "RateLimitExceeded", key: "k" },
          { _tag: "RateLimiterError", reason: "Exceeded" }
        ]
        for (const error of ignored) {
          expect(yield* failWith(breaker, error)).toBe(error)
        }
        const fiber = yield* Effect.fork(breaker.execute(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("Closed")
        expect(snapshot.calls).toBe(0)
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("the ignore predicate and classify are options", () =>
      Effect.gen(function*() {
        class Mine {
          readonly _tag = "Mine"
        }
        const breaker = yield* CircuitBreaker.make({
          consecutiveFailures: 2,
          ignore: (error) => CircuitBreaker.defaultIgnore(error) || error instanceof Mine,
          classify: (error) => typeof error === "string" ? { kind: "success" } : CircuitBreaker.defaultClassify(error)
        })
        yield* repeat(10, failWith(breaker, new Mine()))
        yield* repeat(10, failWith(breaker, hard("BadRequest")))
        yield* failWith(breaker, hard())
        yield* failWith(breaker, "not found") // counts as a success: resets the streak
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Closed")
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("unknown errors and defects count as hard failures", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        yield* failWith(breaker, new Error("boom"))
        yield* Effect.exit(breaker.execute(Effect.die("kaput")))
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("a classify that throws counts as hard and does not wedge a probe", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          consecutiveFailures: 1,
          classify: () => {
            throw new Error("bug in classify")
          }
        })
        yield* failWith(breaker, "x")
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("60 seconds")
        yield* failWith(breaker, "x")
        expect(yield* breaker.state).toBe("Open")
      }))
  })

  describe("Open → HalfOpen → Closed", () => {
    it.effect("reports HalfOpen once the cooldown has elapsed, without a call", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped()
        yield* TestClock.adjust("59999 millis")
        expect(yield* remainingMs(breaker)).toBe(1)
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("1 millis")
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.effect("a successful probe closes with a fresh window", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped()
        yield* TestClock.adjust("60 seconds")
        yield* succeed(breaker)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("Closed")
        expect(snapshot.calls).toBe(0)
        expect(snapshot.consecutiveFailures).toBe(0)
        yield* repeat(4, failWith(breaker, hard()))
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("a failed probe re-opens for another cooldown", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ cooldownGrowth: false })
        yield* TestClock.adjust("60 seconds")
        yield* failWith(breaker, soft)
        expect(yield* breaker.state).toBe("Open")
        expect(yield* remainingMs(breaker)).toBe(60_000)
      }))

    it.effect("by default the cooldown doubles on each failed probe, up to 10 minutes", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped()
        const seen: Array<number> = [yield* remainingMs(breaker)]
        for (let i = 0; i < 5; i++) {
          yield* TestClock.adjust(seen[seen.length - 1]!)
          yield* failWith(breaker, hard())
          seen.push(yield* remainingMs(breaker))
        }
        expect(seen).toEqual([60_000, 120_000, 240_000, 480_000, 600_000, 600_000])
      }))

    it.effect("the cooldown grows on each re-open, capped, and resets on close", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ cooldown: "10 seconds", cooldownGrowth: { factor: 3, max: "60 seconds" } })
        const remaining = remainingMs(breaker)
        const seen: Array<number> = [yield* remaining]
        for (let i = 0; i < 3; i++) {
          yield* TestClock.adjust(Duration.millis(seen[seen.length - 1]!))
          yield* failWith(breaker, hard())
          seen.push(yield* remaining)
        }
        expect(seen).toEqual([10_000, 30_000, 60_000, 60_000])
        yield* TestClock.adjust("60 seconds")
        yield* succeed(breaker)
        yield* repeat(5, failWith(breaker, hard()))
        expect(yield* remaining).toBe(10_000)
      }))

    it.effect("a 429's Retry-After lengthens the cooldown, or overrides it", () =>
      Effect.gen(function*() {
        const longer = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* failWith(longer, hard("RateLimited", "5 minutes"))
        expect(yield* remainingMs(longer)).toBe(300_000)

        const shorter = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* failWith(shorter, hard("RateLimited", "5 seconds"))
        expect(yield* remainingMs(shorter)).toBe(60_000)

        const override = yield* CircuitBreaker.make({ consecutiveFailures: 1, retryAfter: "override" })
        yield* failWith(override, hard("RateLimited", "5 seconds"))
        expect(yield* remainingMs(override)).toBe(5_000)

        const ignore = yield* CircuitBreaker.make({ consecutiveFailures: 1, retryAfter: "ignore" })
        yield* failWith(ignore, hard("RateLimited", "5 minutes"))
        expect(yield* remainingMs(ignore)).toBe(60_000)
      }))

    it.effect("a success threshold above the permits needs that many probes in turn", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ successThreshold: 3 })
        yield* TestClock.adjust("60 seconds")
        yield* repeat(2, succeed(breaker))
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
      }))
  })

  describe("half-open probes", () => {
    it.effect("1,000 concurrent callers: exactly the permitted probes reach the provider", () =>
      Effect.gen(function*() {
        for (const probes of [1, 3]) {
          const provider = yield* ScriptedProvider.make({
            script: (call) =>
              call.index < 5
                ? ScriptedProvider.failure("ServerError")
                : ScriptedProvider.success("fine", { latency: "1 second" })
          })
          const breaker = yield* CircuitBreaker.make({ probes, successThreshold: probes })
          yield* repeat(5, Effect.either(breaker.execute(provider.complete(request))))
          yield* TestClock.adjust("60 seconds")
          const all = yield* Effect.fork(
            Effect.all(Array.from({ length: 1000 }, () => Effect.either(breaker.execute(provider.complete(request)))), {
              concurrency: "unbounded"
            })
          )
          yield* TestClock.adjust("1 second")
          const results = yield* Fiber.join(all)
          expect((yield* provider.calls).length).toBe(5 + probes)
          expect(results.filter(Either.isRight).length).toBe(probes)
          const rejected = results.filter(Either.isLeft).map((either) => either.left)
          expect(rejected.length).toBe(1000 - probes)
          expect(rejected.every((error) => error._tag === "CircuitOpen")).toBe(true)
          expect(yield* breaker.state).toBe("Closed")
        }
      }))

    it.effect("callers without a permit fail fast with the time to the probe deadline", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ probeTimeout: "30 seconds" })
        yield* TestClock.adjust("60 seconds")
        const probe = yield* Effect.fork(breaker.execute(Effect.never))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("10 seconds")
        const error = yield* failWith(breaker, hard())
        expect(error).toEqual(new CircuitOpen({ key: "k", remaining: Duration.seconds(20) }))
        yield* Fiber.interrupt(probe)
      }))

    it.effect("an interrupted probe releases its permit: the breaker is not stuck", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: (call) =>
            call.index < 5
              ? ScriptedProvider.failure("ServerError")
              : call.index === 5
              ? ScriptedProvider.hang
              : ScriptedProvider.success("back")
        })
        const breaker = yield* CircuitBreaker.make()
        yield* repeat(5, Effect.either(breaker.execute(provider.complete(request))))
        yield* TestClock.adjust("60 seconds")
        const probe = yield* Effect.fork(breaker.execute(provider.complete(request)))
        yield* Effect.yieldNow()
        expect((yield* provider.calls).length).toBe(6)
        expect(yield* Effect.flip(breaker.execute(provider.complete(request)))).toBeInstanceOf(CircuitOpen)
        yield* Fiber.interrupt(probe)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("HalfOpen")
        expect(snapshot.probesInFlight).toBe(0)
        const answer = yield* breaker.execute(provider.complete(request))
        expect(answer.content).toBe("back")
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("a probe ending in an ignored error releases its permit without a decision", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped()
        yield* TestClock.adjust("60 seconds")
        yield* failWith(breaker, hard("BadRequest"))
        expect(yield* breaker.state).toBe("HalfOpen")
        expect((yield* breaker.snapshot).probesInFlight).toBe(0)
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("a probe that never finishes is given up on after the probe timeout", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({ probeTimeout: "30 seconds", cooldownGrowth: false })
        const events = yield* registry.subscribe
        const breaker = yield* registry.get("k")
        yield* repeat(5, failWith(breaker, hard()))
        yield* TestClock.adjust("60 seconds")
        const stuck = yield* Effect.fork(breaker.execute(Effect.never))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("29999 millis")
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* TestClock.adjust("1 millis")
        expect(yield* breaker.state).toBe("Open")
        const changes = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
        expect(changes.map((change) => [change.from, change.to, change.reason, change.at])).toEqual([
          ["Closed", "Open", "ConsecutiveFailures", 0],
          ["Open", "HalfOpen", "CooldownElapsed", 60_000],
          ["HalfOpen", "Open", "ProbeTimeout", 90_000]
        ])
        // After the next cooldown a new probe is admitted even though the first one is still running.
        yield* TestClock.adjust("60 seconds")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* Fiber.interrupt(stuck)
      }).pipe(Effect.scoped))

    it.effect("a late result cannot change a newer period (generation fencing)", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ probeTimeout: "30 seconds", consecutiveFailures: 1, cooldownGrowth: false })
        yield* TestClock.adjust("60 seconds")
        const late = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.execute(Effect.zipRight(Deferred.await(late), Effect.fail(hard()))))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("30 seconds") // the watchdog gives up on it
        yield* TestClock.adjust("60 seconds")
        yield* succeed(breaker) // a new probe closes the breaker
        expect(yield* breaker.state).toBe("Closed")
        yield* Deferred.succeed(late, undefined)
        yield* Effect.flip(Fiber.join(probe))
        // One hard failure would open this breaker (threshold 1): the late one does not count.
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.snapshot).calls).toBe(0)
      }))

    it.effect("calls admitted before a manual reset are fenced out of the new period", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const gate = yield* Deferred.make<void>()
        const call = yield* Effect.fork(breaker.execute(Effect.zipRight(Deferred.await(gate), Effect.fail(hard()))))
        yield* Effect.yieldNow()
        yield* breaker.reset
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.flip(Fiber.join(call))
        expect(yield* breaker.state).toBe("Closed")
      }))
  })

  describe("manual control", () => {
    it.effect("forceOpen rejects until forceClose, whatever the clock", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make()
        let calls = 0
        const call = breaker.execute(Effect.sync(() => calls++))
        yield* breaker.forceOpen
        const error = yield* Effect.flip(call)
        expect(error).toEqual(new CircuitOpen({ key: "default", remaining: Duration.infinity }))
        yield* TestClock.adjust("1 day")
        expect(yield* breaker.state).toBe("ForcedOpen")
        expect((yield* breaker.snapshot).remainingMs).toBeNull()
        expect(calls).toBe(0)
        yield* breaker.forceClose
        yield* call
        expect(calls).toBe(1)
      }))

    it.effect("disable passes every call and records nothing", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* breaker.disable
        yield* repeat(50, failWith(breaker, hard()))
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("Disabled")
        expect(snapshot.calls).toBe(0)
        yield* breaker.forceClose
        yield* failWith(breaker, hard())
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("metricsOnly records but never opens", () =>
      Effect.gen(function*() {
        let calls = 0
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* breaker.metricsOnly
        yield* repeat(30, Effect.either(breaker.execute(Effect.suspend(() => (calls++, Effect.fail(hard()))))))
        expect(calls).toBe(30)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("MetricsOnly")
        expect(snapshot.calls).toBe(20)
        expect(snapshot.failureRate).toBe(100)
        expect(snapshot.consecutiveFailures).toBe(30)
      }))

    it.effect("reset forgets the cooldown growth", () =>
      Effect.gen(function*() {
        const breaker = yield* tripped({ cooldownGrowth: true })
        yield* TestClock.adjust("60 seconds")
        yield* failWith(breaker, hard())
        expect((yield* breaker.snapshot).reopens).toBe(1)
        yield* breaker.reset
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("Closed")
        expect(snapshot.reopens).toBe(0)
      }))
  })

  describe("events, logs and snapshots", () => {
    it.effect("logs each transition with key, from, to and reason, never prompt text", () =>
      Effect.gen(function*() {
        const lines = yield* Ref.make<ReadonlyArray<{ level: string; message: string; annotations: string }>>([])
        const logger = Logger.make(({ annotations, logLevel, message }) =>
          Effect.runSync(Ref.update(lines, (all) => [...all, {
            level: logLevel.label,
            message: String(message),
            annotations: JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))
          }]))
        )
        yield* Effect.gen(function*() {
          const provider = yield* ScriptedProvider.make({
            script: (call) => call.index < 5 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("ok")
          })
          const breaker = yield* CircuitBreaker.make({ key: "openai:gpt-4.1" })
          yield* repeat(5, Effect.either(breaker.execute(provider.complete(request))))
          yield* TestClock.adjust("60 seconds")
          yield* breaker.execute(provider.complete(request))
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Logger.withMinimumLogLevel(LogLevel.All))
        const logged = yield* Ref.get(lines)
        expect(logged.map((line) => [line.level, JSON.parse(line.annotations)])).toEqual([
          ["WARN", { key: "openai:gpt-4.1", from: "Closed", to: "Open", reason: "ConsecutiveFailures" }],
          ["INFO", { key: "openai:gpt-4.1", from: "Open", to: "HalfOpen", reason: "CooldownElapsed" }],
          ["INFO", { key: "openai:gpt-4.1", from: "HalfOpen", to: "Closed", reason: "ProbesSucceeded" }]
        ])
        expect(logged.map((line) => line.message)).toEqual([
          "llm.circuit_breaker",
          "llm.circuit_breaker",
          "llm.circuit_breaker"
        ])
        expect(JSON.stringify(logged)).not.toContain(SECRET)
      }))

    it.scoped("the registry stream carries every breaker's transitions", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1 })
        const collected = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
          const queue = yield* registry.subscribe
          return yield* Queue.takeBetween(queue, 3, 3)
        })))
        yield* Effect.yieldNow()
        const a = yield* registry.get("a")
        const b = yield* registry.get("b")
        yield* failWith(a, hard())
        yield* TestClock.adjust("1 second")
        yield* failWith(b, hard())
        yield* TestClock.adjust("60 seconds")
        yield* a.state
        const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
        expect(changes).toEqual([
          { key: "a", from: "Closed", to: "Open", reason: "ConsecutiveFailures", at: 0 },
          { key: "b", from: "Closed", to: "Open", reason: "ConsecutiveFailures", at: 1000 },
          { key: "a", from: "Open", to: "HalfOpen", reason: "CooldownElapsed", at: 60_000 }
        ])
      }))

    it.effect("a breaker's own events stream shows only its key", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1 })
        const a = yield* registry.get("a")
        const b = yield* registry.get("b")
        const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(a.events, 1)))
        yield* TestClock.adjust(0)
        yield* failWith(b, hard())
        yield* failWith(a, hard())
        const only = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
        expect(only.map((change) => change.key)).toEqual(["a"])
      }))

    it.effect("snapshots every breaker for dashboards", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry()
        yield* registry.execute("ok", Effect.void)
        yield* repeat(5, Effect.either(registry.execute("bad", Effect.fail(hard()))))
        yield* TestClock.adjust("15 seconds")
        const snapshots = yield* registry.snapshot
        expect(snapshots.map((s) => [s.key, s.state, s.calls, s.failureRate, s.remainingMs])).toEqual([
          ["ok", "Closed", 1, 0, 0],
          ["bad", "Open", 5, 100, 45_000]
        ])
        expect(yield* registry.keys).toEqual(["ok", "bad"])
      }))

    it.effect("a snapshot survives JSON and restores an Open breaker", () =>
      Effect.gen(function*() {
        const before = yield* tripped()
        yield* TestClock.adjust("20 seconds")
        const json = JSON.stringify(yield* before.snapshot)
        const restored = yield* Schema.decodeUnknown(Schema.parseJson(CircuitBreaker.Snapshot))(json)
        const after = yield* CircuitBreaker.make({ key: "k", initialState: restored })
        const error = yield* failWith(after, hard())
        expect(error).toEqual(new CircuitOpen({ key: "k", remaining: Duration.seconds(40) }))
        yield* TestClock.adjust("40 seconds")
        yield* succeed(after)
        expect(yield* after.state).toBe("Closed")
      }))

    it.effect("a restored HalfOpen starts with every permit free", () =>
      Effect.gen(function*() {
        const before = yield* tripped()
        yield* TestClock.adjust("60 seconds")
        yield* Effect.fork(before.execute(Effect.never))
        yield* Effect.yieldNow()
        const saved = yield* before.snapshot
        expect(saved.probesInFlight).toBe(1)
        const after = yield* CircuitBreaker.make({ key: "k", initialState: saved })
        expect(yield* after.state).toBe("HalfOpen")
        yield* succeed(after)
        expect(yield* after.state).toBe("Closed")
      }))

    it.effect("the memory store keeps the newest transition when saves arrive out of order", () =>
      Effect.gen(function*() {
        const store = yield* CircuitBreaker.makeMemoryStore
        const breaker = yield* CircuitBreaker.make({ key: "k", consecutiveFailures: 1 })
        yield* failWith(breaker, hard())
        const open = yield* breaker.snapshot
        yield* breaker.forceClose
        const closed = yield* breaker.snapshot
        expect(closed.since).toBe(0)
        expect(closed.generation).toBeGreaterThan(open.generation)
        yield* store.save(closed)
        yield* store.save(open)
        expect(Option.map(yield* store.load("k"), (s) => s.state)).toEqual(Option.some("Closed"))
      }))

    it.effect("registries sharing a store start new breakers from its last transition", () =>
      Effect.gen(function*() {
        const store = yield* CircuitBreaker.makeMemoryStore
        const first = yield* CircuitBreaker.makeRegistry({ store })
        yield* repeat(5, Effect.either(first.execute("openai:gpt-4.1", Effect.fail(hard()))))
        yield* TestClock.adjust("10 seconds")
        const second = yield* CircuitBreaker.makeRegistry({ store })
        const error = yield* Effect.flip(second.execute("openai:gpt-4.1", Effect.void))
        expect(error).toEqual(new CircuitOpen({ key: "openai:gpt-4.1", remaining: Duration.seconds(50) }))
        expect(Option.isNone(yield* store.load("never-used"))).toBe(true)
      }))
  })

  describe("streams", () => {
    const streaming = (script: ScriptedProvider.Script) =>
      Effect.map(ScriptedProvider.make({ script }), (provider) => ({
        provider,
        stream: provider.stream(request)
      }))

    it.effect("a stream is admitted when it starts and recorded when it ends", () =>
      Effect.gen(function*() {
        const { provider, stream } = yield* streaming((call) =>
          call.index < 5
            ? ScriptedProvider.failure("ServerError", { chunks: ["par", "tial"] })
            : ScriptedProvider.success("fine", { chunks: ["fi", "ne"] })
        )
        const breaker = yield* CircuitBreaker.make({ key: "k" })
        for (let i = 0; i < 5; i++) {
          const error = yield* Effect.flip(Stream.runDrain(breaker.executeStream(stream)))
          expect(error._tag).toBe("HardFailure")
        }
        expect(yield* breaker.state).toBe("Open")
        const rejected = yield* Effect.flip(Stream.runDrain(stream.pipe(CircuitBreaker.executeStream(breaker))))
        expect(rejected).toBeInstanceOf(CircuitOpen)
        expect((yield* provider.calls).length).toBe(5)
        yield* TestClock.adjust("60 seconds")
        const chunks = yield* Stream.runCollect(CircuitBreaker.executeStream(stream, breaker))
        expect(Chunk.size(chunks)).toBe(3)
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("a consumer that stops early does not count against the provider", () =>
      Effect.gen(function*() {
        const { stream } = yield* streaming(() => ScriptedProvider.success("abc", { chunks: ["a", "b", "c"] }))
        const breaker = yield* tripped()
        yield* TestClock.adjust("60 seconds")
        yield* Stream.runDrain(Stream.take(breaker.executeStream(stream), 1))
        const snapshot = yield* breaker.snapshot
        expect(snapshot.probesInFlight).toBe(0)
        expect(snapshot.state === "Closed" || snapshot.state === "HalfOpen").toBe(true)
      }))

    it.effect("an interrupted streaming probe releases its permit", () =>
      Effect.gen(function*() {
        const { stream } = yield* streaming(() => ScriptedProvider.hang)
        const breaker = yield* tripped()
        yield* TestClock.adjust("60 seconds")
        const probe = yield* Effect.fork(Stream.runDrain(breaker.executeStream(stream)))
        yield* TestClock.adjust(0) // lets the forked stream start
        expect((yield* breaker.snapshot).probesInFlight).toBe(1)
        expect(yield* Effect.flip(Stream.runDrain(breaker.executeStream(stream)))).toBeInstanceOf(CircuitOpen)
        yield* Fiber.interrupt(probe)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("HalfOpen")
        expect(snapshot.probesInFlight).toBe(0)
      }))

    it.effect("withCircuitBreakerStream uses the registry's breaker for the key", () =>
      Effect.gen(function*() {
        const { stream } = yield* streaming(() => ScriptedProvider.failure("Overloaded"))
        const guarded = stream.pipe(CircuitBreaker.withCircuitBreakerStream("anthropic:claude"))
        yield* Effect.either(Stream.runDrain(guarded))
        yield* Effect.either(Stream.runDrain(CircuitBreaker.withCircuitBreakerStream(stream, "anthropic:claude")))
        expect(yield* Effect.flip(Stream.runDrain(guarded))).toBeInstanceOf(CircuitOpen)
      }).pipe(Effect.provide(CircuitBreaker.layer({ consecutiveFailures: 2 }))))
  })

  describe("docs/circuit-breaker.md", () => {
    it.effect("our breaker opens after 5 server errors and recovers a minute later", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: (call) => call.index < 5 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("back")
        })
        const breaker = yield* CircuitBreaker.make({ key: provider.key })
        const call = breaker.execute(provider.complete({ messages: [{ role: "user", content: "hi" }] }))

        for (let i = 0; i < 5; i++) yield* Effect.either(call)
        expect((yield* Effect.flip(call))._tag).toBe("CircuitOpen")
        expect((yield* provider.calls).length).toBe(5)

        yield* TestClock.adjust("60 seconds")
        expect(yield* breaker.state).toBe("HalfOpen")
        expect((yield* call).content).toBe("back")
        expect(yield* breaker.state).toBe("Closed")
      }))
  })

  describe("registry", () => {
    it.effect("keeps one independent breaker per key", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 2 })
        yield* repeat(2, Effect.either(registry.execute("openai:gpt-4.1", Effect.fail(hard()))))
        expect(yield* Effect.flip(registry.execute("openai:gpt-4.1", Effect.void))).toBeInstanceOf(CircuitOpen)
        yield* registry.execute("anthropic:claude-sonnet-4-6", Effect.void)
        expect(yield* registry.get("openai:gpt-4.1")).toBe(yield* registry.get("openai:gpt-4.1"))
        expect(CircuitBreaker.isCircuitBreaker(yield* registry.get("x"))).toBe(true)
      }))

    it.effect("withCircuitBreaker uses the registry from the context, data-first or piped", () =>
      Effect.gen(function*() {
        const failing = Effect.fail(hard("Overloaded"))
        yield* Effect.either(CircuitBreaker.withCircuitBreaker(failing, "anthropic:claude"))
        yield* Effect.either(failing.pipe(CircuitBreaker.withCircuitBreaker("anthropic:claude")))
        const error = yield* Effect.flip(Effect.succeed(1).pipe(CircuitBreaker.withCircuitBreaker("anthropic:claude")))
        expect(error).toBeInstanceOf(CircuitOpen)
        const registry = yield* CircuitBreaker.CircuitBreakerRegistry
        expect((yield* (yield* registry.get("anthropic:claude")).snapshot).calls).toBe(2)
      }).pipe(Effect.provide(CircuitBreaker.layer({ consecutiveFailures: 2 }))))

    it.effect("the layer fails with InvalidOptions", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Effect.provide(CircuitBreaker.CircuitBreakerRegistry, CircuitBreaker.layer({ window: -1 }))
        )
        expect(error.field).toBe("window")
      }))

    it.effect("CircuitBreaker.execute is data-first and pipeable", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        expect(yield* CircuitBreaker.execute(Effect.succeed(1), breaker)).toBe(1)
        expect(yield* Effect.succeed(2).pipe(CircuitBreaker.execute(breaker))).toBe(2)
        expect(yield* Effect.succeed(3).pipe(breaker.execute)).toBe(3)
        yield* Effect.either(Effect.fail(hard()).pipe(breaker.execute))
        expect(yield* breaker.pipe((b) => b.state)).toBe("Open")
      }))

    it.effect("10,000 keys are cheap", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry()
        for (let i = 0; i < 10_000; i++) {
          yield* registry.execute(`tenant-${i}:model`, Effect.void)
        }
        expect((yield* registry.keys).length).toBe(10_000)
        expect(Exit.isSuccess(yield* Effect.exit(registry.execute("tenant-9999:model", Effect.void)))).toBe(true)
      }))
  })
})
