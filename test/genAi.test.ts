import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Observability from "../src/Observability.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

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
})
