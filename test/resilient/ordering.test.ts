import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const ask = { messages: [{ role: "user" as const, content: "question" }] }

describe("Resilient: the breaker sees the provider's time only", () => {
  it.scoped("8 calls of 1 s through concurrency 1 do not open a breaker on its slow-call rate", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "openai",
        model: "m",
        script: [ScriptedProvider.success("ok", { latency: "1 second" })]
      })
      const client = yield* Resilient.make({
        chain: [{
          provider: primary,
          retry: false,
          limits: { concurrency: 1 },
          breaker: { minimumCalls: 4, window: 8, slowCalls: { threshold: "1500 millis", rate: 50 } }
        }],
        rateLimit: { maxWait: "1 minute" }
      })
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 8 }, () => client.complete(ask)), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("20 seconds")
      const results = yield* Fiber.join(fiber)
      expect(results.map((result) => result.servedBy)).toEqual(Array.from({ length: 8 }, () => "openai:m"))
      expect(yield* client.breakers.get("openai:m")!.state).toBe("Closed")
      const snapshot = yield* client.breakers.get("openai:m")!.snapshot
      expect(snapshot.slowCallRate).toBe(0)
    }))
})
