/**
 * What the demo saw: every provider call, every request and every breaker transition, as plain records. The views
 * (dashboard, log lines, summary) are pure functions over them — a few thousand records, scanned a few times a
 * second, cost nothing next to the HTTP traffic, and keep the numbers on screen and in the summary consistent.
 */
import type * as CircuitBreaker from "../../CircuitBreaker.js"
import type { Plan, PlannedSegment } from "./demoScenario.js"

/** One call to one provider (a retry is another call). */
export interface CallRecord {
  readonly key: string
  readonly startedAt: number
  readonly endedAt: number
  readonly ok: boolean
  /** The failure's reason (`RateLimited`, `Overloaded`, `Timeout`…) when not ok. */
  readonly reason?: string | undefined
  /** The script segment in force when the call started. */
  readonly segment: number
}

/** One request through the resilient client, from the caller's side. */
export interface RequestRecord {
  readonly startedAt: number
  readonly endedAt: number
  /** The segment in force when it completed. */
  readonly segment: number
  /** `provider:model`, `cache` or `static`; undefined when the request failed. */
  readonly servedBy: string | undefined
  readonly tier: number
  readonly latencyMs: number
  readonly costUsd: number
  /** Steps skipped without a call because their breaker was open. */
  readonly skipped: ReadonlyArray<string>
  /** Steps skipped without a call because their rate-limit key was paused (a 429's Retry-After) or full. */
  readonly paused: ReadonlyArray<string>
  readonly error?: string | undefined
  readonly content?: string | undefined
}

export class DemoStats {
  readonly calls: Array<CallRecord> = []
  readonly requests: Array<RequestRecord> = []
  readonly changes: Array<CircuitBreaker.StateChange> = []
  /** Actual start time of each segment, as the driver switched it. */
  readonly segmentStarts: Array<number> = []
  readonly initialStates = new Map<string, CircuitBreaker.State>()
  launched = 0
  startedAt = 0
  finishedAt: number | undefined = undefined

  constructor(
    readonly plan: Plan,
    /** Provider keys in chain order. */
    readonly keys: ReadonlyArray<string>
  ) {}

  get inFlight(): number {
    return this.launched - this.requests.length
  }

  segmentAt(at: number): number {
    let index = 0
    for (let i = 0; i < this.segmentStarts.length; i++) {
      const start = this.segmentStarts[i]
      if (start !== undefined && start <= at) index = i
    }
    return index
  }

  /** The segment's actual time span: from its start to the next segment's. */
  spanOf(index: number): { readonly from: number; readonly to: number } | undefined {
    const from = this.segmentStarts[index]
    if (from === undefined) return undefined
    // The last segment runs to the end, drain included.
    return { from, to: this.segmentStarts[index + 1] ?? Number.POSITIVE_INFINITY }
  }

  /** A breaker's state at `at` (now, by default), from the transitions heard so far. */
  stateOf(key: string, at: number = Number.POSITIVE_INFINITY): CircuitBreaker.State {
    let state = this.initialStates.get(key) ?? "Closed"
    for (const change of this.changes) {
      if (change.key === key && change.at <= at) state = change.to
    }
    return state
  }
}

export const quantile = (values: ReadonlyArray<number>, q: number): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

export const mean = (values: ReadonlyArray<number>): number | undefined =>
  values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length

export const providerName = (key: string) => key.split(":")[0] ?? key

export interface ProviderRow {
  readonly key: string
  readonly state: CircuitBreaker.State
  readonly calls: number
  readonly errors: number
  readonly skipped: number
  readonly served: number
  readonly p50Ms: number | undefined
  readonly avgMs: number | undefined
  readonly lastError: string | undefined
}

export const providerRows = (stats: DemoStats): ReadonlyArray<ProviderRow> =>
  stats.keys.map((key) => {
    const calls = stats.calls.filter((call) => call.key === key)
    const ok = calls.filter((call) => call.ok).map((call) => call.endedAt - call.startedAt)
    const failed = calls.filter((call) => !call.ok)
    return {
      key,
      state: stats.stateOf(key),
      calls: calls.length,
      errors: failed.length,
      skipped: stats.requests.reduce(
        (sum, request) => sum + (request.skipped.includes(key) || request.paused.includes(key) ? 1 : 0),
        0
      ),
      served: stats.requests.reduce((sum, request) => sum + (request.servedBy === key ? 1 : 0), 0),
      p50Ms: quantile(ok, 0.5),
      avgMs: mean(ok),
      lastError: failed.at(-1)?.reason
    }
  })

/** Requests that completed in [from, to). */
export interface Window {
  readonly answered: number
  readonly failed: number
  readonly servedBy: ReadonlyMap<string, number>
  readonly fallbacks: number
  readonly p50Ms: number | undefined
  readonly p95Ms: number | undefined
}

export const windowOf = (stats: DemoStats, from: number, to: number): Window => {
  const servedBy = new Map<string, number>()
  const latencies: Array<number> = []
  let failed = 0
  let fallbacks = 0
  for (const request of stats.requests) {
    if (request.endedAt < from || request.endedAt >= to) continue
    if (request.servedBy === undefined) {
      failed++
      continue
    }
    servedBy.set(request.servedBy, (servedBy.get(request.servedBy) ?? 0) + 1)
    latencies.push(request.latencyMs)
    if (request.tier > 1) fallbacks++
  }
  return {
    answered: latencies.length,
    failed,
    servedBy,
    fallbacks,
    p50Ms: quantile(latencies, 0.5),
    p95Ms: quantile(latencies, 0.95)
  }
}

/** One timeline cell: what a provider's breaker and calls did during one tick. */
export type Cell = "future" | "idle" | "paused" | "serving" | "errors" | "halfOpen" | "open"

/** `ticks` cells per provider key, each `tickMs` long from the start of the run; cells after `now` are `future`. */
export const timeline = (
  stats: DemoStats,
  key: string,
  ticks: number,
  tickMs: number,
  now: number
): ReadonlyArray<Cell> => {
  const calls = new Array<number>(ticks).fill(0)
  const errors = new Array<number>(ticks).fill(0)
  const tickOf = (at: number) => Math.floor((at - stats.startedAt) / tickMs)
  for (const call of stats.calls) {
    if (call.key !== key) continue
    const tick = tickOf(call.endedAt)
    if (tick < 0 || tick >= ticks) continue
    calls[tick] = (calls[tick] ?? 0) + 1
    if (!call.ok) errors[tick] = (errors[tick] ?? 0) + 1
  }
  const paused = new Array<number>(ticks).fill(0)
  for (const request of stats.requests) {
    if (!request.paused.includes(key)) continue
    // Skipped at the start of the request, before any call.
    const tick = tickOf(request.startedAt)
    if (tick >= 0 && tick < ticks) paused[tick] = (paused[tick] ?? 0) + 1
  }
  const changes = stats.changes.filter((change) => change.key === key).sort((a, b) => a.at - b.at)
  let state = stats.initialStates.get(key) ?? "Closed"
  let next = 0
  const cells: Array<Cell> = []
  for (let tick = 0; tick < ticks; tick++) {
    const start = stats.startedAt + tick * tickMs
    if (start > now) {
      cells.push("future")
      continue
    }
    // The states the breaker was in during this tick: the one it entered it with, and every one it moved to.
    const seen = new Set<CircuitBreaker.State>([state])
    for (let change = changes[next]; change !== undefined && change.at < start + tickMs; change = changes[++next]) {
      state = change.to
      seen.add(state)
    }
    cells.push(
      seen.has("HalfOpen")
        ? "halfOpen"
        : seen.has("Open") || seen.has("ForcedOpen")
        ? "open"
        : (errors[tick] ?? 0) > 0
        ? "errors"
        : (calls[tick] ?? 0) > 0
        ? "serving"
        : (paused[tick] ?? 0) > 0
        ? "paused"
        : "idle"
    )
  }
  return cells
}

export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  /** Whether a failed check fails the run (in live mode only the first one does: real APIs may misbehave). */
  readonly required: boolean
}

export interface ServedRow {
  readonly label: string
  readonly count: number
  readonly share: number
  readonly p50Ms: number | undefined
  readonly costUsd: number
}

export interface SegmentSummary {
  readonly name: string
  /** When it started, in milliseconds from the start of the run. */
  readonly startMs: number
  readonly answered: number
  readonly failed: number
  readonly servedBy: Readonly<Record<string, number>>
}

export interface Summary {
  readonly mode: "emulator" | "live"
  /** Clock time of the start, to read the transitions' `at` against. */
  readonly startedAt: number
  readonly durationMs: number
  readonly sent: number
  readonly answered: number
  readonly failed: number
  /** Still running when the demo stopped waiting for them. */
  readonly unfinished: number
  readonly servedBy: ReadonlyArray<ServedRow>
  readonly fallbackRate: number
  /** Median latency of a request answered by the primary while everything was healthy. */
  readonly healthyP50Ms: number | undefined
  readonly addedLatency: {
    readonly meanMs: number | undefined
    readonly outageP50Ms: number | undefined
    readonly outageP95Ms: number | undefined
  }
  readonly costUsd: number
  /** What the same answers would have cost from the primary alone, at its observed cost per answer. */
  readonly primaryOnlyCostUsd: number | undefined
  readonly segments: ReadonlyArray<SegmentSummary>
  readonly transitions: ReadonlyArray<CircuitBreaker.StateChange>
  readonly finalStates: Readonly<Record<string, CircuitBreaker.State>>
  readonly checks: ReadonlyArray<Check>
  /** Every required check passed. */
  readonly ok: boolean
}

const inSegment = (stats: DemoStats, index: number) => {
  const span = stats.spanOf(index)
  return (request: RequestRecord) => span !== undefined && request.endedAt >= span.from && request.endedAt < span.to
}

export const summarize = (stats: DemoStats, mode: "emulator" | "live"): Summary => {
  const [primary = "", backup = "", local = ""] = stats.keys
  const segments = stats.plan.segments
  const answeredRequests = stats.requests.filter((request) => request.servedBy !== undefined)
  const failed = stats.requests.length - answeredRequests.length
  const unfinished = stats.inFlight
  const labels = [...stats.keys, "cache", "static"]
  const servedBy = labels.map((label): ServedRow => {
    const mine = answeredRequests.filter((request) => request.servedBy === label)
    return {
      label,
      count: mine.length,
      share: stats.launched === 0 ? 0 : mine.length / stats.launched,
      p50Ms: quantile(mine.map((request) => request.latencyMs), 0.5),
      costUsd: mine.reduce((sum, request) => sum + request.costUsd, 0)
    }
  })
  const healthy = stats.requests.filter((request) => inSegment(stats, 0)(request) && request.tier === 1)
  const healthyP50Ms = quantile(healthy.map((request) => request.latencyMs), 0.5)
  const outageIndexes = segments.filter((planned) => planned.segment.openAi !== "none").map((planned) => planned.index)
  const outageLatencies = answeredRequests.filter((request) => outageIndexes.includes(request.segment))
    .map((request) => request.latencyMs)
  const minus = (value: number | undefined) =>
    value === undefined || healthyP50Ms === undefined ? undefined : value - healthyP50Ms
  const primaryAnswers = answeredRequests.filter((request) => request.servedBy === primary)
  const primaryCostPerAnswer = mean(primaryAnswers.map((request) => request.costUsd))

  const segmentSummaries = segments.map((planned): SegmentSummary => {
    const mine = stats.requests.filter(inSegment(stats, planned.index))
    const counts: Record<string, number> = {}
    for (const request of mine) {
      if (request.servedBy !== undefined) counts[request.servedBy] = (counts[request.servedBy] ?? 0) + 1
    }
    return {
      name: planned.segment.name,
      startMs: (stats.segmentStarts[planned.index] ?? stats.startedAt) - stats.startedAt,
      answered: mine.filter((request) => request.servedBy !== undefined).length,
      failed: mine.filter((request) => request.servedBy === undefined).length,
      servedBy: counts
    }
  })
  const finalStates = Object.fromEntries(stats.keys.map((key) => [key, stats.stateOf(key)]))
  const checks = evaluateChecks(stats, mode, { primary, backup, local }, segmentSummaries, failed, unfinished)
  return {
    mode,
    startedAt: stats.startedAt,
    durationMs: (stats.finishedAt ?? stats.startedAt) - stats.startedAt,
    sent: stats.launched,
    answered: answeredRequests.length,
    failed,
    unfinished,
    servedBy,
    fallbackRate: answeredRequests.length === 0
      ? 0
      : answeredRequests.filter((request) => request.tier > 1).length / answeredRequests.length,
    healthyP50Ms,
    addedLatency: {
      meanMs: minus(mean(answeredRequests.map((request) => request.latencyMs))),
      outageP50Ms: minus(quantile(outageLatencies, 0.5)),
      outageP95Ms: minus(quantile(outageLatencies, 0.95))
    },
    costUsd: answeredRequests.reduce((sum, request) => sum + request.costUsd, 0),
    primaryOnlyCostUsd: primaryCostPerAnswer === undefined ? undefined : primaryCostPerAnswer * answeredRequests.length,
    segments: segmentSummaries,
    transitions: stats.changes,
    finalStates,
    checks,
    ok: checks.every((check) => check.ok || !check.required)
  }
}

const served = (summary: SegmentSummary | undefined, key: string) => summary?.servedBy[key] ?? 0

const evaluateChecks = (
  stats: DemoStats,
  mode: "emulator" | "live",
  keys: { readonly primary: string; readonly backup: string; readonly local: string },
  segments: ReadonlyArray<SegmentSummary>,
  failed: number,
  unfinished: number
): ReadonlyArray<Check> => {
  const planned = stats.plan.segments
  const required = mode === "emulator"
  // Time spans of the segments a predicate picks. A request belongs to a span it overlaps: on a starved machine a
  // request may take longer than a short segment, so "completed within" would miss it.
  const spans = (predicate: (planned: PlannedSegment) => boolean) =>
    planned.filter(predicate).flatMap((segment) => {
      const span = stats.spanOf(segment.index)
      return span === undefined ? [] : [span]
    })
  const overlapping = (list: ReadonlyArray<{ readonly from: number; readonly to: number }>, label: string) =>
    stats.requests.filter((request) =>
      request.servedBy === label && list.some((span) => request.startedAt < span.to && request.endedAt >= span.from)
    ).length
  const stormStart = spans((segment) => segment.segment.openAi === "rateLimit")[0]?.from ?? stats.startedAt
  const recovery = planned.at(-1)?.index ?? 0
  const recoveryStart = stats.spanOf(recovery)?.from ?? Number.POSITIVE_INFINITY
  // A call to the primary that started after the 503s began and ended before they stopped was answered by the
  // emulator in 503 mode, however slow the machine: every one of them must have failed.
  const outageStart = spans((segment) => segment.segment.openAi === "unavailable")[0]?.from
  const downCalls = outageStart === undefined
    ? []
    : stats.calls.filter((call) =>
      call.key === keys.primary && call.startedAt >= outageStart && call.endedAt < recoveryStart
    )
  // What the SDK made of the 503s: the taxonomy's `Overloaded`, which only they produce for the primary.
  const overloaded = stats.calls.filter((call) => call.key === keys.primary && call.reason === "Overloaded").length
  const opened = stats.changes.filter((change) =>
    change.key === keys.primary && change.to === "Open" && change.at >= stormStart && change.at < recoveryStart
  )
  const backupAnswers = overlapping(
    spans((segment) => segment.segment.openAi === "unavailable" && segment.segment.anthropic === "none"),
    keys.backup
  )
  const localAnswers = overlapping(spans((segment) => segment.segment.anthropic !== "none"), keys.local)
  // Requests that started and ended while everything was healthy were never exposed to a fault.
  const healthySpan = stats.spanOf(0)
  const healthy = stats.requests.filter((request) =>
    healthySpan !== undefined && request.startedAt >= healthySpan.from && request.endedAt < healthySpan.to
  )
  const healthyByPrimary = healthy.filter((request) => request.servedBy === keys.primary).length
  const recovered = served(segments[recovery], keys.primary)
  const primaryState = stats.stateOf(keys.primary)
  return [
    {
      name: "every request was answered",
      ok: failed === 0 && unfinished === 0,
      detail: `${stats.launched} sent, ${stats.requests.length - failed} answered, ${failed} failed, `
        + `${unfinished} unfinished`,
      required: true
    },
    {
      name: "the primary answered the healthy traffic",
      ok: healthy.length > 0 && healthyByPrimary >= 0.8 * healthy.length,
      detail: `${healthyByPrimary} of ${healthy.length} answered by ${keys.primary}`,
      required
    },
    {
      name: "the injected 503s reached the chain through the SDK",
      ok: overloaded > 0 && downCalls.every((call) => !call.ok),
      detail: `${overloaded} calls failed as Overloaded; of the ${downCalls.length} calls made entirely during the `
        + `outage, ${downCalls.filter((call) => call.ok).length} answered`,
      required
    },
    {
      name: "the primary's breaker opened during the outage",
      ok: opened.length > 0,
      detail: `opened ${opened.length} time${opened.length === 1 ? "" : "s"}`,
      required
    },
    {
      name: "the backup answered while the primary was down",
      ok: backupAnswers > 0,
      detail: `${backupAnswers} answers from ${keys.backup}`,
      required
    },
    {
      name: "the local model answered while the backup was overloaded",
      ok: localAnswers > 0,
      detail: `${localAnswers} answers from ${keys.local}`,
      required
    },
    {
      name: "the primary took the traffic back after recovery",
      ok: recovered > 0 && primaryState === "Closed",
      detail: `${recovered} answers from ${keys.primary} after recovery, breaker ${primaryState}`,
      required
    }
  ]
}
