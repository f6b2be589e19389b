/**
 * The demo's text: a dashboard redrawn in place on a terminal, a compact line per second (and per event) when the
 * output is a file or a CI log, and the closing summary. Pure functions from the records to lines; colour and
 * cursor escapes only when asked for, so the plain output carries no escape codes at all.
 */
import * as Duration from "effect/Duration"
import type * as CircuitBreaker from "../../CircuitBreaker.js"
import type { Plan, Segment } from "./demoScenario.js"
import { type Cell, type DemoStats, providerName, providerRows, type Summary, timeline, windowOf } from "./demoStats.js"

export interface ViewContext {
  readonly color: boolean
  readonly columns: number
  /** Terminal height: the dashboard never draws more lines than fit. */
  readonly rows: number
  readonly description: string
  readonly plan: Plan
  readonly intervalMs: number
  readonly concurrency: number
  /** Per-attempt timeout of the cloud tiers, for the intro line. */
  readonly timeoutMs: number
}

const ESC = "\u001b["
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g

type Paint = (text: string) => string

const palette = (color: boolean) => {
  const code = (open: number, close: number): Paint => (text) => color ? `${ESC}${open}m${text}${ESC}${close}m` : text
  return {
    bold: code(1, 22),
    dim: code(2, 22),
    red: code(31, 39),
    green: code(32, 39),
    yellow: code(33, 39),
    magenta: code(35, 39),
    cyan: code(36, 39)
  }
}

const visibleLength = (text: string) => text.replace(ANSI, "").length

/** Cuts a line to the terminal width: a wrapped line would break the in-place redraw's line count. */
const fit = (line: string, columns: number) =>
  visibleLength(line) < columns ? line : line.replace(ANSI, "").slice(0, Math.max(1, columns - 1))

const pad = (text: string, width: number) => text + " ".repeat(Math.max(0, width - visibleLength(text)))
const padStart = (text: string, width: number) => " ".repeat(Math.max(0, width - visibleLength(text))) + text

export const seconds = (millis: number) => `${(millis / 1000).toFixed(1)}s`

const ms = (millis: number | undefined) =>
  millis === undefined ? "–" : millis >= 1000 ? `${(millis / 1000).toFixed(1)}s` : `${Math.round(millis)}ms`

const signedMs = (millis: number | undefined) =>
  millis === undefined ? "–" : `${millis >= 0 ? "+" : "−"}${ms(Math.abs(millis))}`

const percent = (share: number) => `${(share * 100).toFixed(1)} %`

const usd = (value: number) => `$${value.toFixed(4)}`

const stateColor = (paint: ReturnType<typeof palette>, state: CircuitBreaker.State): Paint =>
  state === "Closed"
    ? paint.green
    : state === "HalfOpen"
    ? paint.yellow
    : state === "Open" || state === "ForcedOpen"
    ? paint.red
    : paint.magenta

const GLYPHS: Readonly<Record<Cell, string>> = {
  future: " ",
  idle: "·",
  paused: "-",
  serving: "█",
  errors: "▓",
  halfOpen: "▒",
  open: "░"
}

const cellColor = (paint: ReturnType<typeof palette>, cell: Cell): Paint =>
  cell === "serving"
    ? paint.green
    : cell === "errors"
    ? paint.yellow
    : cell === "halfOpen"
    ? paint.magenta
    : cell === "open"
    ? paint.red
    : cell === "paused"
    ? paint.yellow
    : paint.dim

const LEGEND = "█ calls ok  ▓ failed calls  ▒ half-open  ░ open (skipped)  - paused by Retry-After  · idle"

/** Columns of a round length (100 ms, 250 ms, 500 ms, 1 s…) so that the whole run fits in `maxWidth`. */
const tickFor = (totalMs: number, maxWidth: number) =>
  [100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000].find((tick) => totalMs / tick <= maxWidth)
    ?? Math.ceil(totalMs / maxWidth)

const timelineLines = (stats: DemoStats, context: ViewContext, now: number, maxWidth: number) => {
  const paint = palette(context.color)
  const tickMs = tickFor(context.plan.totalMs, maxWidth)
  const ticks = Math.ceil(context.plan.totalMs / tickMs)
  // Segment names over their columns, each starting with a bar.
  const header = new Array<string>(ticks).fill(" ")
  for (const planned of context.plan.segments) {
    const from = Math.floor(planned.startMs / tickMs)
    const to = Math.min(ticks, Math.floor(planned.endMs / tickMs))
    const label = `|${planned.segment.name}`
    for (let i = from; i < to && i - from < label.length; i++) header[i] = label[i - from] ?? " "
  }
  const name = 11
  return [
    `${pad("timeline", name)}${paint.dim(`1 column = ${tickMs} ms`)}`,
    `${" ".repeat(name)}${paint.dim(header.join(""))}`,
    ...stats.keys.map((key) =>
      pad(providerName(key), name)
      + timeline(stats, key, ticks, tickMs, now).map((cell) => cellColor(paint, cell)(GLYPHS[cell])).join("")
    ),
    `${" ".repeat(name)}${paint.dim(LEGEND)}`
  ]
}

export const intro = (stats: DemoStats, context: ViewContext): ReadonlyArray<string> => {
  const paint = palette(context.color)
  const perSecond = (context.concurrency * 1000) / context.intervalMs
  return [
    `${paint.bold("effect-llm-resilience demo")} — ${context.description}`,
    `chain    ${[...stats.keys, "cache", "static"].join(" → ")}`,
    `traffic  ${context.concurrency} request${context.concurrency === 1 ? "" : "s"} every ${context.intervalMs} ms `
    + `(~${perSecond.toFixed(perSecond < 10 ? 1 : 0)}/s) for ${seconds(context.plan.totalMs)}; `
    + `per attempt ${context.timeoutMs} ms timeout, retry with Retry-After and a retry budget, `
    + `one breaker per provider:model (cooldown ${ms(Duration.toMillis(context.plan.cooldown))})`,
    `script   ${
      context.plan.segments.map((planned) => `${planned.segment.name} ${seconds(planned.endMs - planned.startMs)}`)
        .join(" → ")
    }`
  ]
}

const segmentTitle = (plan: Plan, segment: Segment, index: number) =>
  `${segment.name} (${index + 1}/${plan.segments.length}): ${segment.story}`
  + (segment.openAi === "rateLimit" ? `, Retry-After: ${plan.retryAfterSeconds}s` : "")

/** The whole dashboard, one string per line. */
export const dashboard = (
  stats: DemoStats,
  context: ViewContext,
  now: number
): ReadonlyArray<string> => {
  const paint = palette(context.color)
  const elapsed = now - stats.startedAt
  const index = stats.segmentAt(now)
  const planned = context.plan.segments[index]
  const rows = providerRows(stats)
  const width = Math.max(26, ...stats.keys.map((key) => key.length + 2))
  const lastSecond = windowOf(stats, now - 1000, now + 1)
  const all = windowOf(stats, stats.startedAt, now + 1)
  const last = stats.requests.at(-1)
  const cache = all.servedBy.get("cache") ?? 0
  const fixed = all.servedBy.get("static") ?? 0
  const lines = [
    "",
    `${
      paint.bold(
        `t ${padStart(seconds(Math.min(elapsed, context.plan.totalMs)), 6)} / ${seconds(context.plan.totalMs)}`
      )
    }  `
    + (planned === undefined
      ? ""
      : `${paint.cyan("▸")} ${segmentTitle(context.plan, planned.segment, index)}`),
    "",
    paint.dim(
      `${pad("provider", width)}${pad("breaker", 12)}${padStart("calls", 6)}${padStart("errors", 8)}`
        + `${padStart("skipped", 9)}${padStart("served", 8)}${padStart("p50", 8)}${padStart("avg", 8)}  last error`
    ),
    ...rows.map((row) =>
      `${pad(row.key, width)}${pad(stateColor(paint, row.state)(`● ${row.state}`), 12)}${padStart(`${row.calls}`, 6)}`
      + `${padStart(row.errors > 0 ? paint.yellow(`${row.errors}`) : "0", 8)}${padStart(`${row.skipped}`, 9)}`
      + `${padStart(`${row.served}`, 8)}${padStart(ms(row.p50Ms), 8)}${padStart(ms(row.avgMs), 8)}  `
      + paint.dim(row.lastError ?? "")
    ),
    `${pad("cache / static", width)}${" ".repeat(12 + 6 + 8 + 9)}${padStart(`${cache + fixed}`, 8)}`,
    "",
    `requests  ${stats.launched} sent · ${all.answered} answered · `
    + `${all.failed > 0 ? paint.red(`${all.failed} failed`) : "0 failed"} · ${stats.inFlight} in flight · `
    + `fallback ${percent(all.answered === 0 ? 0 : all.fallbacks / all.answered)}`
    + ` (last second ${percent(lastSecond.answered === 0 ? 0 : lastSecond.fallbacks / lastSecond.answered)})`,
    `latency   last second p50 ${ms(lastSecond.p50Ms)} · p95 ${ms(lastSecond.p95Ms)}`,
    `last      ${
      last === undefined
        ? ""
        : last.servedBy === undefined
        ? paint.red(`failed: ${last.error ?? "?"}`)
        : `${last.servedBy} (tier ${last.tier}, ${ms(last.latencyMs)}): ${
          paint.dim(JSON.stringify(last.content ?? ""))
        }`
    }`,
    "",
    ...timelineLines(stats, context, now, Math.min(80, context.columns - 13)),
    ""
  ]
  // The frame must fit the screen: the redraw cannot move the cursor above its top. The latest transitions get the
  // rows left over (at most five), and a very short terminal loses the frame's bottom.
  const room = Math.min(5, context.rows - 1 - lines.length - 1)
  const events = room <= 0 ? [] : [
    paint.dim("breaker transitions"),
    ...stats.changes.slice(-room).map((change) => `  ${changeText(stats, context, change)}`)
  ]
  return [...lines, ...events].slice(0, Math.max(1, context.rows - 1)).map((line) => fit(line, context.columns))
}

const changeText = (stats: DemoStats, context: ViewContext, change: CircuitBreaker.StateChange) => {
  const paint = palette(context.color)
  return `${padStart(seconds(change.at - stats.startedAt), 6)}  ${pad(change.key, 28)} `
    + `${stateColor(paint, change.from)(change.from)} → ${stateColor(paint, change.to)(change.to)} `
    + paint.dim(`(${change.reason})`)
}

/** Redraws a block of lines in place: back to the block's first line, rewrite each, clear what is left below. */
export class Screen {
  private previous = 0
  constructor(private readonly write: (text: string) => void) {}
  draw(lines: ReadonlyArray<string>): void {
    let out = this.previous > 0 ? `${ESC}${this.previous}F` : ""
    for (const line of lines) out += `${ESC}2K${line}\n`
    this.write(`${out}${ESC}J`)
    this.previous = lines.length
  }
  static hideCursor = `${ESC}?25l`
  static showCursor = `${ESC}?25h`
}

// Plain (line) mode: fixed columns, no escapes.

const PLAIN_STATE: Readonly<Record<CircuitBreaker.State, string>> = {
  Closed: "closed",
  Open: "OPEN",
  HalfOpen: "half-open",
  Disabled: "disabled",
  ForcedOpen: "FORCED-OPEN",
  MetricsOnly: "metrics-only"
}

export const lineHeader = (stats: DemoStats): ReadonlyArray<string> => [
  "Each line: the requests answered in the past second; per provider, how many it answered and its breaker's state.",
  `${padStart("time", 6)}  ${pad("phase", 11)}${padStart("answered", 9)}${padStart("fallback", 10)}`
  + `${padStart("p50", 8)}${padStart("p95", 8)}  │ ${
    stats.keys.map((key) => pad(providerName(key), 20)).join("")
  }failed`
]

/** One line for the requests that completed in [from, to), with each breaker's state at `to`. */
export const lineRow = (stats: DemoStats, from: number, to: number): string => {
  const window = windowOf(stats, from, to)
  // Named after the segment in force for most of the second.
  const segment = stats.plan.segments[stats.segmentAt((from + to) / 2)]?.segment.name ?? ""
  const other = [...window.servedBy.entries()].filter(([label]) => !stats.keys.includes(label))
    .reduce((sum, [, count]) => sum + count, 0)
  return `${padStart(seconds(to - stats.startedAt), 6)}  ${pad(segment, 11)}${padStart(`${window.answered}`, 9)}`
    + `${padStart(window.answered === 0 ? "–" : `${Math.round((window.fallbacks / window.answered) * 100)}%`, 10)}`
    + `${padStart(ms(window.p50Ms), 8)}${padStart(ms(window.p95Ms), 8)}  │ `
    + stats.keys.map((key) =>
      pad(`${padStart(`${window.servedBy.get(key) ?? 0}`, 4)} ${PLAIN_STATE[stats.stateOf(key, to)]}`, 20)
    )
      .join("")
    + `${window.failed}${other > 0 ? ` (+${other} cache/static)` : ""}`
}

export const segmentLine = (stats: DemoStats, context: ViewContext, index: number, at: number): string => {
  const planned = context.plan.segments[index]
  if (planned === undefined) return ""
  const paint = palette(context.color)
  return `${padStart(seconds(at - stats.startedAt), 6)}  ${
    paint.cyan(`── ${segmentTitle(context.plan, planned.segment, index)}`)
  }`
}

export const changeLine = (stats: DemoStats, context: ViewContext, change: CircuitBreaker.StateChange): string => {
  const paint = palette(context.color)
  return `${padStart(seconds(change.at - stats.startedAt), 6)}  breaker ${change.key}: `
    + `${stateColor(paint, change.from)(change.from)} → ${stateColor(paint, change.to)(change.to)} (${change.reason})`
}

/** `withTimeline`: the dashboard's last frame already shows it. */
export const summaryLines = (
  summary: Summary,
  stats: DemoStats,
  context: ViewContext,
  withTimeline: boolean
): ReadonlyArray<string> => {
  const paint = palette(context.color)
  const width = Math.max(28, ...summary.servedBy.map((row) => row.label.length + 2))
  const outage = context.plan.segments.filter((planned) => planned.segment.openAi !== "none")
  const outageFrom = outage[0]?.startMs ?? 0
  const outageTo = outage.at(-1)?.endMs ?? 0
  const cost = summary.primaryOnlyCostUsd === undefined
    ? `${usd(summary.costUsd)} in all`
    : `${usd(summary.costUsd)} in all: ${signedPercent(summary.costUsd, summary.primaryOnlyCostUsd)} on the `
      + `${usd(summary.primaryOnlyCostUsd)} the same answers would have cost from the primary alone`
  const added = summary.addedLatency
  const mark = (ok: boolean, required: boolean) =>
    context.color
      ? (ok ? paint.green("✓") : required ? paint.red("✗") : paint.yellow("✗"))
      : ok
      ? "ok  "
      : required
      ? "FAIL"
      : "warn"
  return [
    "",
    paint.bold(
      `Summary — ${seconds(summary.durationMs)}, ${summary.sent} requests; `
        + `the primary was rate-limited or down from ${seconds(outageFrom)} to ${seconds(outageTo)}`
    ),
    paint.dim(`  ${pad("answered by", width)}${padStart("requests", 9)}${padStart("share", 10)}${padStart("p50", 9)}`)
    + paint.dim(`${padStart("cost", 11)}`),
    ...summary.servedBy.map((row) =>
      `  ${pad(row.label, width)}${padStart(`${row.count}`, 9)}${padStart(percent(row.share), 10)}`
      + `${padStart(ms(row.p50Ms), 9)}${padStart(row.count === 0 ? "" : usd(row.costUsd), 11)}`
    ),
    `  ${pad("failed", width)}${padStart(`${summary.failed + summary.unfinished}`, 9)}`
    + padStart(percent(summary.sent === 0 ? 0 : (summary.failed + summary.unfinished) / summary.sent), 10),
    "",
    `  ${pad("fallback rate", 16)}${percent(summary.fallbackRate)} of the answers came from a later tier`,
    `  ${pad("added latency", 16)}vs a healthy call (p50 ${ms(summary.healthyP50Ms)}): ${
      signedMs(added.meanMs)
    } per request on average; during the outage p50 ${signedMs(added.outageP50Ms)}, p95 ${signedMs(added.outageP95Ms)}`,
    `  ${pad("cost", 16)}${cost}`,
    `  ${pad("breakers", 16)}${
      stats.keys.map((key) => {
        const count = summary.transitions.filter((change) => change.key === key).length
        return `${providerName(key)} ${count} transition${count === 1 ? "" : "s"} (now ${summary.finalStates[key]})`
      }).join(", ")
    }`,
    ...(withTimeline
      ? [
        "",
        ...timelineLines(stats, context, Number.POSITIVE_INFINITY, Math.min(80, context.columns - 13)).map((line) =>
          `  ${line}`
        )
      ]
      : []),
    "",
    paint.bold("Checks"),
    ...summary.checks.map((check) =>
      `  ${mark(check.ok, check.required)} ${check.name} ${paint.dim(`— ${check.detail}`)}`
      + (check.required ? "" : paint.dim(" (informational)"))
    ),
    ""
  ]
}

const signedPercent = (value: number, base: number) =>
  base === 0 ? "–" : `${value >= base ? "+" : "−"}${Math.abs(((value - base) / base) * 100).toFixed(0)} %`
