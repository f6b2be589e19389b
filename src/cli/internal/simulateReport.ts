/**
 * `simulate`'s text report (one row per configuration, then where each answer came from and how fast the run was)
 * and its progress display.
 */
import type { ConfigurationName, ConfigurationReport } from "../../internal/simulation/run.js"
import type { LatencySummary } from "../../internal/simulation/samples.js"
import { DAY, incidentMinutes, MINUTE } from "../../internal/simulation/scenario.js"
import type { Simulation } from "./simulateRun.js"

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
export const formatReport = ({ realSeconds, reports, scenario, simulationSeconds, workers }: Simulation): string => {
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
    speedLine(simulated, virtualSeconds, { realSeconds, simulationSeconds, workers })
  ]
  return lines.join("\n")
}

/**
 * Simulated requests per second of the simulation proper (see `Simulation.simulationSeconds`: the configurations
 * running, not the worker threads starting), and the whole call's real time beside it.
 */
const speedLine = (
  simulated: number,
  virtualSeconds: number,
  { realSeconds, simulationSeconds, workers }: Pick<Simulation, "realSeconds" | "simulationSeconds" | "workers">
) => {
  const seconds = simulationSeconds > 0 ? simulationSeconds : realSeconds
  const where = workers === 0
    ? "in this thread"
    : `${workers} at a time in worker threads; ${realSeconds.toFixed(1)} s with starting them`
  return `Real time ${seconds.toFixed(1)} s simulating (${where}) for ${count(simulated)} simulated requests: ${
    count(simulated / seconds)
  } requests/s, virtual:real ${count(virtualSeconds / seconds)}:1.`
}

/** Progress bars on a terminal (one per configuration, redrawn in place); a line per quarter elsewhere (CI logs). */
export const progressReporter = () => {
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
