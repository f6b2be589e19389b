/**
 * Interruption anywhere — while queued, just after a release handed a permit over, while running — returns every
 * permit and token charge.
 */
import { describe, it } from "@effect/vitest"
import { assertTrue, strictEqual } from "@effect/vitest/utils"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import type { RateLimitExceeded } from "../src/LlmError.js"
import * as RateLimit from "../src/RateLimit.js"

const KEY = "openai:gpt-4o"

/** A small seeded generator (mulberry32): the same interrupts on every run. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}

/** Every permit is back: `concurrency` calls start at once and the next one queues. */
const assertAllPermitsBack = (limiter: RateLimit.Limiter, concurrency: number) =>
  Effect.gen(function*() {
    const holders: Array<Fiber.RuntimeFiber<void, RateLimitExceeded>> = []
    for (let i = 0; i <= concurrency; i++) holders.push(yield* Effect.fork(limiter.limit(KEY)(Effect.never)))
    yield* Effect.yieldNow()
    const full = yield* limiter.snapshot(KEY)
    strictEqual(full.inFlight, concurrency)
    strictEqual(full.waiting, 1)
    yield* Fiber.interruptAll(holders)
    const after = yield* limiter.snapshot(KEY)
    strictEqual(after.inFlight, 0)
    strictEqual(after.waiting, 0)
  })

describe("RateLimit interruption", () => {
  it.effect("10,000 random interrupts: afterwards all permits and token charges are back", () =>
    Effect.gen(function*() {
      const random = seeded(20261123)
      const concurrency = 8
      const limiter = yield* RateLimit.make({
        limits: { concurrency, rpm: 1_000_000, tpm: 1_000_000_000 },
        maxWait: "infinity"
      })
      let running = 0
      let maxRunning = 0
      let bodyFinishedTokens = 0
      const calls: Array<{ fiber: Fiber.RuntimeFiber<void, RateLimitExceeded>; tokens: number }> = []
      for (let i = 0; i < 10_000; i++) {
        const tokens = 1 + Math.floor(random() * 3_000)
        const steps = Math.floor(random() * 40)
        const body = Effect.suspend(() => {
          running++
          maxRunning = Math.max(maxRunning, running)
          let work: Effect.Effect<void> = Effect.void
          for (let s = 0; s < steps; s++) work = Effect.zipRight(work, Effect.yieldNow())
          return Effect.zipRight(work, Effect.sync(() => void (bodyFinishedTokens += tokens)))
        }).pipe(Effect.ensuring(Effect.sync(() => running--)))
        calls.push({ fiber: yield* Effect.fork(limiter.limit(KEY, { tokens })(body)), tokens })
      }
      // Interrupt every call, in random order, at random moments: queued, handed a permit but not yet resumed,
      // running, or already done.
      const order = calls.map((_, i) => i)
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1))
        ;[order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0]
      }
      for (const index of order) {
        if (random() < 0.2) yield* Effect.yieldNow()
        const call = calls[index]
        if (call !== undefined) yield* Fiber.interruptFork(call.fiber)
      }
      let succeeded = 0
      let succeededTokens = 0
      let interrupted = 0
      for (const call of calls) {
        const exit = yield* Fiber.await(call.fiber)
        if (Exit.isSuccess(exit)) {
          succeeded++
          succeededTokens += call.tokens
        } else if (Exit.isInterrupted(exit)) interrupted++
      }
      strictEqual(succeeded + interrupted, 10_000)
      assertTrue(interrupted > 5_000, `interrupted ${interrupted}`)
      assertTrue(succeeded > 100, `succeeded ${succeeded}`)
      assertTrue(maxRunning <= concurrency, `ran ${maxRunning} at once`)
      strictEqual(running, 0)

      const settled = yield* limiter.snapshot(KEY)
      strictEqual(settled.inFlight, 0)
      strictEqual(settled.waiting, 0)
      // Completed calls keep their charge; every interrupted one was refunded. (A call interrupted right after its
      // last step may count either way, hence the range.)
      assertTrue(
        settled.tokensInWindow >= succeededTokens && settled.tokensInWindow <= bodyFinishedTokens,
        `${succeededTokens} <= ${settled.tokensInWindow} <= ${bodyFinishedTokens}`
      )
      assertTrue(settled.requestsInWindow >= succeeded)

      yield* TestClock.adjust("61 seconds")
      const expired = yield* limiter.snapshot(KEY)
      strictEqual(expired.tokensInWindow, 0)
      strictEqual(expired.requestsInWindow, 0)
      yield* assertAllPermitsBack(limiter, concurrency)
    }))

  it.effect("a permit handed to a waiter interrupted before it runs goes to the next waiter, its request refunded", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limits: { concurrency: 1, rpm: 100 } })
      const ran: Array<string> = []
      const release = yield* Deferred.make<void>()
      const first: { fiber: Fiber.RuntimeFiber<number, RateLimitExceeded> | undefined } = { fiber: undefined }
      // The holder's release hands the permit to `first`; the holder's next step interrupts `first`, whose resumption
      // is queued but has not run.
      const holder = yield* Effect.fork(
        Effect.zipRight(
          limiter.limit(KEY)(Deferred.await(release)),
          // Sent now (`interruptFork` would send it from a fiber of its own, after `first` has run).
          Effect.fiberIdWith((id) => Effect.sync(() => first.fiber?.unsafeInterruptAsFork(id)))
        )
      )
      yield* Effect.yieldNow()
      first.fiber = yield* Effect.fork(limiter.limit(KEY)(Effect.sync(() => ran.push("first"))))
      const second = yield* Effect.fork(limiter.limit(KEY)(Effect.sync(() => ran.push("second"))))
      yield* Effect.yieldNow()
      strictEqual((yield* limiter.snapshot(KEY)).waiting, 2)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      const firstExit = yield* Fiber.await(first.fiber)
      assertTrue(Exit.isInterrupted(firstExit))
      yield* Fiber.join(second)
      strictEqual(JSON.stringify(ran), `["second"]`)
      const after = yield* limiter.snapshot(KEY)
      strictEqual(after.inFlight, 0)
      strictEqual(after.waiting, 0)
      // The holder's request and the second's: the interrupted waiter's was given back.
      strictEqual(after.requestsInWindow, 2)
    }))

  it.effect("interrupts while waiting on the window, the pause and the timer leave nothing behind", () =>
    Effect.gen(function*() {
      const random = seeded(7)
      const limiter = yield* RateLimit.make({
        limits: { concurrency: 3, rpm: 20, tpm: 5_000 },
        maxWait: "infinity"
      })
      const fibers: Array<Fiber.RuntimeFiber<void, RateLimitExceeded>> = []
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 20; i++) {
          const tokens = 1 + Math.floor(random() * 600)
          const work = Effect.sleep(`${Math.floor(random() * 3_000)} millis`)
          fibers.push(yield* Effect.fork(limiter.limit(KEY, { tokens })(work)))
        }
        if (round === 5) yield* limiter.pause(KEY, "20 seconds")
        for (const fiber of fibers) if (random() < 0.15) yield* Fiber.interruptFork(fiber)
        yield* TestClock.adjust(`${1_000 + Math.floor(random() * 9_000)} millis`)
      }
      yield* Fiber.interruptAll(fibers)
      const settled = yield* limiter.snapshot(KEY)
      strictEqual(settled.inFlight, 0)
      strictEqual(settled.waiting, 0)
      yield* TestClock.adjust("61 seconds")
      const expired = yield* limiter.snapshot(KEY)
      strictEqual(expired.tokensInWindow, 0)
      strictEqual(expired.requestsInWindow, 0)
      yield* assertAllPermitsBack(limiter, 3)
    }))

  describe("the timer", () => {
    /** Runs `body` under a supervisor and returns the fibers it started that are still alive once it is done. */
    const fibersLeftBy = <A, E>(body: Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const supervisor = yield* Supervisor.track
        yield* Effect.supervised(body, supervisor)
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
        return yield* supervisor.value
      })

    it.effect("is interrupted once no call waits: three calls through concurrency 1 leave no fiber behind", () =>
      Effect.gen(function*() {
        // The second call waits and arms the key's timer for its 30 s maxWait deadline. Once nothing waits, the timer
        // must stop: with the live clock its sleep is a setTimeout that would keep Node running until the deadline.
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1 } })
        const started: Array<number> = []
        const call = limiter.limit(KEY)(
          Effect.zipRight(
            Effect.clockWith((clock) => Effect.sync(() => started.push(clock.unsafeCurrentTimeMillis()))),
            Effect.sleep("1 second")
          )
        )
        const left = yield* fibersLeftBy(Effect.gen(function*() {
          const fiber = yield* Effect.fork(Effect.all([call, call, call], { concurrency: "unbounded" }))
          yield* TestClock.adjust("3 seconds")
          yield* Fiber.join(fiber)
        }))
        strictEqual(JSON.stringify(started), "[0,1000,2000]")
        strictEqual(left.length, 0, `fibers still running: ${left.map((fiber) => fiber.id().id).join(", ")}`)
        const snapshot = yield* limiter.snapshot(KEY)
        strictEqual(snapshot.inFlight, 0)
        strictEqual(snapshot.waiting, 0)
      }))

    it.effect("a replaced timer and one cancelled by an interrupted waiter are interrupted too", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ limits: { concurrency: 1, rpm: 2 }, maxWait: "10 minutes" })
        const left = yield* fibersLeftBy(Effect.gen(function*() {
          const holder = yield* Effect.fork(limiter.limit(KEY)(Effect.never))
          yield* Effect.yieldNow()
          // Waits on concurrency: timer at its deadline (600 s).
          const waiter = yield* Effect.fork(limiter.limit(KEY)(Effect.void))
          yield* Effect.yieldNow()
          // A pause brings the head's moment forward: the 600 s timer is replaced by a 20 s one.
          yield* limiter.pause(KEY, "20 seconds")
          yield* TestClock.adjust("1 second")
          yield* Fiber.interrupt(waiter)
          yield* Fiber.interrupt(holder)
        }))
        strictEqual(left.length, 0, `fibers still running: ${left.map((fiber) => fiber.id().id).join(", ")}`)
      }))
  })
})
