/**
 * An application test: the chat service's own resilience policy (chat-resilience.ts), built over scripted providers,
 * with time moved by hand. `it.effect` runs on the `TestClock`, so the 30-second cooldown takes no real time, and
 * `ScriptedProvider` plays an outage call by call and records every call it receives.
 *
 *   npx vitest run --config examples/vitest.config.ts
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { Resilient } from "effect-llm-resilience"
import { ScriptedProvider } from "effect-llm-resilience/testing"
import { ChatResilience } from "./chat-resilience.js"

const question = { messages: [{ role: "user" as const, content: "Where is my invoice?" }] }

describe("the chat service's OpenAI breaker", () => {
  it.effect("opens after 3 failures, reports the time left, half-opens after 30 s, closes on a good probe", () =>
    Effect.gen(function*() {
      // The providers keep the names and models of production, so breakers get the same keys (`openai:gpt-4.1`).
      // OpenAI's first three calls fail with a 500; from the fourth call on it is healthy again.
      const openai = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: (call) =>
          call.index < 3 ? ScriptedProvider.failure("ServerError", { status: 500 }) : ScriptedProvider.success("hi")
      })
      const anthropic = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude-sonnet-4-6",
        script: [ScriptedProvider.success("answered by the backup")]
      })
      const local = yield* ScriptedProvider.make({
        name: "local",
        model: "llama3.1",
        script: [ScriptedProvider.success("answered locally")]
      })

      const test = Effect.gen(function*() {
        // The `Resilient` service exposes every breaker, keyed `provider:model`.
        const { breakers } = yield* Resilient.Resilient
        const breaker = breakers.get("openai:gpt-4.1")
        assert.isDefined(breaker)

        // Three questions, three 500s from OpenAI: each is answered by Anthropic, and the third opens the breaker.
        for (let i = 1; i <= 3; i++) {
          const answer = yield* Resilient.complete(question)
          expect(answer.servedBy).toBe("anthropic:claude-sonnet-4-6")
          expect(answer.attempts[0]).toMatchObject({ label: "openai:gpt-4.1", reason: "ServerError" })
          expect(yield* breaker.state).toBe(i < 3 ? "Closed" : "Open")
        }

        // While it is open, OpenAI is skipped without a call.
        yield* TestClock.adjust("10 seconds")
        const skipped = yield* Resilient.complete(question)
        expect(skipped.servedBy).toBe("anthropic:claude-sonnet-4-6")
        expect(skipped.attempts[0]).toMatchObject({ error: "CircuitOpen", skipped: true })
        expect((yield* openai.calls).length).toBe(3)

        // `CircuitOpen` carries the time left in the cooldown: 30 s - 10 s. (An open breaker rejects without running
        // the effect, so `Effect.void` is never run here.)
        const rejection = yield* Effect.flip(breaker.execute(Effect.void))
        expect(rejection._tag).toBe("CircuitOpen")
        expect(Duration.toMillis(rejection.remaining)).toBe(20_000)

        // One second short of the cooldown it is still open; at 30 s it lets a probe through (HalfOpen).
        yield* TestClock.adjust("19 seconds")
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.state).toBe("HalfOpen")

        // The next question is the probe. OpenAI answers, so the breaker closes and OpenAI serves again.
        const probe = yield* Resilient.complete(question)
        expect(probe.servedBy).toBe("openai:gpt-4.1")
        expect(probe.attempts).toEqual([])
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* openai.calls).map((call) => call.at)).toEqual([0, 0, 0, 30_000])
        expect((yield* local.calls).length).toBe(0)
      })

      yield* test.pipe(Effect.provide(ChatResilience({ primary: openai, backup: anthropic, local })))
    }))
})
