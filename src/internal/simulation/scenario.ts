/**
 * The outage scenario: which provider is down when, drawn from published incident statistics with a seeded
 * generator so that a run can be replayed exactly.
 */
import { PCGRandom } from "effect/Utils"
import type { Price } from "../../Resilient.js"

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR
export const YEAR = 365 * DAY

/** One upstream as the simulator plays it. */
export interface ProviderProfile {
  readonly name: string
  readonly model: string
  /** Major incidents a year, drawn uniformly from this inclusive range. */
  readonly incidentsPerYear: readonly [number, number]
  /** Mean incident duration; durations are exponential. */
  readonly meanOutageMinutes: number
  /** Median latency of a healthy call (latencies are log-normal around it). */
  readonly medianLatencyMs: number
  readonly price: Price
}

/**
 * Incident counts and mean durations from the providers' public status pages (major API incidents, 2024–2025):
 * OpenAI 4–6 a year of about 45 minutes, Anthropic 2–3 of about 30, Gemini 3–5 of about 60. Latencies and prices
 * are typical for a small chat completion with these models.
 */
export const defaultProfiles: readonly [ProviderProfile, ...Array<ProviderProfile>] = [
  {
    name: "openai",
    model: "gpt-4.1-mini",
    incidentsPerYear: [4, 6],
    meanOutageMinutes: 45,
    medianLatencyMs: 900,
    price: { inputPer1k: 0.0004, outputPer1k: 0.0016 }
  },
  {
    name: "anthropic",
    model: "claude-haiku-4-5",
    incidentsPerYear: [2, 3],
    meanOutageMinutes: 30,
    medianLatencyMs: 1_100,
    price: { inputPer1k: 0.001, outputPer1k: 0.005 }
  },
  {
    name: "gemini",
    model: "gemini-2.5-flash",
    incidentsPerYear: [3, 5],
    meanOutageMinutes: 60,
    medianLatencyMs: 800,
    price: { inputPer1k: 0.0003, outputPer1k: 0.0025 }
  }
]

/** How a provider fails during an incident. */
export type OutageKind = "errors" | "overloaded" | "timeouts"

export interface Outage {
  readonly provider: string
  readonly start: number
  readonly end: number
  readonly kind: OutageKind
}

export interface Scenario {
  readonly seed: number
  readonly durationMs: number
  readonly profiles: ReadonlyArray<ProviderProfile>
  /** Sorted by start. */
  readonly outages: ReadonlyArray<Outage>
  /** Share of healthy calls that fail anyway (a stray 500, a 429 with Retry-After). */
  readonly backgroundErrorRate: number
}

export interface ScenarioOptions {
  readonly seed: number
  readonly durationMs?: number | undefined
  readonly profiles?: ReadonlyArray<ProviderProfile> | undefined
  readonly backgroundErrorRate?: number | undefined
}

const kinds: ReadonlyArray<OutageKind> = ["errors", "errors", "overloaded", "timeouts"]

/** Incidents scale with the simulated span: a 30-day run gets a twelfth of a year's, rounded by chance. */
const incidentCount = (random: PCGRandom, [low, high]: readonly [number, number], years: number): number => {
  const expected = (low + random.integer(high - low + 1)) * years
  const whole = Math.floor(expected)
  return whole + (random.number() < expected - whole ? 1 : 0)
}

export const makeScenario = (options: ScenarioOptions): Scenario => {
  const durationMs = options.durationMs ?? YEAR
  const profiles = options.profiles ?? defaultProfiles
  const random = new PCGRandom(options.seed)
  const outages: Array<Outage> = []
  for (const profile of profiles) {
    const count = incidentCount(random, profile.incidentsPerYear, durationMs / YEAR)
    for (let index = 0; index < count; index++) {
      const start = Math.floor(random.number() * durationMs)
      // Exponential durations, at least a minute (shorter blips are the background error rate's business).
      const minutes = Math.max(1, -Math.log(1 - random.number()) * profile.meanOutageMinutes)
      outages.push({
        provider: profile.name,
        start,
        end: Math.min(durationMs, start + Math.round(minutes * MINUTE)),
        kind: kinds[random.integer(kinds.length)] ?? "errors"
      })
    }
  }
  outages.sort((a, b) => a.start - b.start)
  return {
    seed: options.seed,
    durationMs,
    profiles,
    outages,
    backgroundErrorRate: options.backgroundErrorRate ?? 0.003
  }
}

/** Answers "is this provider down at this time". A provider has a handful of incidents a year: a scan is enough. */
export class OutageIndex {
  private readonly byProvider = new Map<string, Array<Outage>>()

  constructor(outages: ReadonlyArray<Outage>) {
    for (const outage of outages) {
      const list = this.byProvider.get(outage.provider)
      if (list === undefined) this.byProvider.set(outage.provider, [outage])
      else list.push(outage)
    }
  }

  at(provider: string, time: number): Outage | undefined {
    const list = this.byProvider.get(provider)
    if (list === undefined) return undefined
    for (const outage of list) {
      if (outage.start > time) return undefined
      if (time < outage.end) return outage
    }
    return undefined
  }
}

/** A span of time simulated at the full request rate. */
export interface Window {
  readonly start: number
  readonly end: number
}

/**
 * The spans around incidents, widened by `margin` on each side and merged, where every request is simulated.
 * Outside them nothing is down, so a sample of the traffic (weighted back up) tells the same story for far less work.
 */
export const incidentWindows = (scenario: Scenario, margin: number): ReadonlyArray<Window> => {
  const windows: Array<{ start: number; end: number }> = []
  for (const outage of scenario.outages) {
    const start = Math.max(0, outage.start - margin)
    const end = Math.min(scenario.durationMs, outage.end + margin)
    const last = windows[windows.length - 1]
    if (last !== undefined && start <= last.end) last.end = Math.max(last.end, end)
    else windows.push({ start, end })
  }
  return windows
}
