import { describe, it } from "@effect/vitest"
import { assertTrue, deepStrictEqual, strictEqual } from "@effect/vitest/utils"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { retriesTotal } from "../src/internal/metrics.js"
import { CircuitOpen, hardFailure, SoftFailure } from "../src/LlmError.js"
import * as Retry from "../src/Retry.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const request = { messages: [{ role: "user" as const, content: "SECRET-PROMPT-TEXT" }] }

// jitteredWith draws a factor in [1 - j, 1 + j]: a fixed 0.5 makes it exactly 1.
const noJitter = Effect.withRandom(Random.fixed([0.5]))

const run = (
  script: ScriptedProvider.Script,
  options: Retry.Options = {},
  advance: Duration.DurationInput = "10 minutes",
  random: Random.Random = Random.fixed([0.5])
) =>
  Effect.gen(function*() {
    const provider = yield* ScriptedProvider.make({ name: "openai", model: "gpt-4.1", script })
    const retrier = yield* Retry.make(options)
    const fiber = yield* Effect.fork(retrier.retry(provider.complete(request), provider))
    yield* TestClock.adjust(advance)
    const exit = yield* Fiber.await(fiber)
    const calls = yield* provider.calls
    const start = calls[0]?.at ?? 0
    return { exit, times: calls.map((call) => call.at - start) }
  }).pipe(Effect.withRandom(random))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") return exit.cause.error
  throw new Error(`expected a failure, got ${Exit.isSuccess(exit) ? "success" : exit.cause._tag}`)
}

describe("Retry", () => {
  describe("default delay sequences", () => {
    it.effect("ServerError: 3 calls, exponential 1 s, 2 s", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run([ScriptedProvider.failure("ServerError", { status: 500 })])
        deepStrictEqual(times, [0, 1000, 3000])
        strictEqual(failureOf(exit)._tag, "HardFailure")
      }))

    it.effect("Overloaded: 3 calls, exponential 1 s, 2 s, then success on the third", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run([
          ScriptedProvider.failure("Overloaded", { status: 529 }),
          ScriptedProvider.failure("Overloaded", { status: 529 }),
          ScriptedProvider.success("ok")
        ])
        deepStrictEqual(times, [0, 1000, 3000])
        assertTrue(Exit.isSuccess(exit))
      }))

    it.effect("RateLimited: 5 calls, exponential 1, 2, 4, 8 s", () =>
      Effect.gen(function*() {
        const { times } = yield* run([ScriptedProvider.failure("RateLimited", { status: 429 })])
        deepStrictEqual(times, [0, 1000, 3000, 7000, 15000])
      }))

    it.effect("Timeout and Connection: 2 calls, linear 2 s", () =>
      Effect.gen(function*() {
        const timeout = yield* run([ScriptedProvider.failure("Timeout")])
        deepStrictEqual(timeout.times, [0, 2000])
        const connection = yield* run([ScriptedProvider.failure("Connection")])
        deepStrictEqual(connection.times, [0, 2000])
      }))

    it.effect("jitter scales each delay within ±20 %", () =>
      Effect.gen(function*() {
        const low = yield* run([ScriptedProvider.failure("ServerError")], {}, "10 minutes", Random.fixed([0]))
        deepStrictEqual(low.times, [0, 800, 2400])
      }))

    for (
      const reason of [
        "BadRequest",
        "ContextLengthExceeded",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "ContentFiltered",
        "QuotaExhausted",
        "Unknown"
      ] as const
    ) {
      it.effect(`${reason} is called exactly once`, () =>
        Effect.gen(function*() {
          const { exit, times } = yield* run([ScriptedProvider.failure(reason), ScriptedProvider.success("never")])
          deepStrictEqual(times, [0])
          strictEqual(failureOf(exit)._tag, "HardFailure")
        }))
    }

    it.effect("a failure marked not retryable (x-should-retry: false) is not retried", () =>
      Effect.gen(function*() {
        const { times } = yield* run([ScriptedProvider.failure("ServerError", { retryable: false })])
        deepStrictEqual(times, [0])
      }))
  })

  describe("Retry-After", () => {
    it.effect("wins when larger than the backoff, and the backoff when larger than it", () =>
      Effect.gen(function*() {
        const { times } = yield* run([
          ScriptedProvider.failure("RateLimited", { status: 429, retryAfter: "5 seconds" })
        ])
        // delays: max(1, 5), max(2, 5), max(4, 5), max(8, 5)
        deepStrictEqual(times, [0, 5000, 10000, 15000, 23000])
      }))

    it.effect("above the ceiling fails at once without sleeping", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.failure("RateLimited", { retryAfter: "2 minutes" }), ScriptedProvider.success("x")]
        })
        const retrier = yield* Retry.make()
        // No clock adjustment: the call must finish on its own.
        const error = yield* Effect.flip(retrier.retry(provider.complete(request), provider))
        strictEqual(error._tag, "HardFailure")
        strictEqual((yield* provider.calls).length, 1)
      }))

    it.effect("the ceiling is configurable", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run(
          [ScriptedProvider.failure("RateLimited", { retryAfter: "2 minutes" }), ScriptedProvider.success("x")],
          { retryAfterCeiling: "5 minutes" }
        )
        deepStrictEqual(times, [0, 120_000])
        assertTrue(Exit.isSuccess(exit))
      }))

    it.effect("Retry.schedule honours Retry-After with plain Effect.retry", () =>
      Effect.gen(function*() {
        const times: Array<number> = []
        const failing = Effect.gen(function*() {
          times.push(yield* TestClock.currentTimeMillis)
          return yield* hardFailure({
            reason: "RateLimited",
            provider: "p",
            model: "m",
            retryAfter: Duration.seconds(3)
          })
        })
        const fiber = yield* Effect.fork(
          Effect.retry(failing, Retry.schedule({ ...Retry.defaultPolicies.RateLimited, maxAttempts: 3 }))
        )
        yield* TestClock.adjust("1 minute")
        yield* Fiber.await(fiber)
        deepStrictEqual(times, [0, 3000, 6000])
      }).pipe(noJitter))
  })

  describe("timeouts", () => {
    it.effect("a per-attempt timeout interrupts a hanging attempt and becomes HardFailure Timeout, then retries", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run([ScriptedProvider.hang, ScriptedProvider.success("ok")], {
          attemptTimeout: "2 seconds"
        })
        // attempt 1 times out at 2 s, Timeout waits linear 2 s: attempt 2 at 4 s
        deepStrictEqual(times, [0, 4000])
        assertTrue(Exit.isSuccess(exit))
      }))

    it.effect("the overall deadline stops retries that would start after it", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run([ScriptedProvider.failure("ServerError")], {
          deadline: "5 seconds",
          policies: { ServerError: { maxAttempts: 10 } },
          maxAttempts: 10
        })
        // delays 1, 2, then 4 s would start at 7 s, after the 5 s deadline
        deepStrictEqual(times, [0, 1000, 3000])
        strictEqual(failureOf(exit)._tag, "HardFailure")
      }))

    it.effect("the deadline interrupts an attempt still running when it arrives", () =>
      Effect.gen(function*() {
        const { exit, times } = yield* run([ScriptedProvider.hang], { deadline: "5 seconds" })
        deepStrictEqual(times, [0])
        const error = failureOf(exit)
        assertTrue(error._tag === "HardFailure" && error.reason === "Timeout")
        strictEqual(error._tag === "HardFailure" ? error.providerCode : undefined, "deadline_exceeded")
      }))

    it.effect("with a timeout, the attempt is still interrupted exactly at it, and fiber refs it sets reach the caller", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make({ attemptTimeout: "3 seconds", policies: { Timeout: { maxAttempts: 1 } } })
        const target = { name: "p", model: "m" }
        const ref = FiberRef.unsafeMake(0)
        strictEqual(yield* retrier.retry(Effect.as(FiberRef.set(ref, 7), "ok"), target), "ok")
        strictEqual(yield* FiberRef.get(ref), 7)
        let interruptedAt = -1
        const hang = Effect.onInterrupt(
          Effect.never,
          () => Effect.flatMap(TestClock.currentTimeMillis, (now) => Effect.sync(() => void (interruptedAt = now)))
        )
        const fiber = yield* Effect.fork(retrier.retry(hang, target))
        yield* TestClock.adjust("2999 millis")
        strictEqual(interruptedAt, -1)
        yield* TestClock.adjust("1 millis")
        const error = failureOf(yield* Fiber.await(fiber))
        strictEqual(interruptedAt, 3000)
        strictEqual(error._tag === "HardFailure" ? error.providerCode : undefined, "attempt_timeout")
      }))

    it.effect("per-model overrides: a local model gets a longer attempt timeout", () =>
      Effect.gen(function*() {
        const options: Retry.Options = {
          attemptTimeout: "1 second",
          overrides: { "openai:gpt-4.1": { attemptTimeout: "30 seconds" } }
        }
        const { exit } = yield* run([ScriptedProvider.success("slow", { latency: "10 seconds" })], options)
        assertTrue(Exit.isSuccess(exit))
      }))
  })

  describe("overrides and limits", () => {
    it.effect("per provider and per model, the more specific wins", () =>
      Effect.gen(function*() {
        const options: Retry.Options = {
          overrides: {
            openai: { policies: { ServerError: { maxAttempts: 2 } } },
            "openai:gpt-4.1": { policies: { ServerError: { baseDelay: "5 seconds" } } }
          }
        }
        const { times } = yield* run([ScriptedProvider.failure("ServerError")], options)
        deepStrictEqual(times, [0, 5000])
      }))

    it.effect("each reason keeps its own schedule, and maxAttempts caps the total", () =>
      Effect.gen(function*() {
        const mixed = yield* run([
          ScriptedProvider.failure("ServerError"),
          ScriptedProvider.failure("RateLimited"),
          ScriptedProvider.failure("ServerError"),
          ScriptedProvider.success("ok")
        ])
        // 503 → 1 s (its 1st retry), 429 → 1 s (its 1st), 503 → 2 s (its 2nd)
        deepStrictEqual(mixed.times, [0, 1000, 2000, 4000])
        const capped = yield* run([ScriptedProvider.failure("RateLimited")], { maxAttempts: 2 })
        deepStrictEqual(capped.times, [0, 1000])
      }))

    it.effect("soft failures are not retried by default, and are when a Soft policy allows it", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make()
        const softRetrier = yield* Retry.make({ policies: { Soft: { maxAttempts: 3, baseDelay: "0 millis" } } })
        let calls = 0
        const soft = Effect.suspend(() => {
          calls++
          return Effect.fail(
            new SoftFailure({ reason: "SchemaMismatch", provider: "p", model: "m", retryable: true })
          )
        })
        yield* Effect.flip(retrier.retry(soft, { name: "p", model: "m" }))
        strictEqual(calls, 1)
        yield* Effect.flip(softRetrier.retry(soft, { name: "p", model: "m" }))
        strictEqual(calls, 4)
      }))

    it.effect("CircuitOpen and other errors outside the taxonomy are never retried", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make()
        let calls = 0
        const open = Effect.suspend(() => {
          calls++
          return Effect.fail(new CircuitOpen({ key: "p:m", remaining: Duration.seconds(30) }))
        })
        const error = yield* Effect.flip(retrier.retry(open, { name: "p", model: "m" }))
        strictEqual(error._tag, "CircuitOpen")
        strictEqual(calls, 1)
      }))
  })

  describe("streams", () => {
    const unavailable = () =>
      Stream.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m", status: 503 }))

    it.effect("retryStream retries a failure before the first element, and never one after it", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make()
        let opened = 0
        const flaky = Stream.suspend(() => {
          opened++
          return opened === 1
            ? unavailable()
            : Stream.make("a", "b", "c")
        })
        const fiber = yield* Effect.fork(Stream.runCollect(retrier.retryStream(flaky, { name: "p", model: "m" })))
        yield* TestClock.adjust("10 seconds")
        deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), ["a", "b", "c"])
        strictEqual(opened, 2)

        let committedOpens = 0
        const committed = Stream.suspend(() => {
          committedOpens++
          return Stream.concat(Stream.make("first"), unavailable())
        })
        const seen: Array<string> = []
        const error = yield* Effect.flip(
          Stream.runForEach(
            retrier.retryStream(committed, { name: "p", model: "m" }),
            (x) => Effect.sync(() => seen.push(x))
          )
        )
        strictEqual(error._tag, "HardFailure")
        deepStrictEqual(seen, ["first"])
        strictEqual(committedOpens, 1)
      }).pipe(noJitter))
  })

  describe("composed with a breaker by hand", () => {
    const failing = (calls: { count: number }) =>
      Effect.suspend(() => {
        calls.count++
        return Effect.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m", status: 503 }))
      })

    it.effect("until: a failure that opened the breaker ends the retries at once, with that failure", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make()
        const breaker = yield* CircuitBreaker.make({ key: "p:m", consecutiveFailures: 1 })
        const calls = { count: 0 }
        const fiber = yield* Effect.fork(
          retrier.retry(breaker.execute(failing(calls)), { name: "p", model: "m" }, {
            until: () => CircuitBreaker.isOpen(breaker)
          })
        )
        const exit = yield* Fiber.await(fiber)
        assertTrue(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "HardFailure")
        strictEqual(calls.count, 1)
        strictEqual(yield* TestClock.currentTimeMillis, 0, "no backoff was slept")
      }))

    it.effect("without it, the retrier sleeps a backoff only to be refused by the open breaker", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make()
        const breaker = yield* CircuitBreaker.make({ key: "p:m", consecutiveFailures: 1 })
        const calls = { count: 0 }
        const fiber = yield* Effect.fork(retrier.retry(breaker.execute(failing(calls)), { name: "p", model: "m" }))
        yield* Effect.yieldNow()
        strictEqual(fiber.unsafePoll(), null, "sleeping a backoff")
        yield* TestClock.adjust("10 seconds")
        const error = yield* Effect.flip(Fiber.join(fiber))
        strictEqual(error._tag, "CircuitOpen")
        strictEqual(calls.count, 1)
      }))
  })

  describe("retry budget", () => {
    it.effect("caps the extra calls of a 1,000-request outage", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4.1",
          script: [ScriptedProvider.failure("ServerError", { status: 503 })]
        })
        const retrier = yield* Retry.make({ budget: { ratio: 0.2, minPerSecond: 1, window: "10 seconds" } })
        const fiber = yield* Effect.forEach(
          Array.from({ length: 1000 }),
          () => Effect.flip(retrier.retry(provider.complete(request), provider)),
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)
        yield* TestClock.adjust("1 minute")
        const errors = yield* Fiber.join(fiber)
        const calls = (yield* provider.calls).length
        // Without a budget: 3,000 calls. With it: 1,000 + 20 % + a floor of 1/s over 10 s.
        assertTrue(calls <= 1000 + 200 + 10, `calls ${calls}`)
        assertTrue(calls >= 1000 + 200, `calls ${calls}`)
        const exhausted = errors.filter((error) => error._tag === "RetryBudgetExhausted")
        assertTrue(exhausted.length > 0)
        const first = exhausted[0]
        if (first?._tag === "RetryBudgetExhausted") {
          strictEqual(first.key, "openai:gpt-4.1")
          strictEqual(first.failure.reason, "ServerError")
        }
      }).pipe(noJitter))

    it.effect("without a budget every request retries fully", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.failure("ServerError")] })
        const retrier = yield* Retry.make({ budget: false })
        const fiber = yield* Effect.forEach(
          Array.from({ length: 100 }),
          () => Effect.flip(retrier.retry(provider.complete(request), provider)),
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(fiber)
        strictEqual((yield* provider.calls).length, 300)
      }).pipe(noJitter))

    it.effect("the budget refills as the window slides", () =>
      Effect.gen(function*() {
        const retrier = yield* Retry.make({ budget: { ratio: 0, minPerSecond: 0.1, window: "10 seconds" } })
        const target = { name: "p", model: "m" }
        strictEqual(yield* retrier.remainingBudget(target), 1)
        const failing = Effect.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m" }))
        const fiber = yield* Effect.fork(Effect.flip(retrier.retry(failing, target)))
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(fiber)
        strictEqual(error._tag, "RetryBudgetExhausted")
        strictEqual(yield* retrier.remainingBudget(target), 0)
        yield* TestClock.adjust("10 seconds")
        strictEqual(yield* retrier.remainingBudget(target), 1)
      }).pipe(noJitter))
  })

  describe("observability", () => {
    it.effect("each retry logs provider, model, attempt, delay and reason — never the prompt — and counts", () =>
      Effect.gen(function*() {
        const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
        const capture = Logger.make(({ annotations, message }) => {
          lines.push({ message, annotations: Object.fromEntries(annotations) })
        })
        const counter = Metric.taggedWithLabels(retriesTotal, [
          MetricLabel.make("provider", "openai"),
          MetricLabel.make("model", "gpt-4.1"),
          MetricLabel.make("reason", "Overloaded")
        ])
        const before = (yield* Metric.value(counter)).count
        yield* run([ScriptedProvider.failure("Overloaded")]).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, capture))
        )
        strictEqual(lines.length, 2)
        deepStrictEqual(lines[0]?.annotations, {
          provider: "openai",
          model: "gpt-4.1",
          attempt: 2,
          delay_ms: 1000,
          reason: "Overloaded"
        })
        strictEqual(lines[1]?.annotations["delay_ms"], 2000)
        assertTrue(!JSON.stringify(lines).includes("SECRET-PROMPT-TEXT"))
        strictEqual((yield* Metric.value(counter)).count - before, 2)
      }))

    it.effect("under Effect.tagMetrics the retries are counted with the caller's labels too; logs filtered out stay out", () =>
      Effect.gen(function*() {
        const labels = [
          MetricLabel.make("provider", "openai"),
          MetricLabel.make("model", "gpt-4.1"),
          MetricLabel.make("reason", "Overloaded")
        ]
        const plain = Metric.taggedWithLabels(retriesTotal, labels)
        const tagged = Metric.taggedWithLabels(retriesTotal, [...labels, MetricLabel.make("tenant", "t1")])
        const before = { plain: (yield* Metric.value(plain)).count, tagged: (yield* Metric.value(tagged)).count }
        const lines: Array<unknown> = []
        const capture = Logger.make(({ message }) => {
          lines.push(message)
        })
        yield* run([ScriptedProvider.failure("Overloaded")]).pipe(
          Effect.tagMetrics("tenant", "t1"),
          Logger.withMinimumLogLevel(LogLevel.Warning),
          Effect.provide(Logger.replace(Logger.defaultLogger, capture))
        )
        strictEqual((yield* Metric.value(tagged)).count - before.tagged, 2)
        strictEqual((yield* Metric.value(plain)).count - before.plain, 0)
        strictEqual(lines.length, 0)
      }))
  })

  describe("options", () => {
    const invalid: ReadonlyArray<[string, Retry.Options]> = [
      ["maxAttempts", { maxAttempts: 0 }],
      ["policies.ServerError.maxAttempts", { policies: { ServerError: { maxAttempts: 1.5 } } }],
      ["policies.RateLimited.jitter", { policies: { RateLimited: { jitter: 1.5 } } }],
      ["policies.Timeout.baseDelay", { policies: { Timeout: { baseDelay: -1 } } }],
      ["deadline", { deadline: 0 }],
      ["attemptTimeout", { attemptTimeout: "soon" as Duration.DurationInput }],
      ["overrides.openai.maxAttempts", { overrides: { openai: { maxAttempts: -2 } } }],
      ["budget.ratio", { budget: { ratio: -0.1 } }],
      ["budget.window", { budget: { window: 0 } }]
    ]
    for (const [field, options] of invalid) {
      it.effect(`rejects an invalid ${field}, naming it`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Retry.make(options))
          strictEqual(error._tag, "InvalidOptions")
          strictEqual(error.field, field)
        }))
    }
  })

  it.effect("Retry.layer and the pipeable Retry.retry use the service", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [ScriptedProvider.failure("ServerError"), ScriptedProvider.success("ok")]
      })
      const fiber = yield* provider.complete(request).pipe(
        Retry.retry(provider),
        Effect.provide(Retry.layer()),
        Effect.fork
      )
      yield* TestClock.adjust("5 seconds")
      const result = yield* Fiber.join(fiber)
      strictEqual(result.content, "ok")
    }).pipe(noJitter))
})
