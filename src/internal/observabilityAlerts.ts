import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Alerts, AlertsOptions } from "../Observability.js"
import * as metrics from "./metrics.js"

/** @internal */
export const Severity = Schema.Literal("warning", "critical")

/** @internal */
export type Severity = typeof Severity.Type

/** @internal */
export const AlertRule = Schema.Literal("FallbackRateHigh", "ProviderErrorRateHigh", "BreakerFlapping")

/** @internal */
export type AlertRule = typeof AlertRule.Type

/** @internal */
export class FallbackRateHigh extends Schema.TaggedClass<FallbackRateHigh>("effect-llm-resilience/FallbackRateHigh")(
  "FallbackRateHigh",
  {
    severity: Severity,
    /** The primary step, `provider:model`. */
    primary: Schema.String,
    rate: Schema.Number,
    threshold: Schema.Number,
    requests: Schema.Number,
    at: Schema.Number
  }
) {}

/** @internal */
export class ProviderErrorRateHigh
  extends Schema.TaggedClass<ProviderErrorRateHigh>("effect-llm-resilience/ProviderErrorRateHigh")(
    "ProviderErrorRateHigh",
    {
      severity: Severity,
      system: Schema.String,
      model: Schema.String,
      rate: Schema.Number,
      threshold: Schema.Number,
      attempts: Schema.Number,
      at: Schema.Number
    }
  )
{}

/** @internal */
export class BreakerFlapping extends Schema.TaggedClass<BreakerFlapping>("effect-llm-resilience/BreakerFlapping")(
  "BreakerFlapping",
  {
    severity: Severity,
    system: Schema.String,
    model: Schema.String,
    opens: Schema.Number,
    threshold: Schema.Number,
    at: Schema.Number
  }
) {}

/** @internal */
export class AlertResolved extends Schema.TaggedClass<AlertResolved>("effect-llm-resilience/AlertResolved")(
  "AlertResolved",
  { rule: AlertRule, key: Schema.String, at: Schema.Number }
) {}

/** @internal */
export const AlertEvent = Schema.Union(FallbackRateHigh, ProviderErrorRateHigh, BreakerFlapping, AlertResolved)

/** @internal */
export type AlertEvent = typeof AlertEvent.Type

interface Sample {
  readonly at: number
  readonly values: ReadonlyMap<string, number>
}

const tagOf = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, key: string) =>
  tags.find((tag) => tag.key === key)?.value ?? ""

const add = (values: Map<string, number>, key: string, value: number) => values.set(key, (values.get(key) ?? 0) + value)

/**
 * Reads the counters the rules need from the metric registry. Keys: `r|primary`, `f|primary` (requests and
 * fallbacks by primary step), `a|label`, `e|label` (attempts that reached the provider, and those that failed hard),
 * `o|label` (breaker transitions to Open).
 */
const sample = (at: number): Sample => {
  const values = new Map<string, number>()
  for (const { metricKey, metricState } of Metric.unsafeSnapshot()) {
    if (!MetricState.isCounterState(metricState)) continue
    const count = Number(metricState.count)
    const tags = metricKey.tags
    switch (metricKey.name) {
      case "llm.requests":
        add(values, `r|${tagOf(tags, "llm.primary")}`, count)
        break
      case "llm.fallbacks":
        add(values, `f|${tagOf(tags, "llm.primary")}`, count)
        break
      case "llm.attempts": {
        const outcome = tagOf(tags, "outcome")
        if (outcome === "rejected") break
        const label = `${tagOf(tags, metrics.attr.system)}:${tagOf(tags, metrics.attr.requestModel)}`
        add(values, `a|${label}`, count)
        if (outcome === "hard") add(values, `e|${label}`, count)
        break
      }
      case "llm.circuit_breaker.transitions":
        if (tagOf(tags, "to") === "Open") {
          add(values, `o|${tagOf(tags, metrics.attr.system)}:${tagOf(tags, metrics.attr.requestModel)}`, count)
        }
        break
    }
  }
  return { at, values }
}

/** @internal */
export const make = (options: AlertsOptions = {}) =>
  Effect.gen(function*() {
    const interval = Duration.decode(options.interval ?? "30 seconds")
    const fallback = {
      warning: options.fallbackRate?.warning ?? 0.05,
      critical: options.fallbackRate?.critical ?? 0.1,
      window: Duration.toMillis(options.fallbackRate?.window ?? "5 minutes")
    }
    const errors = {
      warning: options.errorRate?.warning ?? 0.01,
      window: Duration.toMillis(options.errorRate?.window ?? "5 minutes")
    }
    const opens = {
      critical: options.breakerOpens?.critical ?? 3,
      window: Duration.toMillis(options.breakerOpens?.window ?? "1 hour")
    }
    const minimumRequests = options.minimumRequests ?? 20
    const keep = Math.max(fallback.window, errors.window, opens.window)
    const hub = yield* PubSub.sliding<AlertEvent>(1024)
    const samples: Array<Sample> = [sample(yield* Clock.currentTimeMillis)]
    const active = new Map<string, Exclude<AlertEvent, AlertResolved>>()

    /** The growth of `key` over the last `window` ms (from the oldest sample when history is shorter). */
    const delta = (now: Sample, key: string, window: number): number => {
      let base: Sample = samples[0]!
      for (const candidate of samples) {
        if (candidate.at <= now.at - window) base = candidate
        else break
      }
      return (now.values.get(key) ?? 0) - (base.values.get(key) ?? 0)
    }

    const check = (
      now: Sample,
      fired: Array<AlertEvent>,
      rule: AlertRule,
      key: string,
      next: Exclude<AlertEvent, AlertResolved> | undefined
    ) => {
      const id = `${rule}|${key}`
      const previous = active.get(id)
      if (next === undefined) {
        if (previous !== undefined) {
          active.delete(id)
          fired.push(new AlertResolved({ rule, key, at: now.at }))
        }
      } else if (previous === undefined || previous.severity !== next.severity) {
        active.set(id, next)
        fired.push(next)
      } else {
        active.set(id, next)
      }
    }

    const evaluate = Effect.flatMap(Clock.currentTimeMillis, (at) =>
      Effect.gen(function*() {
        const now = sample(at)
        samples.push(now)
        while (samples.length > 2 && samples[1]!.at <= at - keep) samples.shift()
        const fired: Array<AlertEvent> = []
        const keys = new Set<string>()
        for (const key of now.values.keys()) keys.add(key.slice(2))
        for (const active of activeKeys()) keys.add(active)
        for (const key of keys) {
          const requests = delta(now, `r|${key}`, fallback.window)
          if (now.values.has(`r|${key}`) || active.has(`FallbackRateHigh|${key}`)) {
            const rate = requests > 0 ? delta(now, `f|${key}`, fallback.window) / requests : 0
            const severity: Severity | undefined = requests < minimumRequests
              ? undefined
              : rate > fallback.critical
              ? "critical"
              : rate > fallback.warning
              ? "warning"
              : undefined
            check(
              now,
              fired,
              "FallbackRateHigh",
              key,
              severity === undefined ? undefined : new FallbackRateHigh({
                severity,
                primary: key,
                rate,
                threshold: severity === "critical" ? fallback.critical : fallback.warning,
                requests,
                at
              })
            )
          }
          if (now.values.has(`a|${key}`) || active.has(`ProviderErrorRateHigh|${key}`)) {
            const attempts = delta(now, `a|${key}`, errors.window)
            const rate = attempts > 0 ? delta(now, `e|${key}`, errors.window) / attempts : 0
            check(
              now,
              fired,
              "ProviderErrorRateHigh",
              key,
              attempts >= minimumRequests && rate > errors.warning
                ? new ProviderErrorRateHigh({
                  severity: "warning",
                  ...metrics.splitLabel(key),
                  rate,
                  threshold: errors.warning,
                  attempts,
                  at
                })
                : undefined
            )
          }
          if (now.values.has(`o|${key}`) || active.has(`BreakerFlapping|${key}`)) {
            const count = delta(now, `o|${key}`, opens.window)
            check(
              now,
              fired,
              "BreakerFlapping",
              key,
              count > opens.critical
                ? new BreakerFlapping({
                  severity: "critical",
                  ...metrics.splitLabel(key),
                  opens: count,
                  threshold: opens.critical,
                  at
                })
                : undefined
            )
          }
        }
        if (fired.length > 0) yield* PubSub.publishAll(hub, fired)
        return fired as ReadonlyArray<AlertEvent>
      }))

    function activeKeys(): Array<string> {
      return Array.from(active.keys(), (id) => id.slice(id.indexOf("|") + 1))
    }

    yield* Effect.forkScoped(Effect.forever(Effect.delay(evaluate, interval)))

    const alerts: Alerts = {
      events: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub),
      evaluate,
      active: Effect.sync(() => Array.from(active.values()))
    }
    return alerts
  })
