/**
 * The failure taxonomy. Three classes, each one `Schema.TaggedError` with a `reason` that discriminates inside it:
 *
 * - {@link HardFailure}: the provider did not answer usefully (429, 5xx, 529, timeouts, 4xx, content filter).
 * - {@link SoftFailure}: it answered, but the answer is wrong (format, schema, quality).
 * - {@link DegradedResponse}: it answered usably but badly (truncated, repetitive, slow); the result is carried.
 *
 * No field or message ever holds an API key or prompt text.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as classify from "./internal/classify.js"
import { CompletionResult, RateLimitInfo } from "./Llm.js"

/**
 * @since 0.1.0
 * @category Schemas
 */
export const HardReason = Schema.Literal(
  "RateLimited",
  "QuotaExhausted",
  "ServerError",
  "Overloaded",
  "Timeout",
  "Connection",
  "BadRequest",
  "ContextLengthExceeded",
  "Unauthorized",
  "Forbidden",
  "NotFound",
  "ContentFiltered",
  "Unknown"
)

/**
 * @since 0.1.0
 * @category Models
 */
export type HardReason = typeof HardReason.Type

/**
 * @since 0.1.0
 * @category Schemas
 */
export const SoftReason = Schema.Literal("FormatViolation", "SchemaMismatch", "QualityBelowThreshold")

/**
 * @since 0.1.0
 * @category Models
 */
export type SoftReason = typeof SoftReason.Type

/**
 * @since 0.1.0
 * @category Schemas
 */
export const DegradedReason = Schema.Literal("Truncated", "Repetitive", "Slow")

/**
 * @since 0.1.0
 * @category Models
 */
export type DegradedReason = typeof DegradedReason.Type

const retryableHardReasons: ReadonlySet<HardReason> = new Set<HardReason>([
  "RateLimited",
  "ServerError",
  "Overloaded",
  "Timeout",
  "Connection"
])

/**
 * Whether a hard failure of this reason is worth trying again on the same provider: transient capacity and
 * transport problems are; caller faults, auth, quota and policy refusals are not.
 *
 * @since 0.1.0
 * @category Predicates
 */
export const isRetryableReason = (reason: HardReason): boolean => retryableHardReasons.has(reason)

const describe = (
  self: {
    readonly provider: string
    readonly model: string
    readonly reason: string
    readonly status?: number | undefined
    readonly requestId?: string | undefined
  },
  extra: ReadonlyArray<string>
): string => {
  const details = [
    self.status !== undefined ? `HTTP ${self.status}` : undefined,
    self.requestId !== undefined ? `request ${self.requestId}` : undefined,
    ...extra
  ].filter((part): part is string => part !== undefined)
  return `${self.reason} from ${self.provider}/${self.model}${details.length > 0 ? ` (${details.join(", ")})` : ""}`
}

const Common = {
  provider: Schema.String,
  model: Schema.String,
  status: Schema.optional(Schema.Number),
  requestId: Schema.optional(Schema.String),
  retryable: Schema.Boolean
}

/**
 * The provider failed to answer usefully. `retryAfter` is the provider's own hint (`retry-after-ms`,
 * `retry-after`); `providerCode` is its machine-readable error code or type (`insufficient_quota`,
 * `overloaded_error`); `partialContent` is the text a stream had delivered before it failed; `rateLimit` is what the
 * error response's rate-limit headers said (a 429 carries them too), which the limiter reads as it reads a success's.
 *
 * @since 0.1.0
 * @category Errors
 */
export class HardFailure extends Schema.TaggedError<HardFailure>("effect-llm-resilience/HardFailure")("HardFailure", {
  ...Common,
  reason: HardReason,
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  providerCode: Schema.optional(Schema.String),
  partialContent: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitInfo),
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      this,
      [
        this.providerCode !== undefined ? `code ${this.providerCode}` : undefined,
        this.retryAfter !== undefined ? `retry after ${Duration.format(this.retryAfter)}` : undefined
      ].filter((part): part is string => part !== undefined)
    )
  }
}

/**
 * The answer arrived but is wrong: it does not parse, does not match the schema, or scores under the threshold.
 * `detail` says what failed without quoting the content; `score` is the quality score when one was computed.
 *
 * @since 0.1.0
 * @category Errors
 */
export class SoftFailure extends Schema.TaggedError<SoftFailure>("effect-llm-resilience/SoftFailure")("SoftFailure", {
  ...Common,
  reason: SoftReason,
  detail: Schema.optional(Schema.String),
  score: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      this,
      [
        this.detail,
        this.score !== undefined ? `score ${this.score}` : undefined
      ].filter((part): part is string => part !== undefined)
    )
  }
}

/**
 * The answer is usable but degraded. It is carried in `result` so a caller may accept it.
 *
 * @since 0.1.0
 * @category Errors
 */
export class DegradedResponse extends Schema.TaggedError<DegradedResponse>("effect-llm-resilience/DegradedResponse")(
  "DegradedResponse",
  {
    ...Common,
    reason: DegradedReason,
    detail: Schema.optional(Schema.String),
    result: CompletionResult
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, this.detail !== undefined ? [this.detail] : [])
  }
}

/**
 * One problem with a request: the field path (`messages[1].content`) and what is wrong with it.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RequestIssue = Schema.Struct({ field: Schema.String, message: Schema.String })

/**
 * The request was rejected before any network call. `field` is the first offending field; `issues` lists all.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("effect-llm-resilience/InvalidRequest")(
  "InvalidRequest",
  {
    field: Schema.String,
    issues: Schema.Array(RequestIssue)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid request: ${this.issues.map((issue) => `${issue.field} ${issue.message}`).join("; ")}`
  }
}

/**
 * Any failure of an LLM call.
 *
 * @since 0.1.0
 * @category Models
 */
export type LlmError = HardFailure | SoftFailure | DegradedResponse

/**
 * @since 0.1.0
 * @category Models
 */
export type FailureClass = "hard" | "soft" | "degraded"

/**
 * @since 0.1.0
 * @category Utils
 */
export const failureClass = (error: LlmError): FailureClass =>
  error._tag === "HardFailure" ? "hard" : error._tag === "SoftFailure" ? "soft" : "degraded"

/**
 * Builds a {@link HardFailure}, deriving `retryable` from the reason unless given.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const hardFailure = (
  props: Omit<ConstructorParameters<typeof HardFailure>[0], "retryable"> & { readonly retryable?: boolean }
): HardFailure => new HardFailure({ ...props, retryable: props.retryable ?? isRetryableReason(props.reason) })

/**
 * @since 0.1.0
 * @category Guards
 */
export const isHardFailure: (u: unknown) => u is HardFailure = Schema.is(HardFailure)

/**
 * @since 0.1.0
 * @category Guards
 */
export const isSoftFailure: (u: unknown) => u is SoftFailure = Schema.is(SoftFailure)

/**
 * @since 0.1.0
 * @category Guards
 */
export const isDegradedResponse: (u: unknown) => u is DegradedResponse = Schema.is(DegradedResponse)

/**
 * A constructor was given options it cannot work with. `field` names the option.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>("effect-llm-resilience/InvalidOptions")(
  "InvalidOptions",
  {
    field: Schema.String,
    reason: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid options: ${this.field} ${this.reason}`
  }
}

/**
 * The circuit breaker for `key` is open (or has no half-open probe permit free): the call was not made.
 * `remaining` is the time until the breaker admits a probe again.
 *
 * @since 0.1.0
 * @category Errors
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>("effect-llm-resilience/CircuitOpen")("CircuitOpen", {
  key: Schema.String,
  remaining: Schema.DurationFromSelf
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Circuit open for ${this.key} (retry in ${Duration.format(this.remaining)})`
  }
}

/**
 * A retryable failure was not retried because the retry budget for `key` is spent: retries may only add a bounded
 * share of the request volume. `failure` is the failure that would have been retried.
 *
 * @since 0.1.0
 * @category Errors
 */
export class RetryBudgetExhausted extends Schema.TaggedError<RetryBudgetExhausted>(
  "effect-llm-resilience/RetryBudgetExhausted"
)("RetryBudgetExhausted", {
  key: Schema.String,
  failure: HardFailure
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Retry budget exhausted for ${this.key}; not retrying ${this.failure.message}`
  }
}

/**
 * The local rate limiter for `key` refused the call (fail-fast mode, or the wait would exceed the maximum).
 * `retryAfter` is when capacity is expected back. Breakers ignore it: it is a local decision, not a provider fault.
 *
 * @since 0.1.0
 * @category Errors
 */
export class RateLimitExceeded extends Schema.TaggedError<RateLimitExceeded>(
  "effect-llm-resilience/RateLimitExceeded"
)("RateLimitExceeded", {
  key: Schema.String,
  retryAfter: Schema.DurationFromSelf,
  limit: Schema.optional(Schema.Literal("concurrency", "requests", "tokens", "paused"))
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Rate limit exceeded for ${this.key}${this.limit !== undefined ? ` (${this.limit})` : ""}; capacity in ${
      Duration.format(this.retryAfter)
    }`
  }
}

/**
 * @since 0.2.0
 * @category Schemas
 */
export const Capability = Schema.Literal("tools", "images", "jsonSchema")

/**
 * @since 0.2.0
 * @category Models
 */
export type Capability = typeof Capability.Type

/**
 * A step of a chain cannot take the request (`missing` lists what it lacks: tools, images, JSON-schema outputs): it
 * was skipped without a call, and its breaker did not count it.
 *
 * @since 0.2.0
 * @category Errors
 */
export class UnsupportedRequest extends Schema.TaggedError<UnsupportedRequest>(
  "effect-llm-resilience/UnsupportedRequest"
)("UnsupportedRequest", {
  key: Schema.String,
  missing: Schema.Array(Capability)
}) {
  /**
   * @since 0.2.0
   */
  get reason(): string {
    return "Unsupported"
  }

  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `${this.key} cannot take this request (no ${this.missing.join(", ")})`
  }
}

/**
 * A step of a chain skipped for the request's deadline, without a call: the deadline had passed (`Expired`), or what
 * was left of it is shorter than the step's observed median latency — its time to first token, for a stream —
 * (`TooSlow`), so starting it would most likely only spend the rest. Its breaker did not count it.
 *
 * @since 0.2.0
 * @category Errors
 */
export class DeadlineExceeded extends Schema.TaggedError<DeadlineExceeded>(
  "effect-llm-resilience/DeadlineExceeded"
)("DeadlineExceeded", {
  key: Schema.String,
  reason: Schema.Literal("Expired", "TooSlow"),
  /** What was left of the deadline when the step came up. */
  remainingMs: Schema.Number,
  /** The step's observed median latency, for `TooSlow`. */
  p50Ms: Schema.optional(Schema.Number)
}) {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return this.reason === "Expired"
      ? `${this.key} skipped: the request deadline has passed`
      : `${this.key} skipped: ${Math.round(this.remainingMs)} ms left of the request deadline, its observed median is ${
        Math.round(this.p50Ms ?? 0)
      } ms`
  }
}

/**
 * One step of a fallback chain as it is reported: which tier, what it was, how it ended. `error` is the failure's
 * tag, `reason` its reason when it has one; `message` comes from the taxonomy's own messages only (never prompt
 * text). `skipped` marks a tier refused without a call (an open breaker, a full rate limiter). `retryAfterMs` is when
 * the step could be tried again, where that is known: an open breaker's remaining cooldown, the limiter's wait, or the
 * provider's own `Retry-After`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const FallbackAttempt = Schema.Struct({
  tier: Schema.Number,
  label: Schema.String,
  error: Schema.String,
  reason: Schema.optional(Schema.String),
  message: Schema.String,
  skipped: Schema.Boolean,
  latencyMs: Schema.Number,
  retryAfterMs: Schema.optional(Schema.Number),
  /** The provider's error code, or the system code of a connection failure (`ECONNREFUSED`). */
  code: Schema.optional(Schema.String),
  /** The host (and port) a connection failure was about, without credentials. */
  host: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category Models
 */
export type FallbackAttempt = typeof FallbackAttempt.Type

/**
 * Every tier of a fallback chain failed or was skipped. `attempts` lists them in order. `deadlineExceeded` is set when
 * the request's `deadline` ran out before a step could serve (steps cut short or skipped for it).
 *
 * @since 0.1.0
 * @category Errors
 */
export class FallbackExhausted extends Schema.TaggedError<FallbackExhausted>(
  "effect-llm-resilience/FallbackExhausted"
)("FallbackExhausted", {
  attempts: Schema.Array(FallbackAttempt),
  deadlineExceeded: Schema.optional(Schema.Boolean)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const steps = this.attempts.map((attempt) =>
      `${attempt.tier}. ${attempt.label}: ${attempt.skipped ? "skipped, " : ""}${attempt.error}${
        attempt.reason !== undefined ? ` ${attempt.reason}` : ""
      }`
    )
    return `All ${this.attempts.length} fallback tiers failed (${steps.join("; ")})${
      this.deadlineExceeded === true ? "; the request deadline ran out" : ""
    }`
  }

  /**
   * The soonest any step could be tried again, when every step said: for a `Retry-After` of the application's own
   * (an HTTP 503 to its callers, say). `undefined` when some step gave no such time.
   *
   * @since 0.1.0
   */
  get retryAfter(): Duration.Duration | undefined {
    let soonest = Infinity
    for (const attempt of this.attempts) {
      if (attempt.retryAfterMs === undefined) return undefined
      soonest = Math.min(soonest, attempt.retryAfterMs)
    }
    return Number.isFinite(soonest) ? Duration.millis(soonest) : undefined
  }
}

/**
 * Classifies what an official SDK (`openai`, `@anthropic-ai/sdk`) threw, for code that must call an SDK directly:
 * the same {@link HardFailure} the built-in providers produce, with the reason, `Retry-After` (read against the
 * Effect `Clock`) and the provider's error code, and without the provider's message (it may quote the prompt).
 *
 * @example
 * ```ts
 * import OpenAI from "openai"
 * const call = Effect.tryPromise({ try: () => client.files.list(), catch: (e) => e }).pipe(
 *   Effect.catchAll((error) => Effect.flip(LlmError.fromSdkError(OpenAI, error, { provider: "openai", model: "-" })))
 * )
 * ```
 *
 * @since 0.2.0
 * @category Constructors
 */
export const fromSdkError = <E extends classify.SdkApiError>(
  sdk: classify.SdkErrorClasses<E>,
  error: unknown,
  context: { readonly provider: string; readonly model: string }
): Effect.Effect<HardFailure> =>
  Effect.map(
    Clock.currentTimeMillis,
    (nowMillis) => classify.fromSdkError(sdk, sdkErrorCode, error, { ...context, nowMillis })
  )

// openai names the provider's error code `code`, @anthropic-ai/sdk `errorCode`.
const sdkErrorCode = (error: classify.SdkApiError): string | undefined => {
  const code = "errorCode" in error ? error.errorCode : "code" in error ? error.code : undefined
  return typeof code === "string" ? code : undefined
}
