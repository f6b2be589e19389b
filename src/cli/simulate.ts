/**
 * `npm run simulate`: a year of provider incidents replayed in virtual time through the real library, for four
 * configurations (single provider, retry only, retry + fallback, the full stack), with a report and an HTML chart.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { writeFile } from "node:fs/promises"
import { availableParallelism } from "node:os"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { renderHtml } from "../internal/simulation/chart.js"
import {
  type ConfigurationName,
  type ConfigurationReport,
  configurations,
  runConfiguration
} from "../internal/simulation/run.js"
import { DAY, makeScenario, MINUTE, type Scenario, YEAR } from "../internal/simulation/scenario.js"

export interface SimulationOptions {
  readonly days: number
  readonly requestsPerMinute: number
  readonly seed: number
  readonly quietSampling: number
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
  readonly options: Omit<SimulationOptions, "onProgress" | "configurations" | "parallel">
  readonly configuration: ConfigurationName
}

type WorkerMessage =
  | { readonly _tag: "progress"; readonly fraction: number }
  | { readonly _tag: "done"; readonly report: ConfigurationReport }
  | { readonly _tag: "failed"; readonly message: string }

const scenarioOf = (options: Job["options"]) => makeScenario({ seed: options.seed, durationMs: options.days * DAY })

const runJob = (job: Job, onProgress: (fraction: number) => void): Promise<ConfigurationReport> => {
  const configuration = configurations.find((candidate) => candidate.name === job.configuration)
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
  const { configurations: chosen, onProgress, parallel, ...rest } = options
  const scenario = scenarioOf(rest)
  const started = performance.now()
  const jobs: Array<Job> = configurations
    .filter((configuration) => chosen.includes(configuration.name))
    .map((configuration) => ({ options: rest, configuration: configuration.name }))
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

/** The report as text: one row per configuration, then where each answer came from. */
export const formatReport = ({ realSeconds, reports, scenario }: Simulation): string => {
  const primary = scenario.profiles[0]?.name ?? ""
  const incidents = scenario.profiles.map((profile) => {
    const own = scenario.outages.filter((outage) => outage.provider === profile.name)
    const minutes = own.reduce((sum, outage) => sum + (outage.end - outage.start), 0) / MINUTE
    return `${profile.name} ${own.length} (${Math.round(minutes)} min)`
  })
  const simulated = reports.reduce((sum, report) => sum + report.simulatedRequests, 0)
  const virtualSeconds = (scenario.durationMs / 1000) * reports.length
  const lines = [
    `Scenario: ${Math.round(scenario.durationMs / DAY)} days, seed ${scenario.seed}; incidents: ${
      incidents.join(", ")
    }`,
    "",
    table(
      [
        "configuration",
        "availability",
        "failed",
        "degraded",
        `${primary} down: served`,
        "calls to a down provider",
        "added latency p50 / p99",
        "in incidents p50 / p99",
        "cost"
      ],
      reports.map((report) => [
        report.title,
        `${(report.availability * 100).toFixed(4)} %`,
        count(report.failed),
        count(report.degraded),
        `${count(report.duringPrimaryOutage.served)} / ${count(report.duringPrimaryOutage.requests)}`,
        count(report.wastedCalls),
        `${ms(report.addedLatencyMs.p50)} / ${ms(report.addedLatencyMs.p99)}`,
        `${ms(report.addedLatencyDuringOutageMs.p50)} / ${ms(report.addedLatencyDuringOutageMs.p99)}`,
        `$${report.costUsd.toFixed(2)}`
      ])
    ),
    "",
    ...reports.map((report) =>
      `${pad(report.title, 17)} served by ${
        Object.entries(report.servedBy).sort(([, a], [, b]) => b - a).map(([by, n]) =>
          `${by} ${((n / report.requests) * 100).toFixed(2)} %`
        ).join(", ")
      }${report.breakerChanges.length > 0 ? `; ${report.breakerChanges.length} breaker transitions` : ""}`
    ),
    "",
    `Requests: ${count(reports[0]?.requests ?? 0)} per configuration, of which ${
      count(reports[0]?.simulatedRequests ?? 0)
    } simulated one by one (incident windows in full, quiet time sampled).`,
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

const isName = (value: string): value is ConfigurationName => names.some((name) => name === value)

export const command = Command.make(
  "simulate",
  {
    days: Options.integer("days").pipe(
      Options.withDefault(Math.round(YEAR / DAY)),
      Options.withDescription("Simulated span in days")
    ),
    rate: Options.float("rate").pipe(
      Options.withDefault(10),
      Options.withDescription("The application's traffic, in requests per minute (Poisson arrivals)")
    ),
    seed: Options.integer("seed").pipe(Options.withDefault(1), Options.withDescription("Seed of the scenario")),
    quietSampling: Options.integer("quiet-sampling").pipe(
      Options.withDefault(500),
      Options.withDescription(
        "Away from incidents simulate one request in N and count it N times; 1 simulates every request"
      )
    ),
    only: Options.text("configurations").pipe(
      Options.withDefault(names.join(",")),
      Options.withDescription(`Comma-separated subset of ${names.join(", ")}`)
    ),
    chart: Options.text("chart").pipe(
      Options.withDefault("simulation.html"),
      Options.withDescription("Where to write the HTML chart; empty for none")
    ),
    parallel: Options.integer("parallel").pipe(
      Options.withDefault(availableParallelism()),
      Options.withDescription("Configurations simulated at once, in worker threads (default: one per core)")
    ),
    json: Options.text("json").pipe(Options.optional, Options.withDescription("Also write the report as JSON here"))
  },
  ({ chart, days, json, only, parallel, quietSampling, rate, seed }) =>
    Effect.gen(function*() {
      const chosen = only.split(",").map((name) => name.trim()).filter((name) => name !== "")
      const unknown = chosen.filter((name) => !isName(name))
      if (unknown.length > 0 || chosen.length === 0) {
        return yield* Effect.fail(new Error(`--configurations: unknown ${unknown.join(", ")}; use ${names.join(", ")}`))
      }
      if (days < 1) return yield* Effect.fail(new Error("--days must be at least 1"))
      if (!(rate > 0)) return yield* Effect.fail(new Error("--rate must be a positive number of requests per minute"))
      if (quietSampling < 1) return yield* Effect.fail(new Error("--quiet-sampling must be at least 1"))
      yield* Console.log(
        `Simulating ${days} days at ${rate} requests/min through the real library in virtual time (seed ${seed})…`
      )
      const simulation = yield* Effect.promise(() =>
        simulate({
          days,
          requestsPerMinute: rate,
          seed,
          quietSampling,
          parallel,
          configurations: chosen.filter(isName),
          onProgress: progressReporter()
        })
      )
      yield* Console.log(`\n${formatReport(simulation)}`)
      if (chart !== "") {
        yield* Effect.promise(() => writeFile(chart, renderHtml(simulation.scenario, simulation.reports)))
        yield* Console.log(`Chart: ${chart}`)
      }
      if (json._tag === "Some") {
        const serialisable = simulation.reports.map(({ timeline: _timeline, ...report }) => report)
        yield* Effect.promise(() =>
          writeFile(json.value, JSON.stringify({ scenario: simulation.scenario, reports: serialisable }, null, 2))
        )
        yield* Console.log(`JSON: ${json.value}`)
      }
    })
).pipe(Command.withDescription("Replay a year of provider outages in virtual time and report availability"))
