/**
 * The simulation as a self-contained HTML page of inline SVG: the year at a glance (incidents, breaker state,
 * traffic share, failures per configuration) and a close-up of the primary's worst incidents.
 */
import type { ConfigurationReport } from "./run.js"
import { DAY, MINUTE, type Outage, type Scenario } from "./scenario.js"

const WIDTH = 1_100
const LEFT = 240
const PLOT = WIDTH - LEFT - 20
const ROW = 18
/** Inside the simulator's full-rate window around an incident (20 minutes), so every bar stands for real requests. */
const ZOOM_MARGIN = 20 * 60_000

const palette = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777"]
const DEGRADED = "#9ca3af"
const FAILED = "#dc2626"
const OPEN = "#111827"
const HALF_OPEN = "#f59e0b"

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const percent = (value: number) => `${(value * 100).toFixed(3)} %`

interface Span {
  readonly from: number
  readonly to: number
  readonly state: string
}

/** Open / half-open spans of each breaker, from its transitions. */
const breakerSpans = (report: ConfigurationReport, end: number): ReadonlyMap<string, ReadonlyArray<Span>> => {
  const spans = new Map<string, Array<Span>>()
  const current = new Map<string, { at: number; state: string }>()
  for (const change of report.breakerChanges) {
    const previous = current.get(change.key)
    if (previous !== undefined && previous.state !== "Closed") {
      const list = spans.get(change.key) ?? []
      list.push({ from: previous.at, to: change.at, state: previous.state })
      spans.set(change.key, list)
    }
    current.set(change.key, { at: change.at, state: change.to })
  }
  for (const [key, last] of current) {
    if (last.state === "Closed") continue
    const list = spans.get(key) ?? []
    list.push({ from: last.at, to: end, state: last.state })
    spans.set(key, list)
  }
  return spans
}

/** A strip of marks at [from, to) on a time axis; marks are at least `minWidth` px so a 20-minute incident shows. */
const strip = (
  y: number,
  label: string,
  marks: ReadonlyArray<{ readonly from: number; readonly to: number; readonly color: string; readonly title: string }>,
  x: (time: number) => number,
  minWidth: number
) =>
  `<text x="${LEFT - 8}" y="${y + 13}" text-anchor="end">${escape(label)}</text>`
  + `<rect x="${LEFT}" y="${y + 2}" width="${PLOT}" height="${ROW - 4}" fill="#f3f4f6"/>`
  + marks.map((mark) => {
    const left = x(mark.from)
    const width = Math.max(minWidth, x(mark.to) - left)
    return `<rect x="${left.toFixed(1)}" y="${y + 2}" width="${width.toFixed(1)}" height="${
      ROW - 4
    }" fill="${mark.color}">`
      + `<title>${escape(mark.title)}</title></rect>`
  }).join("")

/** Stacked shares per bucket between `from` and `to`, one column per `step` of time. */
const shares = (
  y: number,
  height: number,
  report: ConfigurationReport,
  from: number,
  to: number,
  step: number,
  x: (time: number) => number
) => {
  const { bucketMs, series, counts } = report.timeline
  const parts: Array<string> = []
  for (let start = from; start < to; start += step) {
    const first = Math.floor(start / bucketMs)
    const last = Math.max(first + 1, Math.floor((start + step) / bucketMs))
    const sums = series.map((_, index) => {
      let sum = 0
      for (let bucket = first; bucket < last; bucket++) sum += counts[index]?.[bucket] ?? 0
      return sum
    })
    const total = sums.reduce((a, b) => a + b, 0)
    if (total === 0) continue
    let top = y
    const left = x(start)
    const width = Math.max(0.5, x(Math.min(to, start + step)) - left)
    sums.forEach((sum, index) => {
      if (sum === 0) return
      const h = (sum / total) * height
      const name = series[index] ?? ""
      const color = name === "failed" ? FAILED : name === "degraded" ? DEGRADED : palette[index % palette.length]
      parts.push(
        `<rect x="${left.toFixed(2)}" y="${top.toFixed(2)}" width="${width.toFixed(2)}" height="${
          h.toFixed(2)
        }" fill="${color}"/>`
      )
      top += h
    })
  }
  return parts.join("")
}

/**
 * At year scale the primary serves ~99.9 % of every day, so a 100 % stack shows nothing else: this draws only what
 * the other series took each `step` (fallback tiers, degraded answers, failures), stacked, on a scale that runs to the
 * largest daily non-primary share (stated on the axis). Returns the markup and that share.
 */
const nonPrimaryShares = (
  y: number,
  height: number,
  report: ConfigurationReport,
  from: number,
  to: number,
  step: number,
  x: (time: number) => number
): { readonly svg: string; readonly top: number } => {
  const { bucketMs, counts, series } = report.timeline
  const columns: Array<{ readonly start: number; readonly shares: ReadonlyArray<number> }> = []
  let top = 0
  for (let start = from; start < to; start += step) {
    const first = Math.floor(start / bucketMs)
    const last = Math.max(first + 1, Math.floor((start + step) / bucketMs))
    const sums = series.map((_, index) => {
      let sum = 0
      for (let bucket = first; bucket < last; bucket++) sum += counts[index]?.[bucket] ?? 0
      return sum
    })
    const total = sums.reduce((a, b) => a + b, 0)
    if (total === 0) continue
    const shares = sums.map((sum, index) => index === 0 ? 0 : sum / total)
    top = Math.max(top, shares.reduce((a, b) => a + b, 0))
    columns.push({ start, shares })
  }
  if (top === 0) return { svg: "", top }
  const parts: Array<string> = []
  for (const column of columns) {
    let bottom = y + height
    const left = x(column.start)
    const width = Math.max(0.5, x(Math.min(to, column.start + step)) - left)
    column.shares.forEach((share, index) => {
      if (share === 0) return
      const h = (share / top) * height
      const name = series[index] ?? ""
      const color = name === "failed" ? FAILED : name === "degraded" ? DEGRADED : palette[index % palette.length]
      bottom -= h
      parts.push(
        `<rect x="${left.toFixed(2)}" y="${bottom.toFixed(2)}" width="${width.toFixed(2)}" height="${
          h.toFixed(2)
        }" fill="${color}"/>`
      )
    })
  }
  const axis = `<line x1="${LEFT}" y1="${y}" x2="${LEFT + PLOT}" y2="${y}" stroke="#e5e7eb"/>`
    + `<text x="${LEFT - 8}" y="${y + 10}" text-anchor="end" fill="#6b7280">${percent(top)}</text>`
    + `<text x="${LEFT - 8}" y="${y + height}" text-anchor="end" fill="#6b7280">0 %</text>`
  return { svg: axis + parts.join(""), top }
}

/** Ticks under a zoom: minutes from the incident's start, every 10 minutes (30 beyond three hours). */
const zoomAxis = (y: number, from: number, to: number, start: number, x: (time: number) => number): string => {
  const step = (to - from) > 3 * 60 * MINUTE ? 30 * MINUTE : 10 * MINUTE
  const parts: Array<string> = []
  for (let tick = start - Math.floor((start - from) / step) * step; tick <= to; tick += step) {
    const minutes = Math.round((tick - start) / MINUTE)
    const label = minutes === 0 ? "start" : `${minutes > 0 ? "+" : "−"}${Math.abs(minutes)} min`
    parts.push(
      `<line x1="${x(tick).toFixed(1)}" y1="${y}" x2="${x(tick).toFixed(1)}" y2="${y + 4}" stroke="#6b7280"/>`
        + `<text x="${(x(tick) + 2).toFixed(1)}" y="${y + 15}" fill="#6b7280">${label}</text>`
    )
  }
  return parts.join("")
}

const legend = (y: number, series: ReadonlyArray<string>) =>
  series.map((name, index) => {
    const color = name === "failed" ? FAILED : name === "degraded" ? DEGRADED : palette[index % palette.length]
    const left = LEFT + index * 190
    return `<rect x="${left}" y="${y}" width="12" height="12" fill="${color}"/>`
      + `<text x="${left + 16}" y="${y + 11}">${escape(name)}</text>`
  }).join("")

const outageMarks = (outages: ReadonlyArray<Outage>, provider: string) =>
  outages.filter((outage) => outage.provider === provider).map((outage) => ({
    from: outage.start,
    to: outage.end,
    color: FAILED,
    title: `${provider} ${outage.kind}, ${Math.round((outage.end - outage.start) / MINUTE)} min`
  }))

const breakerMarks = (spans: ReadonlyArray<Span> | undefined) =>
  (spans ?? []).map((span) => ({
    from: span.from,
    to: span.to,
    color: span.state === "HalfOpen" ? HALF_OPEN : OPEN,
    title: `${span.state} ${Math.round((span.to - span.from) / 1000)} s`
  }))

const svg = (height: number, body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="system-ui, sans-serif" font-size="12">${body}</svg>`

export const renderHtml = (scenario: Scenario, reports: ReadonlyArray<ConfigurationReport>): string => {
  const full = reports.find((report) => report.name === "full") ?? reports[reports.length - 1]
  const year = (time: number) => LEFT + (time / scenario.durationMs) * PLOT
  const sections: Array<string> = []

  // The whole span: incidents, the full stack's breakers, its traffic share per day, failures per configuration.
  let y = 10
  let body = `<text x="${LEFT}" y="${y + 10}" font-weight="bold">Incidents (ground truth)</text>`
  y += 18
  for (const profile of scenario.profiles) {
    body += strip(y, profile.name, outageMarks(scenario.outages, profile.name), year, 2)
    y += ROW
  }
  if (full !== undefined && full.breakerChanges.length > 0) {
    const spans = breakerSpans(full, scenario.durationMs)
    y += 10
    body += `<text x="${LEFT}" y="${y + 10}" font-weight="bold">Breakers of the ${escape(full.title)} `
      + `(black open, amber half-open)</text>`
    y += 18
    for (const key of full.timeline.series.slice(0, -2)) {
      body += strip(y, key, breakerMarks(spans.get(key)), year, 2)
      y += ROW
    }
  }
  if (full !== undefined) {
    y += 10
    const others = nonPrimaryShares(y + 16, 60, full, 0, scenario.durationMs, DAY, year)
    body += `<text x="${LEFT}" y="${y + 10}" font-weight="bold">Traffic not served by the primary, per day, ${
      escape(full.title)
    } (${others.top === 0 ? "none" : `scale: 0 to ${percent(others.top)} of the day's requests`})</text>`
    y += 16
    body += others.svg
    y += 66
    body += legend(y, full.timeline.series)
    y += 22
  }
  body += `<text x="${LEFT}" y="${y + 10}" font-weight="bold">Failed requests per day</text>`
  y += 18
  for (const report of reports) {
    const failed = report.timeline.counts[report.timeline.series.length - 1]
    const perDay = new Map<number, number>()
    failed?.forEach((count, bucket) => {
      if (count === 0) return
      const day = Math.floor((bucket * report.timeline.bucketMs) / DAY)
      perDay.set(day, (perDay.get(day) ?? 0) + count)
    })
    const marks = [...perDay].map(([day, count]) => ({
      from: day * DAY,
      to: (day + 1) * DAY,
      color: FAILED,
      title: `day ${day + 1}: ${Math.round(count)} failed`
    }))
    body += strip(y, `${report.title} (${percent(report.availability)})`, marks, year, 1)
    y += ROW
  }
  // Axis: months.
  y += 6
  for (let month = 0; month * 30 * DAY < scenario.durationMs; month++) {
    const x = year(month * 30 * DAY)
    body += `<line x1="${x}" y1="${y - 4}" x2="${x}" y2="${y}" stroke="#6b7280"/>`
      + `<text x="${x + 2}" y="${y + 12}" fill="#6b7280">${month === 0 ? "day 0" : `d${month * 30}`}</text>`
  }
  y += 20
  sections.push(`<h2>The whole run</h2>${svg(y, body)}`)

  // Close-ups of the primary's longest incidents at the chart's bucket resolution.
  const primary = scenario.profiles[0]?.name
  const longest = [...scenario.outages]
    .filter((outage) => outage.provider === primary)
    .sort((a, b) => (b.end - b.start) - (a.end - a.start))
    .slice(0, 3)
  for (const outage of longest) {
    const from = Math.max(0, outage.start - ZOOM_MARGIN)
    const to = Math.min(scenario.durationMs, outage.end + ZOOM_MARGIN)
    const x = (time: number) => LEFT + ((time - from) / (to - from)) * PLOT
    let zy = 10
    let zoom = strip(zy, `${primary} incident`, outageMarks([outage], outage.provider), x, 1)
    zy += ROW + 6
    for (const report of reports) {
      const step = Math.max(report.timeline.bucketMs, Math.round((to - from) / 120))
      zoom += `<text x="${LEFT - 8}" y="${zy + 24}" text-anchor="end">${escape(report.title)}</text>`
      zoom += shares(zy, 36, report, from, to, step, x)
      zy += 42
    }
    if (full !== undefined) {
      const spans = breakerSpans(full, scenario.durationMs)
      for (const key of full.timeline.series.slice(0, -2)) {
        const clipped = (spans.get(key) ?? []).filter((span) => span.to > from && span.from < to).map((span) => ({
          from: Math.max(from, span.from),
          to: Math.min(to, span.to),
          state: span.state
        }))
        zoom += strip(zy, `breaker ${key}`, breakerMarks(clipped), x, 1)
        zy += ROW
      }
    }
    zoom += zoomAxis(zy, from, to, outage.start, x)
    zy += 20
    zoom += legend(zy + 6, full?.timeline.series ?? [])
    zy += 26
    const day = Math.floor(outage.start / DAY) + 1
    sections.push(
      `<h2>Day ${day}: ${escape(outage.provider)} ${outage.kind} for ${
        Math.round((outage.end - outage.start) / MINUTE)
      } minutes (±20 min shown)</h2>${svg(zy, zoom)}`
    )
  }

  const rows = reports.map((report) =>
    `<tr><td>${escape(report.title)}</td><td>${percent(report.availability)}</td><td>${
      Math.round(report.failed).toLocaleString("en-US")
    }</td><td>${Math.round(report.wastedCalls).toLocaleString("en-US")}</td><td>${
      Math.round(report.addedLatencyInIncidentsMs.p99)
    } / ${Math.round(report.addedLatencyInIncidentsMs.p999)} / ${
      Math.round(report.addedLatencyInIncidentsMs.max)
    } ms</td><td>$${report.costUsd.toFixed(2)}</td></tr>`
  ).join("")
  return `<!doctype html><html><head><meta charset="utf-8"><title>effect-llm-resilience simulation</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#111827}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body><h1>Simulated ${Math.round(scenario.durationMs / DAY)} days, seed ${scenario.seed}</h1>
<p>${scenario.outages.length} incidents. Every request went through the real library code in virtual time.</p>
<table><tr><th>configuration</th><th>availability</th><th>failed</th><th>calls to a down provider</th><th>added latency in incidents p99 / p99.9 / max</th><th>cost</th></tr>${rows}</table>
${sections.join("\n")}</body></html>\n`
}
