import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as Observability from "../src/Observability.js"
import * as Quality from "../src/Quality.js"
import * as Resilient from "../src/Resilient.js"
import * as Streaming from "../src/Streaming.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const ask = (content = "question") => ({ messages: [{ role: "user" as const, content }] })

const scripted = (name: string, script: ScriptedProvider.Script, model = `${name}-model`) =>
  ScriptedProvider.make({ name, model, script })

/** The state of the metric `name` whose tags include `tags` (metrics are process-global: tests use unique names). */
const stateOf = (name: string, tags: Record<string, string>) => {
  const found = Metric.unsafeSnapshot().filter(({ metricKey }) =>
    metricKey.name === name
    && Object.entries(tags).every(([key, value]) =>
      metricKey.tags.some((tag) => tag.key === key && tag.value === value)
    )
  )
  return found.map(({ metricState }) => metricState)
}

const count = (name: string, tags: Record<string, string>): number =>
  stateOf(name, tags).reduce((sum, state) => sum + (MetricState.isCounterState(state) ? Number(state.count) : 0), 0)

const gauge = (name: string, tags: Record<string, string>): number | undefined => {
  const state = stateOf(name, tags)[0]
  return state !== undefined && MetricState.isGaugeState(state) ? Number(state.value) : undefined
}

const histogramCount = (name: string, tags: Record<string, string>): number =>
  stateOf(name, tags).reduce((sum, state) => sum + (MetricState.isHistogramState(state) ? state.count : 0), 0)

const model = (system: string, modelName = `${system}-model`) => ({
  "gen_ai.system": system,
  "gen_ai.request.model": modelName
})

/** Runs `effect` with a logger that keeps the request events as JSON lines. */
const withLines = <A, E, R>(effect: (lines: Array<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  return effect(lines).pipe(
    Effect.provide(Logger.replace(Logger.defaultLogger, Observability.makeRequestLogger((line) => lines.push(line)))),
    Logger.withMinimumLogLevel(LogLevel.All)
  )
}

/** Forks the effect, moves the TestClock, and returns its exit. */
const settle = <A, E>(effect: Effect.Effect<A, E>, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(advance)
    return yield* Fiber.await(fiber)
  }).pipe(Effect.withRandom(Random.fixed([0.5])))

interface RecordedSpan {
  readonly name: string
  readonly spanId: string
  readonly parent: string | undefined
  readonly attributes: Map<string, unknown>
  ended: boolean
}

/** A tracer that keeps every span it makes. */
const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  let next = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const spanId = `span-${next++}`
      const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
      const recorded: RecordedSpan = {
        name,
        spanId,
        parent: Option.isSome(parent) ? parent.value.spanId : undefined,
        attributes,
        ended: false
      }
      spans.push(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId,
        traceId: "trace-1",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {
          recorded.ended = true
        },
        attribute: (key, value) => {
          attributes.set(key, value)
        },
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

const schemaKeys = [
  "event",
  "level",
  "ts",
  "request_id",
  "provider",
  "model",
  "attempt",
  "fallback_from",
  "duration_ms",
  "ttft_ms",
  "input_tokens",
  "output_tokens",
  "cost_usd",
  "circuit_state",
  "quality_score",
  "format_valid",
  "error",
  "reason",
  "attempts"
]

describe("Observability", () => {
  describe("metrics", () => {
    it.scoped("a served request: outcome, tokens, cost, latency, success rate, one successful attempt", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-ok", [
          ScriptedProvider.success("hi", {
            usage: { inputTokens: 1000, outputTokens: 500, totalTokens: 1500 },
            latency: "250 millis"
          })
        ])
        const client = yield* Resilient.make({
          chain: [{ provider: primary, price: { inputPer1k: 0.002, outputPer1k: 0.008 } }]
        })
        const exit = yield* settle(client.complete(ask()), "1 second")
        expect(Exit.isSuccess(exit)).toBe(true)
        const tags = model("obs-ok")
        expect(count("llm.requests", { ...tags, outcome: "success", "llm.primary": "obs-ok:obs-ok-model" })).toBe(1)
        expect(count("llm.attempts", { ...tags, outcome: "success" })).toBe(1)
        expect(count("llm.tokens", { ...tags, "gen_ai.token.type": "input" })).toBe(1000)
        expect(count("llm.tokens", { ...tags, "gen_ai.token.type": "output" })).toBe(500)
        expect(count("llm.cost_usd", tags)).toBeCloseTo(0.006, 10)
        expect(gauge("llm.request.success_rate", tags)).toBe(1)
        expect(gauge("llm.fallback.rate", tags)).toBe(0)
        expect(gauge("llm.circuit_breaker.state", tags)).toBe(0)
        const [duration] = stateOf("llm.request.duration_ms", tags)
        expect(duration !== undefined && MetricState.isHistogramState(duration) ? duration.sum : -1).toBe(250)
      }))

    it.scoped("a fallback: counted on the serving tier with its primary; the primary's fallback rate and errors", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-fb-a", [ScriptedProvider.failure("ServerError", { status: 503 })])
        const backup = yield* scripted("obs-fb-b", [ScriptedProvider.success("from backup")])
        const client = yield* Resilient.make({
          chain: [{ provider: primary, retry: false, breaker: false }, { provider: backup }]
        })
        for (let i = 0; i < 4; i++) yield* client.complete(ask())
        const primaryLabel = "obs-fb-a:obs-fb-a-model"
        expect(count("llm.fallbacks", { ...model("obs-fb-b"), "llm.primary": primaryLabel })).toBe(4)
        expect(count("llm.requests", { ...model("obs-fb-b"), outcome: "success", "llm.primary": primaryLabel })).toBe(4)
        expect(gauge("llm.fallback.rate", model("obs-fb-a"))).toBe(1)
        expect(count("llm.attempts", { ...model("obs-fb-a"), outcome: "hard" })).toBe(4)
        expect(count("llm.attempts", { ...model("obs-fb-b"), outcome: "success" })).toBe(4)
      }))

    it.scoped("failed and refused requests: hard, then rejected once the only breaker is open", () =>
      Effect.gen(function*() {
        const only = yield* scripted("obs-fail", [ScriptedProvider.failure("ServerError", { status: 503 })])
        const client = yield* Resilient.make({
          chain: [{ provider: only, retry: false, breaker: { consecutiveFailures: 2, cooldown: "1 minute" } }]
        })
        for (let i = 0; i < 3; i++) yield* Effect.either(client.complete(ask()))
        const tags = { ...model("obs-fail"), "llm.primary": "obs-fail:obs-fail-model" }
        expect(count("llm.requests", { ...tags, outcome: "hard" })).toBe(2)
        expect(count("llm.requests", { ...tags, outcome: "rejected" })).toBe(1)
        expect(count("llm.attempts", { ...model("obs-fail"), outcome: "rejected" })).toBe(1)
        expect(gauge("llm.request.success_rate", model("obs-fail"))).toBe(0)
      }))

    it.scoped("breaker transitions move the state gauge (0 → 2 → 1 → 0) and count by from / to / reason", () =>
      Effect.gen(function*() {
        let healthy = false
        const primary = yield* scripted(
          "obs-cb",
          () => healthy ? ScriptedProvider.success("ok") : ScriptedProvider.failure("ServerError", { status: 503 })
        )
        const backup = yield* scripted("obs-cb-b", [ScriptedProvider.success("backup")])
        const client = yield* Resilient.make({
          chain: [
            { provider: primary, retry: false, breaker: { consecutiveFailures: 2, cooldown: "30 seconds" } },
            { provider: backup }
          ]
        })
        const tags = model("obs-cb")
        expect(gauge("llm.circuit_breaker.state", tags)).toBe(0)
        yield* client.complete(ask())
        yield* client.complete(ask())
        yield* Effect.yieldNow()
        expect(gauge("llm.circuit_breaker.state", tags)).toBe(2)
        expect(count("llm.circuit_breaker.transitions", { ...tags, from: "Closed", to: "Open" })).toBe(1)
        yield* TestClock.adjust("31 seconds")
        healthy = true
        yield* client.complete(ask())
        yield* Effect.yieldNow()
        expect(count("llm.circuit_breaker.transitions", { ...tags, from: "Open", to: "HalfOpen" })).toBe(1)
        expect(count("llm.circuit_breaker.transitions", { ...tags, from: "HalfOpen", to: "Closed" })).toBe(1)
        expect(gauge("llm.circuit_breaker.state", tags)).toBe(0)
      }))

    it.scoped("format compliance and quality scores from the tier's checks", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-fmt-a", [ScriptedProvider.success("not json")])
        const scored = yield* scripted("obs-fmt-b", [ScriptedProvider.success("{\"a\":1}")])
        const backup = yield* scripted("obs-fmt-c", [ScriptedProvider.success("{\"b\":2}")])
        const client = yield* Resilient.make({
          relaxation: false,
          chain: [
            { provider: primary, retry: false, quality: Quality.json },
            { provider: scored, retry: false, quality: Quality.score(() => 0.25) },
            { provider: backup, quality: Quality.json }
          ]
        })
        const lines = yield* withLines((lines) => Effect.as(client.complete(ask()), lines))
        expect(count("llm.response.format_checks", { ...model("obs-fmt-a"), valid: "false" })).toBe(1)
        expect(count("llm.response.format_checks", { ...model("obs-fmt-c"), valid: "true" })).toBe(1)
        expect(gauge("llm.response.format_compliance_rate", model("obs-fmt-a"))).toBe(0)
        expect(gauge("llm.response.format_compliance_rate", model("obs-fmt-c"))).toBe(1)
        expect(histogramCount("llm.response.quality_score", model("obs-fmt-b"))).toBe(1)
        expect(count("llm.attempts", { ...model("obs-fmt-a"), outcome: "soft" })).toBe(1)
        const event = JSON.parse(lines[0]!)
        expect(event.format_valid).toBe(true)
        expect(event.quality_score).toBe(0.25)
        expect(event.attempt).toBe(3)
      }))

    it.scoped("rate-limit waits are observed per provider:model (TestClock)", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-rl", [ScriptedProvider.success("ok")])
        const client = yield* Resilient.make({
          chain: [{ provider: primary, limits: { rpm: 1 } }],
          rateLimit: { maxWait: "infinity" }
        })
        yield* client.complete(ask())
        const exit = yield* settle(client.complete(ask()), "2 minutes")
        expect(Exit.isSuccess(exit)).toBe(true)
        const [wait] = stateOf("llm.rate_limit.wait_ms", model("obs-rl"))
        expect(wait !== undefined && MetricState.isHistogramState(wait) ? wait.count : 0).toBe(1)
        expect(wait !== undefined && MetricState.isHistogramState(wait) ? wait.max : 0).toBeGreaterThan(1_000)
      }))

    it.scoped("a passing Quality.score is recorded too, under the step that answered", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-pass", [ScriptedProvider.success("good")])
        const client = yield* Resilient.make({
          chain: [{ provider: primary, quality: Quality.score(() => 0.8, { threshold: 0.5 }) }]
        })
        const lines = yield* withLines((lines) => Effect.as(client.complete(ask()), lines))
        expect(histogramCount("llm.response.quality_score", model("obs-pass"))).toBe(1)
        expect(JSON.parse(lines[0]!).quality_score).toBe(0.8)
      }))

    it.scoped("Observability.recordQualityScore lands in the histogram and the request's event", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-qs", [ScriptedProvider.success("fine")])
        const client = yield* Resilient.make({
          chain: [{
            provider: primary,
            quality: () => Observability.recordQualityScore("obs-qs:obs-qs-model", 0.9)
          }]
        })
        const lines = yield* withLines((lines) => Effect.as(client.complete(ask()), lines))
        expect(histogramCount("llm.response.quality_score", model("obs-qs"))).toBe(1)
        expect(JSON.parse(lines[0]!).quality_score).toBe(0.9)
      }))
  })

  describe("log event", () => {
    it.scoped("one JSON line per request, exactly the schema, no prompt text", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-log-a", [ScriptedProvider.failure("ServerError", { status: 503 })])
        const backup = yield* scripted("obs-log-b", [
          ScriptedProvider.success("the answer", { usage: { inputTokens: 10, outputTokens: 20, totalTokens: 30 } })
        ])
        const client = yield* Resilient.make({
          chain: [{ provider: primary, retry: false }, {
            provider: backup,
            price: { inputPer1k: 1, outputPer1k: 1 }
          }]
        })
        const lines = yield* withLines((lines) => Effect.as(client.complete(ask("SECRET PROMPT sk-123")), lines))
        expect(lines).toHaveLength(1)
        const line = lines[0]!
        expect(line).not.toContain("SECRET")
        expect(line).not.toContain("the answer")
        const event = JSON.parse(line)
        expect(Object.keys(event)).toEqual(schemaKeys)
        expect(event).toMatchObject({
          event: "llm.request",
          level: "warn",
          provider: "obs-log-b",
          model: "obs-log-b-model",
          attempt: 2,
          fallback_from: "obs-log-a:obs-log-a-model",
          ttft_ms: null,
          input_tokens: 10,
          output_tokens: 20,
          cost_usd: 0.03,
          circuit_state: "Closed",
          quality_score: null,
          format_valid: null
        })
        expect(event.request_id).toMatch(/^req_[0-9a-f]{16}$/)
        expect(new Date(event.ts).toISOString()).toBe(event.ts)
      }))

    it.scoped("a failed request logs at error with the primary and the steps tried; ids differ", () =>
      Effect.gen(function*() {
        const only = yield* scripted("obs-log-f", [ScriptedProvider.failure("Unauthorized", { status: 401 })])
        const client = yield* Resilient.make({ chain: [{ provider: only, retry: false }] })
        const lines = yield* withLines((lines) =>
          Effect.as(Effect.zip(Effect.either(client.complete(ask())), Effect.either(client.complete(ask()))), lines)
        )
        expect(lines).toHaveLength(2)
        const [first, second] = lines.map((line) => JSON.parse(line))
        expect(first).toMatchObject({
          level: "error",
          provider: "obs-log-f",
          model: "obs-log-f-model",
          attempt: 1,
          input_tokens: 0,
          cost_usd: 0,
          error: "FallbackExhausted",
          reason: "Unauthorized",
          attempts: [{
            tier: 1,
            label: "obs-log-f:obs-log-f-model",
            error: "HardFailure",
            reason: "Unauthorized",
            skipped: false,
            latency_ms: 0
          }]
        })
        expect(first.request_id).not.toBe(second.request_id)
      }))

    it.scoped("a stream logs one event when it ends: by whom it was served, TTFT, tokens; or that it failed", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-stream-a", [
          ScriptedProvider.failure("ServerError", { status: 503 }),
          ScriptedProvider.success("from primary", { latency: "300 millis" })
        ])
        const backup = yield* scripted("obs-stream-b", [
          ScriptedProvider.success("from backup", { usage: { inputTokens: 7, outputTokens: 3, totalTokens: 10 } })
        ])
        const client = yield* Resilient.make({ chain: [{ provider: primary, retry: false }, { provider: backup }] })
        const collect = (lines: Array<string>) => Effect.as(Streaming.collect(client.stream(ask())), lines)
        const [fallback] = yield* withLines(collect)
        const event = JSON.parse(fallback!)
        expect(event).toMatchObject({
          level: "warn",
          provider: "obs-stream-b",
          attempt: 2,
          fallback_from: "obs-stream-a:obs-stream-a-model",
          input_tokens: 7,
          output_tokens: 3
        })
        expect(typeof event.ttft_ms).toBe("number")
        expect(
          count("llm.requests", {
            ...model("obs-stream-b"),
            outcome: "success",
            "llm.primary": "obs-stream-a:obs-stream-a-model"
          })
        ).toBe(1)

        const served = yield* settle(withLines(collect))
        expect(Exit.isSuccess(served) && JSON.parse(served.value[0]!)).toMatchObject({
          level: "info",
          provider: "obs-stream-a",
          attempt: 1,
          fallback_from: null
        })

        const failing = yield* scripted("obs-stream-c", [ScriptedProvider.failure("BadRequest", { status: 400 })])
        const alone = yield* Resilient.make({ chain: [{ provider: failing }] })
        const failed: Array<string> = []
        yield* withLines((lines) =>
          Effect.zipRight(Effect.exit(Streaming.collect(alone.stream(ask()))), Effect.sync(() => failed.push(...lines)))
        )
        expect(failed.map((line) => JSON.parse(line))).toEqual([
          expect.objectContaining({ level: "error", provider: "obs-stream-c", input_tokens: 0 })
        ])
      }))

    it.scoped("a stream its consumer stops early logs nothing", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-stream-d", [
          ScriptedProvider.success("one two three", { chunks: ["one ", "two ", "three"] })
        ])
        const client = yield* Resilient.make({ chain: [{ provider: primary }] })
        const lines = yield* withLines((lines) =>
          Effect.as(Stream.runDrain(Stream.take(client.stream(ask()), 1)), lines)
        )
        expect(lines).toEqual([])
      }))

    it.scoped("Effect's own loggers print the event on one line: message llm.request, the fields as annotations", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-logfmt", [ScriptedProvider.success("ok")])
        const client = yield* Resilient.make({ chain: [{ provider: primary }] })
        const lines: Array<string> = []
        yield* client.complete(ask()).pipe(
          Effect.annotateLogs("route", "/chat"),
          Effect.provide(Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (l) => lines.push(l))))
        )
        expect(lines).toHaveLength(1)
        const line = lines[0]!
        expect(line).not.toContain("\n")
        expect(line).toContain("level=INFO")
        expect(line).toContain("message=llm.request")
        for (const field of ["provider=obs-logfmt", "attempt=1", "route=/chat", "input_tokens=", "duration_ms="]) {
          expect(line).toContain(field)
        }
        expect(line).not.toContain("fallback_from")
      }))

    it.scoped("layerJsonLogger takes the place of whichever console logger is installed, so nothing prints twice", () =>
      Effect.gen(function*() {
        const installed = Effect.provide(FiberRef.get(FiberRef.currentLoggers), Observability.layerJsonLogger)
        const others = Logger.make(() => undefined)
        // Effect's default set, and the one NodeRuntime.runMain makes (its pretty logger instead of the default).
        for (
          const loggers of [
            HashSet.make(Logger.defaultLogger, others),
            HashSet.make(Logger.prettyLoggerDefault, others)
          ]
        ) {
          const after = yield* Effect.locally(installed, FiberRef.currentLoggers, loggers)
          expect(HashSet.size(after)).toBe(2)
          expect(HashSet.has(after, others)).toBe(true)
          expect(HashSet.has(after, Logger.defaultLogger) || HashSet.has(after, Logger.prettyLoggerDefault)).toBe(false)
        }
      }))

    it.scoped("makeJsonLogger renders request events in their schema and every other message as a JSON line", () =>
      Effect.gen(function*() {
        const primary = yield* scripted("obs-json", [ScriptedProvider.success("ok")])
        const client = yield* Resilient.make({ chain: [{ provider: primary }] })
        const lines: Array<string> = []
        const logger = Observability.makeJsonLogger((line) => lines.push(line))
        yield* Effect.zip(client.complete(ask()), Effect.logInfo("hello")).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
        const [request, hello] = lines.map((line) => JSON.parse(line))
        expect(Object.keys(request)).toEqual(schemaKeys)
        expect(request).toMatchObject({ event: "llm.request", provider: "obs-json", error: null, attempts: null })
        expect(hello).toEqual({ message: "hello", level: "info", ts: expect.any(String) })
      }))
  })

  describe("spans", () => {
    it.scoped("one llm.request span with a `chat {model}` child per ladder step, GenAI attributes", () =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const primary = yield* scripted("obs-span-a", [ScriptedProvider.failure("ServerError", { status: 503 })])
        const backup = yield* scripted("obs-span-b", [
          ScriptedProvider.success("ok", { usage: { inputTokens: 3, outputTokens: 4, totalTokens: 7 } })
        ])
        const client = yield* Resilient.make({ chain: [{ provider: primary, retry: false }, { provider: backup }] })
        yield* client.complete({ ...ask(), maxTokens: 300, temperature: 0.2 }).pipe(
          Effect.withSpan("app"),
          Effect.withTracer(tracer)
        )
        const app = spans.find((span) => span.name === "app")!
        const request = spans.find((span) => span.name === "llm.request")!
        const attempts = spans.filter((span) => span.name.startsWith("chat "))
        expect(attempts.map((span) => span.name)).toEqual(["chat obs-span-a-model", "chat obs-span-b-model"])
        expect(request.parent).toBe(app.spanId)
        expect(attempts.map((span) => span.parent)).toEqual([request.spanId, request.spanId])
        expect(spans.every((span) => span.ended)).toBe(true)
        expect(Object.fromEntries(attempts[0]!.attributes)).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.system": "obs-span-a",
          "gen_ai.provider.name": "obs-span-a",
          "gen_ai.request.model": "obs-span-a-model",
          "gen_ai.request.max_tokens": 300,
          "gen_ai.request.temperature": 0.2,
          "llm.attempt": 1,
          "llm.outcome": "hard",
          "error.type": "HardFailure",
          "llm.error.reason": "ServerError"
        })
        expect(Object.fromEntries(attempts[1]!.attributes)).toMatchObject({
          "gen_ai.system": "obs-span-b",
          "llm.attempt": 2,
          "llm.fallback_from": "obs-span-a:obs-span-a-model",
          "llm.outcome": "success"
        })
        expect(Object.fromEntries(request.attributes)).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.system": "obs-span-b",
          "gen_ai.provider.name": "obs-span-b",
          "gen_ai.request.model": "obs-span-b-model",
          "gen_ai.usage.input_tokens": 3,
          "gen_ai.usage.output_tokens": 4,
          "llm.attempt": 2,
          "llm.fallback_from": "obs-span-a:obs-span-a-model",
          "llm.outcome": "success",
          "llm.circuit_state": "Closed"
        })
        expect(request.attributes.get("llm.request_id")).toMatch(/^req_/)
      }))

    it.scoped("streams: an llm.stream span and the time to first token", () =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const primary = yield* scripted("obs-ttft", [
          ScriptedProvider.success("hello world", { chunks: ["hello", " world"], chunkDelay: "100 millis" })
        ])
        const client = yield* Resilient.make({ chain: [{ provider: primary }] })
        const exit = yield* settle(Effect.withTracer(Stream.runCollect(client.stream(ask())), tracer), "1 minute")
        expect(Exit.isSuccess(exit)).toBe(true)
        const [ttft] = stateOf("llm.request.ttft_ms", model("obs-ttft"))
        expect(ttft !== undefined && MetricState.isHistogramState(ttft) ? ttft.count : 0).toBe(1)
        expect(count("llm.tokens", { ...model("obs-ttft"), "gen_ai.token.type": "output" })).toBeGreaterThan(0)
        expect(spans.map((span) => span.name)).toContain("llm.stream")
      }))

    it.scoped("streams: one `chat {model}` span per tier tried, under llm.stream", () =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const primary = yield* scripted("obs-sspan-a", [ScriptedProvider.failure("ServerError", { status: 503 })])
        const backup = yield* scripted("obs-sspan-b", [ScriptedProvider.success("ok")])
        const client = yield* Resilient.make({ chain: [{ provider: primary, retry: false }, { provider: backup }] })
        yield* Effect.withTracer(Stream.runDrain(client.stream(ask())), tracer)
        const stream = spans.find((span) => span.name === "llm.stream")!
        const attempts = spans.filter((span) => span.name.startsWith("chat "))
        expect(attempts.map((span) => span.name)).toEqual(["chat obs-sspan-a-model", "chat obs-sspan-b-model"])
        expect(attempts.map((span) => span.parent)).toEqual([stream.spanId, stream.spanId])
        expect(attempts.map((span) => Object.fromEntries(span.attributes))).toMatchObject([
          { "gen_ai.system": "obs-sspan-a", "llm.attempt": 1 },
          { "gen_ai.system": "obs-sspan-b", "llm.attempt": 2, "llm.fallback_from": "obs-sspan-a:obs-sspan-a-model" }
        ])
        expect(spans.every((span) => span.ended)).toBe(true)
      }))
  })

  describe("alerts (TestClock)", () => {
    it.scoped("fallback rate above 10 % is critical, then resolves once the window passes", () =>
      Effect.gen(function*() {
        let failing = 3
        const primary = yield* scripted("obs-al", () => {
          if (failing > 0) {
            failing--
            return ScriptedProvider.failure("ServerError", { status: 503 })
          }
          return ScriptedProvider.success("ok")
        })
        const backup = yield* scripted("obs-al-b", [ScriptedProvider.success("backup")])
        const alerts = yield* Observability.makeAlerts({ interval: "30 seconds", errorRate: { warning: 1 } })
        const events = yield* alerts.subscribe
        const client = yield* Resilient.make({
          chain: [{ provider: primary, retry: false, breaker: false }, { provider: backup }]
        })
        for (let i = 0; i < 20; i++) yield* client.complete(ask())
        yield* TestClock.adjust("30 seconds")
        const fired = yield* Queue.take(events)
        expect(fired).toBeInstanceOf(Observability.FallbackRateHigh)
        expect(fired).toMatchObject({
          _tag: "FallbackRateHigh",
          severity: "critical",
          primary: "obs-al:obs-al-model",
          requests: 20,
          threshold: 0.1
        })
        expect((fired as Observability.FallbackRateHigh).rate).toBeCloseTo(0.15, 10)
        expect((yield* alerts.active).map((alert) => alert._tag)).toEqual(["FallbackRateHigh"])
        // Nothing new while it keeps firing at the same severity.
        yield* TestClock.adjust("30 seconds")
        expect(yield* Queue.size(events)).toBe(0)
        // Healthy traffic: 3 fallbacks in 40 requests is a warning; once the window has passed them, resolved.
        for (let i = 0; i < 20; i++) yield* client.complete(ask())
        yield* TestClock.adjust("30 seconds")
        expect(yield* Queue.take(events)).toMatchObject({ _tag: "FallbackRateHigh", severity: "warning", requests: 40 })
        yield* TestClock.adjust("5 minutes")
        const resolved = yield* Queue.take(events)
        expect(resolved).toMatchObject({ _tag: "AlertResolved", rule: "FallbackRateHigh", key: "obs-al:obs-al-model" })
      }))

    it.scoped("between 5 % and 10 % is a warning; under 20 requests nothing fires", () =>
      Effect.gen(function*() {
        let calls = 0
        const primary = yield* scripted("obs-alw", () =>
          calls++ % 14 === 0
            ? ScriptedProvider.failure("ServerError", { status: 503 })
            : ScriptedProvider.success("ok"))
        const backup = yield* scripted("obs-alw-b", [ScriptedProvider.success("backup")])
        const alerts = yield* Observability.makeAlerts({ errorRate: { warning: 1 } })
        const client = yield* Resilient.make({
          chain: [{ provider: primary, retry: false, breaker: false }, { provider: backup }]
        })
        for (let i = 0; i < 10; i++) yield* client.complete(ask())
        expect((yield* alerts.evaluate).filter((alert) => alert._tag === "FallbackRateHigh")).toEqual([])
        for (let i = 0; i < 18; i++) yield* client.complete(ask())
        const fired = (yield* alerts.evaluate).filter((alert) => alert._tag === "FallbackRateHigh")
        // 2 of 28 (calls 0 and 14) = 7 %.
        expect(fired).toMatchObject([{ severity: "warning", requests: 28, threshold: 0.05 }])
      }))

    it.scoped("provider error rate above 1 % is a warning", () =>
      Effect.gen(function*() {
        let calls = 0
        const primary = yield* scripted("obs-ale", () =>
          calls++ === 5 ? ScriptedProvider.failure("ServerError", { status: 503 }) : ScriptedProvider.success("ok"))
        const backup = yield* scripted("obs-ale-b", [ScriptedProvider.success("backup")])
        const alerts = yield* Observability.makeAlerts({ fallbackRate: { warning: 1, critical: 1 } })
        const client = yield* Resilient.make({
          chain: [{ provider: primary, retry: false, breaker: false }, { provider: backup }]
        })
        for (let i = 0; i < 50; i++) {
          yield* client.complete(ask())
        }
        const fired = (yield* alerts.evaluate).filter((alert) =>
          alert._tag === "ProviderErrorRateHigh"
        )
        expect(fired).toMatchObject([{ severity: "warning", system: "obs-ale", model: "obs-ale-model", attempts: 50 }])
        expect((fired[0] as Observability.ProviderErrorRateHigh).rate).toBeCloseTo(0.02, 10)
      }))

    it.scoped("a breaker opened 4 times within an hour is critical; 3 times is not", () =>
      Effect.gen(function*() {
        let healthy = false
        const primary = yield* scripted(
          "obs-flap",
          () => healthy ? ScriptedProvider.success("ok") : ScriptedProvider.failure("ServerError", { status: 503 })
        )
        const backup = yield* scripted("obs-flap-b", [ScriptedProvider.success("backup")])
        const alerts = yield* Observability.makeAlerts({ errorRate: { warning: 1 } })
        const client = yield* Resilient.make({
          chain: [
            { provider: primary, retry: false, breaker: { consecutiveFailures: 1, cooldown: "1 minute" } },
            { provider: backup }
          ]
        })
        const cycle = Effect.gen(function*() {
          healthy = false
          yield* client.complete(ask()) // opens
          yield* TestClock.adjust("61 seconds")
          healthy = true
          yield* client.complete(ask()) // probe closes
        })
        for (let i = 0; i < 3; i++) yield* cycle
        yield* Effect.yieldNow()
        yield* alerts.evaluate
        expect((yield* alerts.active).filter((alert) => alert._tag === "BreakerFlapping")).toEqual([])
        yield* cycle
        yield* Effect.yieldNow()
        yield* alerts.evaluate
        const firing = (yield* alerts.active).filter((alert) => alert._tag === "BreakerFlapping")
        expect(firing).toMatchObject([{ severity: "critical", system: "obs-flap", opens: 4, threshold: 3 }])
        // An hour after the last opening the count has aged out.
        yield* TestClock.adjust("61 minutes")
        expect((yield* alerts.active).filter((alert) => alert._tag === "BreakerFlapping")).toEqual([])
      }))
  })
})
