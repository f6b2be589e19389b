/**
 * One step of the ladder, whatever the call shape: breaker pre-check → retry → (the shape's call: rate limiter →
 * breaker admission and record → timeouts → call → checks), then relaxation of the request and the degraded-answer
 * rules. The step's request is the tier's adapted request for its model.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import * as Fallback from "../../Fallback.js"
import type { CompletionRequest } from "../../Llm.js"
import {
  CircuitOpen,
  type DeadlineExceeded,
  DegradedResponse,
  type InvalidRequest,
  type RetryBudgetExhausted,
  type UnsupportedRequest
} from "../../LlmError.js"
import type * as Retry from "../../Retry.js"
import * as observability from "../observability.js"
import { validateRequest, withConnectTimeout, withModel } from "../request.js"
import { stagesOf } from "../retry.js"
import { refusal } from "./capabilities.js"
import type { AttemptError, CallShape, Client, Outcome, Primed, RequestContext } from "./client.js"
import { admit, bound } from "./deadline.js"
import { breakerOf } from "./deployments.js"
import type { Step } from "./plan.js"
import { limitsOf, preflight } from "./preflight.js"

/** Refused locally, before any call: what `Fallback.chain` reports as skipped. */
const isRefusal = (error: { readonly _tag: string }): boolean =>
  error._tag === "CircuitOpen" || error._tag === "RateLimitExceeded" || error._tag === "UnsupportedRequest"

/**
 * Refuses a step whose breaker is open before it queues in the rate limiter: admission itself happens inside the
 * limiter (so that the breaker times the provider, not the queue), and an open breaker should cost no wait.
 */
const refuseWhenOpen = (breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<void, CircuitOpen> =>
  Effect.flatMap(CircuitBreaker.isOpen(breaker), (open) =>
    open
      ? Effect.flatMap(breaker.snapshot, (snapshot) =>
        Effect.fail(
          // Fields valid by construction: no schema validation, as for the breaker's own rejection.
          new CircuitOpen({
            key: breaker.key,
            remaining: snapshot.remainingMs === null ? Duration.infinity : Duration.millis(snapshot.remainingMs)
          }, { disableValidation: true })
        ))
      : Effect.void)

/**
 * What a step can fail with: a call's failure, a retry budget too spent to retry it, a request it cannot take, or a
 * deadline it cannot fit in.
 * @internal
 */
export type StepError = AttemptError | RetryBudgetExhausted | UnsupportedRequest | DeadlineExceeded

/** Runs one step of the plan for `request` through `shape`. @internal */
export const attempt = <A>(
  client: Client,
  shape: CallShape<A>,
  step: Step,
  request: CompletionRequest,
  context: RequestContext
): Effect.Effect<Outcome<A>, StepError> => {
  const { label, model, tier } = step
  const { trace } = context
  // A deployment kept in rotation with its breaker open runs without it (./deployments.ts).
  const breaker = breakerOf(client, step)
  const check = tier.config.quality
  const refused = breaker === undefined ? undefined : refuseWhenOpen(breaker)
  // The last failure of a call this step really made. A refusal (`CircuitOpen`, `RateLimitExceeded`) after one — a
  // retry or a relaxed request refused because the breaker opened or the limiter filled meanwhile — is not what the
  // step failed of: the step ends with that real failure, so `attempts` reports it, and only a step that made no
  // call is reported `skipped`.
  const seen: { failure: AttemptError | undefined } = { failure: undefined }
  const retrier = tier.retrier
  // After a failed call, an open breaker would only refuse the next attempt: `until` ends the retries at once
  // instead of sleeping a backoff and spending retry budget first.
  const until = breaker === undefined ? undefined : () => CircuitBreaker.isOpen(breaker)
  const recorded = (input: CompletionRequest) => {
    const call = shape.call(step, input, context)
    return Effect.tapError(refused === undefined ? call : Effect.zipRight(refused, call), (error) =>
      Effect.sync(() => {
        if (!isRefusal(error)) seen.failure = error
      }))
  }
  // What `recorded` and the retrier would have done with the first attempt's failure, had they made it: the
  // failure is the step's own (unless a refusal), and the retries start from it, with the budget deposit made.
  const afterPrimed = (
    primed: Primed,
    call: Effect.Effect<A, AttemptError>,
    target: Retry.Target,
    callOptions: Retry.RetryCallOptions<AttemptError>
  ): Effect.Effect<A, StepError> => {
    if (!isRefusal(primed.failure)) seen.failure = primed.failure
    const stages = retrier === undefined ? undefined : stagesOf(retrier)
    return stages === undefined
      ? Effect.fail(primed.failure)
      : stages.prepare(call, target, callOptions, primed.startedAt).retriesAfter(primed.failure)
  }
  // Preflight (./preflight.ts): refused or clamped locally, before the breaker, the retries and the limiter.
  const limits = limitsOf(step)
  const once = (input: CompletionRequest): Effect.Effect<Outcome<A>, StepError> =>
    Effect.flatMap(preflight(input, limits), sent)
  const sent = (input: CompletionRequest): Effect.Effect<Outcome<A>, StepError> => {
    // The request's deadline (./deadline.ts) caps the attempts and the backoffs: the retrier takes it as its own
    // deadline; a step without retries is bounded by what is left of it. Both act outside the breaker.
    const target = { name: tier.provider.name, model }
    const callOptions = { until, deadlineAt: context.deadlineAt }
    // The fast path made this step's first attempt, and it failed (./fastPath.ts): the step goes on from there.
    const primed = context.primed?.step === step ? context.primed : undefined
    if (primed !== undefined) context.primed = undefined
    const retried = primed !== undefined
      ? afterPrimed(primed, recorded(input), target, callOptions)
      : retrier === undefined
      ? bound(recorded(input), step, context)
      : retrier.retry(recorded(input), target, callOptions)
    return Effect.matchEffect(retried, {
      onSuccess: (value) => {
        if (check !== undefined && shape.checkedBeforeCommit(step)) {
          observability.recordFormat(label, true, trace)
          if (trace.passedScore !== undefined) observability.recordQualityScore(label, trace.passedScore, trace)
          trace.passedScore = undefined
        }
        return Effect.succeed<Outcome<A>>({ value, step, degraded: undefined })
      },
      onFailure: (failed) => {
        trace.passedScore = undefined
        const error = isRefusal(failed) && seen.failure !== undefined ? seen.failure : failed
        if (check !== undefined && (error._tag === "SoftFailure" || error._tag === "DegradedResponse")) {
          const format = error._tag === "SoftFailure"
            && (error.reason === "FormatViolation" || error.reason === "SchemaMismatch")
          observability.recordFormat(label, !format, trace)
        }
        if (error instanceof DegradedResponse) {
          if (client.acceptReasons?.includes(error.reason) === true) {
            return Effect.succeed<Outcome<A>>({
              value: shape.fromResult(error.result, step),
              step,
              degraded: error.reason
            })
          }
          context.degradedSeen ??= { value: error.result, step, degraded: error.reason }
        }
        return Effect.fail(error)
      }
    })
  }
  // A step that cannot take the request (tools, images, a JSON-schema output) is skipped: no call, no breaker count.
  const unsupported = refusal(request, label, tier.provider.capabilities, tier.config.capabilities)
  const adapt = tier.config.adaptMessages
  // Adapted messages are the tier's own code's output: decoded again (the limiter would refuse them otherwise).
  const adapted: Effect.Effect<CompletionRequest, InvalidRequest | UnsupportedRequest> = unsupported !== undefined
    ? Effect.fail(unsupported)
    : adapt === undefined
    ? Effect.succeed(withModel(withConnectTimeout(request, tier.config.connectTimeout), model))
    : validateRequest({
      ...withConnectTimeout(request, tier.config.connectTimeout),
      model,
      messages: adapt(request.messages)
    })
  // A step that cannot fit in what is left of the request's deadline is skipped: no call, no breaker count.
  const admitted: Effect.Effect<CompletionRequest, InvalidRequest | UnsupportedRequest | DeadlineExceeded> =
    context.deadlineAt === undefined
      ? adapted
      : Effect.suspend((): Effect.Effect<CompletionRequest, InvalidRequest | UnsupportedRequest | DeadlineExceeded> => {
        const late = admit(step, context)
        return late === undefined ? adapted : Effect.fail(late)
      })
  return Effect.flatMap(
    admitted,
    (adapted) =>
      client.config.relaxation === false ? once(adapted) : Effect.catchAll(once(adapted), (error) =>
        Effect.flatMap(
          Fallback.relax(adapted, error, {
            contextWindow: tier.contextWindow,
            countTokens: tier.provider.countTokens
          }),
          Option.match({
            onNone: () => Effect.fail(error),
            onSome: once
          })
        ))
  )
}
