/**
 * Timeouts for the per-call path, with the sleeps shared: per `Clock`, one daemon timer fiber sleeps until the
 * earliest pending deadline, and a call only adds its deadline to a heap — synchronously, no fiber — and takes it out
 * when it ends. Deadlines of one call site all have the same length, so they arrive in order and the timer is
 * re-armed only when an earlier one turns up. Two ways to bound a call:
 *
 * - {@link promiseWithin}, for a promise-returning call that takes an `AbortSignal` (an SDK request): no fiber of its
 *   own. The call runs in the caller's fiber; at the deadline the timer aborts its signal (the HTTP request is closed,
 *   body included) and resumes the caller with the timeout. The built-in providers run their `complete` this way, and
 *   take a `Resilient` tier's per-attempt timeout into it (./providerTimeouts.ts). A deadline has to reach the call
 *   itself: Effect 3 cannot catch an interruption of the caller's own fiber in an interruptible region, and an
 *   arbitrary effect can only be cut short by interrupting the fiber it runs in.
 * - {@link timeoutFail}, for any effect: it runs in a child fiber, so that the deadline can interrupt it (which aborts
 *   its HTTP request). `Retry`'s attempt timeout, the stream guard, the request deadline and the tier timeout of any
 *   other provider (user providers, `ScriptedProvider`, `@effect/ai` tiers) use it.
 *
 * Costs (CPU time per call around a resolved promise, Node 20, 2 shared vCPUs at load ≈ 4.5, scratch loops of 20,000
 * calls in one fiber): `Effect.timeoutFail` forks two fibers and waits for the loser's interruption (≈ 65–85 µs in
 * earlier, quieter scratch benches); `timeoutFail` ≈ 9–13 µs (one fork); `promiseWithin` ≈ 3 µs plus, for a call that
 * takes a signal, ≈ 6 µs for Node to make the `AbortSignal`, which an SDK call needs anyway (`Effect.tryPromise` with a
 * signal, the untimed path, pays it too). In a `Resilient` client on the fused route (./resilient/fastPath.ts), a tier
 * `timeout` handed to the provider's call adds ≈ 3 µs per call to a no-op call that takes no signal; with 1,000
 * concurrent callers see docs/benchmarks.md.
 *
 * - Deterministic under `TestClock`: the timer sleeps on the `Clock` of the calls, never on a raw `setTimeout`.
 * - At the deadline the effect is interrupted (its signal aborted), its finalizers run, and then the call fails with
 *   `onTimeout()`. An effect (a promise) that succeeded before the interruption took hold keeps its value: an answer
 *   that made it is not thrown away.
 * - Interrupting the caller interrupts the effect and waits for it (its finalizers run first), as `Effect.timeout`
 *   does; for `promiseWithin`, it aborts the signal.
 * - `timeoutFail` only: fiber refs the effect sets stay in its fiber unless `inheritFiberRefs` is set (merging them
 *   back costs ≈ 5 µs). A provider call and its quality check set none the caller reads, so `Resilient`'s tier
 *   timeout skips it; `Retry` and the stream guard wrap any caller's effect, so they ask for them.
 * - No timer outlives the calls: once no deadline is pending (checked one scheduler turn later, so that a loop of
 *   sequential calls keeps its timer), the timer is interrupted, so nothing keeps the process alive.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import type * as Scheduler from "effect/Scheduler"

class Pending {
  /** Settled: it ended in time, was interrupted with its caller, or timed out. */
  done = false
  timedOut = false
  /** What the deadline does to a call with no fiber of its own ({@link promiseWithin}): abort it and fail it. */
  expire: (() => void) | undefined = undefined
  constructor(
    readonly at: number,
    public fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined,
    readonly caller: FiberId.FiberId
  ) {}
}

// Dropped deadlines stay in the heap until they reach its top; past this size, and when most are dropped, it is
// rebuilt from the live ones, so it never holds more than about twice the pending calls.
const COMPACT_AT = 1024

/** The pending deadlines of one `Clock` and the timer armed for the earliest. */
class Timers {
  private heap: Array<Pending> = []
  private live = 0
  private timer: Fiber.RuntimeFiber<void> | undefined = undefined
  private timerAt = Infinity
  private generation = 0
  private idleCheck = false

  constructor(private readonly clock: Clock.Clock) {}

  /** Whether adding a deadline at `at` arms the timer (the first deadline, or an earlier one). */
  arms(at: number): boolean {
    return at < this.timerAt
  }

  /** Adds a deadline; returns the effect that arms the timer when it must (the first deadline, or an earlier one). */
  add(pending: Pending): Effect.Effect<void> | undefined {
    this.push(pending)
    this.live++
    if (!this.arms(pending.at)) return undefined
    const generation = ++this.generation
    this.timerAt = pending.at
    const stale = this.timer
    this.timer = undefined
    stale?.unsafeInterruptAsFork(pending.caller)
    return Effect.map(Effect.forkDaemon(this.run(generation)), (fiber) => {
      if (this.generation === generation) this.timer = fiber
      else fiber.unsafeInterruptAsFork(pending.caller)
    })
  }

  /** The call is over: its deadline no longer counts. */
  settle(pending: Pending, scheduler: Scheduler.Scheduler): void {
    if (pending.done) return
    pending.done = true
    pending.fiber = undefined
    pending.expire = undefined
    this.live--
    if (this.live === 0) {
      if (!this.idleCheck) {
        this.idleCheck = true
        scheduler.scheduleTask(() => {
          this.idleCheck = false
          if (this.live === 0) this.stop()
        }, 0)
      }
    } else if (this.heap.length >= COMPACT_AT && this.live * 2 < this.heap.length) {
      this.compact()
    }
  }

  private stop(): void {
    this.generation++
    this.timerAt = Infinity
    this.heap = []
    const timer = this.timer
    this.timer = undefined
    timer?.unsafeInterruptAsFork(timer.id())
  }

  /**
   * The timer: uninterruptible but for its sleeps, so that `stop` ends it at once and a firing runs to its end. A
   * fiber forked inside a caller's `uninterruptibleMask` would otherwise inherit uninterruptibility.
   */
  private run(generation: number): Effect.Effect<void> {
    // `wokeFor` is the deadline the timer slept until: it counts as reached even when the clock reads a hair earlier.
    // A clock with fractional milliseconds (the simulator's) can wake at `now + (at - now)`, which rounds below `at`,
    // and a sub-nanosecond sleep is no sleep at all; comparing with the clock alone then spins without time passing.
    const loop = (wokeFor: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (this.generation !== generation) return Effect.void
        const now = Math.max(this.clock.unsafeCurrentTimeMillis(), wokeFor)
        for (let top = this.heap[0]; top !== undefined && (top.done || top.at <= now); top = this.heap[0]) {
          this.pop()
          if (top.done) continue
          top.done = true
          top.timedOut = true
          this.live--
          top.fiber?.unsafeInterruptAsFork(top.caller)
          top.fiber = undefined
          const expire = top.expire
          top.expire = undefined
          expire?.()
        }
        const next = this.heap[0]
        if (next === undefined) {
          this.generation++
          this.timerAt = Infinity
          this.timer = undefined
          return Effect.void
        }
        this.timerAt = next.at
        return Effect.zipRight(Effect.interruptible(this.clock.sleep(Duration.millis(next.at - now))), loop(next.at))
      })
    return Effect.uninterruptible(loop(-Infinity))
  }

  private push(pending: Pending): void {
    const heap = this.heap
    let i = heap.push(pending) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      const above = heap[parent]!
      if (above.at <= pending.at) break
      heap[i] = above
      i = parent
    }
    heap[i] = pending
  }

  private pop(): void {
    const heap = this.heap
    const last = heap.pop()
    if (last === undefined || heap.length === 0) return
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left
      if (heap[child]!.at >= last.at) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
  }

  private compact(): void {
    const live = this.heap.filter((pending) => !pending.done)
    this.heap = []
    for (const pending of live) this.push(pending)
  }
}

const timersByClock = new WeakMap<Clock.Clock, Timers>()

const timersOf = (clock: Clock.Clock): Timers => {
  let timers = timersByClock.get(clock)
  if (timers === undefined) {
    timers = new Timers(clock)
    timersByClock.set(clock, timers)
  }
  return timers
}

/**
 * `Effect.timeoutFail(self, { duration, onTimeout })`, with the differences above: one fiber per call, a success that
 * raced the deadline wins, and fiber refs set by `self` are carried back to the caller only with `inheritFiberRefs`
 * (≈ 5 µs; `Effect.timeout` always does it).
 *
 * @internal
 */
export const timeoutFail = <A, E, R, E1>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E1,
  options?: { readonly inheritFiberRefs?: boolean | undefined }
): Effect.Effect<A, E | E1, R> =>
  Effect.withFiberRuntime((caller) => {
    const clock = Context.get(caller.currentDefaultServices, Clock.Clock)
    const millis = Duration.toMillis(duration)
    const inherit = options?.inheritFiberRefs === true
    // One interruption-safe region: the child is forked, its deadline added and the waiting set up without a gap in
    // which an interruption could leave either behind.
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.fork(restore(self)), (fiber) => {
        const timers = timersOf(clock)
        const pending = new Pending(clock.unsafeCurrentTimeMillis() + millis, fiber, caller.id())
        const arm = timers.add(pending)
        const awaited = Effect.matchCauseEffect(restore(Fiber.await(fiber)), {
          // Only the caller's interruption ends the wait early: the child goes with it, finalizers run first.
          onFailure: (cause) => {
            timers.settle(pending, caller.currentScheduler)
            return Effect.zipRight(Fiber.interrupt(fiber), Effect.failCause(cause))
          },
          onSuccess: (exit): Effect.Effect<A, E | E1> => {
            timers.settle(pending, caller.currentScheduler)
            if (Exit.isSuccess(exit)) return inherit ? Effect.as(Fiber.inheritAll(fiber), exit.value) : exit
            return pending.timedOut ? Effect.fail(onTimeout()) : exit
          }
        })
        return arm === undefined ? awaited : Effect.zipRight(arm, awaited)
      })
    )
  })

// A call that declares no parameter gets a signal nobody aborts instead of its own: reading `AbortController.signal`
// costs ≈ 6 µs in Node 20 (the `EventTarget` is made on first read), as much as the rest of a fast-path request.
// `Effect.promise` makes the same distinction.
const unused = new AbortController().signal

/**
 * A promise-returning call (an SDK request) bounded by a deadline with no fiber of its own: it runs in the caller's
 * fiber, its deadline joins the shared heap above, and at the deadline the timer aborts its `AbortSignal` (which
 * closes the HTTP request, body included) and resumes the caller with `onTimeout()`. A promise that settled before
 * the deadline was reached keeps its outcome; a rejection is turned into the call's failure by `onReject`.
 * Interrupting the caller aborts the request and takes the deadline out.
 *
 * @internal
 */
export const promiseWithin = <A, E, E1>(
  run: (signal: AbortSignal) => PromiseLike<A>,
  onReject: (error: unknown) => Effect.Effect<never, E>,
  duration: Duration.Duration,
  onTimeout: () => E1
): Effect.Effect<A, E | E1> =>
  Effect.withFiberRuntime((caller) => {
    const clock = Context.get(caller.currentDefaultServices, Clock.Clock)
    const timers = timersOf(clock)
    const controller = new AbortController()
    const pending = new Pending(clock.unsafeCurrentTimeMillis() + Duration.toMillis(duration), undefined, caller.id())
    const settle = () => timers.settle(pending, caller.currentScheduler)
    // The caller's interruption while it waits takes the deadline out and aborts the request.
    const abandon = Effect.sync(() => {
      settle()
      controller.abort()
    })
    const start = (resume: (effect: Effect.Effect<A, E | E1>) => void): void => {
      let resumed = false
      const once = (effect: Effect.Effect<A, E | E1>) => {
        if (resumed) return
        resumed = true
        resume(effect)
      }
      const expire = () => {
        controller.abort()
        once(Effect.fail(onTimeout()))
      }
      if (pending.timedOut) return expire()
      pending.expire = expire
      // Settled in the caller's fiber once it resumes, not here: the idle check (see `settle`) then runs after the
      // caller had its turn, so that a loop of calls keeps its timer instead of stopping and restarting it per call.
      const settled = (effect: Effect.Effect<A, E | E1>) =>
        once(Effect.suspend(() => {
          settle()
          return effect
        }))
      try {
        run(run.length === 0 ? unused : controller.signal).then(
          (value) => settled(Effect.succeed(value)),
          (error: unknown) => settled(onReject(error))
        )
      } catch (error) {
        settled(onReject(error))
      }
    }
    // The deadline is added where the wait starts (`Effect.async`'s registration), so that the canceller it returns
    // covers it from then on. In the common case the timer is armed for an earlier deadline already and the request
    // starts there; else the timer is armed first (uninterruptibly, so that it is known to `stop`), then the request
    // starts — the canceller still covers both.
    return Effect.async<A, E | E1>((resume) => {
      const arm = timers.add(pending)
      if (arm === undefined) start(resume)
      else {
        resume(Effect.zipRight(
          Effect.uninterruptible(arm),
          Effect.async<A, E | E1>((resumeStarted) => {
            start(resumeStarted)
            return abandon
          })
        ))
      }
      return abandon
    })
  })
