/**
 * Checks that turn a successful HTTP answer into a `SoftFailure` (wrong: format, schema, quality) or a
 * `DegradedResponse` (usable but truncated, repetitive or slow, with the result attached).
 *
 * A check is a function of the result; checks compose with {@link all} and run with {@link validate}. A check
 * (or a scorer) that throws is a defect in the caller's code, not a provider failure, and surfaces as one.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { notePassedScore } from "./internal/observability.js"
import type { CompletionResult } from "./Llm.js"
import { type DegradedReason, DegradedResponse, SoftFailure, type SoftReason } from "./LlmError.js"

/**
 * @since 0.1.0
 * @category Models
 */
export type Check = (result: CompletionResult) => Effect.Effect<void, SoftFailure | DegradedResponse>

const soft = (result: CompletionResult, reason: SoftReason, detail: string, extra: {
  readonly score?: number
  readonly cause?: unknown
} = {}) =>
  new SoftFailure({
    reason,
    provider: result.provider,
    model: result.model,
    requestId: result.requestId,
    retryable: true,
    detail,
    ...extra
  })

const degraded = (result: CompletionResult, reason: DegradedReason, detail: string) =>
  new DegradedResponse({
    reason,
    provider: result.provider,
    model: result.model,
    requestId: result.requestId,
    retryable: false,
    detail,
    result
  })

// Models often wrap JSON in a Markdown fence even in JSON mode.
const FENCE = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/

const parseJson = (content: string): { readonly ok: true; readonly value: unknown } | { readonly ok: false } => {
  const match = FENCE.exec(content)
  try {
    return { ok: true, value: JSON.parse(match?.[1] ?? content) }
  } catch {
    return { ok: false }
  }
}

const issuePaths = (error: ParseResult.ParseError): string => {
  const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
    issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".")
  )
  return [...new Set(paths)].join(", ")
}

/**
 * The content must be valid JSON (a surrounding Markdown code fence is tolerated).
 *
 * @since 0.1.0
 * @category Format
 */
export const json: Check = (result) =>
  parseJson(result.content).ok ? Effect.void : Effect.fail(soft(result, "FormatViolation", "content is not valid JSON"))

/**
 * The content must be a JSON object holding every key given.
 *
 * @since 0.1.0
 * @category Format
 */
export const requiredKeys = (keys: ReadonlyArray<string>): Check => (result) => {
  const parsed = parseJson(result.content)
  if (!parsed.ok) return Effect.fail(soft(result, "FormatViolation", "content is not valid JSON"))
  const value = parsed.value
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Effect.fail(soft(result, "FormatViolation", "content is not a JSON object"))
  }
  const missing = keys.filter((key) => !Object.prototype.hasOwnProperty.call(value, key))
  return missing.length === 0
    ? Effect.void
    : Effect.fail(soft(result, "SchemaMismatch", `missing keys: ${missing.join(", ")}`))
}

/**
 * The content must match `pattern`. `name` describes the expected format in the failure (the content is never
 * quoted).
 *
 * @since 0.1.0
 * @category Format
 */
export const matches = (pattern: RegExp, name = pattern.source): Check => (result) => {
  pattern.lastIndex = 0
  return pattern.test(result.content)
    ? Effect.void
    : Effect.fail(soft(result, "FormatViolation", `content does not match ${name}`))
}

/**
 * The content length in characters must be within the bounds.
 *
 * @since 0.1.0
 * @category Format
 */
export const length = (bounds: { readonly min?: number; readonly max?: number }): Check => (result) => {
  const size = result.content.length
  if (bounds.min !== undefined && size < bounds.min) {
    return Effect.fail(soft(result, "FormatViolation", `content length ${size} is below ${bounds.min}`))
  }
  if (bounds.max !== undefined && size > bounds.max) {
    return Effect.fail(soft(result, "FormatViolation", `content length ${size} is above ${bounds.max}`))
  }
  return Effect.void
}

/**
 * Decodes the content as JSON into `schema`'s type: invalid JSON is a `FormatViolation`, a value that does not match
 * is a `SchemaMismatch` whose `cause` is the `ParseError` and whose `detail` names the paths (not the values).
 *
 * @since 0.1.0
 * @category Structured output
 */
export const decode = <A, I>(schema: Schema.Schema<A, I>) => {
  const decodeValue = Schema.decodeUnknownEither(schema, { errors: "all" })
  return (result: CompletionResult): Effect.Effect<A, SoftFailure> => {
    const parsed = parseJson(result.content)
    if (!parsed.ok) return Effect.fail(soft(result, "FormatViolation", "content is not valid JSON"))
    const decoded = decodeValue(parsed.value)
    if (decoded._tag === "Right") return Effect.succeed(decoded.right)
    return Effect.fail(
      soft(result, "SchemaMismatch", `schema mismatch at ${issuePaths(decoded.left)}`, { cause: decoded.left })
    )
  }
}

/**
 * {@link decode} as a check.
 *
 * @since 0.1.0
 * @category Structured output
 */
export const schema = <A, I>(target: Schema.Schema<A, I>): Check => {
  const run = decode(target)
  return (result) => Effect.asVoid(run(result))
}

/**
 * A tool call whose arguments decoded: `value` is of the tool's schema type.
 *
 * @since 0.2.0
 * @category Tool calls
 */
export type DecodedToolCall<S extends Record<string, Schema.Schema.AnyNoContext>> = {
  readonly [K in keyof S & string]: { readonly id: string; readonly name: K; readonly value: Schema.Schema.Type<S[K]> }
}[keyof S & string]

/**
 * Decodes every tool call of the result with the schema of its tool (keyed by tool name). A call to a tool not in
 * `schemas`, arguments that are not JSON, or arguments that do not match are a `SoftFailure` `SchemaMismatch` naming
 * the call and the paths (never the values). A result without tool calls decodes to none.
 *
 * @since 0.2.0
 * @category Tool calls
 */
export const decodeToolCalls = <S extends Record<string, Schema.Schema.AnyNoContext>>(schemas: S) => {
  const decoders = new Map<string, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
  for (const [name, schema] of Object.entries(schemas)) {
    decoders.set(name, Schema.decodeUnknownEither(schema, { errors: "all" }))
  }
  return (result: CompletionResult): Effect.Effect<ReadonlyArray<DecodedToolCall<S>>, SoftFailure> => {
    const decoded: Array<{ readonly id: string; readonly name: string; readonly value: unknown }> = []
    for (const call of result.toolCalls ?? []) {
      const decoder = decoders.get(call.name)
      const where = `tool call ${call.id} (${call.name})`
      if (decoder === undefined) return Effect.fail(soft(result, "SchemaMismatch", `${where}: unknown tool`))
      const parsed = parseJson(call.arguments.trim() === "" ? "{}" : call.arguments)
      if (!parsed.ok) return Effect.fail(soft(result, "SchemaMismatch", `${where}: arguments are not valid JSON`))
      const value = decoder(parsed.value)
      if (value._tag === "Left") {
        return Effect.fail(
          soft(result, "SchemaMismatch", `${where}: arguments mismatch at ${issuePaths(value.left)}`, {
            cause: value.left
          })
        )
      }
      decoded.push({ id: call.id, name: call.name, value: value.right })
    }
    // Each value was decoded by the schema registered under its call's name.
    return Effect.succeed(decoded as ReadonlyArray<DecodedToolCall<S>>)
  }
}

/**
 * {@link decodeToolCalls} as a check: every tool call must name a known tool and carry arguments its schema decodes.
 *
 * @since 0.2.0
 * @category Tool calls
 */
export const toolArguments = <S extends Record<string, Schema.Schema.AnyNoContext>>(schemas: S): Check => {
  const run = decodeToolCalls(schemas)
  return (result) => Effect.asVoid(run(result))
}

/**
 * A quality scorer returning 0..1 (synchronously or as an Effect); a score under `threshold` (default 0.7) is a
 * `QualityBelowThreshold` soft failure carrying the score. A score outside 0..1 or NaN is a defect.
 *
 * @since 0.1.0
 * @category Quality
 */
export const score = <R = never>(
  scorer: (result: CompletionResult) => number | Effect.Effect<number, never, R>,
  options: { readonly threshold?: number } = {}
) =>
(result: CompletionResult): Effect.Effect<void, SoftFailure, R> => {
  const threshold = options.threshold ?? 0.7
  return Effect.suspend(() => {
    const scored = scorer(result)
    return typeof scored === "number" ? Effect.succeed(scored) : scored
  }).pipe(
    Effect.flatMap((value) => {
      if (!(value >= 0 && value <= 1)) return Effect.dieMessage(`quality scorer returned ${value}, expected 0..1`)
      // A passing score reaches the metrics too when `Resilient` runs the check (it knows the provider:model).
      return value >= threshold ? notePassedScore(value) : Effect.fail(
        soft(result, "QualityBelowThreshold", `quality score ${value} is below ${threshold}`, { score: value })
      )
    })
  )
}

/**
 * `finishReason: "length"`: the answer stopped at the token limit.
 *
 * @since 0.1.0
 * @category Degraded
 */
export const truncated: Check = (result) =>
  result.finishReason === "length"
    ? Effect.fail(degraded(result, "Truncated", "finish reason length (token limit reached)"))
    : Effect.void

/**
 * The share of word n-grams that repeat an earlier n-gram. 0 for text shorter than `n` words.
 *
 * @since 0.1.0
 * @category Degraded
 */
export const repeatedNgramRatio = (text: string, n = 4): number => {
  const words = text.toLowerCase().split(/\s+/).filter((word) => word.length > 0)
  const total = words.length - n + 1
  if (total <= 0) return 0
  const seen = new Set<string>()
  let repeated = 0
  for (let i = 0; i < total; i++) {
    const gram = words.slice(i, i + n).join(" ")
    if (seen.has(gram)) repeated++
    else seen.add(gram)
  }
  return repeated / total
}

/**
 * A degenerate, looping answer: the repeated word n-gram ratio (default n = 4) is above `threshold` (default 0.5),
 * counted only for answers of at least `minWords` words (default 20).
 *
 * @since 0.1.0
 * @category Degraded
 */
export const repetitive = (
  options: { readonly n?: number; readonly threshold?: number; readonly minWords?: number } = {}
): Check =>
(result) => {
  const n = options.n ?? 4
  const threshold = options.threshold ?? 0.5
  const words = result.content.split(/\s+/).filter((word) => word.length > 0).length
  if (words < (options.minWords ?? 20)) return Effect.void
  const ratio = repeatedNgramRatio(result.content, n)
  return ratio > threshold
    ? Effect.fail(degraded(result, "Repetitive", `repeated ${n}-gram ratio ${ratio.toFixed(2)} above ${threshold}`))
    : Effect.void
}

/**
 * Latency over a per-model budget. `budget` is one duration for every model, or a function of the model.
 *
 * @since 0.1.0
 * @category Degraded
 */
export const slow = (
  budget: Duration.DurationInput | ((model: string) => Duration.DurationInput | undefined)
): Check =>
(result) => {
  const limit = typeof budget === "function" ? budget(result.model) : budget
  if (limit === undefined) return Effect.void
  const millis = Duration.toMillis(limit)
  return result.latencyMs > millis
    ? Effect.fail(degraded(result, "Slow", `latency ${result.latencyMs} ms above the ${millis} ms budget`))
    : Effect.void
}

/**
 * Runs checks in order; the first failure wins.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const all = (...checks: ReadonlyArray<Check>): Check => (result) =>
  Effect.forEach(checks, (check) => check(result), { discard: true })

/**
 * Applies a check to the result of an effect.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const validate: {
  (check: Check): <E, R>(
    self: Effect.Effect<CompletionResult, E, R>
  ) => Effect.Effect<CompletionResult, E | SoftFailure | DegradedResponse, R>
  <E, R>(
    self: Effect.Effect<CompletionResult, E, R>,
    check: Check
  ): Effect.Effect<CompletionResult, E | SoftFailure | DegradedResponse, R>
} = dual(
  2,
  <E, R>(self: Effect.Effect<CompletionResult, E, R>, check: Check) =>
    Effect.flatMap(self, (result) => Effect.as(check(result), result))
)

/**
 * Accepts a degraded answer: a `DegradedResponse` becomes its carried result (optionally only for some reasons).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const acceptDegraded = <E, R>(
  self: Effect.Effect<CompletionResult, E | DegradedResponse, R>,
  reasons?: ReadonlyArray<DegradedReason>
): Effect.Effect<CompletionResult, E | DegradedResponse, R> =>
  Effect.catchIf(
    self,
    (error): error is DegradedResponse =>
      error instanceof DegradedResponse && (reasons === undefined || reasons.includes(error.reason)),
    (error) => Effect.succeed(error.result)
  )
