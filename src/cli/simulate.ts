/**
 * `npm run simulate`: a year of provider incidents replayed in virtual time through the real library, for four
 * configurations (single provider, retry only, retry + fallback, the full stack), with a report and an HTML chart.
 * The runs are in ./internal/simulateRun.ts, the text report in ./internal/simulateReport.ts.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { constants } from "node:fs"
import { access, readFile, writeFile } from "node:fs/promises"
import { availableParallelism } from "node:os"
import { dirname, resolve as resolvePath } from "node:path"
import { setFlagsFromString } from "node:v8"
import { renderHtml } from "../internal/simulation/chart.js"
import { type ConfigurationName, configurations } from "../internal/simulation/run.js"
import {
  type Background,
  type BackgroundKind,
  DAY,
  incidentKinds,
  noBackground,
  type PresetName,
  presetNames,
  presets,
  YEAR
} from "../internal/simulation/scenario.js"
import { formatFor, profilesOf, settingsOf, type UserConfigFile } from "../internal/simulation/userConfig.js"
import { formatReport, progressReporter } from "./internal/simulateReport.js"
import { type OutageOnDemand, simulate } from "./internal/simulateRun.js"

export { formatReport } from "./internal/simulateReport.js"
export { type OutageOnDemand, simulate, type Simulation, type SimulationOptions } from "./internal/simulateRun.js"

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

/**
 * Turns off V8's allocation-site pretenuring for this process (worker threads share V8's flags). During a run V8
 * judges allocation sites long-lived (144 "tenure" decisions in one configuration's run) and allocates their objects
 * in the old generation from then on, where the simulator's, which die within a request, wait for a full collection:
 * a heap sampler showed nearly every request's fiber outliving a young collection, none of them live at a full one.
 * With pretenuring off the default run took 25–45 % less CPU (docs/benchmarks.md, "Simulator throughput"). The simulator's objects die young, so the young generation is where they belong. Only the command line
 * sets it: `simulate()` called from a program leaves that program's flags alone.
 */
const lessPretenuring = () => setFlagsFromString("--no-allocation-site-pretenuring")

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
      yield* Effect.sync(lessPretenuring)
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
