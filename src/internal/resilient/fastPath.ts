/**
 * The fast path of `complete`: the first attempt of the plan's first step, made without the ladder around it. When it
 * succeeds, the request is served from it; when it fails, the full ladder (./engine.ts) takes over from that failure.
 *
 * It shares every part that records something with the ladder, so that it cannot record differently:
 * - the call itself is the completion shape's `call` (./completion.ts): rate limiter (permits, tokens, usage
 *   reconciliation, the wait metric), breaker admission and record (outcome, latency), the provider;
 * - the retrier's budget deposit and first attempt (its attempt timeout or deadline, if any) are the retrier's own
 *   stages (`stagesOf` in ../retry.ts), which `retry` itself runs as `deposit; catchAll(first, retriesAfter)`;
 * - the request it sends is the ladder's: `withConnectTimeout`, `withModel`, and preflight's clamp (./preflight.ts);
 * - the attempt metric is what `recordAttempt` records for the exit the ladder's `instrumentStep` would see
 *   (./event.ts): on an answer, the lane's `llm.attempts{outcome: success}` series, the one `recordAttempt` updates;
 * - the served value is the `Fallback.Served` the chain returns for its first step (tier 1, no attempts before it),
 *   which `complete` turns into a result, remembers and reports exactly as it does the ladder's (./complete.ts; the
 *   fused route builds that result from the same arguments without the served value in between).
 *
 * Where the limiter's and the breaker's admissions are synchronous steps as they stand — the breaker Closed with no
 * hang due, MetricsOnly or Disabled (`admitsNow` in ../circuitBreaker.ts); the limiter one this library made, the
 * request decoded, no token charge to count, nobody queued on the key and the bucket admitting (`Fused.admitNow` in
 * ../rateLimit.ts) — and the retrier wraps nothing around the call (no attempt timeout or deadline of its own, or
 * both longer than the tier's `timeout`, which ends the call first), the attempt runs fused ({@link fusedAttempt}):
 * one clock read, the two admissions and the budget deposit in one synchronous section, inside the uninterruptible
 * region the caller opened (interruptible only around the provider's call, within the tier's `timeout` as
 * `shape.call` makes it: `timedCall` in ./completion.ts), and one exit handler that settles the breaker
 * (`settleNow`, the record `execute`'s finalizer makes), then the limiter (`settleNow`: usage, headers, 429 pauses,
 * the queue), then records the attempt — the order `shape.call`'s layers settle in — and hands the served value to
 * the caller's own synchronous ending of the request. Where someone is queued on the key or its bucket refuses, the attempt waits in the limiter's own queue (`Fused.admit`: FIFO, `maxWait`, refusals, as
 * `call` queues) and runs fused from its admission, the breaker deciding then (its `execute` around the call where
 * that is no synchronous step any more); parked so, a waiter holds none of the ladder's frames. Those steps are the
 * breaker's and the limiter's own (their effectful paths run the same functions), so the fused attempt records what
 * the unfused one ({@link firstAttempt}) does. Anywhere else the attempt runs through `shape.call`.
 *
 * On a failure the ladder runs from the start with the attempt handed over as `context.primed`: the step's
 * `attempt` (./attempt.ts) takes the failure instead of making its first call (`seen.failure` set as `recorded`
 * would), and goes on with the retrier's `retriesAfter` from the same start time (no second deposit); the chain counts
 * the step's latency from that start. So the failed call counts once for the breaker, the limiter, the retrier and
 * the attempt metric, and everything after it is the ladder's. Before the ladder reaches that step nothing is
 * recorded (a breaker read, a clock read), so the outcome is the one of a ladder run from the start — the same
 * under `TestClock`, and up to the microseconds of the ladder's set-up under a real clock
 * (test/resilient/fastPath.test.ts runs both and compares).
 *
 * It runs only where it is that first attempt and nothing else would happen around it — decided at `make` for the
 * tier (`eligible`): no hedging, one deployment, no quality check, no adapted messages, a retrier made by
 * ../retry.ts; and per request ({@link firstOf}): no span (a tracer that exports), no deadline, a request the tier
 * can take, a prompt that fits without counting tokens; and the breaker not open. Anything else runs the ladder,
 * unchanged.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type * as Fallback from "../../Fallback.js"
import type { CompletionRequest, CompletionResult } from "../../Llm.js"
import { type FallbackAttempt, RateLimitExceeded } from "../../LlmError.js"
import type { Target } from "../../Retry.js"
import * as breakerInternal from "../circuitBreaker.js"
import * as metrics from "../metrics.js"
import * as observability from "../observability.js"
import { type Admission, callKeyOf, type Fused, fusedOf } from "../rateLimit.js"
import type { Restore } from "../rateLimitQueue.js"
import { withConnectTimeout, withModel } from "../request.js"
import { type RetryStages, stagesOf, targetKey } from "../retry.js"
import { refusal } from "./capabilities.js"
import type { CallShape, Client, Outcome, Primed, RequestContext } from "./client.js"
import { timedCall } from "./completion.js"
import type { LadderError } from "./engine.js"
import { type BuiltTier, labelOf, type Step } from "./plan.js"
import { fitsUncounted, limitsOf, type StepLimits } from "./preflight.js"

/** @internal */
export type Served = Fallback.Served<Outcome<CompletionResult>>

/** Whether a tier's first attempt can run on the fast path, whatever the request. @internal */
export const eligible = (client: Client, tier: BuiltTier): boolean =>
  client.hedgers === undefined
  && tier.deployments === undefined
  && tier.config.quality === undefined
  && tier.config.adaptMessages === undefined
  && (tier.retrier === undefined || stagesOf(tier.retrier) !== undefined)

/**
 * What the first attempt of one of a tier's models goes through, the same for every request: looked up once, when
 * the client is made, instead of per request.
 * @internal
 */
export interface Lane {
  readonly breaker: CircuitBreaker.CircuitBreaker | undefined
  readonly stages: RetryStages | undefined
  /** The retrier wraps nothing around the first attempt (no attempt timeout or deadline of its own), or there is none. */
  readonly bareFirst: boolean
  /**
   * `bareFirst`, or the retrier's attempt timeout and deadline are both longer than the tier's `timeout`: a first
   * attempt admitted at once is nothing but the provider's call, which that timeout ends before the retrier's timer
   * could fire, so it runs fused as if the retrier wrapped nothing.
   */
  readonly boundedFirst: boolean
  readonly target: Target
  /** `target`'s retry-budget key. */
  readonly budgetKey: string
  /** The client's limiter as synchronous steps, where it is one this library made. */
  readonly limiter: Fused | undefined
  /** The limiter's key of the tier's calls to the model (`callKeyOf`). */
  readonly limiterKey: string
  /** What preflight checks the prompt against. */
  readonly limits: StepLimits
  /** `llm.attempts{outcome: success}` of the step: what an answered attempt records without a span. */
  readonly answered: metrics.Series
}

/** The lanes of an {@link eligible} tier, by model. Its breakers are the client's, made already. @internal */
export const lanesOf = (client: Client, tier: BuiltTier): ReadonlyMap<string, Lane> =>
  new Map(tier.models.map((model) => {
    const stages = tier.retrier === undefined ? undefined : stagesOf(tier.retrier)
    const target: Target = { name: tier.provider.name, model }
    const bareFirst = stages === undefined || stages.bareFirst(target)
    const lane: Lane = {
      // An eligible tier has no deployments: its steps are never `unguarded` (./deployments.ts).
      breaker: client.breakers.get(labelOf(tier, model)),
      stages,
      bareFirst,
      boundedFirst: bareFirst
        || (tier.timeout !== undefined && stages?.bareFirst(target, Duration.toMillis(tier.timeout)) === true),
      target,
      budgetKey: targetKey(target),
      limiter: fusedOf(client.limiter),
      limiterKey: callKeyOf(tier.provider, model),
      limits: limitsOf({ tier, model }),
      answered: metrics.forLabel(labelOf(tier, model)).attempt("success")
    }
    return [model, lane]
  }))

/** A first attempt the fast path can make: the step, what it sends, and what it goes through. @internal */
export interface First {
  readonly step: Step
  readonly input: CompletionRequest
  readonly lane: Lane
}

/** The fast path's first attempt of `step` for `request`, or `undefined` where the ladder must run. @internal */
export const firstOf = (
  client: Client,
  step: Step,
  request: CompletionRequest,
  context: RequestContext
): First | undefined => {
  const { label, model, tier } = step
  const lane = client.fast.get(tier)?.get(model)
  if (lane === undefined || context.traced || context.deadlineAt !== undefined) return undefined
  if (refusal(request, label, tier.provider.capabilities, tier.config.capabilities) !== undefined) return undefined
  const input = fitsUncounted(withModel(withConnectTimeout(request, tier.config.connectTimeout), model), lane.limits)
  return input === undefined ? undefined : { step, input, lane }
}

/** The chain's served value for a first attempt that answered `value`: tier 1, no attempts before it. @internal */
export const servedFirst = (step: Step, value: CompletionResult): Served => ({
  value: { value, step, degraded: undefined },
  tier: 1,
  label: step.label,
  attempts: noAttempts
})

/** A request served by its first attempt has no attempts before it: one frozen empty list for all of them. @internal */
export const noAttempts: ReadonlyArray<FallbackAttempt> = Object.freeze([])

/** A failed first attempt: a typed failure goes to the ladder (primed with it), anything else ends the request. */
const failedWith = (
  first: First,
  cause: Cause.Cause<Primed["failure"]>,
  startedAt: number,
  context: RequestContext,
  ladder: () => Effect.Effect<Served, LadderError>
): Effect.Effect<Served, LadderError> => {
  const failure = Cause.failureOrCause(cause)
  if (Either.isRight(failure)) {
    // A defect or an interruption: the ladder would end with it too, after recording the attempt.
    observability.recordAttempt(undefined, first.step.label, Exit.failCause(cause), context.trace)
    return Effect.failCause(failure.right)
  }
  context.primed = { step: first.step, startedAt, failure: failure.left }
  return Effect.suspend(ladder)
}

/**
 * `first` through `shape.call` — or, with the breaker open, the ladder — served as the chain's first step, or the
 * ladder after it failed.
 * @internal
 */
export const firstAttempt = (
  shape: CallShape<CompletionResult>,
  first: First,
  context: RequestContext,
  ladder: () => Effect.Effect<Served, LadderError>
): Effect.Effect<Served, LadderError> => {
  const attempt = () => {
    const startedAt = context.clock.unsafeCurrentTimeMillis()
    const call = shape.call(first.step, first.input, context)
    const { budgetKey, stages, target } = first.lane
    stages?.deposit(budgetKey, startedAt)
    return Effect.matchCauseEffect(
      stages === undefined ? call : stages.prepare(call, target, undefined, startedAt).first,
      {
        onSuccess: (value) => {
          // The attempt's metric, as `recordAttempt` records an answer without a span.
          metrics.update(first.lane.answered, 1)
          return Effect.succeed(servedFirst(first.step, value))
        },
        onFailure: (cause) => failedWith(first, cause, startedAt, context, ladder)
      }
    )
  }
  const { breaker } = first.lane
  return Effect.suspend(() =>
    breaker !== undefined && !breakerInternal.admitsNow(breaker, context.clock.unsafeCurrentTimeMillis())
      ? Effect.flatMap(CircuitBreaker.isOpen(breaker), (open) => open ? ladder() : attempt())
      : attempt()
  )
}

/**
 * How the caller goes on from a fused attempt: its region's `restore`, the ladder, and the request's two endings —
 * `served` from the served value, `failed` with the ladder primed with the failure. Called as methods (an object of
 * the caller's, not four closures per request).
 * @internal
 */
export interface Then<A, E> {
  readonly restore: Restore
  ladder(): Effect.Effect<Served, LadderError>
  /** The first attempt answered `value` (its attempt recorded); `endedAt`: when it ended, the request's end. */
  served(step: Step, value: CompletionResult, endedAt: number): Effect.Effect<A, E>
  failed(ladder: Effect.Effect<Served, LadderError>): Effect.Effect<A, E>
}

/**
 * `first` fused, at `now`, inside an uninterruptible region opened by the caller (`restore` gives back the caller's
 * interruptibility) — admitted where the caller runs this, settled by the one exit handler installed in the same
 * synchronous section, so that no interruption (delivered at a fiber's yield) can fall between them. The
 * settlements' effects (a transition's announcement, the queue) run in the region; then `served` ends the request
 * from the served value, or `failed` runs the ladder primed with the failure — both still in the region: they
 * restore what may be interrupted. Behind a full key, admitted after a wait in the limiter's queue (its refusal is
 * the attempt's failure). `undefined`, with nothing changed, where the breaker's admission is not a synchronous step
 * as it stands, the limiter must count tokens, or the retrier wraps the call (an attempt timeout or deadline not
 * longer than the tier's `timeout`, or any, for a call that waits in the limiter's queue): then run
 * {@link firstAttempt}.
 * @internal
 */
export const fusedAttempt = <A, E>(
  client: Client,
  first: First,
  context: RequestContext,
  now: number,
  then: Then<A, E>
): Effect.Effect<A, E> | undefined => {
  const { input, lane, step } = first
  const { bareFirst, boundedFirst, breaker, budgetKey, limiter, limiterKey, stages } = lane
  if (limiter === undefined || !boundedFirst || (breaker !== undefined && !breakerInternal.admitsNow(breaker, now))) {
    return undefined
  }
  // The breaker was asked (`admitsNow`, which changes nothing) before the limiter takes its permit and the breaker
  // its ticket: all in this one synchronous section, so in `shape.call`'s limiter → breaker order, as one step.
  const admission = limiter.admitNow(limiterKey, input, now)
  if (admission !== undefined) {
    const ticket = breaker === undefined ? undefined : breakerInternal.admitNow(breaker, now)
    stages?.deposit(budgetKey, now)
    return fusedCall(limiter, first, context, admission, ticket, now, now, then)
  }
  // Someone is queued on the key, or its bucket refuses: the call waits in the limiter's queue (or is refused) as
  // `call` would make it, and runs fused from its admission — parked with nothing of the ladder's around it.
  // A wait in the queue would count against the retrier's attempt timeout or deadline: then its wrapper runs.
  if (!bareFirst) return undefined
  const parked = limiter.admit(limiterKey, input, then.restore, (admission) => {
    const admittedAt = context.clock.unsafeCurrentTimeMillis()
    // The wait in the limiter, as `shape.call` measures it (./completion.ts).
    if (client.limited && admittedAt > now) {
      metrics.update(metrics.forLabel(step.label).rateLimitWait, admittedAt - now)
    }
    // The breaker decides at admission, as it does inside `call`: where that is no synchronous step any more (it
    // opened meanwhile, say), its `execute` runs the call.
    const ticket = breaker === undefined || !breakerInternal.admitsNow(breaker, admittedAt)
      ? undefined
      : breakerInternal.admitNow(breaker, admittedAt)
    return fusedCall(limiter, first, context, admission, ticket, now, admittedAt, then)
  })
  if (parked === undefined) return undefined
  stages?.deposit(budgetKey, now)
  // A refusal by the limiter (fail-fast, or its wait would pass `maxWait`) is the attempt's failure.
  return Effect.catchIf(
    parked,
    (error): error is RateLimitExceeded => error instanceof RateLimitExceeded,
    (refused) =>
      then.failed(Effect.suspend(() => failedWith(first, Cause.fail(refused), now, context, () => then.ladder())))
  )
}

/**
 * The fused call from its limiter admission: the breaker's `ticket` (none: the breaker's `execute` around the call,
 * or no breaker), the provider's call within the tier's timeout, and one exit handler that settles the breaker, then
 * the limiter, then ends the request (`served`) or hands the failure to the ladder (`failed`). `startedAt`: the
 * attempt's start (the retry budget's, the ladder's); `admittedAt`: the breaker's (the provider's latency).
 */
const fusedCall = <A, E>(
  limiter: Fused,
  first: First,
  context: RequestContext,
  admission: Admission,
  ticket: number | undefined,
  startedAt: number,
  admittedAt: number,
  then: Then<A, E>
): Effect.Effect<A, E> => {
  const { input, lane: { breaker }, step } = first
  const timed = timedCall(step, input)
  const call = breaker !== undefined && ticket === undefined ? breaker.execute(timed) : timed
  return Effect.matchCauseEffect(then.restore(call), {
    onSuccess: (value) => {
      // The attempt's end, and the request's: one clock read.
      const endedAt = context.clock.unsafeCurrentTimeMillis()
      const after = settleBoth(limiter, admission, breaker, ticket, admittedAt, Exit.succeed(value), endedAt)
      metrics.update(first.lane.answered, 1)
      return after === undefined
        ? then.served(step, value, endedAt)
        : Effect.zipRight(after, Effect.suspend(() => then.served(step, value, endedAt)))
    },
    onFailure: (cause) => {
      const endedAt = context.clock.unsafeCurrentTimeMillis()
      const after = settleBoth(limiter, admission, breaker, ticket, admittedAt, Exit.failCause(cause), endedAt)
      const resumed = then.failed(
        Effect.suspend(() => failedWith(first, cause, startedAt, context, () => then.ladder()))
      )
      return after === undefined ? resumed : Effect.zipRight(after, resumed)
    }
  })
}

/** The breaker settles first (it is inside the limiter in `shape.call`), then the limiter; what they must still run. */
const settleBoth = (
  limiter: Fused,
  admission: Admission,
  breaker: CircuitBreaker.CircuitBreaker | undefined,
  ticket: number | undefined,
  admittedAt: number,
  exit: Exit.Exit<CompletionResult, unknown>,
  endedAt: number
): Effect.Effect<void> | undefined => {
  const breakerAfter = breaker === undefined || ticket === undefined
    ? undefined
    : breakerInternal.settleNow(breaker, ticket, admittedAt, exit, endedAt)
  const limiterAfter = limiter.settleNow(admission, exit, endedAt)
  return breakerAfter === undefined
    ? limiterAfter
    : limiterAfter === undefined
    ? breakerAfter
    : Effect.zipRight(breakerAfter, limiterAfter)
}
