/**
 * The limiter: per-key buckets (rateLimitBucket.ts), a FIFO waiter queue per key, and one timer per key.
 *
 * - The success path is one synchronous check-and-take inside `uninterruptibleMask` plus one `matchCauseEffect` that
 *   settles the charge: no fiber, no semaphore, no `Ref` round trip (JavaScript runs one fiber step at a time, so a
 *   synchronous step is atomic).
 * - Waiters park in `Effect.async`. Whatever frees capacity (a release, a refund, the timer) runs `pump`, which admits
 *   waiters from the head while the bucket allows and resumes exactly those: a release resumes one waiter, never all
 *   of them (the O(waiters) wake-up `Semaphore` pays, DESIGN.md §4). Strict FIFO: a newcomer never overtakes.
 * - Only the head of a queue can be blocked by time (the window, a pause, the headers) or reach its `maxWait`
 *   deadline first — deadlines are in queue order — so one daemon timer per key, armed for the head, is enough.
 * - A waiter interrupted after `pump` admitted it, but before it ran, gives the admission back (`cancel`).
 * - A parked call keeps little alive: one `matchCauseEffect` around the interruptible `Effect.async` (no `onInterrupt`,
 *   which is a second mask), and closures that share one object (`Parked`). With hundreds of waiters, each living
 *   about as long as a young-generation GC cycle, every collection copies all of them: an `onInterrupt` around the wait
 *   (a few hundred bytes more per waiter) tripled the CPU per call through 100 permits (bench/limiter-queue.ts).
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { CompletionRequestInput, CompletionResult, StreamChunk } from "../Llm.js"
import { type HardFailure, InvalidOptions, type InvalidRequest, RateLimitExceeded } from "../LlmError.js"
import type { Service as LlmProviderService } from "../LlmProvider.js"
import type { Limiter, Options, Snapshot, Target } from "../RateLimit.js"
import type { IdleExpiry } from "./idleExpiry.js"
import { dropLimiterSeries, rateLimitRejections as rejectionsTotal } from "./metrics.js"
import { type Blocked, type Bucket, memoryStore, type Store, type Ticket } from "./rateLimitBucket.js"
import { resolveLimits, validate } from "./rateLimitOptions.js"
import {
  DEFAULT_429_PAUSE_MILLIS,
  field,
  MAX_DEFAULT_429_PAUSE_MILLIS,
  type Outcome,
  outcomeOfCause,
  outcomeOfError,
  outcomeOfValue
} from "./rateLimitOutcome.js"
import { isDecoded, validateRequest } from "./request.js"

const WINDOW_MILLIS = 60_000

/** @internal */
export const keyOf = (target: Target): string => typeof target === "string" ? target : `${target.name}:${target.model}`

/** The key `call(provider, request)` is limited under, for a request with `model` (its provider's own if none). @internal */
export const callKeyOf = (provider: LlmProviderService, model: string | undefined): string =>
  provider.deployment === undefined
    ? `${provider.name}:${model ?? provider.model}`
    : `${provider.name}:${model ?? provider.model}@${provider.deployment}`

// --- per-key state -------------------------------------------------------------------------------------------------

type Resume = (effect: Effect.Effect<void, RateLimitExceeded>) => void

class Waiter {
  state: "queued" | "admitted" | "failed" | "abandoned" = "queued"
  resume: Resume | undefined = undefined
  ticket: Ticket | undefined = undefined
  error: RateLimitExceeded | undefined = undefined
  constructor(readonly tokens: number, readonly deadline: number) {}
}

/** @internal */
export type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/**
 * What a call does once admitted: a function made once per limiter, and the call's own `payload` (its effect, say),
 * so that a parked call holds no closure of its own.
 */
type Continuation<P, A, E, R> = (
  state: KeyState,
  ticket: Ticket,
  clock: Clock.Clock,
  restore: Restore,
  payload: P
) => Effect.Effect<A, E, R>

type WaitFailed = (
  state: KeyState,
  waiter: Waiter,
  cause: Cause.Cause<RateLimitExceeded>,
  clock: Clock.Clock
) => Effect.Effect<never, RateLimitExceeded>

/**
 * A call parked in the queue, with what its continuation needs. Its closures are made here, so that they share one
 * scope (this object) instead of holding a chain of the caller's scopes: each of the many parked fibers keeps less
 * alive while it waits, and the young-generation collections that copy every waiter cost less (bench/limiter-queue.ts).
 */
class Parked<P, A, E, R> extends Waiter {
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

  /**
   * Suspends (interruptibly, by `restore`) until `pump` admits or fails this waiter — at once if it has already —
   * then continues with `use`. One `matchCauseEffect` ends the wait: admitted, failed at the deadline, or interrupted.
   */
  wait(): Effect.Effect<A, E | RateLimitExceeded, R> {
    const park = Effect.async<void, RateLimitExceeded>((resume) => {
      if (this.state === "admitted") resume(Effect.void)
      else if (this.state === "failed" && this.error !== undefined) resume(Effect.fail(this.error))
      else this.resume = resume
    })
    return Effect.matchCauseEffect(this.restore(park), {
      onSuccess: () => this.use(this.key, this.ticket as Ticket, this.clock, this.restore, this.payload),
      onFailure: (cause) => this.failed(this.key, this, cause, this.clock)
    })
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

  dequeue(): void {
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

// --- the limiter ---------------------------------------------------------------------------------------------------

/** @internal */
export const make = (options: Options = {}): Effect.Effect<Limiter, InvalidOptions> =>
  Effect.suspend(() => {
    const checked = validate(options)
    if (checked instanceof InvalidOptions) return Effect.fail(checked)
    return Effect.succeed(makeLimiter(options, checked.maxWaitMillis, checked.idle, memoryStore, WINDOW_MILLIS))
  })

/**
 * A limiter whose buckets come from `store` (a shared store, e.g. Redis), with a window of `windowMillis` (60 s for
 * providers; shorter in tests).
 *
 * @internal
 */
export const makeWithStore = (
  options: Options,
  store: Store,
  windowMillis: number = WINDOW_MILLIS
): Effect.Effect<Limiter, InvalidOptions> =>
  Effect.suspend(() => {
    const checked = validate(options)
    if (checked instanceof InvalidOptions) return Effect.fail(checked)
    return Effect.succeed(makeLimiter(options, checked.maxWaitMillis, checked.idle, store, windowMillis))
  })

/** Validates options the way `make` does (for stores that need them before building). @internal */
export const validateOptions = (options: Options): InvalidOptions | undefined => {
  const checked = validate(options)
  return checked instanceof InvalidOptions ? checked : undefined
}

const makeLimiter = (
  options: Options,
  maxWaitMillis: number,
  idle: IdleExpiry | undefined,
  store: Store,
  windowMillis: number
): Limiter => {
  const failFast = options.mode === "fail-fast"
  const adaptive = options.adaptive !== false
  const outputTokenEstimate = options.outputTokenEstimate ?? 512
  const states = new Map<string, KeyState>()

  /**
   * Idle expiry (./idleExpiry.ts): drops the keys not used for an `idleExpiry` that hold nothing — no call running or
   * waiting, no pause, no provider budget before its reset — with their metric series. Runs at an admission.
   */
  const sweep = (expiry: IdleExpiry, now: number): void => {
    const dropped: Array<string> = []
    for (const [key, state] of states) {
      if (!expiry.idle(state.stamp) || state.queued || state.timerAt !== Infinity) continue
      const bucket = state.bucket.snapshot(now)
      const holds = bucket.inFlight > 0 || (bucket.pausedUntil ?? 0) > now || (bucket.requestsResetAt ?? 0) > now
        || (bucket.tokensResetAt ?? 0) > now
      if (holds) continue
      states.delete(key)
      dropped.push(key)
    }
    dropLimiterSeries(dropped)
  }

  const stateOf = (key: string): KeyState => {
    let state = states.get(key)
    if (idle !== undefined && state !== undefined) state.stamp = idle.epoch
    if (state === undefined) {
      const wake = Effect.clockWith((clock) => {
        const created = states.get(key)
        return created === undefined
          ? Effect.void
          : afterChange(created, clock.unsafeCurrentTimeMillis()) ?? Effect.void
      })
      state = new KeyState(key, store.bucket(key, resolveLimits(options, key), windowMillis, wake))
      if (idle !== undefined) state.stamp = idle.epoch
      states.set(key, state)
    }
    return state
  }

  const reject = (state: KeyState, error: RateLimitExceeded): Effect.Effect<never, RateLimitExceeded> =>
    Effect.zipRight(
      Metric.increment(
        Metric.taggedWithLabels(rejectionsTotal, [
          MetricLabel.make("key", state.key),
          MetricLabel.make("limit", error.limit ?? "unknown")
        ])
      ),
      Effect.fail(error)
    )

  // Keeps one timer per key, armed for the earliest moment the head needs looking at. A timer armed earlier than
  // needed stays (it fires, pumps, re-arms); a later one is replaced, and one no longer needed is interrupted.
  // `undefined`: nothing to run.
  //
  // `arm` mostly runs inside a call's `uninterruptibleMask` (admission, settlement) or inside the previous timer, and a
  // forked fiber inherits its parent's interruptibility: forked as it is, the timer would be uninterruptible, so
  // `Fiber.interruptFork` could not stop it and its sleep — a `setTimeout` with the live clock — would keep Node alive
  // until the old head's `maxWait` deadline (30 s by default). So the sleep is made interruptible explicitly (whatever
  // region arms the timer), and `fire` uninterruptible: it runs to the end or not at all, and never leaves the timer
  // it forks unrecorded.
  const arm = (state: KeyState, wakeAt: number, now: number): Effect.Effect<void> | undefined => {
    if (wakeAt === Infinity) {
      if (state.timerAt === Infinity) return undefined
      state.timerAt = Infinity
      state.timerGeneration++
      const stale = state.timer
      state.timer = undefined
      return stale === undefined ? undefined : Fiber.interruptFork(stale)
    }
    if (state.timerAt <= wakeAt) return undefined
    const generation = ++state.timerGeneration
    state.timerAt = wakeAt
    const stale = state.timer
    state.timer = undefined
    const fire = Effect.clockWith((clock) => {
      if (state.timerGeneration !== generation) return Effect.void
      state.timerAt = Infinity
      state.timer = undefined
      const at = clock.unsafeCurrentTimeMillis()
      return arm(state, state.pump(at), at) ?? Effect.void
    })
    const timer = Effect.uninterruptible(
      Effect.zipRight(Effect.interruptible(Effect.sleep(Duration.millis(Math.max(0, wakeAt - now)))), fire)
    )
    return Effect.forkDaemon(timer).pipe(
      Effect.flatMap((fiber) => {
        if (state.timerGeneration === generation) state.timer = fiber
        return stale === undefined ? Effect.void : Fiber.interruptFork(stale)
      })
    )
  }

  /** Pumps the queue and re-arms the timer when anything waits; `undefined` when there is nothing to do. */
  const afterChange = (state: KeyState, now: number): Effect.Effect<void> | undefined =>
    state.queued || state.timerAt !== Infinity ? arm(state, state.pump(now), now) : undefined

  const settle = (state: KeyState, ticket: Ticket, outcome: Outcome, now: number): Effect.Effect<void> | undefined => {
    state.bucket.settle(ticket, outcome.actualTokens ?? ticket.tokens, now)
    if (adaptive) {
      if (outcome.rateLimit !== undefined) state.bucket.observe(outcome.rateLimit, now)
      if (outcome.rateLimited === true) {
        const fallback = Math.min(
          DEFAULT_429_PAUSE_MILLIS * 2 ** Math.min(state.rateLimitedInRow, 16),
          MAX_DEFAULT_429_PAUSE_MILLIS
        )
        state.rateLimitedInRow++
        state.bucket.pauseUntil(now + (outcome.retryAfterMillis ?? fallback))
      } else if (outcome.rateLimited === false) {
        state.rateLimitedInRow = 0
      }
    }
    return afterChange(state, now)
  }

  const finish = (state: KeyState, ticket: Ticket, outcome: Outcome): Effect.Effect<void> =>
    Effect.clockWith((clock) => settle(state, ticket, outcome, clock.unsafeCurrentTimeMillis()) ?? Effect.void)

  /**
   * How a wait ended other than by admission: interrupted (a waiter already admitted gives its permit back) or
   * failed at its deadline (counted as a rejection).
   */
  const waitFailed = (
    state: KeyState,
    waiter: Waiter,
    cause: Cause.Cause<RateLimitExceeded>,
    clock: Clock.Clock
  ): Effect.Effect<never, RateLimitExceeded> => {
    if (Cause.isInterruptedOnly(cause)) {
      const after = state.abandon(waiter) ? afterChange(state, clock.unsafeCurrentTimeMillis()) : undefined
      return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
    }
    const failure = Cause.failureOption(cause)
    return failure._tag === "Some" ? reject(state, failure.value) : Effect.failCause(cause)
  }

  /**
   * Acquires an admission for `tokens`, then continues with `use(…, payload)`, which must settle the ticket.
   * Interruption while waiting leaves nothing behind. Runs inside the caller's `uninterruptibleMask`; `restore` makes
   * the wait interruptible.
   */
  const admit = <P, A, E, R>(
    state: KeyState,
    tokens: number,
    restore: Restore,
    payload: P,
    use: Continuation<P, A, E, R>
  ): Effect.Effect<A, E | RateLimitExceeded, R> =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      if (idle !== undefined && idle.due(now)) sweep(idle, now)
      const queued = state.queued
      const blocked = queued ? undefined : state.bucket.check(tokens, now)
      if (!queued && blocked === undefined) return use(state, state.bucket.take(tokens, now), clock, restore, payload)
      if (failFast) {
        return reject(state, state.exceeded(blocked ?? state.bucket.check(tokens, now) ?? noneBlocking, now))
      }
      const deadline = now + maxWaitMillis
      if (
        blocked !== undefined && (now >= deadline || blocked.readyAt > deadline || blocked.readyAt === Infinity)
      ) {
        return reject(state, state.exceeded(blocked, now))
      }
      const waiter = new Parked(tokens, deadline, state, clock, restore, payload, use, waitFailed)
      state.enqueue(waiter)
      const wait = waiter.wait()
      // A new head may need the timer (its deadline, a window); behind a queue the head's timer serves.
      const armed = queued ? undefined : arm(state, state.pump(now), now)
      return armed === undefined ? wait : Effect.zipRight(armed, wait)
    })

  /**
   * `limit`'s continuation: runs the call (interruptibly, by `restore`) and settles it in one `matchCauseEffect`
   * inside the mask (`onExit` would add a second mask).
   */
  const runSettled = <A, E, R>(
    state: KeyState,
    ticket: Ticket,
    clock: Clock.Clock,
    restore: Restore,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, R> =>
    Effect.matchCauseEffect(restore(effect), {
      onSuccess: (value) => {
        const after = settle(state, ticket, outcomeOfValue(value), clock.unsafeCurrentTimeMillis())
        return after === undefined ? Effect.succeed(value) : Effect.as(after, value)
      },
      onFailure: (cause) => {
        const after = settle(state, ticket, outcomeOfCause(cause), clock.unsafeCurrentTimeMillis())
        return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
      }
    })

  const limitKey = <A, E, R>(
    key: string,
    tokens: number,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | RateLimitExceeded, R> => {
    const state = stateOf(key)
    return Effect.uninterruptibleMask((restore) => admit(state, tokens, restore, effect, runSettled<A, E, R>))
  }

  /** `stream`'s continuation: the permit is held until the stream's scope closes, then settled from `outcome`. */
  const holdUntilClosed = (
    state: KeyState,
    ticket: Ticket,
    _clock: Clock.Clock,
    _restore: Restore,
    outcome: Outcome
  ): Effect.Effect<void, never, Scope.Scope> => Effect.addFinalizer(() => finish(state, ticket, outcome))

  const cost = (tokens: number | undefined): number =>
    tokens === undefined || !(tokens > 0) ? 0 : Number.isFinite(tokens) ? Math.ceil(tokens) : Infinity

  const estimate = (provider: LlmProviderService, request: CompletionRequestInput): Effect.Effect<number> =>
    Effect.map(provider.countTokens(request.messages), (prompt) => prompt + (request.maxTokens ?? outputTokenEstimate))

  const keyFor = (provider: LlmProviderService, request: CompletionRequestInput) => callKeyOf(provider, request.model)

  /** The charge of a call: its estimate where tokens are limited, else 0 without counting the prompt. */
  const chargeOf = (state: KeyState, provider: LlmProviderService, request: CompletionRequestInput) =>
    state.bucket.countsTokens() ? Effect.map(estimate(provider, request), cost) : Effect.succeed(0)

  const admitNow: Fused["admitNow"] = (key, request, now) => {
    // A request not yet decoded, or one whose charge needs the tokenizer (an effect), takes `call`.
    if (!isDecoded(request)) return undefined
    const state = stateOf(key)
    if (state.queued || state.bucket.countsTokens() || state.bucket.check(0, now) !== undefined) return undefined
    // `admit`'s sweep, run once it is known the call is admitted here (it drops idle keys only, never this one).
    if (idle !== undefined && idle.due(now)) sweep(idle, now)
    return { state, ticket: state.bucket.take(0, now) }
  }

  const admitFused: Fused["admit"] = (key, request, restore, use) => {
    if (!isDecoded(request)) return undefined
    const state = stateOf(key)
    return state.bucket.countsTokens() ? undefined : admit(state, 0, restore, use, continueFused)
  }

  const settleNow: Fused["settleNow"] = (admission, exit, now) => {
    const { state, ticket } = admission
    return settle(state, ticket, exit._tag === "Success" ? outcomeOfValue(exit.value) : outcomeOfCause(exit.cause), now)
  }

  const limit: Limiter["limit"] = (target, limitOptions) => (effect) =>
    limitKey(keyOf(target), cost(limitOptions?.tokens), effect)

  const call: Limiter["call"] = <E, R>(
    provider: LlmProviderService,
    request: CompletionRequestInput,
    run?: (request: CompletionRequestInput) => Effect.Effect<CompletionResult, E, R>
  ) => {
    const attempt: Effect.Effect<CompletionResult, E | HardFailure | InvalidRequest, R> = run === undefined
      ? provider.complete(request)
      : run(request)
    return Effect.flatMap(validateRequest(request), () => {
      const key = keyFor(provider, request)
      return Effect.flatMap(chargeOf(stateOf(key), provider, request), (tokens) => limitKey(key, tokens, attempt))
    })
  }

  const stream: Limiter["stream"] = <E = never>(
    provider: LlmProviderService,
    request: CompletionRequestInput,
    run?: (request: CompletionRequestInput) => Stream.Stream<StreamChunk, E>
  ): Stream.Stream<StreamChunk, E | HardFailure | InvalidRequest | RateLimitExceeded> =>
    Stream.unwrapScoped(
      Effect.gen(function*() {
        yield* validateRequest(request)
        const state = stateOf(keyFor(provider, request))
        const tokens = yield* chargeOf(state, provider, request)
        const outcome: Outcome = { actualTokens: 0, rateLimit: undefined, retryAfterMillis: undefined }
        yield* Effect.uninterruptibleMask((restore) => admit(state, tokens, restore, outcome, holdUntilClosed))
        const source: Stream.Stream<StreamChunk, E | HardFailure | InvalidRequest> = run === undefined
          ? provider.stream(request)
          : run(request)
        return source.pipe(
          Stream.tap((chunk) =>
            Effect.sync(() => {
              if (chunk._tag === "StreamEnd") {
                outcome.actualTokens = chunk.usage.totalTokens
                outcome.rateLimit = chunk.rateLimit
              }
            })
          ),
          Stream.tapError((error) =>
            Effect.sync(() => {
              // A stream cut off mid-way consumed tokens it will not report: keep the estimate then.
              if (field(error, "partialContent") !== undefined) outcome.actualTokens = undefined
              else outcomeOfError(error, outcome)
            })
          )
        )
      })
    )

  const observe: Limiter["observe"] = (target, info) =>
    Effect.clockWith((clock) => {
      const state = stateOf(keyOf(target))
      const now = clock.unsafeCurrentTimeMillis()
      state.bucket.observe(info, now)
      return afterChange(state, now) ?? Effect.void
    })

  const pause: Limiter["pause"] = (target, duration) =>
    Effect.clockWith((clock) => {
      const state = stateOf(keyOf(target))
      const now = clock.unsafeCurrentTimeMillis()
      const millis = Duration.toMillis(duration)
      if (Number.isFinite(millis) && millis > 0) state.bucket.pauseUntil(now + millis)
      return afterChange(state, now) ?? Effect.void
    })

  const snapshot: Limiter["snapshot"] = (target) =>
    Effect.clockWith((clock) => {
      const state = stateOf(keyOf(target))
      const now = clock.unsafeCurrentTimeMillis()
      state.peek()
      const bucket = state.bucket.snapshot(now)
      return Effect.succeed<Snapshot>({
        key: state.key,
        limits: { ...state.bucket.limits },
        inFlight: bucket.inFlight,
        waiting: state.waiting,
        requestsInWindow: bucket.requestsInWindow,
        tokensInWindow: bucket.tokensInWindow,
        pausedUntil: bucket.pausedUntil,
        provider: {
          remainingRequests: bucket.remainingRequests,
          requestsResetAt: bucket.requestsResetAt,
          remainingTokens: bucket.remainingTokens,
          tokensResetAt: bucket.tokensResetAt
        }
      })
    })

  const limiter: Limiter = { limit, call, stream, estimate, observe, pause, snapshot }
  fusedLimiters.set(limiter, { admitNow, admit: admitFused, settleNow })
  return limiter
}

/** A permit taken by `Fused.admitNow`. @internal */
export interface Admission {
  readonly state: KeyState
  readonly ticket: Ticket
}

/**
 * The limiter's admission and settlement of `call` as synchronous steps, for the fused fast path
 * (./resilient/fastPath.ts), which runs them inside its own uninterruptible region.
 * @internal
 */
export interface Fused {
  /**
   * `limitKey`'s admission of `call(provider, request)` made at once: a permit taken when the request is decoded,
   * its charge is 0 (no token limit to count against), nobody is queued on the key and the bucket admits; else
   * `undefined`, and nothing changed (`call` then decides: wait, queue or refuse). Settle it exactly once. `key`: the
   * call's, `callKeyOf(provider, request.model)`.
   */
  readonly admitNow: (
    key: string,
    request: CompletionRequestInput,
    now: number
  ) => Admission | undefined
  /**
   * `limitKey`'s admission of `call(provider, request)` where its charge is 0 without counting (the request decoded,
   * no token limit): at once where the bucket admits and nobody is queued, else queued in strict FIFO order until
   * admitted or its `maxWait` runs out, or refused (fail-fast, or a wait known to pass the deadline; counted as a
   * rejection) — all as `call` does. Then `use(admission)`, which must settle it, inside the caller's
   * `uninterruptibleMask` (`restore` makes the wait interruptible; a wait interrupted leaves nothing behind).
   * `undefined` where the charge needs counting: then `call`.
   */
  readonly admit: <A, E, R>(
    key: string,
    request: CompletionRequestInput,
    restore: Restore,
    use: (admission: Admission) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimitExceeded, R> | undefined
  /** `limitKey`'s settlement (usage, headers, 429 pauses), with whatever it must still run (timer, queue). */
  readonly settleNow: (
    admission: Admission,
    exit: Exit.Exit<unknown, unknown>,
    now: number
  ) => Effect.Effect<void> | undefined
}

const fusedLimiters = new WeakMap<Limiter, Fused>()

/** The synchronous steps of a limiter this module made. @internal */
export const fusedOf = (limiter: Limiter): Fused | undefined => fusedLimiters.get(limiter)

/** `Fused.admit`'s continuation: made once, so that a parked call holds only its own `use`. */
const continueFused = <A, E, R>(
  state: KeyState,
  ticket: Ticket,
  _clock: Clock.Clock,
  _restore: Restore,
  use: (admission: Admission) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => use({ state, ticket })

const noneBlocking: Blocked = { readyAt: 0, limit: "concurrency", concurrency: true }
