/**
 * The one-fiber timeout (src/internal/timeout.ts) under TestClock: it fires exactly at the deadline, interrupts the
 * effect (whose finalizers run before the failure), leaves successes and failures alone, follows the caller's
 * interruption, orders many deadlines of different lengths, and leaves no fiber behind.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import { VirtualTime } from "../../src/internal/simulation/virtualTime.js"
import { timeoutFail } from "../../src/internal/timeout.js"

class TimedOut {
  readonly _tag = "TimedOut"
  constructor(readonly label: string) {}
}

const within = <A, E>(self: Effect.Effect<A, E>, millis: number, label = "t") =>
  timeoutFail(self, Duration.millis(millis), () => new TimedOut(label))

/** Runs `body` under a supervisor and returns the fibers it started that are still alive once it is done. */
const fibersLeftBy = <A, E>(body: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor.track
    const value = yield* Effect.supervised(body, supervisor)
    for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
    return { value, left: yield* supervisor.value }
  })

describe("timeoutFail (one fiber, shared timer)", () => {
  it.effect("fails exactly at the deadline, after the effect was interrupted and its finalizers ran", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const hang = Effect.never.pipe(
        Effect.onInterrupt(() => Effect.sync(() => events.push("interrupted"))),
        Effect.ensuring(Effect.sync(() => events.push("finalizer")))
      )
      const fiber = yield* Effect.fork(
        Effect.tapError(within(hang, 5_000), () => Effect.sync(() => events.push("failed")))
      )
      yield* TestClock.adjust("4999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      expect(events).toEqual([])
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(exit).toEqual(Exit.fail(new TimedOut("t")))
      expect(events).toEqual(["interrupted", "finalizer", "failed"])
    }))

  it.effect("an effect that ends before the deadline keeps its value or its own failure", () =>
    Effect.gen(function*() {
      const value = yield* Effect.fork(within(Effect.as(Effect.sleep("1 second"), 42), 5_000))
      const failure = yield* Effect.fork(within(Effect.zipRight(Effect.sleep("2 seconds"), Effect.fail("boom")), 5_000))
      const died = yield* Effect.fork(within(Effect.zipRight(Effect.sleep("3 seconds"), Effect.die("bug")), 5_000))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.await(value)).toEqual(Exit.succeed(42))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.await(failure)).toEqual(Exit.fail("boom"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.await(died)).toEqual(Exit.die("bug"))
      // Nothing fires later.
      yield* TestClock.adjust("1 minute")
    }))

  it.effect("a synchronous effect and a zero timeout", () =>
    Effect.gen(function*() {
      expect(yield* within(Effect.succeed(1), 1_000)).toBe(1)
      expect(yield* Effect.flip(within(Effect.never, 0))).toEqual(new TimedOut("t"))
    }))

  it.effect("interrupting the caller interrupts the effect, and waits for its finalizers", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const started = yield* Deferred.make<void>()
      const slowFinalizer = Effect.zipRight(Effect.yieldNow(), Effect.sync(() => events.push("finalizer")))
      const inner = Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
        Effect.ensuring(slowFinalizer)
      )
      const caller = yield* Effect.fork(within(inner, 10_000))
      yield* Deferred.await(started)
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(caller)
      events.push("caller interrupted")
      expect(events).toEqual(["finalizer", "caller interrupted"])
      // Its deadline is gone: nothing fires at 10 s.
      yield* TestClock.adjust("1 minute")
      expect(events).toEqual(["finalizer", "caller interrupted"])
    }))

  it.effect("many deadlines of different lengths each fire at their own time, earliest first", () =>
    Effect.gen(function*() {
      const fired: Array<[string, number]> = []
      const lengths = [5_000, 1_000, 3_000, 30_000, 2_000, 4_000, 1_000]
      const fibers = []
      for (const [index, millis] of lengths.entries()) {
        const label = `${index}:${millis}`
        fibers.push(
          yield* Effect.fork(
            Effect.catchAll(
              within(Effect.never, millis, label),
              (error) =>
                Effect.flatMap(TestClock.currentTimeMillis, (now) => Effect.sync(() => fired.push([error.label, now])))
            )
          )
        )
        // Later calls start later: a deadline earlier than the armed one must re-arm the timer.
        yield* TestClock.adjust("100 millis")
      }
      yield* TestClock.adjust("1 minute")
      yield* Fiber.joinAll(fibers)
      expect(fired).toEqual([
        ["1:1000", 1_100],
        ["6:1000", 1_600],
        ["4:2000", 2_400],
        ["2:3000", 3_200],
        ["5:4000", 4_500],
        ["0:5000", 5_000],
        ["3:30000", 30_300]
      ])
    }))

  it.effect("thousands of calls that end in time do not disturb a pending deadline (the heap is compacted)", () =>
    Effect.gen(function*() {
      const long = yield* Effect.fork(within(Effect.never, 60_000, "long"))
      for (let i = 0; i < 3_000; i++) expect(yield* within(Effect.succeed(i), 30_000 + (i % 7) * 1_000)).toBe(i)
      yield* TestClock.adjust("59999 millis")
      expect(yield* Fiber.poll(long)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.await(long)).toEqual(Exit.fail(new TimedOut("long")))
    }))

  it.effect("no fiber is left: neither the effects' nor the timer, whether calls succeed, time out or are interrupted", () =>
    Effect.gen(function*() {
      const { left } = yield* fibersLeftBy(Effect.gen(function*() {
        const ok = yield* Effect.fork(within(Effect.as(Effect.sleep("1 second"), "ok"), 10_000))
        const late = yield* Effect.fork(within(Effect.never, 2_000))
        const cancelled = yield* Effect.fork(within(Effect.never, 30_000))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(ok)).toBe("ok")
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.await(late)).toEqual(Exit.fail(new TimedOut("t")))
        yield* Fiber.interrupt(cancelled)
      }))
      expect(left.map((fiber) => fiber.id().id)).toEqual([])
    }))

  it.effect("fiber refs set by the effect reach the caller only with inheritFiberRefs", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake(0)
      yield* within(FiberRef.set(ref, 1), 1_000)
      expect(yield* FiberRef.get(ref)).toBe(0)
      yield* timeoutFail(FiberRef.set(ref, 2), Duration.seconds(1), () => "t", { inheritFiberRefs: true })
      expect(yield* FiberRef.get(ref)).toBe(2)
    }))

  it.live("with the live clock: times out on a real timer, and no timer outlives a call that ended in time", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const error = yield* Effect.flip(within(Effect.never, 30))
      expect(error).toEqual(new TimedOut("t"))
      expect(Date.now() - started).toBeGreaterThanOrEqual(25)
      const { left, value } = yield* fibersLeftBy(within(Effect.as(Effect.sleep("5 millis"), "fast"), 60_000))
      expect(value).toBe("fast")
      expect(left.length).toBe(0)
    }))

  it("a clock whose sleeps end a hair early: the deadline the timer slept to counts as reached", async () => {
    // The simulator's clock keeps fractional milliseconds while a `Duration` rounds to whole nanoseconds, so its
    // sleeps can wake an ulp before the deadline. The timer used to re-sleep for the rest, a zero-length sleep
    // whenever the rest rounds to no nanoseconds: it spun without time passing (the 90-day simulation stalled on
    // it). This clock wakes 10 ns early, and subtracts the same from the re-sleep, so the spin is certain.
    const time = new VirtualTime(773_324_856.472987)
    const early: Clock.Clock = {
      ...time.clock,
      sleep: (duration) => time.clock.sleep(Duration.millis(Math.max(0, Duration.toMillis(duration) - 1e-5)))
    }
    const program = Effect.gen(function*() {
      const first = yield* Effect.fork(Effect.flip(within(Effect.never, 30_000, "first")))
      yield* Effect.sleep(Duration.millis(2_613.568004131317))
      const second = yield* Effect.flip(within(Effect.never, 30_000, "second"))
      return [yield* Fiber.join(first), second]
    })
    const exit = await time.run(Effect.withClock(program, early))
    expect(exit).toEqual(Exit.succeed([new TimedOut("first"), new TimedOut("second")]))
    expect(time.stats.timersFired).toBeLessThan(10)
  })
})
