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
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type * as Fallback from "../../Fallback.js"
import type { CompletionRequest, CompletionResult } from "../../Llm.js"
import * as observability from "../observability.js"
import { withConnectTimeout, withModel } from "../request.js"
import { stagesOf } from "../retry.js"
import { refusal } from "./capabilities.js"
import type { CallShape, Client, Outcome, RequestContext } from "./client.js"
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
  const first = () => {
    const startedAt = context.clock.unsafeCurrentTimeMillis()
    const call = shape.call(step, input, context)
    const stages = tier.retrier === undefined ? undefined : stagesOf(tier.retrier)
    const target = { name: tier.provider.name, model }
    stages?.deposit(target, startedAt)
    const attempt = stages === undefined ? call : stages.prepare(call, target, undefined, startedAt).first
    return Effect.matchCauseEffect(attempt, {
      onSuccess: (value): Effect.Effect<Served, LadderError> => {
        const outcome: Outcome<CompletionResult> = { value, step, degraded: undefined }
        observability.recordAttempt(undefined, label, Exit.succeed(outcome), context.trace)
        return Effect.succeed({ value: outcome, tier: 1, label, attempts: [] })
      },
      onFailure: (cause) => {
        const failure = Cause.failureOrCause(cause)
        if (Either.isRight(failure)) {
          // A defect or an interruption: the ladder would end with it too, after recording the attempt.
          observability.recordAttempt(undefined, label, Exit.failCause(cause), context.trace)
          return Effect.failCause(failure.right)
        }
        context.primed.value = { step, startedAt, failure: failure.left }
        return ladder()
      }
    })
  }
  return breaker === undefined
    ? Effect.suspend(first)
    : Effect.flatMap(CircuitBreaker.isOpen(breaker), (open) => open ? ladder() : first())
}
