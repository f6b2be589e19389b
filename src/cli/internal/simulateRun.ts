/**
 * `simulate`'s runs: the configurations on one scenario, in this thread or in worker threads, and how long the
 * simulation proper took.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import {
  autoSampling,
  type ConfigurationName,
  type ConfigurationReport,
  configurations,
  runConfiguration
} from "../../internal/simulation/run.js"
import {
  type Background,
  DAY,
  HOUR,
  type IncidentKind,
  makeScenario,
  MINUTE,
  type PresetName,
  type Scenario
} from "../../internal/simulation/scenario.js"
import { configurationOf, profilesOf, settingsOf, type UserConfigFile } from "../../internal/simulation/userConfig.js"

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
  /** Real time of the whole call: worker threads started (their modules loaded), configurations run, reports back. */
  readonly realSeconds: number
  /**
   * Real time of the simulation proper: from the moment the first configuration started running (in its thread, after
   * its worker's start) to the moment the last one's report was back. Building each client and assembling each report
   * are in it; starting worker threads is not.
   */
  readonly simulationSeconds: number
  /** Worker threads used (0: this thread). */
  readonly workers: number
}

const WORKER_ROLE = "effect-llm-resilience/simulate"

interface Job {
  readonly options: Omit<SimulationOptions, "onProgress" | "configurations" | "parallel" | "quietSampling"> & {
    readonly quietSampling: number
  }
  readonly configuration: ConfigurationName
}

type WorkerMessage =
  | { readonly _tag: "started" }
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
    port.postMessage({ _tag: "started" } satisfies WorkerMessage)
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
  const run = (job: Job, onStart: () => void, onProgress: (fraction: number) => void) =>
    new Promise<ConfigurationReport>((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message._tag === "started") return onStart()
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
  const lanes = Math.max(1, Math.min(parallel, jobs.length))
  const workers = parallel > 1 ? lanes : 0
  let next = 0
  let firstStart = Infinity
  let lastEnd = 0
  const onStart = () => {
    firstStart = Math.min(firstStart, performance.now())
  }
  const lane = async () => {
    const worker = workers > 0 ? startWorker() : undefined
    try {
      while (next < jobs.length) {
        const index = next++
        const job = jobs[index]!
        const progress = (fraction: number) => onProgress?.(job.configuration, fraction)
        if (worker === undefined) onStart()
        reports[index] = worker === undefined ? await runJob(job, progress) : await worker.run(job, onStart, progress)
        lastEnd = performance.now()
      }
    } finally {
      await worker?.stop()
    }
  }
  await Promise.all(Array.from({ length: lanes }, lane))
  return {
    scenario,
    reports,
    realSeconds: (performance.now() - started) / 1000,
    simulationSeconds: Math.max(0, lastEnd - Math.min(firstStart, lastEnd)) / 1000,
    workers
  }
}
