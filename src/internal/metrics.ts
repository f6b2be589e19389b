/**
 * Every metric of the library, in one module: the Effect 4 port (`Metric.tagged` → `withAttributes`, no callable
 * metrics, `increment` → `update`) touches this file only. Hot paths update metrics synchronously through the
 * registry hooks of their series (`Series`), cached per provider:model.
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricHook from "effect/MetricHook"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import * as MutableHashMap from "effect/MutableHashMap"
import * as Predicate from "effect/Predicate"

/** @internal OpenTelemetry GenAI attribute names (as in `@effect/ai/Telemetry`). */
export const attr = {
  system: "gen_ai.system",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  responseId: "gen_ai.response.id",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  tokenType: "gen_ai.token.type",
  finishReasons: "gen_ai.response.finish_reasons",
  operation: "gen_ai.operation.name",
  providerName: "gen_ai.provider.name",
  requestMaxTokens: "gen_ai.request.max_tokens",
  requestTemperature: "gen_ai.request.temperature",
  serverAddress: "server.address",
  serverPort: "server.port"
} as const

/** @internal */
export type RequestOutcome = "success" | "hard" | "soft" | "degraded" | "rejected"

/** @internal Milliseconds: 10 ms … ~82 s. */
const latencyBoundaries = MetricBoundaries.exponential({ start: 10, factor: 2, count: 14 })

// --- definitions ---------------------------------------------------------------------------------------------------

const requestsTotalKey = MetricKey.counter("llm.requests", {
  description: "Requests through a Resilient client, by provider, model, outcome and primary step",
  incremental: true
})
/** @internal */
export const requestsTotal = Metric.fromMetricKey(requestsTotalKey)

const attemptsTotalKey = MetricKey.counter("llm.attempts", {
  description: "Ladder steps tried (one per provider:model per request), by provider, model and outcome",
  incremental: true
})
/** @internal */
export const attemptsTotal = Metric.fromMetricKey(attemptsTotalKey)

const successRateKey = MetricKey.gauge("llm.request.success_rate", {
  description: "Share of the last 100 requests of this provider:model served fresh (0..1)"
})
/** @internal */
export const successRate = Metric.fromMetricKey(successRateKey)

const requestDurationKey = MetricKey.histogram(
  "llm.request.duration_ms",
  latencyBoundaries,
  "Wall time of a request, the whole ladder included, in milliseconds"
)
/** @internal */
export const requestDuration = Metric.fromMetricKey(requestDurationKey)

const timeToFirstTokenKey = MetricKey.histogram(
  "llm.request.ttft_ms",
  latencyBoundaries,
  "Time to the first content delta of a stream, in milliseconds"
)
/** @internal */
export const timeToFirstToken = Metric.fromMetricKey(timeToFirstTokenKey)

const tokensTotalKey = MetricKey.counter("llm.tokens", {
  description: "Tokens of served answers, by provider, model and gen_ai.token.type (input / output)",
  incremental: true
})
/** @internal */
export const tokensTotal = Metric.fromMetricKey(tokensTotalKey)

const costUsdTotalKey = MetricKey.counter("llm.cost_usd", {
  description: "Cost of served answers in USD, from the tier's price table",
  incremental: true
})
/** @internal */
export const costUsdTotal = Metric.fromMetricKey(costUsdTotalKey)

/** @internal */
export const retriesTotalKey = MetricKey.counter("llm.retries", {
  description: "Retries of LLM calls, by provider, model and failure reason",
  incremental: true
})
/** @internal Moved from internal/retry.ts; labels `provider`, `model`, `reason`. */
export const retriesTotal = Metric.fromMetricKey(retriesTotalKey)

const fallbacksTotalKey = MetricKey.counter("llm.fallbacks", {
  description: "Requests served by another step than their primary, by served provider, model and primary",
  incremental: true
})
/** @internal */
export const fallbacksTotal = Metric.fromMetricKey(fallbacksTotalKey)

const fallbackRateKey = MetricKey.gauge("llm.fallback.rate", {
  description: "Share of the last 100 requests with this primary provider:model served by another step (0..1)"
})
/** @internal */
export const fallbackRate = Metric.fromMetricKey(fallbackRateKey)

const breakerStateKey = MetricKey.gauge("llm.circuit_breaker.state", {
  description: "Circuit breaker state: 0 closed, 1 half-open, 2 open"
})
/** @internal */
export const breakerState = Metric.fromMetricKey(breakerStateKey)

const breakerTransitionsKey = MetricKey.counter("llm.circuit_breaker.transitions", {
  description: "Circuit breaker transitions, by provider, model, from, to and reason",
  incremental: true
})
/** @internal */
export const breakerTransitions = Metric.fromMetricKey(breakerTransitionsKey)

const rateLimitWaitKey = MetricKey.histogram(
  "llm.rate_limit.wait_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 17 }),
  "Time a call waited in the local rate limiter before it was sent, in milliseconds (waits only)"
)
/** @internal */
export const rateLimitWait = Metric.fromMetricKey(rateLimitWaitKey)

const rateLimitRejectionsKey = MetricKey.counter("llm.rate_limit.rejections", {
  description: "Calls refused by the local rate limiter, by key and limit",
  incremental: true
})
/** @internal Moved from internal/rateLimit.ts; labels `key`, `limit`. */
export const rateLimitRejections = Metric.fromMetricKey(rateLimitRejectionsKey)

const formatChecksKey = MetricKey.counter("llm.response.format_checks", {
  description: "Answers run through a tier's quality checks, by provider, model and valid (true / false)",
  incremental: true
})
/** @internal */
export const formatChecks = Metric.fromMetricKey(formatChecksKey)

const formatComplianceRateKey = MetricKey.gauge("llm.response.format_compliance_rate", {
  description: "Share of the last 100 checked answers of this provider:model with a valid format (0..1)"
})
/** @internal */
export const formatComplianceRate = Metric.fromMetricKey(formatComplianceRateKey)

const qualityScoreKey = MetricKey.histogram(
  "llm.response.quality_score",
  MetricBoundaries.linear({ start: 0.1, width: 0.1, count: 10 }),
  "Quality scores (0..1) of answers, from Quality.score or Observability.recordQualityScore"
)
/** @internal */
export const qualityScore = Metric.fromMetricKey(qualityScoreKey)

// --- OpenTelemetry GenAI client metrics (semantic conventions), beside the llm.* ones --------------------------------

const genAiOperationDurationKey = MetricKey.histogram(
  "gen_ai.client.operation.duration",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 14 }),
  "GenAI operation duration, in seconds (OpenTelemetry GenAI semantic conventions)"
)
/** @internal Seconds, the buckets the GenAI conventions advise. */
export const genAiOperationDuration = Metric.fromMetricKey(genAiOperationDurationKey)

const genAiTokenUsageKey = MetricKey.histogram(
  "gen_ai.client.token.usage",
  MetricBoundaries.exponential({ start: 1, factor: 4, count: 14 }),
  "Number of input and output tokens used (OpenTelemetry GenAI semantic conventions)"
)
/** @internal Tokens per request and gen_ai.token.type, the buckets the GenAI conventions advise. */
export const genAiTokenUsage = Metric.fromMetricKey(genAiTokenUsageKey)

/** @internal The GenAI conventions' metric names. */
export const genAiNames = ["gen_ai.client.operation.duration", "gen_ai.client.token.usage"] as const

/** @internal The names, for exporters and docs. */
export const names = [
  "llm.requests",
  "llm.attempts",
  "llm.request.success_rate",
  "llm.request.duration_ms",
  "llm.request.ttft_ms",
  "llm.tokens",
  "llm.cost_usd",
  "llm.retries",
  "llm.fallbacks",
  "llm.fallback.rate",
  "llm.circuit_breaker.state",
  "llm.circuit_breaker.transitions",
  "llm.rate_limit.wait_ms",
  "llm.rate_limit.rejections",
  "llm.response.format_checks",
  "llm.response.format_compliance_rate",
  "llm.response.quality_score"
] as const

// --- rolling shares ------------------------------------------------------------------------------------------------

const WINDOW = 100

/** @internal The share of hits among the last 100 observations: O(1) per update, fixed memory. */
export class RollingShare {
  private readonly ring = new Uint8Array(WINDOW)
  private count = 0
  private hits = 0
  add(hit: boolean): number {
    const slot = this.count % WINDOW
    if (this.count >= WINDOW) this.hits -= this.ring[slot]!
    this.ring[slot] = hit ? 1 : 0
    if (hit) this.hits++
    this.count++
    return this.hits / Math.min(this.count, WINDOW)
  }
}

// --- tagged instances, cached per provider:model -------------------------------------------------------------------

/** @internal The breaker-state gauge value of a state. */
export const stateValue = (state: string): number =>
  state === "Open" || state === "ForcedOpen" ? 2 : state === "HalfOpen" ? 1 : 0

/** @internal Splits a `provider:model` label at the first colon. */
export const splitLabel = (label: string): { readonly system: string; readonly model: string } => {
  const at = label.indexOf(":")
  return at < 0 ? { system: label, model: "" } : { system: label.slice(0, at), model: label.slice(at + 1) }
}

// Series whose keys `dropSeries` removed from the registry since: a `Series` looks its hook up again after any drop.
let drops = 0

/**
 * @internal One series — a metric's key with its labels — updated through its registry hook, looked up once (and
 * again after `dropSeries` removed series). A tagged `Metric`'s `unsafeUpdate` looks the hook up on every update,
 * through `Arr.union` of its labels and a `WeakMap`: ≈ 40 ns each, a dozen times per request on the success path.
 */
export class Series {
  private hook: MetricHook.MetricHook<number, unknown> | undefined = undefined
  private seen = -1
  constructor(readonly key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<number, unknown>>) {}
  update(value: number): void {
    let hook = this.hook
    if (hook === undefined || this.seen !== drops) {
      hook = Metric.globalMetricRegistry.get(this.key)
      this.hook = hook
      this.seen = drops
    }
    hook.update(value)
  }
}

/**
 * @internal A gauge's series, not set again to the value it holds: the success and fallback rates and the breaker
 * state are set on every request and mostly unchanged. (The registry's series starts over after `dropSeries`: then
 * it is set again.)
 */
export class GaugeSeries extends Series {
  private last = Number.NaN
  private lastSeen = -1
  override update(value: number): void {
    if (value === this.last && this.lastSeen === drops) return
    super.update(value)
    this.last = value
    this.lastSeen = drops
  }
}

type Counter = Series
type Gauge = GaugeSeries
type Histogram = Series

/** @internal Tagged instances and rolling shares of one provider:model. */
export class ModelMetrics {
  readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
  readonly successRate: Gauge
  readonly fallbackRate: Gauge
  readonly formatComplianceRate: Gauge
  readonly breakerState: Gauge
  readonly duration: Histogram
  readonly ttft: Histogram
  readonly inputTokens: Counter
  readonly outputTokens: Counter
  readonly cost: Counter
  readonly rateLimitWait: Histogram
  readonly qualityScore: Histogram
  readonly formatValid: Counter
  readonly formatInvalid: Counter
  /** The GenAI conventions' instruments (`gen_ai.provider.name`, `gen_ai.operation.name` = `chat`). */
  readonly operationDuration: Histogram
  readonly tokenUsageInput: Histogram
  readonly tokenUsageOutput: Histogram
  readonly successes = new RollingShare()
  readonly fallbacks = new RollingShare()
  readonly formats = new RollingShare()
  private readonly requests = new Map<RequestOutcome, Map<string, Counter>>()
  private readonly attempts = new Map<RequestOutcome, Counter>()
  private readonly fallbacksTo = new Map<string, Counter>()
  private lastRequest:
    | { readonly outcome: RequestOutcome; readonly primary: string; readonly counter: Counter }
    | undefined = undefined

  constructor(readonly system: string, readonly model: string) {
    this.labels = [MetricLabel.make(attr.system, system), MetricLabel.make(attr.requestModel, model)]
    const tag = (
      key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<number, unknown>>,
      labels: ReadonlyArray<MetricLabel.MetricLabel> = this.labels
    ): Series => new Series(MetricKey.taggedWithLabels(key, labels))
    const gauge = (key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<number, unknown>>): GaugeSeries =>
      new GaugeSeries(MetricKey.taggedWithLabels(key, this.labels))
    this.successRate = gauge(successRateKey)
    this.fallbackRate = gauge(fallbackRateKey)
    this.formatComplianceRate = gauge(formatComplianceRateKey)
    this.breakerState = gauge(breakerStateKey)
    this.duration = tag(requestDurationKey)
    this.ttft = tag(timeToFirstTokenKey)
    this.inputTokens = tag(tokensTotalKey, [...this.labels, MetricLabel.make(attr.tokenType, "input")])
    this.outputTokens = tag(tokensTotalKey, [...this.labels, MetricLabel.make(attr.tokenType, "output")])
    this.cost = tag(costUsdTotalKey)
    this.rateLimitWait = tag(rateLimitWaitKey)
    this.qualityScore = tag(qualityScoreKey)
    this.formatValid = tag(formatChecksKey, [...this.labels, MetricLabel.make("valid", "true")])
    this.formatInvalid = tag(formatChecksKey, [...this.labels, MetricLabel.make("valid", "false")])
    const genAi = [
      MetricLabel.make(attr.operation, "chat"),
      MetricLabel.make(attr.providerName, system),
      MetricLabel.make(attr.requestModel, model)
    ]
    this.operationDuration = tag(genAiOperationDurationKey, genAi)
    this.tokenUsageInput = tag(genAiTokenUsageKey, [...genAi, MetricLabel.make(attr.tokenType, "input")])
    this.tokenUsageOutput = tag(genAiTokenUsageKey, [...genAi, MetricLabel.make(attr.tokenType, "output")])
  }

  /** `llm.requests{outcome, llm.primary}`; the last one asked for is kept at hand (mostly the same every request). */
  request(outcome: RequestOutcome, primary: string): Counter {
    const last = this.lastRequest
    if (last !== undefined && last.outcome === outcome && last.primary === primary) return last.counter
    const counter = this.requestSeries(outcome, primary)
    this.lastRequest = { outcome, primary, counter }
    return counter
  }

  private requestSeries(outcome: RequestOutcome, primary: string): Counter {
    let byPrimary = this.requests.get(outcome)
    if (byPrimary === undefined) {
      byPrimary = new Map()
      this.requests.set(outcome, byPrimary)
    }
    let counter = byPrimary.get(primary)
    if (counter === undefined) {
      counter = new Series(MetricKey.taggedWithLabels(requestsTotalKey, [
        ...this.labels,
        MetricLabel.make("outcome", outcome),
        MetricLabel.make("llm.primary", primary)
      ]))
      byPrimary.set(primary, counter)
    }
    return counter
  }

  /** `llm.attempts{outcome}`. */
  attempt(outcome: RequestOutcome): Counter {
    let counter = this.attempts.get(outcome)
    if (counter === undefined) {
      counter = new Series(MetricKey.taggedWithLabels(attemptsTotalKey, [
        ...this.labels,
        MetricLabel.make("outcome", outcome)
      ]))
      this.attempts.set(outcome, counter)
    }
    return counter
  }

  /** `llm.fallbacks{llm.primary}` tagged with the serving provider:model. */
  fallback(primary: string): Counter {
    let counter = this.fallbacksTo.get(primary)
    if (counter === undefined) {
      counter = new Series(MetricKey.taggedWithLabels(fallbacksTotalKey, [
        ...this.labels,
        MetricLabel.make("llm.primary", primary)
      ]))
      this.fallbacksTo.set(primary, counter)
    }
    return counter
  }
}

const cache = new Map<string, ModelMetrics>()

/** @internal The cached instruments of `system` + `model`. */
export const forModel = (system: string, model: string): ModelMetrics => {
  const key = `${system}\u0000${model}`
  let metrics = cache.get(key)
  if (metrics === undefined) {
    metrics = new ModelMetrics(system, model)
    cache.set(key, metrics)
  }
  return metrics
}

const byLabel = new Map<string, ModelMetrics>()

/** @internal The cached instruments of a `provider:model` label. */
export const forLabel = (label: string): ModelMetrics => {
  let metrics = byLabel.get(label)
  if (metrics === undefined) {
    const { model, system } = splitLabel(label)
    metrics = forModel(system, model)
    byLabel.set(label, metrics)
  }
  return metrics
}

/** @internal */
export const breakerTransition = (
  label: string,
  from: string,
  to: string,
  reason: string
): void => {
  const metrics = forLabel(label)
  Metric.taggedWithLabels(breakerTransitions, [
    ...metrics.labels,
    MetricLabel.make("from", from),
    MetricLabel.make("to", to),
    MetricLabel.make("reason", reason)
  ]).unsafeUpdate(1, [])
  metrics.breakerState.update(stateValue(to))
}

/** @internal Adds `value` to a counter (or sets a gauge, or observes a histogram) outside any fiber. */
export const update = (series: Series, value: number): void => series.update(value)

// --- dropping the series of expired keys ---------------------------------------------------------------------------

const MutableHashMapTypeId = Symbol.for("effect/MutableHashMap")

const isMutableHashMap = (u: unknown): u is MutableHashMap.MutableHashMap<unknown, unknown> =>
  Predicate.hasProperty(u, MutableHashMapTypeId)

/**
 * @internal Removes from Effect's global metric registry every series of the metrics `names` whose labels match
 * `matches`, in one pass. Effect 3's registry has no public removal, so this reaches its map (guarded: if Effect ever
 * stores it differently, nothing is removed and nothing breaks); the library's instruments re-register a series on
 * their next update, since a tagged instrument looks its series up on every update.
 */
export const dropSeries = (
  names: ReadonlySet<string>,
  matches: (label: (key: string) => string | undefined) => boolean
): number => {
  const map: unknown = Reflect.get(Metric.globalMetricRegistry, "map")
  if (!isMutableHashMap(map)) return 0
  const doomed: Array<unknown> = []
  for (const [key] of map) {
    if (!MetricKey.isMetricKey(key) || !names.has(key.name)) continue
    const label = (name: string) => key.tags.find((tag) => tag.key === name)?.value
    if (matches(label)) doomed.push(key)
  }
  for (const key of doomed) MutableHashMap.remove(map, key)
  if (doomed.length > 0) drops++
  return doomed.length
}

const breakerSeries: ReadonlySet<string> = new Set(["llm.circuit_breaker.state", "llm.circuit_breaker.transitions"])
const limiterSeries: ReadonlySet<string> = new Set(["llm.rate_limit.rejections", "llm.rate_limit.wait_ms"])

const ofLabels = (keys: ReadonlyArray<string>) => {
  const labels = new Set(keys.map((key) => {
    const { model, system } = splitLabel(key)
    return `${system}\u0000${model}`
  }))
  return (label: (name: string) => string | undefined) =>
    labels.has(`${label(attr.system) ?? ""}\u0000${label(attr.requestModel) ?? ""}`)
}

/** @internal The breaker-state and transition series of expired breaker-registry keys (`provider:model`). */
export const dropBreakerSeries = (keys: ReadonlyArray<string>): void => {
  if (keys.length > 0) dropSeries(breakerSeries, ofLabels(keys))
}

/** @internal The rejection (by `key`) and wait (by `provider:model`) series of expired limiter keys. */
export const dropLimiterSeries = (keys: ReadonlyArray<string>): void => {
  if (keys.length === 0) return
  const byKey = new Set(keys)
  const byModel = ofLabels(keys)
  dropSeries(limiterSeries, (label) => {
    const key = label("key")
    return key !== undefined ? byKey.has(key) : byModel(label)
  })
}
