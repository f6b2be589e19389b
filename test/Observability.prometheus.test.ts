import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Observability from "../src/Observability.js"
import * as Prometheus from "../src/Prometheus.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const PROMETHEUS = "/usr/bin/prometheus"
const PROMTOOL = "/usr/bin/promtool"
const docs = join(import.meta.dirname, "..", "docs")

interface PrometheusData {
  readonly result: ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }>
  readonly groups: ReadonlyArray<{
    readonly name: string
    readonly rules: ReadonlyArray<{ readonly name: string; readonly health: string }>
  }>
}

const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Starts a real Prometheus scraping `target` every second; killed by PID, and its data removed, with the scope. */
const startPrometheus = (target: string, port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (!existsSync(PROMETHEUS)) {
        throw new Error(`${PROMETHEUS} is missing: install Debian's prometheus package (npm test's pretest step does)`)
      }
      const dir = mkdtempSync(join(tmpdir(), "llm-prometheus-"))
      writeFileSync(join(dir, "alerts.yml"), readFileSync(join(docs, "prometheus", "alerts.yml")))
      writeFileSync(
        join(dir, "prometheus.yml"),
        [
          "global:",
          "  scrape_interval: 1s",
          "  evaluation_interval: 1s",
          "rule_files:",
          "  - alerts.yml",
          "scrape_configs:",
          "  - job_name: llm",
          "    static_configs:",
          `      - targets: ["${target}"]`,
          ""
        ].join("\n")
      )
      const child: ChildProcess = spawn(PROMETHEUS, [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`
      ], { stdio: "ignore" })
      return { child, dir }
    }),
    ({ child, dir }) =>
      Effect.async<void>((resume) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true })
          resume(Effect.void)
        }
        if (child.exitCode !== null || child.pid === undefined) return done()
        child.once("exit", done)
        process.kill(child.pid, "SIGTERM")
      })
  )

const getJson = (url: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(url)
    return await response.json() as { readonly status: string; readonly data: PrometheusData }
  })

const query = (base: string, promql: string) =>
  Effect.map(
    getJson(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`),
    (body) => body.data.result
  )

/** Retries `effect` every 500 ms until it succeeds, for at most ~20 s. */
const eventually = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.retry(effect, Schedule.intersect(Schedule.spaced("500 millis"), Schedule.recurs(40)))

const prometheusName = (name: string) => name.replaceAll(".", "_")

describe("Observability over Prometheus", () => {
  it.live(
    "a real Prometheus scrapes /metrics and answers the series through its query API",
    () =>
      Effect.gen(function*() {
        const prometheusPort = yield* freePort
        const server = Context.get(yield* Layer.build(Prometheus.layerServer({ port: 0 })), Prometheus.Server)
        const metricsPort = server.port

        const primary = yield* ScriptedProvider.make({
          name: "promtest",
          model: "gpt-prom",
          script: [ScriptedProvider.success("ok", { usage: { inputTokens: 7, outputTokens: 3, totalTokens: 10 } })]
        })
        const client = yield* Resilient.make({ chain: [{ provider: primary }] })
        yield* client.complete({ messages: [{ role: "user", content: "hi" }] })
        yield* client.complete({ messages: [{ role: "user", content: "hi" }] })

        // The endpoint itself: Prometheus text format, our names and GenAI labels.
        const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${metricsPort}/metrics`))
        expect(response.headers.get("content-type")).toBe(Prometheus.contentType)
        const text = yield* Effect.promise(() => response.text())
        expect(text).toMatch(
          /^llm_requests_total\{gen_ai_system="promtest",gen_ai_request_model="gpt-prom",outcome="success",llm_primary="promtest:gpt-prom"[^}]*\} 2$/m
        )
        expect(text).toContain("# TYPE llm_request_duration_ms histogram")
        expect(text).toMatch(/^llm_circuit_breaker_state\{gen_ai_system="promtest",gen_ai_request_model="gpt-prom"/m)
        expect((yield* Effect.promise(() => fetch(`http://127.0.0.1:${metricsPort}/nope`))).status).toBe(404)

        yield* startPrometheus(`127.0.0.1:${metricsPort}`, prometheusPort)
        const base = `http://127.0.0.1:${prometheusPort}`
        const series = yield* eventually(
          Effect.filterOrFail(
            query(base, "llm_requests_total{gen_ai_system=\"promtest\"}"),
            (result) => result.length > 0,
            () => "no series yet"
          )
        )
        expect(series[0]!.metric).toMatchObject({
          __name__: "llm_requests_total",
          gen_ai_system: "promtest",
          gen_ai_request_model: "gpt-prom",
          outcome: "success",
          llm_primary: "promtest:gpt-prom",
          job: "llm"
        })
        expect(series[0]!.value[1]).toBe("2")
        const tokens = yield* query(base, "sum by (gen_ai_token_type) (llm_tokens_total{gen_ai_system=\"promtest\"})")
        expect(Object.fromEntries(tokens.map((row) => [row.metric.gen_ai_token_type, row.value[1]]))).toEqual({
          input: "14",
          output: "6"
        })
        // The alert rules load and evaluate in the same Prometheus.
        const rules = yield* eventually(
          Effect.filterOrFail(
            getJson(`${base}/api/v1/rules`),
            (body) => body.data.groups.length > 0,
            () => "rules not loaded yet"
          )
        )
        const group = rules.data.groups[0]
        expect(group?.name).toBe("effect-llm-resilience")
        expect(group?.rules.map((rule) => rule.name)).toEqual([
          "LlmFallbackRateCritical",
          "LlmFallbackRateWarning",
          "LlmCircuitBreakerFlapping",
          "LlmProviderErrorRateHigh"
        ])
        expect(group?.rules.every((rule) => rule.health !== "err")).toBe(true)
      }).pipe(Effect.scoped),
    60_000
  )

  it("the alert rules pass promtool check and their unit tests", () => {
    if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: it comes with Debian's prometheus package`)
    const rules = join(docs, "prometheus", "alerts.yml")
    expect(execFileSync(PROMTOOL, ["check", "rules", rules], { encoding: "utf8" })).toContain("SUCCESS: 4 rules found")
    expect(execFileSync(PROMTOOL, ["test", "rules", join(docs, "prometheus", "alerts.test.yml")], { encoding: "utf8" }))
      .toContain("SUCCESS")
  })

  it("the Grafana dashboard queries only metrics this library exports, and shows every one", () => {
    const dashboard = JSON.parse(readFileSync(join(docs, "grafana", "effect-llm-resilience.json"), "utf8"))
    const exprs: Array<string> = dashboard.panels.flatMap((panel: { targets: Array<{ expr: string }> }) =>
      panel.targets.map((target) => target.expr)
    )
    const known = new Set(
      Observability.metricNames.flatMap((name) =>
        ["", "_total", "_bucket", "_sum", "_count"].map((suffix) => prometheusName(name) + suffix)
      )
    )
    const used = new Set(exprs.flatMap((expr) => expr.match(/\bllm_[a-z_]+(?=[{[])/g) ?? []))
    expect([...used].filter((name) => !known.has(name))).toEqual([])
    const covered = Observability.metricNames.filter((name) =>
      [...used].some((metric) => metric.startsWith(prometheusName(name)))
    )
    expect(covered).toEqual(Observability.metricNames)
    expect(new Set(dashboard.panels.map((panel: { id: number }) => panel.id)).size).toBe(dashboard.panels.length)
  })
})
