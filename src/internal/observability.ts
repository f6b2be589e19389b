import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Inspectable from "effect/Inspectable"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Tracer from "effect/Tracer"
import type { FallbackAttempt } from "../LlmError.js"
import type { ResilientResult } from "../Resilient.js"
import { jsonLine, roundFraction, roundMillis } from "./logLine.js"
import * as metrics from "./metrics.js"

/** @internal The log message of a request event; its fields are the log annotations. */
export const REQUEST_EVENT = "llm.request"

/** @internal A failed ladder step as a request event lists it. */
export interface EventAttempt {
  readonly tier: number
  readonly label: string
  readonly error: string
  readonly reason?: string
  readonly code?: string
  readonly host?: string
  readonly skipped: boolean
  readonly latency_ms: number
}

const eventAttempt = (attempt: FallbackAttempt): EventAttempt => ({
  tier: attempt.tier,
  label: attempt.label,
  error: attempt.error,
  ...(attempt.reason !== undefined ? { reason: attempt.reason } : {}),
  ...(attempt.code !== undefined ? { code: attempt.code } : {}),
  ...(attempt.host !== undefined ? { host: attempt.host } : {}),
  skipped: attempt.skipped,
  latency_ms: roundMillis(attempt.latencyMs)
})

/** @internal What a failed request's event says about its failure: class, reason, and every step's. */
const failureOf = (
  exit: Exit.Exit<ResilientResult, unknown>
): { error: string | null; reason: string | null; attempts: ReadonlyArray<EventAttempt> | null } => {
  if (Exit.isSuccess(exit)) {
    const attempts = exit.value.attempts
    return { error: null, reason: null, attempts: attempts.length === 0 ? null : attempts.map(eventAttempt) }
  }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") {
    return { error: Cause.isInterruptedOnly(exit.cause) ? "Interrupted" : "Defect", reason: null, attempts: null }
  }
  const error = failure.value
  const tag: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "_tag") : undefined
  const reason: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "reason") : undefined
  const steps: unknown = tag === "FallbackExhausted" ? Reflect.get(error as object, "attempts") : undefined
  const attempts = Array.isArray(steps) ? (steps as ReadonlyArray<FallbackAttempt>).map(eventAttempt) : null
  // An exhausted ladder has no reason of its own: the last step tried failed for the request.
  const lastTried = attempts?.filter((attempt) => !attempt.skipped).at(-1) ?? attempts?.at(-1)
  return {
    error: typeof tag === "string" ? tag : "Unknown",
    reason: typeof reason === "string" ? reason : lastTried?.reason ?? null,
    attempts
  }
}

/** @internal The per-request log event; the field names are the log schema. */
export class RequestEvent {
  readonly event = REQUEST_EVENT
  constructor(
    readonly level: "info" | "warn" | "error",
    readonly ts: string,
    readonly request_id: string,
    readonly provider: string,
    readonly model: string,
    readonly attempt: number,
    readonly fallback_from: string | null,
    readonly duration_ms: number,
    readonly ttft_ms: number | null,
    readonly input_tokens: number,
    readonly output_tokens: number,
    readonly cost_usd: number,
    readonly circuit_state: string | null,
    readonly quality_score: number | null,
    readonly format_valid: boolean | null,
    readonly error: string | null = null,
    readonly reason: string | null = null,
    readonly attempts: ReadonlyArray<EventAttempt> | null = null
  ) {}

  /**
   * The fields a log line carries as annotations: all but `event` (the message), `level` (the log level) and `ts`
   * (the log's own timestamp); `null`s are left out.
   */
  annotations(): Record<string, string | number | boolean> {
    const annotations: Record<string, string | number | boolean> = {
      request_id: this.request_id,
      provider: this.provider,
      model: this.model,
      attempt: this.attempt,
      duration_ms: this.duration_ms,
      input_tokens: this.input_tokens,
      output_tokens: this.output_tokens,
      cost_usd: this.cost_usd
    }
    if (this.fallback_from !== null) annotations.fallback_from = this.fallback_from
    if (this.ttft_ms !== null) annotations.ttft_ms = this.ttft_ms
    if (this.circuit_state !== null) annotations.circuit_state = this.circuit_state
    if (this.quality_score !== null) annotations.quality_score = this.quality_score
    if (this.format_valid !== null) annotations.format_valid = this.format_valid
    if (this.error !== null) annotations.error = this.error
    if (this.reason !== null) annotations.reason = this.reason
    // Compact JSON: Effect's logfmt logger would print an array over several lines.
    if (this.attempts !== null) annotations.attempts = JSON.stringify(this.attempts)
    return annotations
  }

  toJSON() {
    return {
      event: this.event,
      level: this.level,
      ts: this.ts,
      request_id: this.request_id,
      provider: this.provider,
      model: this.model,
      attempt: this.attempt,
      fallback_from: this.fallback_from,
      duration_ms: this.duration_ms,
      ttft_ms: this.ttft_ms,
      input_tokens: this.input_tokens,
      output_tokens: this.output_tokens,
      cost_usd: this.cost_usd,
      circuit_state: this.circuit_state,
      quality_score: this.quality_score,
      format_valid: this.format_valid,
      error: this.error,
      reason: this.reason,
      attempts: this.attempts
    }
  }
}

// A request event is logged as the message `llm.request` with its fields as annotations. Loggers that want it whole
// find it by its `request_id` annotation while it is being logged: a lookup, where rebuilding it from the annotations
// costs ≈ 15 µs and carrying it in a FiberRef two more fiber-ref updates.
const beingLogged = new Map<string, RequestEvent>()

/** @internal The request event a log entry carries, if any. */
export const requestEventOf = (
  entry: Pick<Logger.Logger.Options<unknown>, "message" | "annotations">
): RequestEvent | undefined => {
  const message = Array.isArray(entry.message) && entry.message.length === 1 ? entry.message[0] : entry.message
  if (message !== REQUEST_EVENT) return undefined
  const requestId = HashMap.get(entry.annotations, "request_id")
  return requestId._tag === "Some" && typeof requestId.value === "string"
    ? beingLogged.get(requestId.value)
    : undefined
}

/** @internal */
export const makeRequestLogger = (write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((entry) => {
    const event = requestEventOf(entry)
    if (event !== undefined) write(JSON.stringify(event))
  })

/** @internal Every log entry as one JSON line: request events in their schema, every other line by `jsonLine`. */
export const makeJsonLogger = (write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((entry) => {
    const event = requestEventOf(entry)
    write(event !== undefined ? JSON.stringify(event) : jsonLine(entry))
  })

// --- per-request bookkeeping ---------------------------------------------------------------------------------------

/** @internal What the attempts of one request found out, for its log event and span. */
export class RequestTrace {
  qualityScore: number | undefined = undefined
  formatValid: boolean | undefined = undefined
  /** A `Quality.score` that passed in the attempt running now; the attempt records it under its label if it succeeds. */
  passedScore: number | undefined = undefined
}

/** @internal `Quality.score` passed with `score`: noted for the request this fiber serves, if any. */
export const notePassedScore = (score: number): Effect.Effect<void> =>
  Effect.map(FiberRef.get(currentTrace), (trace) => {
    if (trace !== undefined) trace.passedScore = score
  })

/** @internal The trace of the request this fiber serves (set once per request). */
export const currentTrace = globalValue(
  Symbol.for("effect-llm-resilience/Observability/currentTrace"),
  () => FiberRef.unsafeMake<RequestTrace | undefined>(undefined)
)

/** @internal */
export const recordQualityScore = (label: string, score: number, trace: RequestTrace | undefined): void => {
  metrics.update(metrics.forLabel(label).qualityScore, score)
  if (trace !== undefined) trace.qualityScore = score
}

/** @internal */
export const recordFormat = (label: string, valid: boolean, trace: RequestTrace): void => {
  const m = metrics.forLabel(label)
  metrics.update(valid ? m.formatValid : m.formatInvalid, 1)
  metrics.update(m.formatComplianceRate, m.formats.add(valid))
  trace.formatValid = valid
}

let sequence = 0
const prefix = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, "0")

/** @internal A process-unique request id: cheap, no randomness per call. */
export const nextRequestId = (): string => `req_${prefix}${(sequence++).toString(16).padStart(8, "0")}`

const classOf = (error: unknown): metrics.RequestOutcome => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  switch (tag) {
    case "SoftFailure":
      return "soft"
    case "DegradedResponse":
      return "degraded"
    case "CircuitOpen":
    case "RateLimitExceeded":
    case "RetryBudgetExhausted":
    case "InvalidRequest":
      return "rejected"
    default:
      return "hard"
  }
}

/** @internal The outcome class of a failed request. */
export const requestFailureOutcome = (error: unknown): metrics.RequestOutcome => {
  if (typeof error === "object" && error !== null && "_tag" in error && error._tag === "FallbackExhausted") {
    const attempts =
      (error as unknown as { readonly attempts: ReadonlyArray<{ readonly error: string; readonly skipped: boolean }> })
        .attempts
    const tried = attempts.filter((attempt) => !attempt.skipped)
    const last = tried[tried.length - 1]
    return last === undefined ? "rejected" : classOf({ _tag: last.error })
  }
  return classOf(error)
}

/** @internal */
export const attemptOutcome = (
  exit: Exit.Exit<{ readonly degraded: unknown }, unknown>
): metrics.RequestOutcome | undefined => {
  if (Exit.isSuccess(exit)) return exit.value.degraded === undefined ? "success" : "degraded"
  const failure = Cause.failureOption(exit.cause)
  return failure._tag === "Some" ? classOf(failure.value) : Cause.isInterruptedOnly(exit.cause) ? undefined : "hard"
}

/** @internal Records one ladder step: `llm.attempts` and the span's outcome. */
export const recordAttempt = (
  span: Tracer.Span | undefined,
  label: string,
  exit: Exit.Exit<{ readonly degraded: unknown }, unknown>,
  trace: RequestTrace
): void => {
  const outcome = attemptOutcome(exit)
  if (outcome === undefined) {
    span?.attribute("llm.outcome", "interrupted")
    return
  }
  metrics.update(metrics.forLabel(label).attempt(outcome), 1)
  span?.attribute("llm.outcome", outcome)
  if (Exit.isFailure(exit)) {
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") {
      const error = failure.value as { readonly _tag?: string; readonly reason?: string; readonly score?: number }
      if (error._tag !== undefined) span?.attribute("error.type", error._tag)
      if (typeof error.reason === "string") span?.attribute("llm.error.reason", error.reason)
      if (error._tag === "SoftFailure" && typeof error.score === "number") {
        recordQualityScore(label, error.score, trace)
      }
    }
  }
}

/** @internal What `complete` knows of a request from its start: the span, the id, the primary, the start, the trace. */
export interface RequestReport {
  readonly span: Tracer.Span | undefined
  /** Given when the request opened a span; else drawn here, and only when the event is logged. */
  readonly requestId: string | undefined
  readonly primary: string
  readonly startedAt: number
  readonly trace: RequestTrace
}

const levels = {
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error
} as const

/**
 * @internal Records a request's metrics (with the breaker state gauge, given `circuitState`) and span attributes, and
 * returns its log event — unless its level is below `minimum`: then no event, id or timestamp is built for a log that
 * would drop it.
 */
export const recordRequest = (
  exit: Exit.Exit<ResilientResult, unknown>,
  report: RequestReport,
  endedAt: number,
  circuitState: string | undefined,
  ttftMs: number | undefined,
  minimum: LogLevel.LogLevel = LogLevel.All
): RequestEvent | undefined => {
  const { span, trace } = report
  const duration = endedAt - report.startedAt
  let m: metrics.ModelMetrics
  let outcome: metrics.RequestOutcome
  let result: ResilientResult | undefined
  if (Exit.isSuccess(exit)) {
    result = exit.value
    outcome = result.degraded === undefined ? "success" : "degraded"
    m = result.servedBy === "cache" || result.servedBy === "static"
      ? metrics.forModel(result.servedBy, result.model)
      : metrics.forLabel(result.servedBy)
  } else {
    const failure = Cause.failureOption(exit.cause)
    outcome = failure._tag === "Some" ? requestFailureOutcome(failure.value) : "hard"
    m = metrics.forLabel(report.primary)
  }
  const { model, system } = m
  // The state of the answering provider's breaker (the primary's, when none answered), read as the request ended.
  if (circuitState !== undefined) metrics.update(m.breakerState, metrics.stateValue(circuitState))
  metrics.update(m.request(outcome, report.primary), 1)
  metrics.update(m.successRate, m.successes.add(outcome === "success"))
  metrics.update(m.duration, duration)
  metrics.update(m.operationDuration, duration / 1000)
  const fallbackFrom = result?.fallbackFrom ?? null
  const isFallback = result !== undefined && result.servedBy !== report.primary
  if (isFallback) metrics.update(m.fallback(report.primary), 1)
  const primaryMetrics = isFallback ? metrics.forLabel(report.primary) : m
  metrics.update(primaryMetrics.fallbackRate, primaryMetrics.fallbacks.add(isFallback))
  if (result !== undefined) {
    metrics.update(m.inputTokens, result.usage.inputTokens)
    metrics.update(m.outputTokens, result.usage.outputTokens)
    metrics.update(m.tokenUsageInput, result.usage.inputTokens)
    metrics.update(m.tokenUsageOutput, result.usage.outputTokens)
    if (result.costUsd > 0) metrics.update(m.cost, result.costUsd)
  }
  const attempt = result?.tier ?? Math.max(1, failedSteps(exit))
  const level = result === undefined ? "error" : outcome !== "success" || isFallback ? "warn" : "info"
  const requestId = report.requestId
  if (span !== undefined) {
    annotateRequest(span, { system, model, outcome, attempt, duration, fallbackFrom, result, report, circuitState })
  }
  // `LogLevel.greaterThanEqual`, without its dual dispatch: this runs for every request.
  if (levels[level].ordinal < minimum.ordinal) return undefined
  const failed = failureOf(exit)
  return new RequestEvent(
    level,
    new Date(endedAt).toISOString(),
    requestId ?? nextRequestId(),
    system,
    model,
    attempt,
    fallbackFrom,
    roundMillis(duration),
    ttftMs === undefined ? null : roundMillis(ttftMs),
    result?.usage.inputTokens ?? 0,
    result?.usage.outputTokens ?? 0,
    result === undefined ? 0 : roundFraction(result.costUsd),
    circuitState ?? null,
    trace.qualityScore === undefined ? null : roundFraction(trace.qualityScore),
    trace.formatValid ?? null,
    failed.error,
    failed.reason,
    failed.attempts
  )
}

const annotateRequest = (span: Tracer.Span, facts: {
  readonly system: string
  readonly model: string
  readonly outcome: metrics.RequestOutcome
  readonly attempt: number
  readonly duration: number
  readonly fallbackFrom: string | null
  readonly result: ResilientResult | undefined
  readonly report: RequestReport
  readonly circuitState: string | undefined
}): void => {
  const { attempt, circuitState, duration, fallbackFrom, model, outcome, report, result, system } = facts
  const { trace } = report
  span.attribute(metrics.attr.system, system)
  span.attribute(metrics.attr.providerName, system)
  span.attribute(metrics.attr.requestModel, model)
  if (report.requestId !== undefined) span.attribute("llm.request_id", report.requestId)
  span.attribute("llm.outcome", outcome)
  span.attribute("llm.attempt", attempt)
  span.attribute("llm.duration_ms", duration)
  if (fallbackFrom !== null) span.attribute("llm.fallback_from", fallbackFrom)
  if (circuitState !== undefined) span.attribute("llm.circuit_state", circuitState)
  if (trace.qualityScore !== undefined) span.attribute("llm.quality_score", trace.qualityScore)
  if (trace.formatValid !== undefined) span.attribute("llm.format_valid", trace.formatValid)
  if (result !== undefined) {
    span.attribute(metrics.attr.responseModel, result.model)
    span.attribute(metrics.attr.inputTokens, result.usage.inputTokens)
    span.attribute(metrics.attr.outputTokens, result.usage.outputTokens)
    span.attribute(metrics.attr.finishReasons, [result.finishReason])
    span.attribute("llm.cost_usd", result.costUsd)
    if (result.requestId !== undefined) span.attribute(metrics.attr.responseId, result.requestId)
    if (result.degraded !== undefined) span.attribute("llm.degraded", result.degraded)
  }
}

const failedSteps = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") return 0
  const error = failure.value as { readonly _tag?: string; readonly attempts?: ReadonlyArray<unknown> }
  return error._tag === "FallbackExhausted" && error.attempts !== undefined ? error.attempts.length : 1
}

/**
 * @internal Logs a request event at its level on `fiber`, synchronously: what `Effect.logWithLevel(level)(event)` does
 * under `Effect.annotateLogs(event.annotations())` (the fiber's `log`: minimum level, loggers, spans, the annotations,
 * the fiber refs as context, the date from the fiber's clock, redactables resolved against them), without setting the
 * fiber's annotations and putting them back — two copies of all its fiber refs — or running five effects. That cost
 * ≈ 10 µs per request, and Effect's default minimum level logs every served one (bench/compare.ts, "JSON request log").
 */
export const logEventNow = (fiber: Fiber.RuntimeFiber<unknown, unknown>, event: RequestEvent): void => {
  const level = levels[event.level]
  if (level.ordinal < fiber.getFiberRef(FiberRef.currentMinimumLogLevel).ordinal) return
  const loggers = fiber.getFiberRef(FiberRef.currentLoggers)
  if (HashSet.size(loggers) === 0) return
  const annotations = HashMap.mutate(fiber.getFiberRef(FiberRef.currentLogAnnotations), (map) => {
    for (const [key, value] of Object.entries(event.annotations())) HashMap.set(map, key, value)
  })
  const context = fiber.getFiberRefs()
  const options: Logger.Logger.Options<unknown> = {
    fiberId: fiber.id(),
    logLevel: level,
    // As `Effect.logWithLevel` passes its arguments: the message list.
    message: [REQUEST_EVENT],
    cause: Cause.empty,
    context,
    spans: fiber.getFiberRef(FiberRef.currentLogSpan),
    annotations,
    date: new Date(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis())
  }
  beingLogged.set(event.request_id, event)
  try {
    Inspectable.withRedactableContext(context, () => {
      for (const logger of loggers) logger.log(options)
    })
  } finally {
    beingLogged.delete(event.request_id)
  }
}

/** @internal A stream's time to first token; its tokens and outcome are recorded with its request (`recordRequest`). */
export const recordStreamEnd = (end: {
  readonly provider: string
  readonly model: string
  readonly ttftMs?: number | undefined
}): void => {
  if (end.ttftMs !== undefined) metrics.update(metrics.forModel(end.provider, end.model).ttft, end.ttftMs)
}
