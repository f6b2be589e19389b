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
 * - the attempt metric is `recordAttempt` with the exit the ladder's `instrumentStep` would see (./event.ts);
 * - the served value is the `Fallback.Served` the chain returns for its first step (tier 1, no attempts before it),
 *   which `complete` turns into a result, remembers and reports exactly as it does the ladder's.
 *
 * Where the limiter's and the breaker's admissions are synchronous steps as they stand — the breaker Closed with no
 * hang due, MetricsOnly or Disabled (`admitsNow` in ../circuitBreaker.ts); the limiter one this library made, the
 * request decoded, no token charge to count, nobody queued on the key and the bucket admitting (`Fused.admitNow` in
 * ../rateLimit.ts) — and nothing wraps the provider's call (no tier timeout, no attempt timeout or deadline of the
 * retrier), the attempt runs fused: one clock read, the two admissions and the budget deposit in one synchronous
 * section, one uninterruptible region interruptible only around the provider's call, and one exit handler that
 * settles the breaker (`settleNow`, the record `execute`'s finalizer makes), then the limiter (`settleNow`: usage,
 * headers, 429 pauses, the queue), then records the attempt — the order `shape.call`'s layers settle in. Those steps
 * are the breaker's and the limiter's own (their effectful paths run the same functions), so the fused attempt
 * records what the unfused one does. Anywhere else nothing has changed and the attempt runs through `shape.call`.
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
 * ../retry.ts; and per request: no span (a tracer that exports), no deadline, a request the tier can take, a prompt
 * that fits without counting tokens, the breaker not open. Anything else runs the ladder, unchanged.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type * as Fallback from "../../Fallback.js"
import type { CompletionRequest, CompletionResult } from "../../Llm.js"
import * as breakerInternal from "../circuitBreaker.js"
import * as observability from "../observability.js"
import { fusedOf } from "../rateLimit.js"
import { withConnectTimeout, withModel } from "../request.js"
import { stagesOf } from "../retry.js"
import { refusal } from "./capabilities.js"
import type { CallShape, Client, Outcome, Primed, RequestContext } from "./client.js"
import { breakerOf } from "./deployments.js"
import type { LadderError } from "./engine.js"
import type { BuiltTier, Step } from "./plan.js"
import { fitsUncounted, limitsOf } from "./preflight.js"

type Served = Fallback.Served<Outcome<CompletionResult>>

/** Whether a tier's first attempt can run on the fast path, whatever the request. @internal */
export const eligible = (client: Client, tier: BuiltTier): boolean =>
  client.hedgers === undefined
  && tier.deployments === undefined
  && tier.config.quality === undefined
  && tier.config.adaptMessages === undefined
  && (tier.retrier === undefined || stagesOf(tier.retrier) !== undefined)

/**
 * `ladder`, or the fast path's first attempt of `step` and `ladder` only after it failed. `fast`: the tiers
 * `eligible` accepted.
 * @internal
 */
export const fastPath = (
  client: Client,
  shape: CallShape<CompletionResult>,
  fast: ReadonlySet<BuiltTier>,
  step: Step,
  request: CompletionRequest,
  context: RequestContext,
  ladder: () => Effect.Effect<Served, LadderError>
): Effect.Effect<Served, LadderError> => {
  const { label, model, tier } = step
  if (!fast.has(tier) || context.traced || context.deadlineAt !== undefined) return ladder()
  if (refusal(request, label, tier.provider.capabilities, tier.config.capabilities) !== undefined) return ladder()
  const input = fitsUncounted(withModel(withConnectTimeout(request, tier.config.connectTimeout), model), limitsOf(step))
  if (input === undefined) return ladder()
  const breaker = breakerOf(client, step)
  const stages = tier.retrier === undefined ? undefined : stagesOf(tier.retrier)
  const target = { name: tier.provider.name, model }
  const served = (value: CompletionResult): Effect.Effect<Served> => {
    const outcome: Outcome<CompletionResult> = { value, step, degraded: undefined }
    observability.recordAttempt(undefined, label, Exit.succeed(outcome), context.trace)
    return Effect.succeed({ value: outcome, tier: 1, label, attempts: [] })
  }
  // A failed first attempt: a typed failure goes to the ladder (through `resume`), anything else ends the request.
  const failed = (
    cause: Cause.Cause<Primed["failure"]>,
    startedAt: number,
    resume: (ladder: Effect.Effect<Served, LadderError>) => Effect.Effect<Served, LadderError>
  ): Effect.Effect<Served, LadderError> => {
    const failure = Cause.failureOrCause(cause)
    if (Either.isRight(failure)) {
      // A defect or an interruption: the ladder would end with it too, after recording the attempt.
      observability.recordAttempt(undefined, label, Exit.failCause(cause), context.trace)
      return Effect.failCause(failure.right)
    }
    context.primed.value = { step, startedAt, failure: failure.left }
    return resume(Effect.suspend(ladder))
  }
  const first = () => {
    const startedAt = context.clock.unsafeCurrentTimeMillis()
    const call = shape.call(step, input, context)
    stages?.deposit(target, startedAt)
    const attempt = stages === undefined ? call : stages.prepare(call, target, undefined, startedAt).first
    return Effect.matchCauseEffect(attempt, {
      onSuccess: served,
      onFailure: (cause) => failed(cause, startedAt, identity)
    })
  }
  // The fused region: `first`'s attempt with the limiter's and the breaker's admissions and settlements taken as
  // synchronous steps, in the uninterruptible region the caller opened (interruptible around the provider's call
  // only, through `restore`) with one exit handler. Only where those steps are synchronous as they stand
  // (`admitsNow` in ../circuitBreaker.ts, `admitNow` in ../rateLimit.ts) and nothing wraps the provider's call (no
  // tier timeout, no retrier attempt timeout or deadline); else `undefined`, with nothing changed, and `first` runs.
  const fused = (startedAt: number, restore: Restore): Effect.Effect<Served, LadderError> | undefined => {
    const limiter = fusedOf(client.limiter)
    if (limiter === undefined || tier.timeout !== undefined || (stages !== undefined && !stages.bareFirst(target))) {
      return undefined
    }
    // The breaker was asked (`admitsNow`, which changes nothing) before the limiter takes its permit and the breaker
    // its ticket: all in this one synchronous section, so in `shape.call`'s limiter → breaker order, as one step.
    const admission = limiter.admitNow(tier.provider, input, startedAt)
    if (admission === undefined) return undefined
    const ticket = breaker === undefined ? undefined : breakerInternal.admitNow(breaker, startedAt)
    stages?.deposit(target, startedAt)
    // The breaker settles first (it is inside the limiter in `shape.call`), then the limiter.
    const settle = (exit: Exit.Exit<CompletionResult, unknown>): Effect.Effect<void> | undefined => {
      const now = context.clock.unsafeCurrentTimeMillis()
      const breakerAfter = breaker === undefined || ticket === undefined
        ? undefined
        : breakerInternal.settleNow(breaker, ticket, startedAt, exit, now)
      const limiterAfter = limiter.settleNow(admission, exit, now)
      return breakerAfter === undefined
        ? limiterAfter
        : limiterAfter === undefined
        ? breakerAfter
        : Effect.zipRight(breakerAfter, limiterAfter)
    }
    return Effect.matchCauseEffect(restore(tier.provider.complete(input)), {
      onSuccess: (value) => {
        const after = settle(Exit.succeed(value))
        return after === undefined ? served(value) : Effect.zipRight(after, Effect.suspend(() => served(value)))
      },
      onFailure: (cause) => {
        const after = settle(Exit.failCause(cause))
        // The ladder after a failure runs as the caller's interruptibility allows, as it does after `first`.
        return after === undefined
          ? failed(cause, startedAt, restore)
          : Effect.zipRight(after, Effect.suspend(() => failed(cause, startedAt, restore)))
      }
    })
  }
  // The region opens before the admissions: an admission is settled by the handler installed in the same region, so
  // no interruption (delivered at a fiber's yield) can fall between them.
  return Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      const now = context.clock.unsafeCurrentTimeMillis()
      if (breaker !== undefined && !breakerInternal.admitsNow(breaker, now)) {
        return restore(Effect.flatMap(CircuitBreaker.isOpen(breaker), (open) => open ? ladder() : first()))
      }
      return fused(now, restore) ?? restore(Effect.suspend(first))
    })
  )
}

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
