/**
 * The limiter: per-key buckets (./rateLimitBucket.ts), a FIFO waiter queue per key (./rateLimitQueue.ts), and one
 * timer per key.
 *
 * - The success path is one synchronous check-and-take inside an uninterruptible region plus one `matchCauseEffect`
 *   that settles the charge: no fiber, no semaphore, no `Ref` round trip (JavaScript runs one fiber step at a time,
 *   so a synchronous step is atomic).
 * - A call that cannot start parks in its key's queue; whatever frees capacity (a release, a refund, the timer) pumps
 *   the queue, and the key's timer is armed for the head's next moment (its window, a pause, its `maxWait` deadline).
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { CompletionRequestInput, CompletionResult, StreamChunk } from "../Llm.js"
import { type HardFailure, InvalidOptions, type InvalidRequest, type RateLimitExceeded } from "../LlmError.js"
import type { Service as LlmProviderService } from "../LlmProvider.js"
import type { Limiter, Options, Snapshot, Target } from "../RateLimit.js"
import type { IdleExpiry } from "./idleExpiry.js"
import { dropLimiterSeries, rateLimitRejections as rejectionsTotal } from "./metrics.js"
import { type Blocked, memoryStore, type Store, type Ticket } from "./rateLimitBucket.js"
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
import {
  type Continuation,
  KeyState,
  ParkedCall,
  ParkedThen,
  type Restore,
  type Settlement,
  type Waiter,
  type WaitFailed
} from "./rateLimitQueue.js"
import { isDecoded, validateRequest } from "./request.js"

const WINDOW_MILLIS = 60_000

/**
 * `f` with the running fiber's clock (`clockWith`'s), called at once: for use inside a step (an `uninterruptibleMask`
 * callback), where a step of the fiber runtime costs about as much as the whole synchronous admission
 * (docs/benchmarks.md) and `clockWith` would be one more. Where no fiber is known (never, inside a step), `clockWith`.
 * The admission must run inside its region's own step, not in one before it (`withFiberRuntime`, then
 * `uninterruptible`): the fiber may yield between two steps (its operation budget) and be interrupted then, which
 * would leave a permit taken, or a waiter queued, for nobody.
 */
const withClock = <A, E, R>(f: (clock: Clock.Clock) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some"
    ? f(Context.get(fiber.value.getFiberRef(DefaultServices.currentServices), Clock.Clock))
    : Effect.clockWith(f)
}

/** A call parked in a key's queue: what `pump` admits or fails, and the wait that ends then. */
type Park<P, A, E, R> = (
  state: KeyState,
  tokens: number,
  deadline: number,
  clock: Clock.Clock,
  restore: Restore,
  payload: P
) => Waiter & { readonly wait: () => Effect.Effect<A, E | RateLimitExceeded, R> }

/** @internal */
export const keyOf = (target: Target): string => typeof target === "string" ? target : `${target.name}:${target.model}`

/** The key `call(provider, request)` is limited under, for a request with `model` (its provider's own if none). @internal */
export const callKeyOf = (provider: LlmProviderService, model: string | undefined): string =>
  provider.deployment === undefined
    ? `${provider.name}:${model ?? provider.model}`
    : `${provider.name}:${model ?? provider.model}@${provider.deployment}`

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
    return state.timerAt <= wakeAt ? undefined : replaceTimer(state, wakeAt, now)
  }

  // Apart from `arm`, which runs at every settlement of a key with waiters: a function whose closures capture its
  // parameters allocates their scope on every call, even one that returns before making them.
  const replaceTimer = (state: KeyState, wakeAt: number, now: number): Effect.Effect<void> => {
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
  const waitFailed: WaitFailed = (state, waiter, cause, clock) => {
    if (Cause.isInterruptedOnly(cause)) {
      const after = state.abandon(waiter) ? afterChange(state, clock.unsafeCurrentTimeMillis()) : undefined
      return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
    }
    return waiter.state === "failed" && waiter.error !== undefined
      ? reject(state, waiter.error)
      : Effect.failCause(cause)
  }

  /** A call that ran settles its ticket from its exit, then ends with it. */
  const settlement: Settlement = {
    succeeded: (state, ticket, clock, value) => {
      const after = settle(state, ticket, outcomeOfValue(value), clock.unsafeCurrentTimeMillis())
      return after === undefined ? Effect.succeed(value) : Effect.as(after, value)
    },
    failed: (state, ticket, clock, cause) => {
      const after = settle(state, ticket, outcomeOfCause(cause), clock.unsafeCurrentTimeMillis())
      return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
    },
    waitFailed
  }

  /**
   * Acquires an admission for `tokens` at the clock's now: at once, then `use(…, payload)`, which must settle the
   * ticket; else refused, or parked (`park`) until admitted or failed. Interruption while waiting leaves nothing
   * behind. Runs inside the caller's uninterruptible region; `restore` makes the wait interruptible.
   */
  const admit = <P, A, E, R>(
    state: KeyState,
    tokens: number,
    clock: Clock.Clock,
    restore: Restore,
    payload: P,
    use: Continuation<P, A, E, R>,
    park: Park<P, A, E, R>
  ): Effect.Effect<A, E | RateLimitExceeded, R> => {
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
    const waiter = park(state, tokens, deadline, clock, restore, payload)
    state.enqueue(waiter)
    const wait = waiter.wait()
    // A new head may need the timer (its deadline, a window); behind a queue the head's timer serves.
    const armed = queued ? undefined : arm(state, state.pump(now), now)
    return armed === undefined ? wait : Effect.zipRight(armed, wait)
  }

  /**
   * `limit`'s continuation: runs the call (interruptibly, by `restore`) and settles it in one `matchCauseEffect`
   * inside the region (`onExit` would add a second region).
   */
  const runSettled = <A, E, R>(
    state: KeyState,
    ticket: Ticket,
    clock: Clock.Clock,
    restore: Restore,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, R> =>
    Effect.matchCauseEffect(restore(effect), {
      onSuccess: (value) => settlement.succeeded(state, ticket, clock, value),
      onFailure: (cause) => settlement.failed(state, ticket, clock, cause)
    })

  /** `limit`'s parked call: waits and runs in one region (./rateLimitQueue.ts). */
  const parkCall = <A, E, R>(
    state: KeyState,
    tokens: number,
    deadline: number,
    clock: Clock.Clock,
    restore: Restore,
    effect: Effect.Effect<A, E, R>
  ) => new ParkedCall(tokens, deadline, state, clock, restore, effect, settlement)

  const limitKey = <A, E, R>(
    key: string,
    tokens: number,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | RateLimitExceeded, R> => {
    const state = stateOf(key)
    return Effect.uninterruptibleMask((restore) =>
      withClock((clock) => admit(state, tokens, clock, restore, effect, runSettled<A, E, R>, parkCall<A, E, R>))
    )
  }

  /** `stream`'s continuation: the permit is held until the stream's scope closes, then settled from `outcome`. */
  const holdUntilClosed = (
    state: KeyState,
    ticket: Ticket,
    _clock: Clock.Clock,
    _restore: Restore,
    outcome: Outcome
  ): Effect.Effect<void, never, Scope.Scope> => Effect.addFinalizer(() => finish(state, ticket, outcome))

  const parkHeld: Park<Outcome, void, never, Scope.Scope> = (state, tokens, deadline, clock, restore, outcome) =>
    new ParkedThen(tokens, deadline, state, clock, restore, outcome, holdUntilClosed, waitFailed)

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

  const parkFused = <A, E, R>(
    state: KeyState,
    tokens: number,
    deadline: number,
    clock: Clock.Clock,
    restore: Restore,
    use: (admission: Admission) => Effect.Effect<A, E, R>
  ) => new ParkedThen(tokens, deadline, state, clock, restore, use, continueFused<A, E, R>, waitFailed)

  const admitFused: Fused["admit"] = (key, request, restore, use) => {
    if (!isDecoded(request)) return undefined
    const state = stateOf(key)
    return state.bucket.countsTokens()
      ? undefined
      : Effect.clockWith((clock) => admit(state, 0, clock, restore, use, continueFused, parkFused))
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
        yield* Effect.uninterruptibleMask((restore) =>
          withClock((clock) => admit(state, tokens, clock, restore, outcome, holdUntilClosed, parkHeld))
        )
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
