/**
 * What a Resilient client tells the outside world: Effect metrics tagged with the OpenTelemetry GenAI attributes
 * (`gen_ai.system`, `gen_ai.request.model`), one structured log event per request, a span per request and per
 * ladder step, and alert rules evaluated in process (typed events) or by
 * Prometheus (`docs/prometheus/alerts.yml`).
 *
 * `Resilient` records all of it by itself; this module holds the definitions, the logger and
 * the alert evaluator. The Prometheus endpoint is `effect-llm-resilience/prometheus`. See docs/observability.md.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as genAiSpans from "./internal/genAiSpans.js"
import * as metrics from "./internal/metrics.js"
import * as internal from "./internal/observability.js"
import * as alerts from "./internal/observabilityAlerts.js"

// --- metrics -------------------------------------------------------------------------------------------------------

/**
 * The OpenTelemetry GenAI attribute names used as metric tags and span attributes.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const attributes = metrics.attr

/**
 * How a request (or one step of its ladder) ended: served fresh, a hard failure, a soft failure (format, schema,
 * quality), served degraded (truncated, repetitive, slow, cache, static), or refused locally (open breaker, rate
 * limiter, retry budget, invalid request).
 *
 * @since 0.1.0
 * @category Metrics
 */
export type Outcome = metrics.RequestOutcome

/**
 * Every metric, by name. Tags: `gen_ai.system` and `gen_ai.request.model` (the provider and model), plus the ones
 * listed in docs/observability.md. `llm.retries` and `llm.rate_limit.rejections` keep their own labels
 * (`provider`, `model`, `reason`; `key`, `limit`).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const Metrics = {
  requests: metrics.requestsTotal,
  attempts: metrics.attemptsTotal,
  successRate: metrics.successRate,
  requestDuration: metrics.requestDuration,
  timeToFirstToken: metrics.timeToFirstToken,
  tokens: metrics.tokensTotal,
  costUsd: metrics.costUsdTotal,
  retries: metrics.retriesTotal,
  fallbacks: metrics.fallbacksTotal,
  fallbackRate: metrics.fallbackRate,
  breakerState: metrics.breakerState,
  breakerTransitions: metrics.breakerTransitions,
  rateLimitWait: metrics.rateLimitWait,
  rateLimitRejections: metrics.rateLimitRejections,
  formatChecks: metrics.formatChecks,
  formatComplianceRate: metrics.formatComplianceRate,
  qualityScore: metrics.qualityScore
} as const

/**
 * The OpenTelemetry GenAI client metrics, recorded beside the `llm.*` ones for every request:
 * `gen_ai.client.operation.duration` (seconds) and `gen_ai.client.token.usage` (by `gen_ai.token.type`), tagged
 * `gen_ai.operation.name` = `chat`, `gen_ai.provider.name` and `gen_ai.request.model`.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const GenAiMetrics = {
  operationDuration: metrics.genAiOperationDuration,
  tokenUsage: metrics.genAiTokenUsage
} as const

/**
 * The GenAI conventions' metric names.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const genAiMetricNames: ReadonlyArray<string> = metrics.genAiNames

/**
 * The GenAI conventions' span name of a chat call, `chat {model}`.
 *
 * @since 0.1.0
 * @category Spans
 */
export const genAiSpanName: (model: string) => string = genAiSpans.genAiSpanName

/**
 * The GenAI conventions' request attributes of a span: `gen_ai.operation.name`, `gen_ai.provider.name`,
 * `gen_ai.request.model`, `gen_ai.request.max_tokens`, `gen_ai.request.temperature`, and `server.address` /
 * `server.port` from the base URL.
 *
 * @since 0.1.0
 * @category Spans
 */
export const genAiRequestAttributes: (request: {
  readonly provider: string
  readonly model: string
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  readonly baseURL?: string | undefined
}) => Record<string, string | number> = genAiSpans.genAiRequestAttributes

/**
 * The metric names.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const metricNames: ReadonlyArray<string> = metrics.names

/**
 * `llm.circuit_breaker.state`'s value for a breaker state: 0 closed (also disabled and metrics-only), 1 half-open,
 * 2 open (also forced open).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const breakerStateValue: (state: string) => number = metrics.stateValue

/**
 * Records a quality score (0..1) for `provider:model`, and for the request this fiber serves (its log event's
 * `quality_score`). Resilient records every score `Quality.score` gives in a tier's checks, passing or not; a custom
 * check or scorer calls this for its own scores.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const recordQualityScore = (label: string, score: number): Effect.Effect<void> =>
  Effect.flatMap(
    FiberRef.get(internal.currentTrace),
    (trace) => Effect.sync(() => internal.recordQualityScore(label, score, trace))
  )

// --- logs ----------------------------------------------------------------------------------------------------------

/**
 * The log event of one request, logged by `Resilient.complete` at `info` (served by its primary), `warn` (served
 * by a fallback or degraded) or `error` (failed). On failure `provider` and `model` are the primary's and `attempt`
 * the number of ladder steps tried, and `error`, `reason` and `attempts` say why. `ttft_ms` is `null` for a completion.
 * `format_valid` is `null` when the serving tier has no quality checks. Milliseconds are whole; `cost_usd` and
 * `quality_score` have six decimals. It never holds prompt or answer text, nor credentials.
 *
 * @since 0.1.0
 * @category Logs
 */
export interface RequestEvent {
  readonly event: "llm.request"
  readonly level: "info" | "warn" | "error"
  readonly ts: string
  readonly request_id: string
  readonly provider: string
  readonly model: string
  readonly attempt: number
  readonly fallback_from: string | null
  readonly duration_ms: number
  readonly ttft_ms: number | null
  readonly input_tokens: number
  readonly output_tokens: number
  readonly cost_usd: number
  readonly circuit_state: string | null
  readonly quality_score: number | null
  readonly format_valid: boolean | null
  /** The failure's class (`FallbackExhausted`, `HardFailure`, `InvalidRequest`, …); `null` on success. */
  readonly error: string | null
  /** The failure's reason; for `FallbackExhausted`, the reason of the last step tried. `null` on success. */
  readonly reason: string | null
  /** The steps that failed, in order (on success too, after a fallback); `null` when none failed. */
  readonly attempts: ReadonlyArray<RequestEventAttempt> | null
}

/**
 * A failed ladder step in a {@link RequestEvent}: its tier, `provider:model`, error class and reason, the provider's
 * error code or a connection failure's system code (`ECONNREFUSED`) and host, whether it was skipped, its latency.
 *
 * @since 0.2.0
 * @category Logs
 */
export interface RequestEventAttempt {
  readonly tier: number
  readonly label: string
  readonly error: string
  readonly reason?: string
  readonly code?: string
  readonly host?: string
  readonly skipped: boolean
  readonly latency_ms: number
}

/**
 * The request event a log entry carries, if any (for custom loggers). A request event is logged with the message
 * `llm.request` and its fields as log annotations (all but `event`, `level` and `ts`, which are the message, the log
 * level and the log's timestamp; `null` fields are left out), so Effect's own loggers print it on one line; this
 * returns it whole.
 *
 * @since 0.1.0
 * @category Logs
 */
export const requestEventOf: (
  entry: Pick<Logger.Logger.Options<unknown>, "message" | "annotations">
) => RequestEvent | undefined = internal.requestEventOf

/**
 * A logger that writes each request event as one JSON line through `write` and ignores every other message. Add it
 * with `Logger.add`, or use {@link layerJsonLogger}.
 *
 * @since 0.1.0
 * @category Logs
 */
export const makeRequestLogger: (write: (line: string) => void) => Logger.Logger<unknown, void> =
  internal.makeRequestLogger

/**
 * A logger that writes every log entry as one JSON line through `write` (default: `console.log`): request events in
 * exactly the {@link RequestEvent} schema; the library's other lines (`llm.retry`, `llm.circuit_breaker`,
 * `llm.settings_ignored`, `llm.redis.unavailable`, `llm.redis.available`) as `event`, `level`, `ts` and their fields;
 * the application's own lines as `message`, `level`, `ts`, their annotations and, when there is one, `cause`.
 *
 * @since 0.1.0
 * @category Logs
 */
export const makeJsonLogger = (
  write: (line: string) => void = (line) => globalThis.console.log(line)
): Logger.Logger<unknown, void> => internal.makeJsonLogger(write)

/**
 * One log format: every line becomes one JSON line on stdout (see {@link makeJsonLogger}), in place of the console
 * logger — Effect's default logger, or the pretty one `NodeRuntime.runMain` installs instead — so each message is
 * printed once. Loggers added besides (an OpenTelemetry exporter, say) are left alone.
 *
 * @since 0.1.0
 * @category Logs
 */
export const layerJsonLogger: Layer.Layer<never> = Layer.scopedDiscard(
  Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) =>
    HashSet.add(
      HashSet.filter(loggers, (logger) => logger !== Logger.defaultLogger && logger !== Logger.prettyLoggerDefault),
      makeJsonLogger()
    ))
)

// --- spans ---------------------------------------------------------------------------------------------------------

/**
 * Span names: `llm.request` around `Resilient.complete` and `llm.stream` around `Resilient.stream`, each with one
 * child per ladder step named by the GenAI conventions, `chat {model}` ({@link genAiSpanName}): the inference call,
 * with `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.request.max_tokens`, `gen_ai.request.temperature`,
 * `server.address` and `server.port`.
 *
 * @since 0.1.0
 * @category Spans
 */
export const spanNames: {
  readonly request: "llm.request"
  readonly attempt: (model: string) => string
  readonly stream: "llm.stream"
} = { request: "llm.request", attempt: genAiSpans.genAiSpanName, stream: "llm.stream" }

// --- alerts --------------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category Alerts
 */
export const Severity = alerts.Severity

/**
 * @since 0.1.0
 * @category Alerts
 */
export type Severity = alerts.Severity

/**
 * @since 0.1.0
 * @category Alerts
 */
export const AlertRule = alerts.AlertRule

/**
 * @since 0.1.0
 * @category Alerts
 */
export type AlertRule = alerts.AlertRule

/**
 * More than 5 % (warning) or 10 % (critical) of the requests with this primary step were served by another step
 * over the window.
 *
 * @since 0.1.0
 * @category Alerts
 */
export const FallbackRateHigh = alerts.FallbackRateHigh

/**
 * @since 0.1.0
 * @category Alerts
 */
export type FallbackRateHigh = alerts.FallbackRateHigh

/**
 * More than 1 % of the calls that reached this provider:model failed hard over the window (warning).
 *
 * @since 0.1.0
 * @category Alerts
 */
export const ProviderErrorRateHigh = alerts.ProviderErrorRateHigh

/**
 * @since 0.1.0
 * @category Alerts
 */
export type ProviderErrorRateHigh = alerts.ProviderErrorRateHigh

/**
 * The breaker of this provider:model opened more than 3 times within an hour (critical).
 *
 * @since 0.1.0
 * @category Alerts
 */
export const BreakerFlapping = alerts.BreakerFlapping

/**
 * @since 0.1.0
 * @category Alerts
 */
export type BreakerFlapping = alerts.BreakerFlapping

/**
 * A firing alert cleared. `key` is the alert's primary or provider:model.
 *
 * @since 0.1.0
 * @category Alerts
 */
export const AlertResolved = alerts.AlertResolved

/**
 * @since 0.1.0
 * @category Alerts
 */
export type AlertResolved = alerts.AlertResolved

/**
 * @since 0.1.0
 * @category Alerts
 */
export const AlertEvent = alerts.AlertEvent

/**
 * @since 0.1.0
 * @category Alerts
 */
export type AlertEvent = alerts.AlertEvent

/**
 * The seed thresholds; every one overridable.
 *
 * @since 0.1.0
 * @category Alerts
 */
export interface AlertsOptions {
  /** How often the rules are evaluated. Default 30 seconds. */
  readonly interval?: Duration.DurationInput | undefined
  /** Defaults: warning 0.05, critical 0.10, window 5 minutes. */
  readonly fallbackRate?: {
    readonly warning?: number | undefined
    readonly critical?: number | undefined
    readonly window?: Duration.DurationInput | undefined
  } | undefined
  /** Hard failures among calls that reached the provider. Defaults: warning 0.01, window 5 minutes. */
  readonly errorRate?: {
    readonly warning?: number | undefined
    readonly window?: Duration.DurationInput | undefined
  } | undefined
  /** Breaker openings. Defaults: critical above 3, window 1 hour. */
  readonly breakerOpens?: {
    readonly critical?: number | undefined
    readonly window?: Duration.DurationInput | undefined
  } | undefined
  /** Requests (or calls) the window must hold before a rate rule may fire. Default 20. */
  readonly minimumRequests?: number | undefined
}

/**
 * The in-process evaluator. An alert event is published when a rule starts firing or changes severity, and an
 * `AlertResolved` when it stops.
 *
 * @since 0.1.0
 * @category Alerts
 */
export interface Alerts {
  /** Events published from the moment the stream starts. */
  readonly events: Stream.Stream<AlertEvent>
  readonly subscribe: Effect.Effect<Queue.Dequeue<AlertEvent>, never, Scope.Scope>
  /** Evaluates the rules now (the evaluator also does every `interval`) and returns what it published. */
  readonly evaluate: Effect.Effect<ReadonlyArray<AlertEvent>>
  /** The alerts firing now. */
  readonly active: Effect.Effect<ReadonlyArray<Exclude<AlertEvent, AlertResolved>>>
}

/**
 * Evaluates the alert rules over the process's metrics (`llm.requests`, `llm.fallbacks`, `llm.attempts`,
 * `llm.circuit_breaker.transitions`) every `interval`, on the Effect `Clock` (so `TestClock` drives it), for the
 * life of the scope. Rates are computed from counter growth over each rule's window, as Prometheus' `increase` does.
 *
 * @since 0.1.0
 * @category Alerts
 */
export const makeAlerts: (options?: AlertsOptions) => Effect.Effect<Alerts, never, Scope.Scope> = alerts.make

/**
 * @since 0.1.0
 * @category Alerts
 */
export class AlertsService extends Context.Tag("effect-llm-resilience/Observability/Alerts")<AlertsService, Alerts>() {}

/**
 * @since 0.1.0
 * @category Alerts
 */
export const layerAlerts = (options?: AlertsOptions): Layer.Layer<AlertsService> =>
  Layer.scoped(AlertsService, makeAlerts(options))
