import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Queue, Stream, TestClock } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { hardFailure, InvalidOptions } from "../src/LlmError.js"

/** One call that takes `ms` of TestClock time and succeeds. */
const timed = (breaker: CircuitBreaker.CircuitBreaker, ms: number) =>
  Effect.gen(function*() {
    const call = yield* Effect.fork(breaker.execute(Effect.as(Effect.sleep(ms), "ok")))
    yield* Effect.yieldNow()
    yield* TestClock.adjust(ms)
    return yield* Fiber.join(call)
  })

/** `count` calls, one every `everyMs`, each running `call`; returns how many reached the provider. */
const traffic = <A, E>(
  breaker: CircuitBreaker.CircuitBreaker,
  count: number,
  everyMs: number,
  call: Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    let reached = 0
    const fibers: Array<Fiber.RuntimeFiber<A, unknown>> = []
    for (let i = 0; i < count; i++) {
      fibers.push(yield* Effect.fork(breaker.execute(Effect.zipRight(Effect.sync(() => reached++), call))))
      yield* Effect.yieldNow()
      yield* TestClock.adjust(everyMs)
    }
    return { reached: () => reached, fibers }
  })

const hang = Effect.never

describe("CircuitBreaker hang detection", () => {
  it.effect("a provider that starts hanging opens the breaker about `hangs.after` later, not after a timeout", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry()
      const events = yield* registry.subscribe
      const breaker = yield* registry.get("k")
      // Ten healthy 1 s calls teach the breaker the provider's median latency.
      for (let i = 0; i < 10; i++) yield* timed(breaker, 1_000)
      const start = yield* TestClock.currentTimeMillis
      // Then every call hangs, at 10 calls a second.
      const { fibers, reached } = yield* traffic(breaker, 100, 100, hang)
      expect(yield* breaker.state).toBe("Open")
      const changes = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
      expect(changes[0]).toMatchObject({ from: "Closed", to: "Open", reason: "Hanging" })
      // The first hung call started at `start`; the threshold is the longer of 3 s and 3 × the 1 s median.
      expect(changes[0]!.at - start).toBe(3_000)
      expect(reached()).toBe(30)
      // The calls admitted before the trip are still hanging (the breaker never cancels a call): give them their own
      // timeout. Calls after the trip were refused.
      const refused = yield* Effect.forEach(fibers.slice(30, 35), (fiber) => Fiber.await(fiber))
      expect(refused.every((exit) => Exit.isFailure(exit))).toBe(true)
      yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
    }).pipe(Effect.scoped))

  it.effect("a provider that still answers is not hanging, even with calls stuck", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ key: "k" })
      for (let i = 0; i < 10; i++) yield* timed(breaker, 1_000)
      // One call in ten hangs; the others answer in a second, so answers keep coming and the stuck calls are left to
      // their own timeouts (whose failures the other policies count).
      let index = 0
      const call = Effect.suspend(() => index++ % 10 === 0 ? hang : Effect.sleep(1_000))
      const { fibers } = yield* traffic(breaker, 200, 100, call)
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
    }))

  it.effect("a long quiet start is not a hang: the breaker waits until it knows the median latency", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ key: "k" })
      // A burst of 20 long calls on a fresh breaker: nothing to compare them with.
      const { fibers } = yield* traffic(breaker, 20, 100, Effect.sleep(30_000))
      yield* TestClock.adjust(30_000)
      expect(yield* breaker.state).toBe("Closed")
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      expect(exits.every(Exit.isSuccess)).toBe(true)
    }))

  it.effect("interrupted calls stop waiting; streams are never counted; `hangs: false` turns it off", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ key: "k" })
      for (let i = 0; i < 10; i++) yield* timed(breaker, 100)
      const { fibers } = yield* traffic(breaker, 4, 10, hang)
      // Four waiting, one short of the default five; interrupting two leaves two, so three more are still not enough.
      yield* Fiber.interrupt(fibers[0]!)
      yield* Fiber.interrupt(fibers[1]!)
      const more = yield* traffic(breaker, 2, 10, hang)
      yield* TestClock.adjust(10_000)
      expect(yield* breaker.state).toBe("Closed")
      // Hanging streams do not count either.
      const streams = yield* Effect.forEach(
        Array.from({ length: 10 }, () => breaker.executeStream(Stream.never)),
        (stream) => Effect.fork(Stream.runDrain(stream))
      )
      yield* TestClock.adjust(10_000)
      expect(yield* breaker.state).toBe("Closed")
      const another = yield* traffic(breaker, 1, 10, hang)
      yield* TestClock.adjust(10_000)
      expect(yield* breaker.state).toBe("Open")
      yield* Effect.forEach([...fibers, ...more.fibers, ...another.fibers, ...streams], Fiber.interrupt, {
        discard: true
      })

      const off = yield* CircuitBreaker.make({ key: "off", hangs: false })
      for (let i = 0; i < 10; i++) yield* timed(off, 100)
      const hung = yield* traffic(off, 50, 100, hang)
      yield* TestClock.adjust(60_000)
      expect(yield* off.state).toBe("Closed")
      yield* Effect.forEach(hung.fibers, Fiber.interrupt, { discard: true })
    }))

  it.effect("a failure that finishes ends the silence: the other policies take over", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ key: "k", hangs: { after: "2 seconds", calls: 3 } })
      for (let i = 0; i < 10; i++) yield* timed(breaker, 100)
      const first = yield* traffic(breaker, 2, 500, hang)
      // One call fails 1.9 s in: the provider answered (badly), so the clock of silence restarts.
      yield* TestClock.adjust(900)
      yield* Effect.flip(
        breaker.execute(Effect.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m" })))
      )
      const second = yield* traffic(breaker, 3, 500, hang)
      expect(yield* breaker.state).toBe("Closed")
      yield* TestClock.adjust(500)
      expect(yield* breaker.state).toBe("Open")
      yield* Effect.forEach([...first.fibers, ...second.fibers], Fiber.interrupt, { discard: true })
    }))

  it.effect("bad hang options are refused, naming the field", () =>
    Effect.gen(function*() {
      const field = (options: CircuitBreaker.Options) =>
        Effect.map(Effect.flip(CircuitBreaker.make(options)), (error) => {
          expect(error).toBeInstanceOf(InvalidOptions)
          return error.field
        })
      expect(yield* field({ hangs: { after: "-1 seconds" } })).toBe("hangs.after")
      expect(yield* field({ hangs: { calls: 0 } })).toBe("hangs.calls")
      expect(yield* field({ hangs: { multiplier: 0.5 } })).toBe("hangs.multiplier")
    }))
})
