/**
 * The timeout with no fiber of its own (`promiseWithin` in src/internal/timeout.ts), and the hand-over of a tier's
 * per-attempt deadline to a provider that honours it (`completeWithin` in src/internal/providerTimeouts.ts), under
 * TestClock: the call fails exactly at the deadline with the attempt's `Timeout`, its signal is aborted, an answer
 * that made it is kept, the caller's interruption aborts it, no fiber is forked for the call and none is left behind.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import { type AttemptDeadline, honouringDeadlines } from "../../src/internal/providerTimeouts.js"
import { promiseWithin, timeoutFail } from "../../src/internal/timeout.js"
import { type CompletionResult, makeUsage } from "../../src/Llm.js"
import { hardFailure } from "../../src/LlmError.js"
import type { Service as LlmProvider } from "../../src/LlmProvider.js"
import * as Resilient from "../../src/Resilient.js"
import { Forks } from "../support/forks.js"

class TimedOut {
  readonly _tag = "TimedOut"
  constructor(readonly label: string) {}
}

class Rejected {
  readonly _tag = "Rejected"
  constructor(readonly error: unknown) {}
}

/** A promise settled by hand, and the signal it was given. */
const controlled = <A>() => {
  const state: {
    signal: AbortSignal | undefined
    resolve: (value: A) => void
    reject: (error: unknown) => void
  } = { signal: undefined, resolve: () => {}, reject: () => {} }
  const run = (signal: AbortSignal) =>
    new Promise<A>((resolve, reject) => {
      state.signal = signal
      state.resolve = resolve
      state.reject = reject
    })
  return { state, run }
}

const within = <A>(run: (signal: AbortSignal) => PromiseLike<A>, millis: number, label = "t") =>
  promiseWithin(run, (error) => Effect.fail(new Rejected(error)), Duration.millis(millis), () => new TimedOut(label))

/** Runs `body` under a supervisor: the ids of the fibers it started that are still alive once it is done. */
const fibersLeftBy = <A, E>(body: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor.track
    const value = yield* Effect.supervised(body, supervisor)
    for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
    return { value, left: (yield* supervisor.value).map((fiber) => fiber.id().id) }
  })

describe("promiseWithin (no fiber per call, shared timer)", () => {
  it.effect("fails exactly at the deadline and aborts the request's signal", () =>
    Effect.gen(function*() {
      const { run, state } = controlled<string>()
      const fiber = yield* Effect.fork(within(run, 5_000))
      yield* TestClock.adjust("4999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      expect(state.signal?.aborted).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(new TimedOut("t")))
      expect(state.signal?.aborted).toBe(true)
      // A late answer changes nothing.
      state.resolve("late")
    }))

  it.effect("an answer or a rejection before the deadline is kept, and nothing fires later", () =>
    Effect.gen(function*() {
      const ok = controlled<string>()
      const bad = controlled<string>()
      const first = yield* Effect.fork(within(ok.run, 5_000))
      const second = yield* Effect.fork(within(bad.run, 5_000))
      yield* TestClock.adjust("1 second")
      ok.state.resolve("answer")
      bad.state.reject("boom")
      expect(yield* Fiber.await(first)).toEqual(Exit.succeed("answer"))
      expect(yield* Fiber.await(second)).toEqual(Exit.fail(new Rejected("boom")))
      yield* TestClock.adjust("1 minute")
      expect(ok.state.signal?.aborted).toBe(false)
      expect(yield* within(() => Promise.resolve(1), 1_000)).toBe(1)
      expect(
        yield* Effect.flip(within(() => {
          throw "sync"
        }, 1_000))
      ).toEqual(new Rejected("sync"))
    }))

  it.effect("interrupting the caller aborts the request; a zero deadline fails at once", () =>
    Effect.gen(function*() {
      const { run, state } = controlled<string>()
      const fiber = yield* Effect.fork(within(run, 30_000))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      expect(state.signal?.aborted).toBe(true)
      expect(yield* Effect.flip(within(() => new Promise<never>(() => {}), 0))).toEqual(new TimedOut("t"))
    }))

  it.effect("deadlines of promise calls and forking calls share one timer, each firing at its own time", () =>
    Effect.gen(function*() {
      const calls = [3_000, 1_000, 2_000].map((millis) => ({ millis, ...controlled<never>() }))
      const fibers = []
      for (const call of calls) fibers.push(yield* Effect.fork(within(call.run, call.millis, String(call.millis))))
      const forking = yield* Effect.fork(timeoutFail(Effect.never, Duration.millis(2_000), () => new TimedOut("fork")))
      for (const millis of [1_000, 2_000, 3_000]) {
        yield* TestClock.adjust("1 second")
        const index = calls.findIndex((call) => call.millis === millis)
        expect(yield* Fiber.await(fibers[index]!)).toEqual(Exit.fail(new TimedOut(String(millis))))
        expect(calls[index]!.state.signal?.aborted).toBe(true)
        expect(Option.isSome(yield* Fiber.poll(forking))).toBe(millis >= 2_000)
      }
      expect(yield* Fiber.await(forking)).toEqual(Exit.fail(new TimedOut("fork")))
    }))

  it.effect("no call forks a fiber, and the timer is gone once no deadline is pending", () =>
    Effect.gen(function*() {
      const { left } = yield* fibersLeftBy(Effect.gen(function*() {
        const ok = controlled<string>()
        const late = controlled<string>()
        const a = yield* Effect.fork(within(ok.run, 10_000))
        const b = yield* Effect.fork(within(late.run, 2_000))
        yield* TestClock.adjust("1 second")
        ok.state.resolve("ok")
        expect(yield* Fiber.join(a)).toBe("ok")
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.await(b)).toEqual(Exit.fail(new TimedOut("t")))
      }))
      expect(left).toEqual([])
      // One call after another in a running fiber: the timer is started once, no fiber per call.
      const forks = new Forks()
      yield* Effect.supervised(
        Effect.gen(function*() {
          for (let i = 0; i < 100; i++) expect(yield* within(() => Promise.resolve(i), 30_000)).toBe(i)
        }),
        forks
      )
      expect(forks.count).toBeLessThanOrEqual(1)
    }))
})

const RESULT: CompletionResult = {
  content: "ok",
  usage: makeUsage(1, 1),
  model: "m",
  provider: "honouring",
  finishReason: "stop",
  latencyMs: 0
}

/** A provider that takes the attempt's deadline into its call (as the built-in ones do), with calls settled by hand. */
const honouringProvider = () => {
  const calls: Array<{ signal: AbortSignal; resolve: (result: CompletionResult) => void }> = []
  const deadlines: Array<AttemptDeadline | undefined> = []
  const run = (signal: AbortSignal) => new Promise<CompletionResult>((resolve) => calls.push({ signal, resolve }))
  const provider: LlmProvider = {
    name: "honouring",
    model: "m",
    key: "honouring:m",
    complete: honouringDeadlines((_input, attempt) => {
      deadlines.push(attempt)
      return attempt === undefined
        ? Effect.promise(run)
        : promiseWithin(run, (error) => Effect.die(error), attempt.duration, attempt.onTimeout)
    }),
    stream: () => Stream.empty,
    countTokens: () => Effect.succeed(1)
  }
  return { provider, calls, deadlines }
}

const ask = { messages: [{ role: "user" as const, content: "hi" }] }

describe("a tier's per-attempt timeout handed to a provider that honours it", () => {
  it.scoped("the attempt times out exactly at the tier timeout, with the same Timeout, and the request is aborted", () =>
    Effect.gen(function*() {
      const { calls, deadlines, provider } = honouringProvider()
      const client = yield* Resilient.make({ chain: [{ provider, timeout: "30 seconds", retry: false }] })
      const fiber = yield* Effect.fork(client.complete(ask))
      yield* TestClock.adjust("29999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      expect(Duration.toMillis(deadlines[0]!.duration)).toBe(30_000)
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("FallbackExhausted")
      if (error._tag === "FallbackExhausted") {
        expect(error.attempts.map((attempt) => attempt.reason)).toEqual(["Timeout"])
      }
      expect(calls[0]!.signal.aborted).toBe(true)
      expect(deadlines[0]!.onTimeout()).toEqual(
        hardFailure({ reason: "Timeout", provider: "honouring", model: "m", providerCode: "attempt_timeout" })
      )
    }))

  it.scoped("an answer in time is served, and no fiber is left once the client is idle", () =>
    Effect.gen(function*() {
      const { calls, provider } = honouringProvider()
      const client = yield* Resilient.make({ chain: [{ provider, timeout: "30 seconds" }] })
      const { left } = yield* fibersLeftBy(Effect.gen(function*() {
        const fiber = yield* Effect.fork(client.complete(ask))
        yield* TestClock.adjust("1 second")
        calls[0]!.resolve(RESULT)
        expect((yield* Fiber.join(fiber)).content).toBe("ok")
        yield* TestClock.adjust("1 minute")
      }))
      expect(left).toEqual([])
      expect(calls[0]!.signal.aborted).toBe(false)
    }))

  it.scoped("a provider that replaces complete (a wrapper) is not trusted with the deadline: timeoutFail bounds it", () =>
    Effect.gen(function*() {
      const { deadlines, provider } = honouringProvider()
      const wrapped: LlmProvider = {
        ...provider,
        complete: (input) => Effect.zipRight(Effect.never, Effect.suspend(() => provider.complete(input)))
      }
      const client = yield* Resilient.make({ chain: [{ provider: wrapped, timeout: "5 seconds", retry: false }] })
      const fiber = yield* Effect.fork(client.complete(ask))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("FallbackExhausted")
      if (error._tag === "FallbackExhausted") expect(error.attempts[0]?.reason).toBe("Timeout")
      expect(deadlines).toEqual([])
    }))
})
