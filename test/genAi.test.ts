import { type LLMock } from "@copilotkit/aimock"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Tracer from "effect/Tracer"
import * as Observability from "../src/Observability.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"
import { startAimock } from "./support/openai-servers.js"

let aimock: LLMock
beforeAll(async () => {
  aimock = await startAimock()
})
afterAll(() => aimock.stop())

interface Recorded {
  readonly name: string
  readonly parent: string | undefined
  readonly spanId: string
  readonly attributes: Map<string, unknown>
}

const recordingTracer = () => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
      const spanId = `s${spans.length}`
      spans.push({ name, parent: Option.isSome(parent) ? parent.value.spanId : undefined, spanId, attributes })
      return {
        _tag: "Span",
        name,
        spanId,
        traceId: "t",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

const histogram = (name: string, tags: Record<string, string>) =>
  Metric.unsafeSnapshot().flatMap((pair) => {
    if (pair.metricKey.name !== name) return []
    const labels = Object.fromEntries(pair.metricKey.tags.map((tag) => [tag.key, tag.value]))
    if (!Object.entries(tags).every(([key, value]) => labels[key] === value)) return []
    return MetricState.isHistogramState(pair.metricState) ? [pair.metricState] : []
  })

describe("OpenTelemetry GenAI conventions", () => {
  it.scoped("a request records gen_ai.client.operation.duration (seconds) and gen_ai.client.token.usage", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "genai",
        model: "gpt-genai",
        script: [ScriptedProvider.success("ok", { usage: { inputTokens: 7, outputTokens: 3, totalTokens: 10 } })]
      })
      const client = yield* Resilient.make({ chain: [{ provider }] })
      yield* client.complete({ messages: [{ role: "user", content: "hi" }] })
      const tags = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "genai",
        "gen_ai.request.model": "gpt-genai"
      }
      const [duration] = histogram("gen_ai.client.operation.duration", tags)
      expect(duration?.count).toBe(1)
      const [input] = histogram("gen_ai.client.token.usage", { ...tags, "gen_ai.token.type": "input" })
      const [output] = histogram("gen_ai.client.token.usage", { ...tags, "gen_ai.token.type": "output" })
      expect([input?.sum, output?.sum]).toEqual([7, 3])
      expect(Observability.genAiMetricNames).toEqual(["gen_ai.client.operation.duration", "gen_ai.client.token.usage"])
    }))

  it("span name and request attributes", () => {
    expect(Observability.genAiSpanName("gpt-4.1")).toBe("chat gpt-4.1")
    expect(Observability.genAiRequestAttributes({
      provider: "openai",
      model: "gpt-4.1",
      maxTokens: 300,
      temperature: 0.2,
      baseURL: "https://api.openai.com/v1"
    })).toEqual({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4.1",
      "gen_ai.request.max_tokens": 300,
      "gen_ai.request.temperature": 0.2,
      "server.address": "api.openai.com",
      "server.port": 443
    })
  })

  it.scopedLive("over real HTTP: a `chat {model}` span per call with provider, request options and server", () =>
    Effect.gen(function*() {
      aimock.onMessage("genai span question", { content: "genai span answer" })
      const port = Number(new URL(aimock.url).port)
      const primary = yield* Anthropic.make({
        model: "claude-genai",
        apiKey: Redacted.make("sk-ant-test"),
        baseURL: `http://127.0.0.1:1`
      })
      const backup = yield* OpenAi.make({
        model: "gpt-genai",
        apiKey: Redacted.make("sk-test"),
        baseURL: `${aimock.url}/v1`
      })
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false, breaker: false }, { provider: backup }]
      })
      const { spans, tracer } = recordingTracer()
      const answer = yield* client.complete({
        messages: [{ role: "user", content: "genai span question" }],
        maxTokens: 64,
        temperature: 0.5
      }).pipe(Effect.withTracer(tracer))
      expect(answer.content).toBe("genai span answer")
      const request = spans.find((span) => span.name === "llm.request")
      const calls = spans.filter((span) => span.parent === request?.spanId)
      expect(calls.map((span) => span.name)).toEqual(["chat claude-genai", "chat gpt-genai"])
      expect(Object.fromEntries(calls[0]!.attributes)).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-genai",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "server.address": "127.0.0.1",
        "server.port": 1
      })
      expect(Object.fromEntries(calls[1]!.attributes)).toMatchObject({
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-genai",
        "server.address": "127.0.0.1",
        "server.port": port
      })
      expect(request?.attributes.get("gen_ai.provider.name")).toBe("openai")
    }))

  it.scoped("a tier of deployments: each call's span names the server of the deployment the balancer picked", () =>
    Effect.gen(function*() {
      aimock.onMessage("deployment span question", { content: "deployment span answer" })
      const port = Number(new URL(aimock.url).port)
      // One server reached under two host names: each deployment's base URL is its own.
      const deployment = (name: string, host: string) =>
        Effect.map(
          OpenAi.make({
            model: "gpt-deployed",
            apiKey: Redacted.make("sk-test"),
            baseURL: `http://${host}:${port}/v1`
          }),
          (provider) => ({ name, provider })
        )
      const client = yield* Resilient.make({
        chain: [{ deployments: [yield* deployment("east", "127.0.0.1"), yield* deployment("west", "localhost")] }]
      })
      const { spans, tracer } = recordingTracer()
      const servedBy: Array<string> = []
      for (let i = 0; i < 4; i++) {
        const answer = yield* client.complete({ messages: [{ role: "user", content: "deployment span question" }] })
          .pipe(Effect.withTracer(tracer))
        servedBy.push(answer.servedBy)
      }
      expect(new Set(servedBy)).toEqual(new Set(["openai:gpt-deployed@east", "openai:gpt-deployed@west"]))
      const calls = spans.filter((span) => span.name === "chat gpt-deployed")
      expect(calls.map((span) => span.attributes.get("server.address"))).toEqual(
        servedBy.map((label) => label.endsWith("@east") ? "127.0.0.1" : "localhost")
      )
      expect(calls.every((span) => span.attributes.get("server.port") === port)).toBe(true)
    }))
})
