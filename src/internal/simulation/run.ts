/**
 * One simulated configuration: build the real `Resilient` client over simulated upstreams, send Poisson traffic for
 * the scenario's span in virtual time, and count what the application saw.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import { PCGRandom } from "effect/Utils"
import type { CompletionRequestInput } from "../../Llm.js"
import * as Resilient from "../../Resilient.js"
import { type LatencySummary, Samples, wilson } from "./samples.js"
import { incidentWindows, MINUTE, type Outage, OutageIndex, type Scenario } from "./scenario.js"
import { makeUpstream } from "./upstream.js"
import { sleptMillis, VirtualTime } from "./virtualTime.js"

/** The built-in configurations, and `config`: the user's own file (`simulate --config`, see ./userConfig.ts). */
export type ConfigurationName = "single" | "retry" | "fallback" | "full" | "config"

export interface Configuration {
  readonly name: ConfigurationName
  readonly title: string
  readonly description: string
  /** Only the first `tiers` providers of the scenario are used. */
  readonly tiers: number
  /** The same policies for every tier of the chain. */
  readonly policies: Omit<Resilient.Tier, "provider">
  readonly degrade?: Resilient.Config["degrade"]
  /** Policies tier by tier, in place of `policies` (a user's file). */
  readonly chain?: ReadonlyArray<Omit<Resilient.Tier, "provider">> | undefined
  /** Client settings besides the chain (a user's file): strategy, degrade, hedging, rate limit. */
  readonly client?: Omit<Resilient.Config, "chain"> | undefined
}

/** The client of a configuration: its policies on each provider, priced from the scenario; relaxation off. */
const clientConfig = (
  configuration: Configuration,
  providers: ReadonlyArray<Resilient.Tier["provider"]>,
  scenario: Scenario
): Resilient.Config =>
  configuration.chain !== undefined
    ? {
      ...configuration.client,
      chain: nonEmpty(providers.map((provider, index) => {
        const own = configuration.chain?.[index]
        return { ...own, provider, price: own?.price ?? scenario.profiles[index]?.price }
      }))
    }
    : {
      chain: nonEmpty(providers.map((provider, index) => tier(provider, scenario, index, configuration.policies))),
      relaxation: false,
      ...(configuration.degrade !== undefined ? { degrade: configuration.degrade } : {})
    }

const tier = (
  provider: Resilient.Tier["provider"],
  scenario: Scenario,
  index: number,
  policies: Omit<Resilient.Tier, "provider">
): Resilient.Tier => ({ provider, price: scenario.profiles[index]?.price, ...policies })

const nonEmpty = <A>(items: ReadonlyArray<A>): readonly [A, ...Array<A>] => {
  const [first, ...rest] = items
  if (first === undefined) throw new Error("a simulated chain needs at least one provider")
  return [first, ...rest]
}

export const configurations: ReadonlyArray<Configuration> = [
  {
    name: "single",
    title: "single provider",
    description: "one provider, no retry, a 60 s timeout: what an application without this library does",
    tiers: 1,
    policies: { retry: false, breaker: false, timeout: "60 seconds" }
  },
  {
    name: "retry",
    title: "retry only",
    description: "one provider with Retry's defaults (and its budget), a 30 s attempt timeout",
    tiers: 1,
    policies: { retry: { deadline: "2 minutes" }, breaker: false, timeout: "30 seconds" }
  },
  {
    name: "fallback",
    title: "retry + fallback",
    description: "three providers in order, each with retry and a 30 s attempt timeout, no breakers",
    tiers: 3,
    policies: { retry: { deadline: "1 minute" }, breaker: false, timeout: "30 seconds" }
  },
  {
    name: "full",
    title: "full stack",
    description:
      "three providers, retry, the library's default breaker per provider:model, 10 s attempt timeouts, then the cache and a static answer",
    tiers: 3,
    policies: { retry: { deadline: "30 seconds" }, timeout: "10 seconds" },
    degrade: { cache: { ttl: "1 hour", capacity: 1_000 }, staticResponse: "The assistant is busy; please retry." }
  }
]

export interface BreakerChange {
  readonly at: number
  readonly key: string
  readonly to: string
}

/** Per time bucket: requests served by each provider (in chain order), degraded answers, failures (weighted). */
export interface Timeline {
  readonly bucketMs: number
  readonly series: ReadonlyArray<string>
  /** `counts[series][bucket]`. */
  readonly counts: ReadonlyArray<Float64Array>
}

export interface ProviderCalls {
  /** Calls the provider received (weighted like the requests). */
  readonly calls: number
  /** Calls that arrived while the provider was in an incident: what a breaker exists to save. */
  readonly callsDuringOutage: number
}

/** One incident of the primary, as the application lived it. */
export interface IncidentReport {
  readonly start: number
  readonly end: number
  readonly kind: Outage["kind"]
  readonly share: number
  /** Requests that arrived during it, and how many of them failed. */
  readonly requests: number
  readonly failed: number
  /** Calls the primary received during it. */
  readonly callsToProvider: number
  /** From its start to the primary's breaker opening; `null`: no breaker opened. */
  readonly detectMs: number | null
  /** From its end to the primary's breaker closing; `null`: it did not close (or there is no breaker). */
  readonly recoverMs: number | null
  /** Added latency of the answered requests that arrived after the breaker opened (all of them without a breaker). */
  readonly addedAfterTripMs: LatencySummary
}

export interface ConfigurationReport {
  readonly name: ConfigurationName
  readonly title: string
  readonly description: string
  /** Requests the run stands for (sampled quiet traffic counts with its weight). */
  readonly requests: number
  /** Requests actually sent through the client. */
  readonly simulatedRequests: number
  /** Fresh answers from a provider. */
  readonly served: number
  /** Fresh answers cut short (`finishReason: "length"`, from a "degraded" incident). */
  readonly truncated: number
  /** Answers from the cache or the static answer. */
  readonly degraded: number
  readonly failed: number
  /** Failed requests whose lifetime overlapped an incident of a provider of the chain. */
  readonly failedInIncidents: number
  /** The other failed requests: the background error rate's. */
  readonly failedBackground: number
  /** `served / requests`. */
  readonly availability: number
  /** 95 % interval of `availability` from the quiet-time sampling; `null` when every request was simulated. */
  readonly availabilityInterval: readonly [number, number] | null
  /** Quiet time: one request in `factor` simulated; `sampled` of them. */
  readonly sampling: { readonly factor: number; readonly sampled: number }
  /** Requests that arrived while the primary was in an incident, and how many of them got a fresh answer. */
  readonly duringPrimaryOutage: { readonly requests: number; readonly served: number; readonly degraded: number }
  readonly servedBy: Readonly<Record<string, number>>
  readonly providerCalls: Readonly<Record<string, ProviderCalls>>
  /** Calls sent to a provider while it was down. */
  readonly wastedCalls: number
  /** End-to-end latency of answered requests. */
  readonly latencyMs: LatencySummary
  /**
   * Over answered requests that arrived during a primary incident: end-to-end latency minus the latency of the call
   * that answered (waits, retries, failover).
   */
  readonly addedLatencyInIncidentsMs: LatencySummary
  readonly incidents: ReadonlyArray<IncidentReport>
  readonly costUsd: number
  readonly breakerChanges: ReadonlyArray<BreakerChange>
  readonly timeline: Timeline
  readonly real: { readonly seconds: number; readonly timersFired: number; readonly tasksRun: number }
}

/** Quiet-time requests simulated at least (below twice this, every request is). */
export const MIN_QUIET_SAMPLES = 10_000
export const WINDOW_MARGIN = 20 * MINUTE

/** One quiet request in N, so that at least {@link MIN_QUIET_SAMPLES} are simulated; 1 for short runs. */
export const autoSampling = (scenario: Scenario, requestsPerMinute: number, margin = WINDOW_MARGIN): number => {
  const busy = incidentWindows(scenario, margin).reduce((sum, window) => sum + window.end - window.start, 0)
  const quiet = ((scenario.durationMs - busy) / MINUTE) * requestsPerMinute
  // 5 % over: arrivals are Poisson, and 5 % is five standard deviations of 10,000.
  return quiet < 2 * MIN_QUIET_SAMPLES ? 1 : Math.floor(quiet / (1.05 * MIN_QUIET_SAMPLES))
}

export interface RunOptions {
  readonly scenario: Scenario
  readonly configuration: Configuration
  /** Mean requests per minute of the application's traffic (Poisson arrivals). */
  readonly requestsPerMinute: number
  /**
   * Outside the windows around incidents only one request in `quietSampling` is simulated, and counted
   * `quietSampling` times. 1 simulates every request. Default 1; see {@link autoSampling}.
   */
  readonly quietSampling?: number | undefined
  /** How far around each incident every request is simulated. Default 20 minutes. */
  readonly windowMargin?: number | undefined
  readonly bucketMs?: number | undefined
  readonly onProgress?: ((fraction: number) => void) | undefined
}

/** Distinct prompts, drawn with a skew so that popular questions repeat (and the cache has something to serve). */
const PROMPTS = 2_000

interface Segment {
  readonly start: number
  readonly end: number
  readonly weight: number
}

/** The run split into incident windows (weight 1) and the quiet spans between them (weight `quietSampling`). */
const segments = (scenario: Scenario, sampling: number, margin: number): ReadonlyArray<Segment> => {
  if (sampling <= 1) return [{ start: 0, end: scenario.durationMs, weight: 1 }]
  const result: Array<Segment> = []
  let cursor = 0
  for (const window of incidentWindows(scenario, margin)) {
    if (window.start > cursor) result.push({ start: cursor, end: window.start, weight: sampling })
    result.push({ start: window.start, end: window.end, weight: 1 })
    cursor = window.end
  }
  if (cursor < scenario.durationMs) result.push({ start: cursor, end: scenario.durationMs, weight: sampling })
  return result
}

export const runConfiguration = async (options: RunOptions): Promise<ConfigurationReport> => {
  const { configuration, scenario } = options
  const time = new VirtualTime()
  const now = () => time.now
  const outages = new OutageIndex(scenario.outages)
  // Each configuration replays the same traffic and the same upstream behaviour: seeds derive from the scenario's.
  const trafficRandom = new PCGRandom(scenario.seed + 1)
  const upstreamRandom = new PCGRandom(scenario.seed + 2)
  const profiles = scenario.profiles.slice(0, configuration.tiers)
  const sampling = options.quietSampling ?? 1
  const plan = segments(scenario, sampling, options.windowMargin ?? WINDOW_MARGIN)
  let weight = 1
  const upstreams = profiles.map((profile) =>
    makeUpstream(profile, scenario, outages, upstreamRandom, now, () => weight)
  )
  const primary = profiles[0]?.name ?? ""
  const bucketMs = options.bucketMs ?? 5 * MINUTE
  const buckets = Math.ceil(scenario.durationMs / bucketMs)
  const series = [...profiles.map((profile) => `${profile.name}:${profile.model}`), "degraded", "failed"]
  const counts = series.map(() => new Float64Array(buckets))
  const degradedSeries = series.length - 2
  const failedSeries = series.length - 1
  const seriesIndex = new Map(series.map((name, index) => [name, index]))
  const servedBy: Record<string, number> = {}
  const addedDuringOutage = new Samples()
  const total = new Samples()
  const chainNames = profiles.map((profile) => profile.name)
  const tally = {
    requests: 0,
    simulated: 0,
    served: 0,
    truncated: 0,
    degraded: 0,
    failed: 0,
    failedInIncidents: 0,
    cost: 0,
    outageRequests: 0,
    outageServed: 0,
    outageDegraded: 0,
    quietSampled: 0,
    quietServed: 0
  }
  // Per primary incident: requests, failures, and (arrival, added latency) of the answered ones.
  const perOutage = new Map<Outage, { requests: number; failed: number; answered: Array<number> }>()
  const breakerChanges: Array<BreakerChange> = []
  const requests: ReadonlyArray<CompletionRequestInput> = Array.from({ length: PROMPTS }, (_, index) => ({
    messages: [{ role: "user", content: `Simulated question ${index}` }],
    maxTokens: 256
  }))
  const perMs = options.requestsPerMinute / MINUTE
  let inFlight = 0

  /** Counts what the application saw of one request, when its fiber ends. */
  const record = (arrived: number, w: number) => (exit: Exit.Exit<Resilient.ResilientResult, unknown>): void => {
    inFlight--
    const outage = outages.at(primary, arrived)
    const bucket = Math.min(buckets - 1, Math.floor(arrived / bucketMs))
    const elapsed = time.now - arrived
    const incident = outage === undefined
      ? undefined
      : perOutage.get(outage) ?? { requests: 0, failed: 0, answered: [] }
    if (outage !== undefined && incident !== undefined) {
      perOutage.set(outage, incident)
      incident.requests += w
      tally.outageRequests += w
    }
    if (w > 1) tally.quietSampled++
    if (Exit.isFailure(exit)) {
      tally.failed += w
      if (outages.overlaps(chainNames, arrived, time.now)) tally.failedInIncidents += w
      if (incident !== undefined) incident.failed += w
      counts[failedSeries]![bucket]! += w
      return
    }
    const result = exit.value
    total.push(elapsed, w)
    servedBy[result.servedBy] = (servedBy[result.servedBy] ?? 0) + w
    if (result.degraded === undefined) {
      const extra = Math.max(0, elapsed - result.latencyMs)
      tally.served += w
      if (w > 1) tally.quietServed++
      if (result.finishReason === "length") tally.truncated += w
      tally.cost += result.costUsd * w
      if (incident !== undefined) {
        tally.outageServed += w
        addedDuringOutage.push(extra, w)
        incident.answered.push(arrived, extra)
      }
      counts[seriesIndex.get(result.servedBy) ?? degradedSeries]![bucket]! += w
    } else {
      tally.degraded += w
      if (incident !== undefined) {
        tally.outageDegraded += w
        addedDuringOutage.push(elapsed, w)
        incident.answered.push(arrived, elapsed)
      }
      counts[degradedSeries]![bucket]! += w
    }
  }

  const program = Effect.gen(function*() {
    const client = yield* Resilient.make(
      clientConfig(configuration, upstreams.map(({ provider }) => provider), scenario)
    )
    for (const [key, breaker] of client.breakers) {
      const follower = yield* Effect.forkDaemon(
        Stream.runForEach(
          breaker.events,
          (change) => Effect.sync(() => breakerChanges.push({ at: now(), key, to: change.to }))
        )
      )
      while ((yield* Fiber.status(follower))._tag !== "Suspended") yield* Effect.yieldNow()
    }
    // Arrivals are plain timers, not a fiber that sleeps: each one starts its request as a fiber of its own (with
    // this fiber's services: the virtual clock and scheduler, the seeded Random, the log level) and draws the next.
    const start = Runtime.runFork(yield* Effect.runtime<never>())
    let sent = 0
    yield* Effect.async<void>((resume) => {
      let index = 0
      let segment = plan[0]
      let at = 0
      // Draws the next arrival, moving through segments until one has it; false when the run's traffic is over.
      const next = (): boolean => {
        while (segment !== undefined) {
          // A Poisson process restarted at each segment boundary: memoryless, so the arrivals stay exact.
          at += -Math.log(1 - trafficRandom.number()) / (perMs / segment.weight)
          if (at < segment.end) return true
          segment = plan[++index]
          if (segment === undefined) return false
          weight = segment.weight
          at = segment.start
        }
        return false
      }
      // As `Effect.sleep` would wait (whole nanoseconds), so a seed replays the same figures.
      const untilArrival = () => sleptMillis(at - time.now)
      const arrive = () => {
        const current = segment!
        const skewed = trafficRandom.number()
        const request = requests[Math.floor(skewed * skewed * PROMPTS)] ?? requests[0]!
        tally.requests += current.weight
        tally.simulated++
        sent++
        inFlight++
        // The fiber is queued, not run: the next arrival (and a segment's new weight) is drawn before it starts.
        start(client.complete(request), { immediate: false }).addObserver(record(at, current.weight))
        if (next()) time.schedule(untilArrival(), arrive)
        else resume(Effect.void)
      }
      if (segment !== undefined) {
        at = segment.start
        weight = segment.weight
      }
      if (next()) time.schedule(untilArrival(), arrive)
      else resume(Effect.void)
    })
    if (sent > 0) {
      do yield* Effect.sleep(MINUTE)
      while (inFlight > 0)
    }
  }).pipe(
    Effect.scoped,
    Logger.withMinimumLogLevel(LogLevel.None),
    // Retry's jitter draws from Effect's Random: seeded, a run replays exactly.
    Effect.withRandom(Random.make(scenario.seed + 3))
  )

  const started = performance.now()
  // Every simulated failure is an Error, and capturing its stack trace (which no report reads) was a sixth of the
  // run's time. Stacks are off while the simulation runs, so a defect in it is reported without one.
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  const exit = await time.run(program, {
    onProgress: (virtual) => options.onProgress?.(Math.min(1, virtual / scenario.durationMs))
  }).finally(() => {
    Error.stackTraceLimit = stackTraceLimit
  })
  if (Exit.isFailure(exit)) throw new Error(`the ${configuration.name} simulation failed: ${String(exit.cause)}`)
  options.onProgress?.(1)
  const providerCalls = Object.fromEntries(upstreams.map(({ counters, provider }) => [provider.key, { ...counters }]))
  const primaryKey = upstreams[0]?.provider.key ?? ""
  const primaryCalls = upstreams[0]?.byOutage ?? new Map<Outage, number>()
  const incidents = scenario.outages.filter((outage) => outage.provider === primary).map((outage): IncidentReport => {
    const own = perOutage.get(outage) ?? { requests: 0, failed: 0, answered: [] }
    const opened = breakerChanges.find((change) =>
      change.key === primaryKey && change.to === "Open" && change.at >= outage.start && change.at < outage.end
    )
    const closed = opened === undefined
      ? undefined
      : breakerChanges.find((change) => change.key === primaryKey && change.to === "Closed" && change.at >= outage.end)
    const trip = opened?.at ?? outage.start
    const after = new Samples()
    for (let index = 0; index < own.answered.length; index += 2) {
      if (own.answered[index]! >= trip) after.push(own.answered[index + 1]!, 1)
    }
    return {
      start: outage.start,
      end: outage.end,
      kind: outage.kind,
      share: outage.share,
      requests: own.requests,
      failed: own.failed,
      callsToProvider: primaryCalls.get(outage) ?? 0,
      detectMs: opened === undefined ? null : opened.at - outage.start,
      recoverMs: closed === undefined ? null : closed.at - outage.end,
      addedAfterTripMs: after.summary()
    }
  })
  const availability = tally.requests === 0 ? 1 : tally.served / tally.requests
  let availabilityInterval: readonly [number, number] | null = null
  if (sampling > 1 && tally.requests > 0) {
    const [low, high] = wilson(tally.quietServed, tally.quietSampled)
    const quietRequests = tally.quietSampled * sampling
    const windowServed = tally.served - tally.quietServed * sampling
    availabilityInterval = [
      (windowServed + low * quietRequests) / tally.requests,
      (windowServed + high * quietRequests) / tally.requests
    ]
  }
  return {
    name: configuration.name,
    title: configuration.title,
    description: configuration.description,
    requests: tally.requests,
    simulatedRequests: tally.simulated,
    served: tally.served,
    truncated: tally.truncated,
    degraded: tally.degraded,
    failed: tally.failed,
    failedInIncidents: tally.failedInIncidents,
    failedBackground: tally.failed - tally.failedInIncidents,
    availability,
    availabilityInterval,
    sampling: { factor: sampling, sampled: tally.quietSampled },
    duringPrimaryOutage: {
      requests: tally.outageRequests,
      served: tally.outageServed,
      degraded: tally.outageDegraded
    },
    servedBy,
    providerCalls,
    wastedCalls: upstreams.reduce((sum, { counters }) => sum + counters.callsDuringOutage, 0),
    latencyMs: total.summary(),
    addedLatencyInIncidentsMs: addedDuringOutage.summary(),
    incidents,
    costUsd: tally.cost,
    breakerChanges,
    timeline: { bucketMs, series, counts },
    real: { seconds: (performance.now() - started) / 1000, ...time.stats }
  }
}
