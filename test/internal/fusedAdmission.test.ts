/**
 * The synchronous admission steps of the breaker and the limiter that the fused fast path runs
 * (src/internal/resilient/fastPath.ts): where they step aside, and that they record what `execute` / `call` record.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as breakerInternal from "../../src/internal/circuitBreaker.js"
import { callKeyOf, fusedOf } from "../../src/internal/rateLimit.js"
import { validateRequest } from "../../src/internal/request.js"
import { type CompletionResult, makeUsage } from "../../src/Llm.js"
import { hardFailure } from "../../src/LlmError.js"
import type { Service } from "../../src/LlmProvider.js"
import * as RateLimit from "../../src/RateLimit.js"

const RESULT: CompletionResult = {
  content: "ok",
  usage: makeUsage(10, 5),
  model: "m",
  provider: "p",
  finishReason: "stop",
  latencyMs: 1
}
const provider: Service = {
  name: "p",
  model: "m",
  key: "p:m",
  complete: () => Effect.succeed(RESULT),
  stream: () => Stream.empty,
  countTokens: () => Effect.succeed(10)
}
const serverError = hardFailure({ reason: "ServerError", provider: "p", model: "m" })
const EXITS: ReadonlyArray<Exit.Exit<CompletionResult, unknown>> = [
  Exit.fail(serverError),
  Exit.succeed(RESULT),
  Exit.fail(serverError),
  Exit.interrupt(0 as never),
  Exit.fail(serverError),
  Exit.fail(serverError)
]

describe("the breaker's synchronous steps", () => {
  it.effect("record what execute records, step for step, and announce the transition they cause", () =>
    Effect.gen(function*() {
      const options = { consecutiveFailures: 3, cooldown: "30 seconds" } as const
      const viaExecute = yield* CircuitBreaker.make({ ...options, key: "k" })
      const viaSteps = yield* CircuitBreaker.make({ ...options, key: "k" })
      const announced: Array<boolean> = []
      for (const exit of EXITS) {
        // Both calls start now and end 10 ms later.
        const startedAt = yield* Clock.currentTimeMillis
        const executed = yield* Effect.fork(Effect.exit(viaExecute.execute(Effect.delay(exit, "10 millis"))))
        yield* Effect.yieldNow()
        expect(breakerInternal.admitsNow(viaSteps, startedAt)).toBe(true)
        const ticket = breakerInternal.admitNow(viaSteps, startedAt)
        expect(ticket).toBeDefined()
        yield* TestClock.adjust("10 millis")
        yield* executed.await
        const after = breakerInternal.settleNow(viaSteps, ticket!, startedAt, exit, yield* Clock.currentTimeMillis)
        announced.push(after !== undefined)
        if (after !== undefined) yield* after
        expect(yield* viaSteps.snapshot).toEqual(yield* viaExecute.snapshot)
      }
      // Only the third failure in a row (the last exit) opened it.
      expect(announced).toEqual([false, false, false, false, false, true])
      expect((yield* viaSteps.snapshot).state).toBe("Open")
    }))

  it.effect("step aside where admission is effectful or refuses: Open, HalfOpen, ForcedOpen, a foreign breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, cooldown: "30 seconds", key: "k" })
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(true)
      yield* Effect.exit(breaker.execute(Effect.fail(serverError)))
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(false) // Open
      yield* TestClock.adjust("31 seconds")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(false) // HalfOpen: probes
      yield* breaker.forceOpen
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(false)
      yield* breaker.metricsOnly
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(true)
      yield* breaker.disable
      expect(breakerInternal.admitsNow(breaker, yield* Clock.currentTimeMillis)).toBe(true)
      expect(breakerInternal.admitsNow({ ...breaker } as CircuitBreaker.CircuitBreaker, 0)).toBe(false)
    }))
})

describe("the limiter's synchronous steps", () => {
  it.effect("take the last permit, step aside when none is free or someone queues, settle as call does", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limits: { concurrency: 1 } })
      const fused = fusedOf(limiter)!
      expect(fused).toBeDefined()
      const request = yield* validateRequest({ messages: [{ role: "user", content: "hi" }] })
      // Not decoded (a plain object): `call` must decode it.
      expect(fused.admitNow(callKeyOf(provider, undefined), { messages: [{ role: "user", content: "hi" }] }, 0))
        .toBeUndefined()
      const admission = fused.admitNow(callKeyOf(provider, undefined), request, 0)
      expect(admission).toBeDefined()
      expect((yield* limiter.snapshot("p:m")).inFlight).toBe(1)
      expect(fused.admitNow(callKeyOf(provider, undefined), request, 0)).toBeUndefined()
      // A caller queues behind the held permit; once it is released the queue goes first.
      const queued = yield* Effect.fork(limiter.call(provider, request))
      yield* Effect.yieldNow()
      expect((yield* limiter.snapshot("p:m")).waiting).toBe(1)
      const after = fused.settleNow(admission!, Exit.succeed(RESULT), 0)
      if (after !== undefined) yield* after
      yield* queued.await
      expect((yield* limiter.snapshot("p:m")).inFlight).toBe(0)
      expect(fused.admitNow(callKeyOf(provider, undefined), request, 0)).toBeDefined()
    }))

  it.effect("settle a 429 with the limiter's pause, and step aside where tokens are counted", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({})
      const fused = fusedOf(limiter)!
      const request = yield* validateRequest({ messages: [{ role: "user", content: "hi" }] })
      const admission = fused.admitNow(callKeyOf(provider, undefined), request, 1_000)!
      const refused = hardFailure({
        reason: "RateLimited",
        provider: "p",
        model: "m",
        retryAfter: Duration.seconds(2)
      })
      const after = fused.settleNow(admission, Exit.fail(refused), 1_000)
      if (after !== undefined) yield* after
      expect((yield* limiter.snapshot("p:m")).pausedUntil).toBe(3_000)
      expect(fused.admitNow(callKeyOf(provider, undefined), request, 2_000)).toBeUndefined()
      const counted = fusedOf(yield* RateLimit.make({ limits: { tpm: 1_000 } }))!
      expect(counted.admitNow(callKeyOf(provider, undefined), request, 0)).toBeUndefined()
    }))
})
