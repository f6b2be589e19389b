/**
 * The limiter's waiter queue: per key, a strict-FIFO queue of parked calls over the key's bucket
 * (./rateLimitBucket.ts), and the two shapes in which a call waits in it.
 *
 * - Waiters park in `Effect.async`. Whatever frees capacity (a release, a refund, the timer) runs `pump`, which admits
 *   waiters from the head while the bucket allows and resumes exactly those: a release resumes one waiter, never all
 *   of them (the O(waiters) wake-up `Semaphore` pays, DESIGN.md §4). Strict FIFO: a newcomer never overtakes.
 * - Only the head of a queue can be blocked by time (the window, a pause, the headers) or reach its `maxWait`
 *   deadline first — deadlines are in queue order — so one timer per key, armed for the head, is enough (the limiter,
 *   ./rateLimit.ts, keeps it).
 * - A waiter interrupted after `pump` admitted it, but before it ran, gives the admission back (`abandon`).
 *
 * A parked call costs mostly what the fiber runtime charges for it: its suspension and resumption by another fiber,
 * and the frames it keeps while it waits (each of hundreds of waiters lives about one young-generation collection
 * cycle, so each collection copies them all). So a call waits inside as few frames as interrupt safety allows — one
 * interruptible region and one `matchCauseEffect` inside the caller's uninterruptible one (no `onInterrupt`, which is
 * a second region: it tripled the CPU per call through 100 permits) — and its closures share one object (the waiter)
 * instead of holding a chain of the caller's scopes (bench/limiter-queue.ts, docs/benchmarks.md).
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { RateLimitExceeded } from "../LlmError.js"
import type { Blocked, Bucket, Ticket } from "./rateLimitBucket.js"

type Resume = (effect: Effect.Effect<void, RateLimitExceeded>) => void

/** Gives back the caller's interruptibility inside the limiter's uninterruptible region. @internal */
export type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/** One call in a key's queue. @internal */
export class Waiter {
  state: "queued" | "admitted" | "failed" | "abandoned" = "queued"
  resume: Resume | undefined = undefined
  ticket: Ticket | undefined = undefined
  error: RateLimitExceeded | undefined = undefined
  constructor(readonly tokens: number, readonly deadline: number) {}

  /** `Effect.async`'s registration: resumes at once where `pump` has decided already. */
  protected register(resume: Resume): void {
    if (this.state === "admitted") resume(Effect.void)
    else if (this.state === "failed" && this.error !== undefined) resume(Effect.fail(this.error))
    else this.resume = resume
  }

  /** Suspends (interruptibly where the caller is) until `pump` admits or fails this waiter. */
  protected park(): Effect.Effect<void, RateLimitExceeded> {
    return Effect.async<void, RateLimitExceeded>((resume) => this.register(resume))
  }
}

/** @internal */
export class KeyState {
  private queue: Array<Waiter | undefined> = []
  private head = 0
  waiting = 0
  timerAt = Infinity
  timerGeneration = 0
  timer: Fiber.RuntimeFiber<void> | undefined = undefined
  /** 429s in a row, for the growing default pause. */
  rateLimitedInRow = 0
  /** The idle-expiry epoch of the last use. */
  stamp = 0

  constructor(readonly key: string, readonly bucket: Bucket) {}

  get queued(): boolean {
    return this.waiting > 0
  }

  enqueue(waiter: Waiter): void {
    this.queue.push(waiter)
    this.waiting++
  }

  /** The first waiter still queued. */
  peek(): Waiter | undefined {
    while (this.head < this.queue.length) {
      const waiter = this.queue[this.head]
      if (waiter !== undefined && waiter.state === "queued") return waiter
      this.dequeue()
    }
    return undefined
  }

  private dequeue(): void {
    this.queue[this.head] = undefined
    this.head++
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  exceeded(blocked: Blocked, now: number): RateLimitExceeded {
    return new RateLimitExceeded({
      key: this.key,
      retryAfter: blocked.readyAt === Infinity
        ? Duration.infinity
        : Duration.millis(Math.max(0, blocked.readyAt - now)),
      limit: blocked.limit
    })
  }

  /**
   * Admits waiters from the head while the bucket allows, fails those whose deadline has come (or whose wait is
   * known to pass it), and returns when the head needs looking at again (`Infinity`: only a release helps, or the
   * queue is empty).
   */
  pump(now: number): number {
    for (;;) {
      const waiter = this.peek()
      if (waiter === undefined) return Infinity
      const blocked = this.bucket.check(waiter.tokens, now)
      if (blocked === undefined) {
        waiter.ticket = this.bucket.take(waiter.tokens, now)
        waiter.state = "admitted"
        this.waiting--
        this.dequeue()
        waiter.resume?.(Effect.void)
        continue
      }
      if (now >= waiter.deadline || blocked.readyAt > waiter.deadline || blocked.readyAt === Infinity) {
        waiter.error = this.exceeded(blocked, now)
        waiter.state = "failed"
        this.waiting--
        this.dequeue()
        waiter.resume?.(Effect.fail(waiter.error))
        continue
      }
      return Math.min(waiter.deadline, blocked.readyAt > now ? blocked.readyAt : Infinity)
    }
  }

  /** A queued waiter was interrupted; an admitted one that never ran gives its admission back. */
  abandon(waiter: Waiter): boolean {
    if (waiter.state === "queued") {
      waiter.state = "abandoned"
      this.waiting--
      return true
    }
    if (waiter.state === "admitted" && waiter.ticket !== undefined) {
      waiter.state = "abandoned"
      this.bucket.cancel(waiter.ticket)
      return true
    }
    return false
  }
}

/**
 * How a wait ended other than by admission — interrupted (a waiter already admitted gives its admission back) or
 * failed at its deadline (a rejection) — made once per limiter.
 * @internal
 */
export type WaitFailed = <E>(
  state: KeyState,
  waiter: Waiter,
  cause: Cause.Cause<E>,
  clock: Clock.Clock
) => Effect.Effect<never, E | RateLimitExceeded>

/**
 * What a call does once admitted, inside the limiter's uninterruptible region: a function made once per limiter, and
 * the call's own `payload`, so that a parked call holds no closure of its own.
 * @internal
 */
export type Continuation<P, A, E, R> = (
  state: KeyState,
  ticket: Ticket,
  clock: Clock.Clock,
  restore: Restore,
  payload: P
) => Effect.Effect<A, E, R>

/**
 * A call parked until its admission, then continued by `use` in the uninterruptible region (a stream's held permit,
 * the fused attempt's own settlement). One `matchCauseEffect` ends the wait: admitted, failed at the deadline, or
 * interrupted.
 * @internal
 */
export class ParkedThen<P, A, E, R> extends Waiter {
  constructor(
    tokens: number,
    deadline: number,
    readonly key: KeyState,
    readonly clock: Clock.Clock,
    readonly restore: Restore,
    readonly payload: P,
    readonly use: Continuation<P, A, E, R>,
    readonly failed: WaitFailed
  ) {
    super(tokens, deadline)
  }

  wait(): Effect.Effect<A, E | RateLimitExceeded, R> {
    return Effect.matchCauseEffect(this.restore(this.park()), {
      onSuccess: () => this.use(this.key, this.ticket as Ticket, this.clock, this.restore, this.payload),
      onFailure: (cause) => this.failed(this.key, this, cause, this.clock)
    })
  }
}

/** How a call that ran ends, settling its ticket: made once per limiter. @internal */
export interface Settlement {
  readonly succeeded: <A>(state: KeyState, ticket: Ticket, clock: Clock.Clock, value: A) => Effect.Effect<A>
  readonly failed: <E>(state: KeyState, ticket: Ticket, clock: Clock.Clock, cause: Cause.Cause<E>) => Effect.Effect<
    never,
    E
  >
  readonly waitFailed: WaitFailed
}

/**
 * `limit`'s call parked until its admission, then run: the wait and the call share one interruptible region and one
 * `matchCauseEffect`, which settles the call, or ends a wait that never became a call (`running` tells them apart).
 * A call parked so keeps one region and one handler alive while it waits, and pays for one of each, where waiting
 * and then running in a region of its own paid for two.
 * @internal
 */
export class ParkedCall<A, E, R> extends Waiter {
  running = false
  constructor(
    tokens: number,
    deadline: number,
    readonly key: KeyState,
    readonly clock: Clock.Clock,
    readonly restore: Restore,
    readonly effect: Effect.Effect<A, E, R>,
    readonly settlement: Settlement
  ) {
    super(tokens, deadline)
  }

  wait(): Effect.Effect<A, E | RateLimitExceeded, R> {
    const run = Effect.flatMap(this.park(), () => {
      this.running = true
      return this.effect
    })
    return Effect.matchCauseEffect(this.restore(run), {
      onSuccess: (value) => this.settlement.succeeded(this.key, this.ticket as Ticket, this.clock, value),
      onFailure: (cause) =>
        this.running
          ? this.settlement.failed(this.key, this.ticket as Ticket, this.clock, cause)
          : this.settlement.waitFailed(this.key, this, cause, this.clock)
    })
  }
}
