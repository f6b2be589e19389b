/**
 * The full stack over the real SDKs and real HTTP: the primary (OpenAI, played by mockttp) answers a storm of 503s,
 * the chain fails over to Anthropic (aimock), the primary's breaker opens, and after its cooldown — moved on the
 * TestClock — a probe finds the primary recovered and the breaker closes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as Resilient from "../src/Resilient.js"
import { completionJson, JSON_HEADERS, useLoopbackServers } from "./support/openai-servers.js"

const servers = useLoopbackServers()

describe("Resilient over real HTTP", () => {
  it.scoped("503 storm → failover → breaker opens (zero calls) → recovery → breaker closes", () =>
    Effect.gen(function*() {
      const path = "/storm/v1/chat/completions"
      const storm = yield* Effect.promise(() =>
        servers.http.forPost(path).times(3).thenReply(
          503,
          JSON.stringify({ error: { message: "overloaded", type: "server_error" } }),
          JSON_HEADERS
        )
      )
      yield* Effect.promise(() =>
        servers.http.forPost(path).thenReply(200, completionJson({ content: "primary is back" }), JSON_HEADERS)
      )
      servers.aimock.onMessage("storm question", { content: "answered by the backup" })
      const apiKey = Redacted.make("test-key")
      const client = yield* Resilient.make({
        chain: [
          {
            provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}/storm/v1` }),
            retry: false,
            breaker: { consecutiveFailures: 3, cooldown: "30 seconds" }
          },
          { provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: servers.aimock.url }) }
        ]
      })
      const request = { messages: [{ role: "user" as const, content: "storm question" }] }

      for (let i = 0; i < 3; i++) {
        const result = yield* client.complete(request)
        expect(result.servedBy).toBe("anthropic:claude-sonnet-4-6")
        expect(result.attempts[0]?.reason).toBe("Overloaded")
      }
      const breaker = client.breakers.get("openai:gpt-4.1")!
      expect(yield* breaker.state).toBe("Open")
      expect((yield* Effect.promise(() => storm.getSeenRequests())).length).toBe(3)

      const whileOpen = yield* client.complete(request)
      expect(whileOpen.servedBy).toBe("anthropic:claude-sonnet-4-6")
      expect(whileOpen.attempts[0]?.error).toBe("CircuitOpen")
      expect((yield* Effect.promise(() => storm.getSeenRequests())).length).toBe(3)

      yield* TestClock.adjust("30 seconds")
      const recovered = yield* client.complete(request)
      expect(recovered.servedBy).toBe("openai:gpt-4.1")
      expect(recovered.content).toBe("primary is back")
      expect(yield* breaker.state).toBe("Closed")
    }))
})
