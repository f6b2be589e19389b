/**
 * What the end of a call and a refusal mean to a circuit breaker: an exit classified into the machine's verdict (the
 * user's `ignore` and `classify` applied), and the `CircuitOpen` a refused call fails with.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { CircuitOpen } from "../LlmError.js"
import * as machine from "./circuitBreakerMachine.js"
import type * as options from "./circuitBreakerOptions.js"

/** What a finished call means to the breaker: its verdict, its weight, the Retry-After it carried. @internal */
export interface Outcome {
  readonly verdict: machine.Verdict
  readonly milli: number
  readonly retryAfterMs: number | undefined
}

// Shared records for the outcomes that carry no data: the success path allocates nothing for its verdict.
const succeeded: Outcome = { verdict: machine.SUCCESS, milli: 0, retryAfterMs: undefined }
const ignored: Outcome = { verdict: machine.IGNORED, milli: 0, retryAfterMs: undefined }

const failed = (
  verdict: machine.Verdict,
  milli: number,
  retryAfter: Duration.Duration | undefined
): Outcome => ({
  verdict,
  milli,
  retryAfterMs: retryAfter === undefined ? undefined : Duration.toMillis(retryAfter)
})

/** @internal Classifies an exit. User code (ignore, classify) runs inside a finalizer, so a throw there must not escape. */
export const classifyExit = (shared: options.Settings, exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (exit._tag === "Success") return succeeded
  const { classify, config, ignore } = shared
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) {
    // Interruption is the caller's doing; a defect says as much about the dependency as a hard failure does.
    return Cause.isInterruptedOnly(exit.cause) ? ignored : failed(machine.FAILURE, config.hardMilli, undefined)
  }
  try {
    if (ignore(failure.value)) return ignored
    const classification = classify(failure.value)
    switch (classification.kind) {
      case "success":
        return succeeded
      case "ignored":
        return ignored
      case "fatal":
        return failed(machine.FATAL, 0, classification.retryAfter)
      case "hard":
        return failed(machine.FAILURE, config.hardMilli, classification.retryAfter)
      case "soft":
        return failed(machine.FAILURE, config.softMilli, classification.retryAfter)
      case "degraded":
        return failed(machine.FAILURE, config.degradedMilli, classification.retryAfter)
    }
  } catch {
    return failed(machine.FAILURE, config.hardMilli, undefined)
  }
}

const canSetStackTraceLimit = ((): boolean => {
  const descriptor = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")
  return descriptor === undefined
    ? Object.isExtensible(Error)
    : descriptor.writable === true || descriptor.set !== undefined
})()

/**
 * @internal Rejection is the hot path of an outage. Its fields are valid by construction (so no schema validation), and its
 * stack would only ever point here (so none is captured: that is most of an Error's cost).
 */
export const rejection = (key: string, waitMs: number): CircuitOpen => {
  const remaining = waitMs === Infinity ? Duration.infinity : Duration.millis(waitMs)
  if (!canSetStackTraceLimit) return new CircuitOpen({ key, remaining }, { disableValidation: true })
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new CircuitOpen({ key, remaining }, { disableValidation: true })
  } finally {
    Error.stackTraceLimit = limit
  }
}
