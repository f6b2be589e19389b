/**
 * The schema of the configuration file (snake_case keys, as in LiteLLM's and Portkey's files) and of the
 * environment variables that override it. Durations stay strings here and are decoded with `Duration` later, so the
 * encoded and decoded forms are the same and every error points at what the user wrote.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { DegradedReason, HardReason } from "../../LlmError.js"
import { parseGoDuration } from "../headers.js"
import { checkDuration, MAX_TIMER_MILLIS } from "../options.js"

const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  // JSON would print NaN and ±Infinity (YAML `.nan`, `.inf`) as null.
  if (typeof u === "number" && !Number.isFinite(u)) return String(u)
  if (u === undefined) return "nothing"
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const DURATION = /^(\d+(?:\.\d+)?)\s+(nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/

/**
 * A duration in Effect's syntax (`"30 seconds"`, `"250 millis"`) or Go's compact one (`"30s"`, `"1m30s"`,
 * `"250ms"`, `"1.5h"`: the syntax of OpenAI's rate-limit headers, read by the same parser).
 * @internal
 */
export const decodeDuration = (input: string): Duration.Duration | undefined => {
  const checked = checkDuration(durationInput(input))
  return "millis" in checked ? Duration.millis(checked.millis) : undefined
}

// What `checkDuration` (the rule every building block applies: positive, finite, short enough for a timer) reads.
const durationInput = (input: string): Duration.DurationInput | undefined => {
  const match = DURATION.exec(input.trim())
  if (match !== null) return `${match[1]} ${match[2]}` as Duration.DurationInput
  return parseGoDuration(input)
}

const DURATION_DESCRIPTION = `a positive duration such as "30 seconds", "2 minutes", "30s" or "1m30s"`

// What is wrong with a duration the syntax accepts: said as it is, so '99999999999999999999 days' is not just
// "expected a positive duration".
const durationProblem = (input: string): string => {
  const parsed = durationInput(input)
  const checked = parsed === undefined ? undefined : checkDuration(parsed)
  return checked !== undefined && "problem" in checked && checked.problem.startsWith("must be at most")
    ? `expected a duration of at most ${MAX_TIMER_MILLIS} ms (about 24.8 days), got ${show(input)}`
    : `expected ${DURATION_DESCRIPTION}, got ${show(input)}`
}

/** @internal */
export const PositiveDuration = Schema.String.pipe(
  Schema.filter((s) => decodeDuration(s) !== undefined || durationProblem(s)),
  Schema.annotations({ description: DURATION_DESCRIPTION })
)

/** @internal */
export const PositiveInt = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n > 0) || `expected a positive integer, got ${show(n)}`),
  Schema.annotations({ description: "a positive integer" })
)

/** @internal */
export const NonNegativeInt = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 0) || `expected a non-negative integer, got ${show(n)}`),
  Schema.annotations({ description: "a non-negative integer" })
)

/** @internal */
export const NonNegative = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n >= 0) || `expected a non-negative number, got ${show(n)}`),
  Schema.annotations({ description: "a non-negative number" })
)

/** @internal */
export const Percent = Schema.Number.pipe(
  Schema.filter((n) =>
    (Number.isFinite(n) && n > 0 && n <= 100) || `expected a percentage in (0, 100], got ${show(n)}`
  ),
  Schema.annotations({ description: "a percentage in (0, 100]" })
)

/** @internal */
export const UnitInterval = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n >= 0 && n <= 1) || `expected a number in [0, 1], got ${show(n)}`),
  Schema.annotations({ description: "a number in [0, 1]" })
)

/** @internal */
export const Fraction = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0 && n <= 1) || `expected a number in (0, 1], got ${show(n)}`),
  Schema.annotations({ description: "a number in (0, 1]" })
)

/** @internal */
export const GreaterThanOne = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 1) || `expected a number greater than 1, got ${show(n)}`),
  Schema.annotations({ description: "a number greater than 1" })
)

/** @internal */
export const NonBlank = Schema.String.pipe(
  Schema.filter((s) => s.trim().length > 0 || "expected a non-empty string, got \"\""),
  Schema.annotations({ description: "a non-empty string" })
)

/** @internal */
export const EnvName = Schema.String.pipe(
  Schema.filter((s) =>
    /^[A-Za-z_][A-Za-z0-9_]*$/.test(s)
    || `expected an environment variable name such as "OPENAI_API_KEY", got ${show(s)}`
  ),
  Schema.annotations({ description: "an environment variable name" })
)

/** @internal */
export const isHttpUrl = (s: string): boolean => {
  try {
    const url = new URL(s)
    return url.protocol === "http:" || url.protocol === "https:"
  } catch {
    return false
  }
}

/** @internal */
export const HttpUrl = Schema.String.pipe(
  Schema.filter((s) => isHttpUrl(s) || `expected an http(s) URL, got ${show(s)}`),
  Schema.annotations({ description: "an http(s) URL" })
)

/** @internal */
export const ProviderType = Schema.Literal("openai", "anthropic", "openai-compatible")

/** @internal */
export const Strategy = Schema.Literal("ordered", "cost-first", "latency-first", "quality-first")

/** @internal */
export const PresetName = Schema.Literal("lenient", "balanced", "strict")

/** @internal */
export const RetryReasons = [...HardReason.literals, "Soft"] as const

/** @internal */
export const RetryPolicy = Schema.Struct({
  max_attempts: optional(PositiveInt),
  backoff: optional(Schema.Literal("exponential", "linear", "constant")),
  base_delay: optional(PositiveDuration),
  max_delay: optional(PositiveDuration),
  jitter: optional(UnitInterval),
  honor_retry_after: optional(Schema.Boolean)
})

/** @internal */
export type RetryPolicy = typeof RetryPolicy.Type

/** @internal */
export const RetrySection = Schema.Struct({
  enabled: optional(Schema.Boolean),
  max_attempts: optional(PositiveInt),
  attempt_timeout: optional(PositiveDuration),
  deadline: optional(PositiveDuration),
  retry_after_ceiling: optional(PositiveDuration),
  budget: optional(Schema.Union(
    Schema.Literal(false),
    Schema.Struct({
      ratio: optional(NonNegative),
      min_per_second: optional(NonNegative),
      window: optional(PositiveDuration)
    })
  )),
  policies: optional(Schema.Struct(
    Object.fromEntries(RetryReasons.map((reason) => [reason, optional(RetryPolicy)])) as {
      readonly [R in typeof RetryReasons[number]]: Schema.optionalWith<typeof RetryPolicy, { exact: true }>
    }
  ))
})

/** @internal */
export type RetrySection = typeof RetrySection.Type

/** @internal */
export const Retry = Schema.Union(Schema.Literal(false), RetrySection)

/** @internal */
export const BreakerSection = Schema.Struct({
  enabled: optional(Schema.Boolean),
  preset: optional(PresetName),
  consecutive_failures: optional(Schema.Union(Schema.Literal(false), PositiveInt)),
  /** The old name of `consecutive_failures`, kept as an alias; `consecutive_failures` wins when both are set. */
  threshold: optional(Schema.Union(Schema.Literal(false), PositiveInt)),
  failure_rate: optional(Schema.Union(Schema.Literal(false), Percent)),
  window: optional(PositiveInt),
  minimum_calls: optional(PositiveInt),
  cooldown: optional(PositiveDuration),
  cooldown_growth: optional(Schema.Union(
    Schema.Boolean,
    Schema.Struct({ factor: optional(GreaterThanOne), max: optional(PositiveDuration) })
  )),
  retry_after: optional(Schema.Literal("longer", "override", "ignore")),
  probes: optional(PositiveInt),
  success_threshold: optional(PositiveInt),
  probe_timeout: optional(PositiveDuration),
  weights: optional(Schema.Struct({
    hard: optional(UnitInterval),
    soft: optional(UnitInterval),
    degraded: optional(UnitInterval)
  })),
  latency: optional(Schema.Union(
    Schema.Boolean,
    Schema.Struct({ multiplier: optional(GreaterThanOne), baseline: optional(PositiveDuration) })
  )),
  slow_calls: optional(Schema.Union(
    Schema.Literal(false),
    Schema.Struct({ threshold: PositiveDuration, rate: optional(Percent) })
  )),
  hangs: optional(Schema.Union(
    Schema.Literal(false),
    Schema.Struct({
      after: optional(PositiveDuration),
      calls: optional(PositiveInt),
      multiplier: optional(GreaterThanOne)
    })
  ))
})

/** @internal */
export type BreakerSection = typeof BreakerSection.Type

/** @internal */
export const Breaker = Schema.Union(PresetName, Schema.Literal(false), BreakerSection)

/** @internal */
export const Limits = Schema.Struct({
  rpm: optional(PositiveInt),
  tpm: optional(PositiveInt),
  concurrency: optional(PositiveInt)
})

/** @internal */
export const Capabilities = Schema.Struct({
  tools: optional(Schema.Boolean),
  images: optional(Schema.Boolean),
  json_schema: optional(Schema.Boolean)
})

/** @internal */
export type Capabilities = typeof Capabilities.Type

/** @internal */
export const Price = Schema.Struct({
  input_per_1k: NonNegative,
  output_per_1k: NonNegative
})

/** @internal */
export const Weight = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0) || `expected a finite number above 0, got ${show(n)}`),
  Schema.annotations({ description: "a finite number above 0" })
)

/** @internal */
export const EjectionPercent = Schema.Number.pipe(
  Schema.filter((n) =>
    (Number.isFinite(n) && n >= 0 && n <= 100) || `expected a percentage in [0, 100], got ${show(n)}`
  ),
  Schema.annotations({ description: "a percentage in [0, 100]" })
)

/** One deployment of a model: its own key and endpoint, over the model's other settings. @internal */
export const DeploymentEntry = Schema.Struct({
  name: NonBlank,
  api_key_env: optional(EnvName),
  base_url: optional(HttpUrl),
  weight: optional(Weight),
  limits: optional(Schema.Union(Schema.Literal(false), Limits))
})

/** @internal */
export const Model = Schema.Struct({
  id: NonBlank,
  provider: ProviderType,
  model: NonBlank,
  name: optional(NonBlank),
  api_key_env: optional(EnvName),
  base_url: optional(HttpUrl),
  organization: optional(NonBlank),
  project: optional(NonBlank),
  headers: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  default_max_tokens: optional(PositiveInt),
  timeout: optional(PositiveDuration),
  first_chunk_timeout: optional(PositiveDuration),
  stall_timeout: optional(PositiveDuration),
  connect_timeout: optional(PositiveDuration),
  context_window: optional(PositiveInt),
  max_output_tokens: optional(PositiveInt),
  capabilities: optional(Capabilities),
  price: optional(Price),
  limits: optional(Schema.Union(Schema.Literal(false), Limits)),
  downgrades: optional(Schema.Array(NonBlank)),
  quality_rank: optional(NonNegative),
  deployments: optional(Schema.NonEmptyArray(DeploymentEntry)),
  balance: optional(Schema.Literal("weighted-round-robin", "least-in-flight", "usage", "latency")),
  max_ejection_percent: optional(EjectionPercent),
  panic: optional(Schema.Literal("oldest", "skip"))
})

/** @internal */
export type Model = typeof Model.Type

/** @internal */
export const ChainEntry = Schema.Union(
  NonBlank,
  Schema.Struct({
    model: NonBlank,
    retry: optional(Retry),
    breaker: optional(Breaker),
    timeout: optional(PositiveDuration),
    first_chunk_timeout: optional(PositiveDuration),
    stall_timeout: optional(PositiveDuration),
    quality_rank: optional(NonNegative)
  })
)

/** @internal */
export type ChainEntry = typeof ChainEntry.Type

/** @internal */
export const Document = Schema.Struct({
  preset: optional(Schema.Literal("interactive", "batch")),
  strategy: optional(Strategy),
  deadline: optional(PositiveDuration),
  when_all_refused: optional(Schema.Struct({ wait: PositiveDuration })),
  relaxation: optional(Schema.Boolean),
  continuation: optional(Schema.Boolean),
  degraded: optional(Schema.Union(Schema.Literal("fallback", "accept"), Schema.NonEmptyArray(DegradedReason))),
  retry: optional(Retry),
  breaker: optional(Breaker),
  timeout: optional(PositiveDuration),
  rate_limit: optional(Schema.Struct({
    mode: optional(Schema.Literal("wait", "fail-fast")),
    max_wait: optional(Schema.Union(Schema.Literal("infinity"), PositiveDuration)),
    output_token_estimate: optional(PositiveInt),
    adaptive: optional(Schema.Boolean),
    idle_expiry: optional(Schema.Union(Schema.Literal(false), PositiveDuration))
  })),
  models: Schema.NonEmptyArray(Model),
  chain: Schema.NonEmptyArray(ChainEntry),
  degrade: optional(Schema.Struct({
    cache: optional(Schema.Union(
      Schema.Literal(false),
      Schema.Struct({
        enabled: optional(Schema.Boolean),
        ttl: optional(PositiveDuration),
        capacity: optional(PositiveInt)
      })
    )),
    static_response: optional(NonBlank)
  })),
  hedging: optional(Schema.Union(
    Schema.Literal(false),
    Schema.Struct({
      enabled: optional(Schema.Boolean),
      delay: optional(Schema.Union(Schema.Literal("p95"), PositiveDuration)),
      max_fraction: optional(Fraction)
    })
  ))
})

/** @internal */
export type Document = typeof Document.Type

// -----------------------------------------------------------------------------
// environment variables
// -----------------------------------------------------------------------------

const BooleanString = Schema.String.pipe(
  Schema.filter((s) =>
    ["true", "false", "1", "0", "yes", "no", "on", "off"].includes(s.trim().toLowerCase())
    || `expected true or false, got ${show(s)}`
  ),
  Schema.annotations({ description: "true or false" })
)

const numeric = (schema: Schema.Schema<number>, description: string) =>
  Schema.String.pipe(
    Schema.filter((s) => (s.trim() !== "" && !Number.isNaN(Number(s))) || `expected ${description}, got ${show(s)}`),
    Schema.annotations({ description })
  ).pipe(Schema.compose(Schema.NumberFromString), Schema.compose(Schema.typeSchema(schema)))

/** @internal */
export const parseBoolean = (s: string): boolean => ["true", "1", "yes", "on"].includes(s.trim().toLowerCase())

/**
 * Each variable, the schema its value must satisfy (from a string), and its description for the docs.
 *
 * @internal
 */
export const env = {
  LLM_STRATEGY: Strategy,
  LLM_DEADLINE: PositiveDuration,
  LLM_WHEN_ALL_REFUSED_WAIT: PositiveDuration,
  LLM_RELAXATION: BooleanString,
  LLM_DEGRADED: Schema.Literal("fallback", "accept"),
  LLM_TIMEOUT: PositiveDuration,
  LLM_FIRST_CHUNK_TIMEOUT: PositiveDuration,
  LLM_STALL_TIMEOUT: PositiveDuration,
  LLM_CONTINUATION: BooleanString,
  LLM_RETRY_ENABLED: BooleanString,
  LLM_RETRY_MAX_ATTEMPTS: numeric(PositiveInt, "a positive integer"),
  LLM_RETRY_ATTEMPT_TIMEOUT: PositiveDuration,
  LLM_RETRY_DEADLINE: PositiveDuration,
  LLM_RETRY_RETRY_AFTER_CEILING: PositiveDuration,
  LLM_RETRY_BUDGET_ENABLED: BooleanString,
  LLM_RETRY_BUDGET_RATIO: numeric(NonNegative, "a non-negative number"),
  LLM_CIRCUIT_BREAKER_ENABLED: BooleanString,
  LLM_CIRCUIT_BREAKER_PRESET: PresetName,
  LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES: numeric(PositiveInt, "a positive integer"),
  // The old name of LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES, kept as an alias.
  LLM_CIRCUIT_BREAKER_THRESHOLD: numeric(PositiveInt, "a positive integer"),
  LLM_CIRCUIT_BREAKER_FAILURE_RATE: numeric(Percent, "a percentage in (0, 100]"),
  LLM_CIRCUIT_BREAKER_COOLDOWN: PositiveDuration,
  LLM_CIRCUIT_BREAKER_PROBE_TIMEOUT: PositiveDuration,
  LLM_PRESET: Schema.Literal("interactive", "batch"),
  LLM_RATE_LIMIT_MODE: Schema.Literal("wait", "fail-fast"),
  LLM_RATE_LIMIT_MAX_WAIT: Schema.Union(Schema.Literal("infinity"), PositiveDuration),
  LLM_RATE_LIMIT_ADAPTIVE: BooleanString,
  LLM_RATE_LIMIT_IDLE_EXPIRY: Schema.Union(Schema.Literal("off"), PositiveDuration),
  LLM_CACHE_ENABLED: BooleanString,
  LLM_CACHE_TTL: PositiveDuration,
  LLM_CACHE_CAPACITY: numeric(PositiveInt, "a positive integer"),
  LLM_STATIC_RESPONSE: NonBlank,
  LLM_HEDGING_ENABLED: BooleanString,
  LLM_HEDGING_DELAY: Schema.Union(Schema.Literal("p95"), PositiveDuration),
  LLM_HEDGING_MAX_FRACTION: numeric(Fraction, "a number in (0, 1]")
} as const

/** @internal */
export type EnvName = keyof typeof env

/** @internal */
export type EnvValues = { -readonly [K in EnvName]?: Schema.Schema.Type<typeof env[K]> }
