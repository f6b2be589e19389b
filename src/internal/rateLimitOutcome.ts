/**
 * What a finished call tells the limiter: its token usage, the provider's rate-limit headers, and a 429's pause.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import type { RateLimitInfo } from "../Llm.js"

/** @internal */
export interface Outcome {
  /** Tokens the call really used; `undefined` keeps the estimate. */
  actualTokens: number | undefined
  rateLimit: RateLimitInfo | undefined
  /** A 429's Retry-After, in milliseconds. */
  retryAfterMillis: number | undefined
  /** `true`: refused with a 429, with or without a Retry-After; `false`: answered. */
  rateLimited?: boolean | undefined
}

/**
 * A 429 without Retry-After still says "slow down": the key pauses for 1 s, doubling while 429s follow each other
 * (2 s, 4 s, …, at most 30 s), and back to 1 s after a call that was not refused.
 * @internal
 */
export const DEFAULT_429_PAUSE_MILLIS = 1_000
/** @internal */
export const MAX_DEFAULT_429_PAUSE_MILLIS = 30_000

/** @internal `value[name]` of an object (missing: `undefined`), else `undefined`. */
export const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>)[name] : undefined

const totalTokensOf = (value: unknown): number | undefined => {
  const total = field(field(value, "usage"), "totalTokens")
  return typeof total === "number" && Number.isFinite(total) && total >= 0 ? total : undefined
}

const rateLimitOf = (value: unknown): RateLimitInfo | undefined => {
  const info = field(value, "rateLimit")
  return typeof info === "object" && info !== null ? info as RateLimitInfo : undefined
}

// Read structurally, like the breaker's classifier: errors from a second copy of this package classify the same way.
/** @internal */
export const outcomeOfError = (error: unknown, outcome: Outcome): void => {
  const tag = field(error, "_tag")
  if (tag === "HardFailure") {
    // The provider refused or failed the call: nothing was generated. Its rate-limit headers still count (a 429's
    // `remaining: 0` and reset say when capacity is back).
    outcome.actualTokens = 0
    outcome.rateLimit = rateLimitOf(error)
    if (field(error, "reason") === "RateLimited") {
      outcome.rateLimited = true
      const retryAfter = field(error, "retryAfter")
      if (Duration.isDuration(retryAfter)) {
        const millis = Duration.toMillis(retryAfter)
        if (Number.isFinite(millis) && millis > 0) outcome.retryAfterMillis = millis
      }
    }
  } else if (tag === "DegradedResponse") {
    const result = field(error, "result")
    outcome.actualTokens = totalTokensOf(result)
    outcome.rateLimit = rateLimitOf(result)
  }
}

/** @internal */
export const outcomeOfValue = (value: unknown): Outcome => ({
  actualTokens: totalTokensOf(value),
  rateLimit: rateLimitOf(value),
  retryAfterMillis: undefined,
  rateLimited: false
})

/** @internal */
export const outcomeOfCause = (cause: Cause.Cause<unknown>): Outcome => {
  const outcome: Outcome = { actualTokens: 0, rateLimit: undefined, retryAfterMillis: undefined }
  if (!Cause.isInterruptedOnly(cause)) {
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") outcomeOfError(failure.value, outcome)
  }
  return outcome
}
