/**
 * The library's own errors on its failure paths (a timeout, a spent ladder, a spent retry budget), built without the
 * Schema constructor's validation (`new X(props, true)`, Effect's `MakeOptions`): every field is produced here, of the
 * type the schema declares, so validating them only costs — it was the largest single item of a failed request in a
 * CPU profile of the outage simulator. Validation also copies its input, keys in the schema's field order, and drops
 * keys the schema does not declare; these constructors give exactly the declared keys in that order (a ladder's
 * attempts copied the same way), so each error has the own keys, order and values the validating constructor gives it
 * (`test/internal/ownErrors.test.ts` compares them).
 * @internal
 */
import {
  type FallbackAttempt,
  FallbackExhausted,
  HardFailure,
  isRetryableReason,
  RetryBudgetExhausted
} from "../LlmError.js"

/** A `Timeout` {@link HardFailure}: what `hardFailure({ reason: "Timeout", provider, model, providerCode })` builds. */
export const timeoutFailure = (provider: string, model: string, providerCode: string): HardFailure =>
  new HardFailure({ provider, model, retryable: isRetryableReason("Timeout"), reason: "Timeout", providerCode }, true)

/** An attempt as the schema orders `FallbackAttempt`'s fields: what validating it would return. */
const inSchemaOrder = (attempt: FallbackAttempt): FallbackAttempt => {
  const { code, host, reason, retryAfterMs } = attempt
  return {
    tier: attempt.tier,
    label: attempt.label,
    error: attempt.error,
    ...("reason" in attempt ? { reason } : {}),
    message: attempt.message,
    skipped: attempt.skipped,
    latencyMs: attempt.latencyMs,
    ...("retryAfterMs" in attempt ? { retryAfterMs } : {}),
    ...("code" in attempt ? { code } : {}),
    ...("host" in attempt ? { host } : {})
  }
}

/** `new FallbackExhausted({ attempts })`, or with `deadlineExceeded` when it is given. */
export const fallbackExhausted = (
  attempts: ReadonlyArray<FallbackAttempt>,
  deadlineExceeded?: boolean
): FallbackExhausted =>
  new FallbackExhausted(
    deadlineExceeded === undefined
      ? { attempts: attempts.map(inSchemaOrder) }
      : { attempts: attempts.map(inSchemaOrder), deadlineExceeded },
    true
  )

/** `new RetryBudgetExhausted({ key, failure })`: the failure is kept as it is (a class field is not copied). */
export const retryBudgetExhausted = (key: string, failure: HardFailure): RetryBudgetExhausted =>
  new RetryBudgetExhausted({ key, failure }, true)
