/**
 * `Fallback.chain` and how it reports a failed step.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Served, Tier } from "../Fallback.js"
import {
  CircuitOpen,
  DeadlineExceeded,
  DegradedResponse,
  type FallbackAttempt,
  FallbackExhausted,
  HardFailure,
  InvalidRequest,
  RateLimitExceeded,
  RetryBudgetExhausted,
  SoftFailure,
  UnsupportedRequest
} from "../LlmError.js"
import { failureFacts } from "./classify.js"
import { fallbackExhausted } from "./ownErrors.js"

const SKIPPED = new Set(["CircuitOpen", "RateLimitExceeded", "UnsupportedRequest", "DeadlineExceeded"])

// Only this library's errors have messages known to be free of prompt text.
const ours: ReadonlyArray<new(...args: ReadonlyArray<never>) => Error> = [
  HardFailure,
  SoftFailure,
  DegradedResponse,
  CircuitOpen,
  RateLimitExceeded,
  RetryBudgetExhausted,
  UnsupportedRequest,
  DeadlineExceeded,
  InvalidRequest,
  FallbackExhausted
]

/** When the step could be tried again: an open breaker's cooldown, the limiter's wait, the provider's Retry-After. */
const retryAfterOf = (error: unknown): number | undefined => {
  const wait = error instanceof CircuitOpen
    ? error.remaining
    : error instanceof RateLimitExceeded || error instanceof HardFailure
    ? error.retryAfter
    : undefined
  return wait === undefined ? undefined : Duration.toMillis(wait)
}

const describeFailure = (
  error: unknown
): Pick<FallbackAttempt, "error" | "reason" | "message" | "skipped" | "retryAfterMs" | "code" | "host"> => {
  if (typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string") {
    const reason = "reason" in error && typeof error.reason === "string" ? error.reason : undefined
    const message = error instanceof Error && ours.some((known) => error instanceof known) ? error.message : error._tag
    const retryAfterMs = retryAfterOf(error)
    return {
      error: error._tag,
      ...(reason !== undefined ? { reason } : {}),
      message,
      skipped: SKIPPED.has(error._tag),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      ...failureFacts(error)
    }
  }
  return { error: "Unknown", message: "a failure outside the taxonomy", skipped: false }
}

/** @internal */
export const attemptOf = (
  error: unknown,
  step: { readonly tier: number; readonly label: string; readonly latencyMs: number }
): FallbackAttempt => ({ tier: step.tier, label: step.label, ...describeFailure(error), latencyMs: step.latencyMs })

/** @internal */
export const chain = <A, E, R>(
  tiers: ReadonlyArray<Tier<A, E, R>>,
  when: (error: unknown) => boolean,
  firstStartedAt?: (() => number | undefined) | undefined
): Effect.Effect<Served<A>, E | FallbackExhausted, R> => {
  const step = (
    index: number,
    attempts: ReadonlyArray<FallbackAttempt>
  ): Effect.Effect<Served<A>, E | FallbackExhausted, R> => {
    const tier = tiers[index]
    if (tier === undefined) return Effect.fail(fallbackExhausted(attempts))
    const run = (started: number) =>
      Effect.matchEffect(tier.run, {
        onSuccess: (value) => Effect.succeed({ value, tier: index + 1, label: tier.label, attempts }),
        onFailure: (error) =>
          when(error)
            ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
              step(index + 1, [
                ...attempts,
                attemptOf(error, { tier: index + 1, label: tier.label, latencyMs: now - started })
              ]))
            : Effect.fail(error)
      })
    if (index > 0 || firstStartedAt === undefined) return Effect.flatMap(Clock.currentTimeMillis, run)
    // A first step that began before the chain ran (the client's fast path) counts its latency from then.
    return Effect.suspend(() => {
      const at = firstStartedAt()
      return at === undefined ? Effect.flatMap(Clock.currentTimeMillis, run) : run(at)
    })
  }
  return step(0, [])
}
