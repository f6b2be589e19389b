/**
 * How a request's ladder ends: served; or — with `whenAllRefused: { wait }` — when every step was refused locally
 * (open breakers, full limiters) so that no call was possible, after waiting for the soonest of them to be ready
 * again (the shortest `retryAfter` among the refusals) and running the ladder once more, for at most `wait` in all
 * and never past the request's deadline; or `FallbackExhausted` with the attempts of every round, saying whether the
 * deadline ran out.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fallback from "../../Fallback.js"
import type { FallbackAttempt, FallbackExhausted } from "../../LlmError.js"
import { fallbackExhausted } from "../ownErrors.js"
import type { Client, RequestContext } from "./client.js"
import { exhausted } from "./deadline.js"
import type { LadderError } from "./engine.js"

/** Refusals that end by themselves: a breaker's cooldown, a limiter's window. */
const RECOVERABLE = new Set(["CircuitOpen", "RateLimitExceeded"])

/** The wait until some step is ready again, when every step was refused with a known end; else `undefined`. */
const soonest = (error: FallbackExhausted): number | undefined => {
  let wait = Infinity
  for (const attempt of error.attempts) {
    if (!attempt.skipped || !RECOVERABLE.has(attempt.error) || attempt.retryAfterMs === undefined) return undefined
    wait = Math.min(wait, attempt.retryAfterMs)
  }
  // At least a millisecond, so that each round moves the clock on (a cooldown just ending reads as 0).
  return Number.isFinite(wait) ? Math.max(1, wait) : undefined
}

/** @internal */
export const withRecovery = <A>(
  client: Client,
  context: RequestContext,
  ladder: Effect.Effect<Fallback.Served<A>, LadderError>
): Effect.Effect<Fallback.Served<A>, LadderError> => {
  const wait = client.config.whenAllRefused?.wait
  if (wait === undefined) {
    return context.deadlineAt === undefined
      ? ladder
      : Effect.catchTag(ladder, "FallbackExhausted", (error) => Effect.fail(exhausted(error, context)))
  }
  const { clock } = context
  const round = (
    until: number,
    earlier: ReadonlyArray<FallbackAttempt>
  ): Effect.Effect<Fallback.Served<A>, LadderError> =>
    Effect.matchEffect(ladder, {
      onSuccess: (served) =>
        Effect.succeed(earlier.length === 0 ? served : { ...served, attempts: [...earlier, ...served.attempts] }),
      onFailure: (error): Effect.Effect<Fallback.Served<A>, LadderError> => {
        if (error._tag !== "FallbackExhausted") return Effect.fail(error)
        const attempts = [...earlier, ...error.attempts]
        const pause = soonest(error)
        const resumeAt = clock.unsafeCurrentTimeMillis() + (pause ?? 0)
        if (
          pause === undefined || resumeAt > until
          || (context.deadlineAt !== undefined && resumeAt >= context.deadlineAt)
        ) {
          return Effect.fail(exhausted(fallbackExhausted(attempts), context))
        }
        return Effect.zipRight(Effect.sleep(Duration.millis(pause)), round(until, attempts))
      }
    })
  return Effect.suspend(() => round(clock.unsafeCurrentTimeMillis() + Duration.toMillis(Duration.decode(wait)), []))
}
