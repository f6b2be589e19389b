/**
 * The outage scenario: which provider is down when, and how, drawn from published incident statistics (a named
 * preset, see docs/simulator.md for the sources) with a seeded generator so that a run can be replayed exactly.
 */
import { PCGRandom } from "effect/Utils"
import type { Price } from "../../Resilient.js"

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR
export const YEAR = 365 * DAY

/** How a provider fails during an incident. */
export type IncidentKind = "errors" | "overloaded" | "hang" | "slow" | "degraded"

export const incidentKinds: ReadonlyArray<IncidentKind> = ["errors", "overloaded", "hang", "slow", "degraded"]

/** One class of incidents of a provider. */
export interface IncidentClass {
  /** Incidents a year, drawn uniformly from this inclusive range (equal ends: that many on average). */
  readonly perYear: readonly [number, number]
  /** Mean duration; durations are exponential, at least a minute. */
  readonly meanMinutes: number
  /** Share of calls an incident of this class affects: 1 for a full outage, less for a partial one. */
  readonly share: number
}

/** One upstream as the simulator plays it. */
export interface ProviderProfile {
  readonly name: string
  readonly model: string
  /** How the provider is reached, for the report: its own SDK, or an OpenAI-compatible endpoint. */
  readonly api: string
  readonly incidents: ReadonlyArray<IncidentClass>
  /** Median latency of a healthy call (latencies are log-normal around it). */
  readonly medianLatencyMs: number
  readonly price: Price
}

const openai = {
  name: "openai",
  model: "gpt-4.1-mini",
  api: "OpenAI SDK",
  medianLatencyMs: 900,
  price: { inputPer1k: 0.0004, outputPer1k: 0.0016 }
} as const
const anthropic = {
  name: "anthropic",
  model: "claude-haiku-4-5",
  api: "Anthropic SDK",
  medianLatencyMs: 1_100,
  price: { inputPer1k: 0.001, outputPer1k: 0.005 }
} as const
/** Gemini through Google's OpenAI-compatible endpoint (`OpenAiCompatible`): the library has no Gemini SDK provider. */
const gemini = {
  name: "gemini-openai-compatible",
  model: "gemini-2.5-flash",
  api: "OpenAI-compatible endpoint (generativelanguage.googleapis.com/v1beta/openai)",
  medianLatencyMs: 800,
  price: { inputPer1k: 0.0003, outputPer1k: 0.0025 }
} as const

const paperGemini: ProviderProfile = { ...gemini, incidents: [{ perYear: [3, 5], meanMinutes: 60, share: 1 }] }

export type PresetName = "paper" | "status-pages"

/**
 * - `paper`: the seed paper's figures for major incidents — OpenAI GPT-4 4–6 a year of 45 minutes on average,
 *   Anthropic 2–3 of 30, Google Gemini 3–5 of 60.
 * - `status-pages`: Chu et al., "An Empirical Characterization of Outages and Incidents in Public Services for Large
 *   Language Models", ICPE 2025 (arXiv 2501.12469), from their outage dataset (atlarge-research/llm-service-analysis,
 *   data/clean/outage/2024-08-31/outage_unexploded.csv): the OpenAI API had 7.3 days a year with a major outage
 *   (53.5 min on average) and 21.9 with a partial one (83.3 min); the Anthropic API (from July 2023) none major and
 *   21.8 partial (67.0 min). The paper counts a partial-outage minute as 30 % down, which gives their mean daily
 *   availability of 99.82 % (OpenAI API) and 99.92 % (Anthropic API); a partial incident here fails 30 % of calls.
 *   They did not study Google: its third tier keeps the paper preset's figures.
 */
export const presets: Readonly<Record<PresetName, readonly [ProviderProfile, ...Array<ProviderProfile>]>> = {
  paper: [
    { ...openai, incidents: [{ perYear: [4, 6], meanMinutes: 45, share: 1 }] },
    { ...anthropic, incidents: [{ perYear: [2, 3], meanMinutes: 30, share: 1 }] },
    paperGemini
  ],
  "status-pages": [
    {
      ...openai,
      incidents: [
        { perYear: [7.31, 7.31], meanMinutes: 53.5, share: 1 },
        { perYear: [21.93, 21.93], meanMinutes: 83.3, share: 0.3 }
      ]
    },
    { ...anthropic, incidents: [{ perYear: [21.83, 21.83], meanMinutes: 67, share: 0.3 }] },
    paperGemini
  ]
}

export const presetNames = Object.keys(presets) as ReadonlyArray<PresetName>

/** The preset used when none is named. */
export const defaultProfiles = presets.paper

export interface Outage {
  readonly provider: string
  readonly start: number
  readonly end: number
  readonly kind: IncidentKind
  /** Share of calls that fail (or hang, or come back slow or degraded) while it lasts. */
  readonly share: number
}

/** Failures that happen outside incidents: a stray 500, a 429, a call that hangs. */
export type BackgroundKind = "500" | "429" | "timeout"

export interface Background {
  /** Share of healthy calls that fail anyway. */
  readonly rate: number
  /** Relative weights of the kinds. */
  readonly mix: Readonly<Record<BackgroundKind, number>>
}

export const noBackground: Background = { rate: 0, mix: { "500": 1, "429": 1, timeout: 0 } }

export interface Scenario {
  readonly seed: number
  readonly durationMs: number
  readonly preset: PresetName | "custom"
  readonly profiles: ReadonlyArray<ProviderProfile>
  /** Sorted by start. */
  readonly outages: ReadonlyArray<Outage>
  readonly background: Background
}

export interface ScenarioOptions {
  readonly seed: number
  readonly durationMs?: number | undefined
  readonly preset?: PresetName | undefined
  readonly profiles?: ReadonlyArray<ProviderProfile> | undefined
  readonly background?: Background | undefined
  /** Relative weights of the incident kinds drawn. Default errors 2, overloaded 1, hang 1. */
  readonly kinds?: Partial<Record<IncidentKind, number>> | undefined
  /** One incident exactly, instead of drawn ones. */
  readonly outage?: {
    readonly provider: string
    readonly start: number
    readonly minutes: number
    readonly kind: IncidentKind
  } | undefined
}

export const defaultKinds: Readonly<Partial<Record<IncidentKind, number>>> = { errors: 2, overloaded: 1, hang: 1 }

/** Incidents scale with the simulated span: a 30-day run gets a twelfth of a year's, rounded by chance. */
const incidentCount = (random: PCGRandom, [low, high]: readonly [number, number], years: number): number => {
  const expected = (low + random.integer(Math.floor(high - low) + 1)) * years
  const whole = Math.floor(expected)
  return whole + (random.number() < expected - whole ? 1 : 0)
}

const drawKind = (random: PCGRandom, kinds: Partial<Record<IncidentKind, number>>): IncidentKind => {
  const entries = incidentKinds.map((kind) => [kind, kinds[kind] ?? 0] as const).filter(([, weight]) => weight > 0)
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0)
  let pick = random.number() * total
  for (const [kind, weight] of entries) {
    pick -= weight
    if (pick < 0) return kind
  }
  return entries[entries.length - 1]?.[0] ?? "errors"
}

export const makeScenario = (options: ScenarioOptions): Scenario => {
  const durationMs = options.durationMs ?? YEAR
  const profiles = options.profiles ?? presets[options.preset ?? "paper"]
  const random = new PCGRandom(options.seed)
  const kinds = options.kinds ?? defaultKinds
  const outages: Array<Outage> = []
  if (options.outage !== undefined) {
    const { kind, minutes, provider, start } = options.outage
    outages.push({ provider, start, end: Math.min(durationMs, start + minutes * MINUTE), kind, share: 1 })
  } else {
    for (const profile of profiles) {
      for (const incidents of profile.incidents) {
        const count = incidentCount(random, incidents.perYear, durationMs / YEAR)
        for (let index = 0; index < count; index++) {
          const start = Math.floor(random.number() * durationMs)
          // Exponential durations, at least a minute (shorter blips are the background error rate's business).
          const minutes = Math.max(1, -Math.log(1 - random.number()) * incidents.meanMinutes)
          outages.push({
            provider: profile.name,
            start,
            end: Math.min(durationMs, start + Math.round(minutes * MINUTE)),
            kind: drawKind(random, kinds),
            share: incidents.share
          })
        }
      }
    }
  }
  outages.sort((a, b) => a.start - b.start)
  return {
    seed: options.seed,
    durationMs,
    preset: options.profiles !== undefined ? "custom" : options.preset ?? "paper",
    profiles,
    outages,
    background: options.background ?? noBackground
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

  /** Whether any of `providers` had an incident overlapping [from, to]. */
  overlaps(providers: ReadonlyArray<string>, from: number, to: number): boolean {
    for (const provider of providers) {
      for (const outage of this.byProvider.get(provider) ?? []) {
        if (outage.start > to) break
        if (outage.end >= from) return true
      }
    }
    return false
  }
}

/** Minutes of each provider's incidents, weighted by the share of calls they affect. */
export const incidentMinutes = (scenario: Scenario, provider: string): number =>
  scenario.outages.filter((outage) => outage.provider === provider)
    .reduce((sum, outage) => sum + ((outage.end - outage.start) / MINUTE) * outage.share, 0)

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
