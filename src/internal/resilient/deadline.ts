/**
 * A request's deadline across the whole ladder (`deadline` of a call, or the chain's default): one end, in `Clock`
 * milliseconds, that every step works within. A step whose observed median latency no longer fits what is left is
 * skipped without a call; the rest caps each attempt and each retry's backoff (the step's retrier takes the end as
 * its own deadline; a step without retries is bounded here); a ladder that ran out of it says so in
 * `FallbackExhausted`. Cutting a call short for the deadline is the caller's doing, not the provider's: it happens
 * outside the breaker, which ignores the interruption.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { DeadlineExceeded, type FallbackExhausted, type HardFailure, InvalidRequest } from "../../LlmError.js"
import type { CallOptions, Config } from "../../Resilient.js"
import { checkDuration } from "../duration.js"
import { fallbackExhausted, timeoutFailure } from "../ownErrors.js"
import { timeoutFail } from "../timeout.js"
import type { RequestContext } from "./client.js"
import type { Step } from "./plan.js"

/** The provider code of a call cut short by the request deadline (as `Retry`'s own deadline). @internal */
export const DEADLINE_CODE = "deadline_exceeded"

/** A call's `deadline` that is not a positive duration: the caller's mistake, before any step. @internal */
export const checkDeadline = (options: CallOptions | undefined): InvalidRequest | undefined => {
  if (options?.deadline === undefined) return undefined
  const checked = checkDuration(options.deadline)
  return "millis" in checked
    ? undefined
    : new InvalidRequest({ field: "deadline", issues: [{ field: "deadline", message: checked.problem }] })
}

/**
 * The request's budget in milliseconds: the call's `deadline` (checked by {@link checkDeadline}), else the chain's
 * (checked when the client was built); `undefined` for none.
 * @internal
 */
export const budgetOf = (config: Config, options: CallOptions | undefined): number | undefined => {
  const value = options?.deadline ?? config.deadline
  if (value === undefined) return undefined
  const checked = checkDuration(value)
  return "millis" in checked ? checked.millis : undefined
}

/** Milliseconds left of the request's deadline, or `undefined` without one. */
const remaining = (context: RequestContext): number | undefined =>
  context.deadlineAt === undefined ? undefined : context.deadlineAt - context.clock.unsafeCurrentTimeMillis()

/**
 * Whether `step` may start: `DeadlineExceeded` when the deadline has passed, or when what is left is shorter than the
 * step's observed median (a step never observed is tried: it may be fast).
 * @internal
 */
export const admit = (step: Step, context: RequestContext): DeadlineExceeded | undefined => {
  const left = remaining(context)
  if (left === undefined) return undefined
  if (left <= 0) return new DeadlineExceeded({ key: step.label, reason: "Expired", remainingMs: 0 })
  const p50 = context.latency.of(step.label).quantile(0.5)
  return p50 !== undefined && p50 > left
    ? new DeadlineExceeded({ key: step.label, reason: "TooSlow", remainingMs: left, p50Ms: p50 })
    : undefined
}

/**
 * `call` bounded by what is left of the deadline, for a step without a retrier (a retrier bounds its attempts
 * itself). The limiter's queue, the breaker and the call all count.
 * @internal
 */
export const bound = <A, E>(
  call: Effect.Effect<A, E>,
  step: Step,
  context: RequestContext
): Effect.Effect<A, E | HardFailure> => {
  if (context.deadlineAt === undefined) return call
  return Effect.suspend(() =>
    timeoutFail(
      call,
      Duration.millis(Math.max(0, remaining(context) ?? 0)),
      () => timeoutFailure(step.tier.provider.name, step.model, DEADLINE_CODE)
    )
  )
}

/**
 * A ladder that ran out with the deadline spent, or with steps cut short or skipped for it, says so.
 * @internal
 */
export const exhausted = (error: FallbackExhausted, context: RequestContext): FallbackExhausted => {
  if (context.deadlineAt === undefined || error.deadlineExceeded === true) return error
  const spent = (remaining(context) ?? 1) <= 0
    || error.attempts.some((attempt) => attempt.error === "DeadlineExceeded")
  return spent ? fallbackExhausted(error.attempts, true) : error
}
