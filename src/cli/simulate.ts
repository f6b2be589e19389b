/**
 * `npm run simulate`: a year of provider incidents replayed in virtual time through the real library, for four
 * configurations (single provider, retry only, retry + fallback, the full stack), with a report and an HTML chart.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { constants } from "node:fs"
import { access, readFile, writeFile } from "node:fs/promises"
import { availableParallelism } from "node:os"
import { dirname, resolve as resolvePath } from "node:path"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { renderHtml } from "../internal/simulation/chart.js"
import {
  autoSampling,
  type ConfigurationName,
  type ConfigurationReport,
  configurations,
  runConfiguration
} from "../internal/simulation/run.js"
import type { LatencySummary } from "../internal/simulation/samples.js"
import {
  type Background,
  type BackgroundKind,
  DAY,
  HOUR,
  type IncidentKind,
  incidentKinds,
  incidentMinutes,
  makeScenario,
  MINUTE,
  noBackground,
  type PresetName,
  presetNames,
  presets,
  type Scenario,
  YEAR
} from "../internal/simulation/scenario.js"
import {
  configurationOf,
  formatFor,
  profilesOf,
  settingsOf,
  type UserConfigFile
} from "../internal/simulation/userConfig.js"

/** One incident on demand: `--outage openai:45m:hang`. */
export interface OutageOnDemand {
  readonly provider: string
  readonly minutes: number
  readonly kind: IncidentKind
}

export interface SimulationOptions {
  readonly days: number
  readonly requestsPerMinute: number
  readonly seed: number
  /** One quiet request in N simulated; `auto` keeps at least 10,000 (see `autoSampling`); 1 is exact. */
  readonly quietSampling: number | "auto"
  readonly preset?: PresetName | undefined
  readonly background?: Background | undefined
  readonly kinds?: Partial<Record<IncidentKind, number>> | undefined
  readonly outage?: OutageOnDemand | undefined
  /** The user's configuration file, run as the `config` configuration; its tiers name the scenario's providers. */
  readonly userConfig?: UserConfigFile | undefined
  readonly configurations: ReadonlyArray<ConfigurationName>
  /** Configurations run at once in worker threads; 1 runs them in this thread. */
  readonly parallel: number
  readonly onProgress?: ((name: ConfigurationName, fraction: number) => void) | undefined
}

export interface Simulation {
  readonly scenario: Scenario
  readonly reports: ReadonlyArray<ConfigurationReport>
  readonly realSeconds: number
}

const WORKER_ROLE = "effect-llm-resilience/simulate"

interface Job {
  readonly options: Omit<SimulationOptions, "onProgress" | "configurations" | "parallel" | "quietSampling"> & {
    readonly quietSampling: number
  }
  readonly configuration: ConfigurationName
}

type WorkerMessage =
  | { readonly _tag: "progress"; readonly fraction: number }
  | { readonly _tag: "done"; readonly report: ConfigurationReport }
  | { readonly _tag: "failed"; readonly message: string }

/** With `--outage`, the run is the incident with an hour either side; otherwise `days` of drawn incidents. */
const scenarioOf = (options: Omit<SimulationOptions, "onProgress" | "configurations" | "parallel">) => {
  const scenario = makeScenario({
    seed: options.seed,
    durationMs: options.outage === undefined ? options.days * DAY : options.outage.minutes * MINUTE + 2 * HOUR,
    preset: options.preset,
    background: options.background,
    kinds: options.kinds,
    outage: options.outage === undefined ? undefined : { ...options.outage, start: HOUR },
    profiles: options.userConfig === undefined
      ? undefined
      : profilesOf(settingsOf(options.userConfig), options.preset ?? "paper")
  })
  return options.userConfig === undefined ? scenario : { ...scenario, preset: options.preset ?? "paper" }
}

const runJob = (job: Job, onProgress: (fraction: number) => void): Promise<ConfigurationReport> => {
  const { userConfig } = job.options
  const configuration = job.configuration === "config" && userConfig !== undefined
    ? configurationOf(settingsOf(userConfig), userConfig.path)
    : configurations.find((candidate) => candidate.name === job.configuration)
  if (configuration === undefined) return Promise.reject(new Error(`unknown configuration ${job.configuration}`))
  return runConfiguration({
    scenario: scenarioOf(job.options),
    configuration,
    requestsPerMinute: job.options.requestsPerMinute,
    quietSampling: job.options.quietSampling,
    onProgress
  })
}

const isWorker = (data: unknown): boolean =>
  typeof data === "object" && data !== null && "role" in data && data.role === WORKER_ROLE

// In a worker thread this module runs the configurations it is sent, one at a time, and posts each report back.
if (!isMainThread && isWorker(workerData) && parentPort !== null) {
  const port = parentPort
  port.on("message", (job: Job) => {
    runJob(job, (fraction) => port.postMessage({ _tag: "progress", fraction } satisfies WorkerMessage)).then(
      (report) => port.postMessage({ _tag: "done", report } satisfies WorkerMessage),
      (error: unknown) => port.postMessage({ _tag: "failed", message: String(error) } satisfies WorkerMessage)
    )
  })
}

/** A worker thread that runs jobs one after the other (starting one costs a second or two of module loading). */
const startWorker = () => {
  // Run from source (`npm run simulate`), a worker needs tsx's loader: workers do not inherit module hooks.
  const worker = import.meta.url.endsWith(".ts")
    ? new Worker(
      `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}) })`,
      { eval: true, workerData: { role: WORKER_ROLE } }
    )
    : new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } })
  const run = (job: Job, onProgress: (fraction: number) => void) =>
    new Promise<ConfigurationReport>((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message._tag === "progress") return onProgress(message.fraction)
        worker.off("message", onMessage)
        worker.off("error", reject)
        if (message._tag === "done") resolve(message.report)
        else reject(new Error(message.message))
      }
      worker.on("message", onMessage)
      worker.on("error", reject)
      worker.postMessage(job)
    })
  return { run, stop: () => worker.terminate() }
}

/**
 * Runs the configurations on the same scenario (same incidents, same traffic), `parallel` at a time in worker
 * threads (each configuration is independent, so a 2-core machine halves the wall time), or in this thread.
 */
export const simulate = async (options: SimulationOptions): Promise<Simulation> => {
  const { configurations: chosen, onProgress, parallel, ...given } = options
  const scenario = scenarioOf(given)
  const rest: Job["options"] = {
    ...given,
    quietSampling: given.quietSampling === "auto"
      ? autoSampling(scenario, given.requestsPerMinute)
      : given.quietSampling
  }
  const started = performance.now()
  const jobs: Array<Job> = [...configurations.map(({ name }) => name), "config" as const]
    .filter((name) => chosen.includes(name))
    .map((name) => ({ options: rest, configuration: name }))
  const reports = new Array<ConfigurationReport>(jobs.length)
  let next = 0
  const lane = async () => {
    const worker = parallel > 1 ? startWorker() : undefined
    try {
      while (next < jobs.length) {
        const index = next++
        const job = jobs[index]!
        const progress = (fraction: number) => onProgress?.(job.configuration, fraction)
        reports[index] = worker === undefined ? await runJob(job, progress) : await worker.run(job, progress)
      }
    } finally {
      await worker?.stop()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, jobs.length)) }, lane))
  return { scenario, reports, realSeconds: (performance.now() - started) / 1000 }
}

const count = (value: number) => Math.round(value).toLocaleString("en-US")
const ms = (value: number) =>
  value < 1 ? "0 ms" : value < 10_000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`
const pad = (text: string, width: number) => text.length >= width ? text : text + " ".repeat(width - text.length)
const padLeft = (text: string, width: number) => text.length >= width ? text : " ".repeat(width - text.length) + text

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, column) => column === 0 ? pad(cell, widths[0]!) : padLeft(cell, widths[column]!)).join("  ")
  return [line(header), widths.map((width) => "─".repeat(width)).join("  "), ...rows.map(line)].join("\n")
}

const pct = (value: number) => `${(value * 100).toFixed(4)} %`

const availabilityText = (report: ConfigurationReport) =>
  report.availabilityInterval === null
    ? `${pct(report.availability)} (exact)`
    : `${pct(report.availability)} (95 % CI ${(report.availabilityInterval[0] * 100).toFixed(4)}–${
      (report.availabilityInterval[1] * 100).toFixed(4)
    })`

const orDash = (value: number | null) => value === null ? "—" : ms(value)

/** `p50 / p99 / max` or `p99 / p99.9 / max`; a dash when no request was answered (nothing to measure). */
const spread = (summary: LatencySummary, from: "p50" | "p99") =>
  summary.count === 0
    ? "— (none answered)"
    : from === "p50"
    ? `${ms(summary.p50)} / ${ms(summary.p99)} / ${ms(summary.max)}`
    : `${ms(summary.p99)} / ${ms(summary.p999)} / ${ms(summary.max)}`

/** The report as text: one row per configuration, then where each answer came from. */
export const formatReport = ({ realSeconds, reports, scenario }: Simulation): string => {
  const primary = scenario.profiles[0]?.name ?? ""
  const incidents = scenario.profiles.map((profile) => {
    const own = scenario.outages.filter((outage) => outage.provider === profile.name)
    return `${profile.name} ${own.length} (${Math.round(incidentMinutes(scenario, profile.name))} min)`
  })
  const simulated = reports.reduce((sum, report) => sum + report.simulatedRequests, 0)
  const virtualSeconds = (scenario.durationMs / 1000) * reports.length
  const { background } = scenario
  const first = reports[0]
  const lines = [
    `Scenario: ${scenario.preset}, ${
      (scenario.durationMs / DAY).toFixed(scenario.durationMs < DAY ? 2 : 0)
    } days, seed ${scenario.seed}; incident minutes (weighted by the share of calls hit): ${
      incidents.join(", ")
    }; background errors ${background.rate === 0 ? "off" : `${(background.rate * 100).toFixed(3)} %`}`,
    "",
    table(
      [
        "configuration",
        "availability",
        "failed: incidents",
        "background",
        "degraded",
        `${primary} down: served`,
        "calls to a down provider",
        "added latency in incidents p99 / p99.9 / max",
        "cost"
      ],
      reports.map((report) => [
        report.title,
        availabilityText(report),
        count(report.failedInIncidents),
        count(report.failedBackground),
        count(report.degraded + report.truncated),
        `${count(report.duringPrimaryOutage.served)} / ${count(report.duringPrimaryOutage.requests)}`,
        count(report.wastedCalls),
        spread(report.addedLatencyInIncidentsMs, "p99"),
        `$${report.costUsd.toFixed(2)}`
      ])
    ),
    "",
    ...(scenario.outages.length === 1
      ? [
        `The ${primary} incident (${scenario.outages[0]!.kind}, ${
          Math.round((scenario.outages[0]!.end - scenario.outages[0]!.start) / MINUTE)
        } min):`,
        table(
          [
            "configuration",
            "failed",
            `calls to ${primary}`,
            "time to detect",
            "time to recover",
            "added after the trip p50 / p99 / max"
          ],
          reports.map((report) => {
            const incident = report.incidents[0]
            return incident === undefined ? [report.title, "—", "—", "—", "—", "—"] : [
              report.title,
              `${count(incident.failed)} / ${count(incident.requests)}`,
              count(incident.callsToProvider),
              orDash(incident.detectMs),
              orDash(incident.recoverMs),
              spread(incident.addedAfterTripMs, "p50")
            ]
          })
        ),
        ""
      ]
      : []),
    ...reports.map((report) =>
      `${pad(report.title, 17)} served by ${
        Object.entries(report.servedBy).sort(([, a], [, b]) => b - a).map(([by, n]) =>
          `${by} ${((n / report.requests) * 100).toFixed(2)} %`
        ).join(", ")
      }${report.breakerChanges.length > 0 ? `; ${report.breakerChanges.length} breaker transitions` : ""}`
    ),
    "",
    `Requests: ${count(first?.requests ?? 0)} per configuration, of which ${
      count(first?.simulatedRequests ?? 0)
    } simulated one by one (${
      first === undefined || first.sampling.factor === 1
        ? "every request"
        : `incident windows in full, quiet time one in ${first.sampling.factor}: ${
          count(first.sampling.sampled)
        } sampled`
    }).`,
    `Real time ${realSeconds.toFixed(1)} s for ${count(simulated)} simulated requests: ${
      count(simulated / realSeconds)
    } requests/s, virtual:real ${count(virtualSeconds / realSeconds)}:1.`
  ]
  return lines.join("\n")
}

/** Progress bars on a terminal (one per configuration, redrawn in place); a line per quarter elsewhere (CI logs). */
const progressReporter = () => {
  const tty = process.stderr.isTTY === true
  const fractions = new Map<string, number>()
  const reported = new Map<string, number>()
  return (name: ConfigurationName, fraction: number) => {
    fractions.set(name, fraction)
    if (tty) {
      const width = 20
      const bars = [...fractions].map(([label, done]) => {
        const filled = Math.round(done * width)
        return `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${
          padLeft(String(Math.round(done * 100)), 3)
        } %`
      })
      process.stderr.write(`\r${bars.join("  ")}`)
      return
    }
    const quarter = Math.floor(fraction * 4)
    if ((reported.get(name) ?? -1) >= quarter) return
    reported.set(name, quarter)
    process.stderr.write(`${name}: ${quarter * 25} %\n`)
  }
}

const names = configurations.map((configuration) => configuration.name)

const isName = (value: string): value is ConfigurationName => value === "config" || names.some((name) => name === value)

/** `name:weight,…` (or bare names, weight 1) into weights over `allowed`. */
const weights = <K extends string>(flag: string, text: string, allowed: ReadonlyArray<K>): Record<K, number> => {
  const result: Partial<Record<K, number>> = {}
  for (const part of text.split(",").map((item) => item.trim()).filter((item) => item !== "")) {
    const [name = "", weight = "1"] = part.split(":")
    const key = allowed.find((candidate) => candidate === name)
    const value = Number(weight)
    if (key === undefined) throw new Error(`${flag}: unknown ${name}; use ${allowed.join(", ")}`)
    if (!(Number.isFinite(value) && value >= 0)) throw new Error(`${flag}: ${part} needs a weight of at least 0`)
    result[key] = (result[key] ?? 0) + value
  }
  const full = Object.fromEntries(allowed.map((key) => [key, result[key] ?? 0])) as Record<K, number>
  if (Object.values<number>(full).every((value) => value === 0)) throw new Error(`${flag}: give at least one weight`)
  return full
}

const backgroundKinds: ReadonlyArray<BackgroundKind> = ["500", "429", "timeout"]

/** `openai:45m:hang` → the provider (by name or prefix), minutes, kind. */
const parseOutage = (text: string, profiles: ReadonlyArray<{ readonly name: string }>): OutageOnDemand => {
  const [name = "", span = "", kind = ""] = text.split(":")
  const profile = profiles.find((candidate) => candidate.name === name || candidate.name.startsWith(name))
  const match = /^(\d+(?:\.\d+)?)(m|h)$/.exec(span)
  const found = incidentKinds.find((candidate) => candidate === kind)
  if (profile === undefined || name === "") {
    throw new Error(`--outage: unknown provider ${name}; use ${profiles.map((p) => p.name).join(", ")}`)
  }
  if (match === null) throw new Error(`--outage: duration ${span} must look like 45m or 2h`)
  if (found === undefined) throw new Error(`--outage: kind ${kind} must be one of ${incidentKinds.join(", ")}`)
  const minutes = Number(match[1]) * (match[2] === "h" ? 60 : 1)
  if (!(minutes > 0)) throw new Error("--outage: the duration must be positive")
  return { provider: profile.name, minutes, kind: found }
}

/** Fails before a long run if a report cannot be written there. */
const writable = (flag: string, path: string) =>
  Effect.tryPromise({
    try: () => access(dirname(resolvePath(path)), constants.W_OK),
    catch: () => new Error(`${flag}: cannot write ${path} (its folder is missing or not writable)`)
  })

const isPreset = (value: string): value is PresetName => presetNames.some((name) => name === value)

export const command = Command.make(
  "simulate",
  {
    days: Options.integer("days").pipe(
      Options.withDefault(Math.round(YEAR / DAY)),
      Options.withDescription("Simulated span in days (default 365)")
    ),
    rate: Options.float("rate").pipe(
      Options.withDefault(10),
      Options.withDescription("The application's traffic, in requests per minute, Poisson arrivals (default 10)")
    ),
    seed: Options.integer("seed").pipe(
      Options.withDefault(1),
      Options.withDescription("Seed of the scenario (default 1)")
    ),
    scenario: Options.text("scenario").pipe(
      Options.withDefault("paper"),
      Options.withDescription(`Incident statistics: ${presetNames.join(" or ")}; see docs/simulator.md (default paper)`)
    ),
    kinds: Options.text("incident-kinds").pipe(
      Options.withDefault("errors:2,overloaded:1,hang:1"),
      Options.withDescription(
        `Mix of incident kinds drawn, name:weight among ${
          incidentKinds.join(", ")
        } (default errors:2,overloaded:1,hang:1)`
      )
    ),
    backgroundRate: Options.float("background-errors").pipe(
      Options.withDefault(0),
      Options.withDescription("Percent of healthy calls that fail anyway, outside incidents (default 0: off)")
    ),
    backgroundMix: Options.text("background-mix").pipe(
      Options.withDefault("500:1,429:1"),
      Options.withDescription("Mix of background failures, name:weight among 500, 429, timeout (default 500:1,429:1)")
    ),
    outage: Options.text("outage").pipe(
      Options.optional,
      Options.withDescription(
        "One incident instead of drawn ones, provider:duration:kind (e.g. openai:45m:hang), with an hour either side"
      )
    ),
    quietSampling: Options.integer("quiet-sampling").pipe(
      Options.optional,
      Options.withDescription(
        "Away from incidents simulate one request in N and count it N times (default: enough for 10,000 samples)"
      )
    ),
    exact: Options.boolean("exact").pipe(Options.withDescription("Simulate every request (no sampling)")),
    config: Options.text("config").pipe(
      Options.optional,
      Options.withDescription(
        "Your resilience.yaml / .toml, run as the configuration \"config\" next to the built-in ones (no API key is read)"
      )
    ),
    only: Options.text("configurations").pipe(
      Options.optional,
      Options.withDescription(
        `Comma-separated subset of ${
          names.join(", ")
        }, config (default all built-in ones; with --config: single,config)`
      )
    ),
    chart: Options.text("chart").pipe(
      Options.withDefault("simulation.html"),
      Options.withDescription("Where to write the HTML chart; empty for none (default simulation.html)")
    ),
    parallel: Options.integer("parallel").pipe(
      Options.withDefault(availableParallelism()),
      Options.withDescription("Configurations simulated at once, in worker threads (default: one per core)")
    ),
    json: Options.text("json").pipe(Options.optional, Options.withDescription("Also write the report as JSON here"))
  },
  (flags) =>
    Effect.gen(function*() {
      const { chart, days, json, parallel, rate, seed } = flags
      const only = flags.only._tag === "Some"
        ? flags.only.value
        : flags.config._tag === "Some"
        ? "single,config"
        : names.join(",")
      const chosen = only.split(",").map((name) => name.trim()).filter((name) => name !== "")
      const unknown = chosen.filter((name) => !isName(name))
      if (unknown.length > 0 || chosen.length === 0) {
        return yield* Effect.fail(
          new Error(`--configurations: unknown ${unknown.join(", ")}; use ${names.join(", ")}, config`)
        )
      }
      if (!isPreset(flags.scenario)) {
        return yield* Effect.fail(new Error(`--scenario: unknown ${flags.scenario}; use ${presetNames.join(", ")}`))
      }
      const preset = flags.scenario
      if (chosen.includes("config") && flags.config._tag === "None") {
        return yield* Effect.fail(new Error("--configurations: config needs --config <file>"))
      }
      // The file is read and decoded before the run: a typo fails in a second, not after a year of virtual time.
      const userConfig: UserConfigFile | undefined = flags.config._tag === "None"
        ? undefined
        : yield* Effect.tryPromise({
          try: async () => {
            const path = flags.config._tag === "Some" ? flags.config.value : ""
            const format = formatFor(path)
            const file = { path, format, text: await readFile(path, "utf8") }
            settingsOf(file)
            return file
          },
          catch: (error) =>
            error instanceof Error && error.message.startsWith("--config")
              ? error
              : new Error(`--config: cannot read ${flags.config._tag === "Some" ? flags.config.value : ""}`)
        })
      const profiles: ReadonlyArray<{ readonly name: string }> = userConfig === undefined
        ? presets[preset]
        : profilesOf(settingsOf(userConfig), preset)
      if (days < 1) return yield* Effect.fail(new Error("--days must be at least 1"))
      if (!(rate > 0)) return yield* Effect.fail(new Error("--rate must be a positive number of requests per minute"))
      if (!(flags.backgroundRate >= 0 && flags.backgroundRate < 100)) {
        return yield* Effect.fail(new Error("--background-errors must be a percentage in [0, 100)"))
      }
      const sampling = flags.exact ? 1 : flags.quietSampling._tag === "Some" ? flags.quietSampling.value : "auto"
      if (sampling !== "auto" && sampling < 1) {
        return yield* Effect.fail(new Error("--quiet-sampling must be at least 1"))
      }
      const parsed = yield* Effect.try({
        try: () => ({
          kinds: weights("--incident-kinds", flags.kinds, incidentKinds),
          mix: weights("--background-mix", flags.backgroundMix, backgroundKinds),
          outage: flags.outage._tag === "Some" ? parseOutage(flags.outage.value, profiles) : undefined
        }),
        catch: (error) => error instanceof Error ? error : new Error(String(error))
      })
      if (chart !== "") yield* writable("--chart", chart)
      if (json._tag === "Some") yield* writable("--json", json.value)
      const background: Background = flags.backgroundRate === 0
        ? noBackground
        : { rate: flags.backgroundRate / 100, mix: parsed.mix }
      yield* Console.log(
        parsed.outage === undefined
          ? `Simulating ${days} days (${preset}) at ${rate} requests/min through the real library in virtual time (seed ${seed})…`
          : `Simulating a ${parsed.outage.minutes}-minute ${parsed.outage.kind} incident of ${parsed.outage.provider} at ${rate} requests/min…`
      )
      const simulation = yield* Effect.tryPromise({
        try: () =>
          simulate({
            days,
            requestsPerMinute: rate,
            seed,
            quietSampling: sampling,
            preset,
            background,
            kinds: parsed.kinds,
            outage: parsed.outage,
            parallel,
            configurations: chosen.filter(isName),
            userConfig,
            onProgress: progressReporter()
          }),
        catch: (error) => error instanceof Error ? error : new Error(String(error))
      }).pipe(
        // Whatever failed, the JSON report says so.
        Effect.tapError((error) =>
          json._tag === "None"
            ? Effect.void
            : Effect.promise(() =>
              writeFile(json.value, JSON.stringify({ error: error.message }, null, 2)).catch(() => undefined)
            )
        )
      )
      // The JSON first: whatever fails later (the chart, the terminal), the figures are on disk.
      if (json._tag === "Some") {
        const serialisable = simulation.reports.map(({ timeline: _timeline, ...report }) => report)
        yield* Effect.tryPromise({
          try: () =>
            writeFile(json.value, JSON.stringify({ scenario: simulation.scenario, reports: serialisable }, null, 2)),
          catch: (error) => new Error(`--json: ${String(error)}`)
        })
      }
      yield* Console.log(`\n${formatReport(simulation)}`)
      if (json._tag === "Some") yield* Console.log(`JSON: ${json.value}`)
      if (chart !== "") {
        yield* Effect.tryPromise({
          try: () => writeFile(chart, renderHtml(simulation.scenario, simulation.reports)),
          catch: (error) => new Error(`--chart: ${String(error)}`)
        })
        yield* Console.log(`Chart: ${chart}`)
      }
    })
).pipe(Command.withDescription("Replay a year of provider outages in virtual time and report availability"))
