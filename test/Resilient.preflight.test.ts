import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const big = "word ".repeat(5_000)

describe("Resilient preflight: what a step's model cannot take is settled before any call", () => {
  it.scoped("a prompt over a tier's contextWindow is not sent: a ContextLengthExceeded attempt, no breaker count", () =>
    Effect.gen(function*() {
      const small = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("no")]
      })
      const large = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude-sonnet-4-6",
        script: [ScriptedProvider.success("yes")]
      })
      const client = yield* Resilient.make({
        chain: [{ provider: small, contextWindow: 1_000 }, { provider: large, contextWindow: 200_000 }],
        relaxation: false
      })
      const result = yield* client.complete({ messages: [{ role: "user", content: big }] })
      expect(result.content).toBe("yes")
      expect(result.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
        ["openai:gpt-4.1", "ContextLengthExceeded"]
      ])
      expect((yield* small.calls).length).toBe(0)
      const breaker = client.breakers.get("openai:gpt-4.1")!
      expect((yield* breaker.snapshot).calls).toBe(0)
    }))

  it.scoped("with relaxation on, the history is trimmed to fit and the same tier answers", () =>
    Effect.gen(function*() {
      const small = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("fits")]
      })
      const client = yield* Resilient.make({ chain: [{ provider: small, contextWindow: 3_000 }] })
      const result = yield* client.complete({
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: big },
          { role: "assistant", content: "ok" },
          { role: "user", content: "the question" }
        ]
      })
      expect(result.content).toBe("fits")
      const calls = yield* small.calls
      expect(calls.length).toBe(1)
      expect(calls[0]!.request.messages.some((message) => message.content === big)).toBe(false)
    }))

  it.scoped("maxTokens above the model's output limit is clamped (tier option, then the known default)", () =>
    Effect.gen(function*() {
      const openai = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("a")]
      })
      const local = yield* ScriptedProvider.make({
        name: "local",
        model: "llama3.1",
        script: [ScriptedProvider.success("b")]
      })
      const known = yield* Resilient.make({ chain: [{ provider: openai }] })
      yield* known.complete({ messages: [{ role: "user", content: "hi" }], maxTokens: 1_000_000 })
      expect((yield* openai.calls)[0]!.request.maxTokens).toBe(32_768)
      const configured = yield* Resilient.make({ chain: [{ provider: local, maxOutputTokens: 4_096 }] })
      yield* configured.complete({ messages: [{ role: "user", content: "hi" }], maxTokens: 10_000 })
      expect((yield* local.calls)[0]!.request.maxTokens).toBe(4_096)
    }))
})
