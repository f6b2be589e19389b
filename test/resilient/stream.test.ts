import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Quality from "../../src/Quality.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const ask = (content = "question") => ({ messages: [{ role: "user" as const, content }] })

const scripted = (name: string, script: ScriptedProvider.Script, model = `${name}-model`) =>
  ScriptedProvider.make({ name, model, script })

/** Runs a stream to its end while the TestClock moves: its text, its end, or its failure. */
const drain = <E, R>(
  stream: Stream.Stream<Resilient.ResilientStreamChunk, E, R>,
  advance: Duration.DurationInput = "10 minutes"
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(Stream.runCollect(stream)))
    yield* TestClock.adjust(advance)
    const outcome = yield* Fiber.join(fiber)
    return Either.map(outcome, (chunks) => {
      let text = ""
      let end: Resilient.ResilientStreamEnd | undefined
      for (const chunk of chunks) {
        if (chunk._tag === "ContentDelta") text += chunk.text
        else if (chunk._tag === "StreamEnd") end = chunk
      }
      return { text, end: end!, chunks: [...chunks] }
    })
  }).pipe(Effect.withRandom(Random.fixed([0.5])))

describe("Resilient.stream: the ladder up to the first content chunk", () => {
  it.scoped("a primary that hangs before its first chunk fails over after firstChunkTimeout, permit returned", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.hang])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("from backup")])
      const client = yield* Resilient.make({
        chain: [
          { provider: primary, retry: false, firstChunkTimeout: "2 seconds", limits: { concurrency: 1 } },
          { provider: backup }
        ]
      })
      const fiber = yield* Effect.fork(drain(client.stream(ask()), "0 millis"))
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      expect(Either.isRight(outcome)).toBe(true)
      if (Either.isLeft(outcome)) return
      const { end, text } = outcome.right
      expect(text).toBe("from backup")
      expect(end.result).toMatchObject({
        servedBy: "anthropic:anthropic-model",
        tier: 2,
        fallbackFrom: "openai:openai-model",
        content: "from backup"
      })
      expect(end.result.attempts.map((attempt) => [attempt.label, attempt.reason, attempt.latencyMs])).toEqual([
        ["openai:openai-model", "Timeout", 2000]
      ])
      // The hung step's permit is back: the primary's key admits a call at once.
      expect((yield* client.limiter.snapshot("openai:openai-model")).inFlight).toBe(0)
    }))

  it.scoped("the tier's timeout is the default first-chunk timeout", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.hang])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false, timeout: "3 seconds" }, { provider: backup }]
      })
      const fiber = yield* Effect.fork(drain(client.stream(ask()), "0 millis"))
      yield* TestClock.adjust("2999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      expect(Either.isRight(outcome) && outcome.right.text).toBe("backup")
    }))

  it.scoped("downgrades, relaxation and retries apply before the first chunk", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", (call) =>
        call.model === "gpt-big"
          ? ScriptedProvider.failure("ServerError", { status: 500 })
          : call.request.maxTokens === undefined
          ? ScriptedProvider.failure("ContextLengthExceeded", { status: 400 })
          : ScriptedProvider.success("small model, relaxed", { chunks: ["small model, ", "relaxed"] }), "gpt-big")
      const client = yield* Resilient.make({
        chain: [{
          provider: primary,
          downgrades: ["gpt-small"],
          retry: { maxAttempts: 2 },
          price: { "gpt-small": { inputPer1k: 1, outputPer1k: 1 } }
        }]
      })
      const outcome = yield* drain(client.stream(ask()))
      expect(Either.isRight(outcome)).toBe(true)
      if (Either.isLeft(outcome)) return
      expect(outcome.right.text).toBe("small model, relaxed")
      expect(outcome.right.end.result.servedBy).toBe("openai:gpt-small")
      expect(outcome.right.end.result.tier).toBe(2)
      expect(outcome.right.end.result.costUsd).toBeGreaterThan(0)
      const calls = yield* primary.calls
      expect(calls.map((call) => call.model)).toEqual(["gpt-big", "gpt-big", "gpt-small", "gpt-small"])
      expect(calls[3]?.request.maxTokens).toBeDefined()
    }))

  it.scoped("two tiers of one provider: the step decides the tier and the price, not the provider's name", () =>
    Effect.gen(function*() {
      const first = yield* scripted("openai", [ScriptedProvider.failure("BadRequest", { status: 400 })], "a")
      const second = yield* scripted("openai", [
        ScriptedProvider.success("b", { usage: { inputTokens: 1000, outputTokens: 1000, totalTokens: 2000 } })
      ], "b")
      const client = yield* Resilient.make({
        chain: [
          { provider: first, retry: false, price: { inputPer1k: 100, outputPer1k: 100 } },
          { provider: second, price: { inputPer1k: 1, outputPer1k: 2 } }
        ]
      })
      // BadRequest ends a ladder: the caller's fault. Here the first tier refuses with it, so the request fails.
      const refused = yield* drain(client.stream(ask()))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("HardFailure")
      const served = yield* Resilient.make({
        chain: [
          { provider: yield* scripted("openai", [ScriptedProvider.failure("ServerError")], "a"), retry: false },
          { provider: second, price: { inputPer1k: 1, outputPer1k: 2 } }
        ]
      })
      const outcome = yield* drain(served.stream(ask()))
      expect(Either.isRight(outcome) && outcome.right.end.result).toMatchObject({
        servedBy: "openai:b",
        tier: 2,
        costUsd: 3,
        content: "b"
      })
    }))

  it.scoped("every step fails: FallbackExhausted lists every attempt, as complete does", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.failure("ServerError", { status: 503 })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.failure("Overloaded", { status: 529 })])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }, { provider: backup, retry: false }]
      })
      const streamed = yield* drain(client.stream(ask()))
      const completed = yield* Effect.either(client.complete(ask()))
      expect(Either.isLeft(streamed) && streamed.left._tag).toBe("FallbackExhausted")
      if (Either.isLeft(streamed) && streamed.left._tag === "FallbackExhausted" && Either.isLeft(completed)) {
        const labels = (attempts: ReadonlyArray<{ readonly label: string; readonly reason?: string | undefined }>) =>
          attempts.map((attempt) => [attempt.label, attempt.reason])
        expect(labels(streamed.left.attempts)).toEqual([
          ["openai:openai-model", "ServerError"],
          ["anthropic:anthropic-model", "Overloaded"]
        ])
        expect(completed.left._tag === "FallbackExhausted" && labels(completed.left.attempts)).toEqual(
          labels(streamed.left.attempts)
        )
      }
    }))
})

describe("Resilient.stream: after the commit point", () => {
  it.scoped("a stall fails typed (Timeout, partialContent) after stallTimeout; the permit is back at once", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.success("Hello world", { chunks: ["Hel", "lo", " world"], chunkDelay: "1 hour" })
      ])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("never")])
      const client = yield* Resilient.make({
        chain: [
          { provider: primary, retry: false, stallTimeout: "5 seconds", limits: { concurrency: 1 } },
          { provider: backup }
        ],
        rateLimit: { mode: "fail-fast" }
      })
      const fiber = yield* Effect.fork(drain(client.stream(ask()), "0 millis"))
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      expect(Either.isLeft(outcome)).toBe(true)
      if (Either.isRight(outcome)) return
      expect(outcome.left).toMatchObject({
        _tag: "HardFailure",
        reason: "Timeout",
        providerCode: "stream_stall",
        partialContent: "Hel"
      })
      expect((yield* backup.calls).length).toBe(0)
      // The stalled step's permit is back at once: a fail-fast limiter of concurrency 1 admits the next call.
      expect((yield* client.limiter.snapshot("openai:openai-model")).inFlight).toBe(0)
      const after = yield* client.complete(ask())
      expect(after.servedBy).toBe("openai:openai-model")
    }))

  it.scoped("continuation: the next step continues from the sent text, and nothing is seen twice", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("Overloaded", { status: 529, chunks: ["The answer", " is"] })
      ])
      const backup = yield* scripted("anthropic", [
        ScriptedProvider.success("the answer is 42.", { chunks: ["the ans", "wer is", " 42."] })
      ])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }, { provider: backup }],
        continuation: true
      })
      const outcome = yield* drain(client.stream(ask()))
      expect(Either.isRight(outcome)).toBe(true)
      if (Either.isLeft(outcome)) return
      expect(outcome.right.text).toBe("The answer is 42.")
      expect(outcome.right.end.result).toMatchObject({
        content: "The answer is 42.",
        servedBy: "anthropic:anthropic-model",
        tier: 2,
        fallbackFrom: "openai:openai-model"
      })
      expect(outcome.right.end.result.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
        ["openai:openai-model", "Overloaded"]
      ])
      // Anthropic continues an assistant prefill.
      const [call] = yield* backup.calls
      expect(call?.request.messages.slice(1)).toEqual([{ role: "assistant", content: "The answer is" }])
    }))

  it.scoped("without continuation a failure after the first chunk ends the stream with the text so far", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("Overloaded", { status: 529, chunks: ["Hi, "] })
      ])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("never")])
      const client = yield* Resilient.make({ chain: [{ provider: primary, retry: false }, { provider: backup }] })
      const outcome = yield* drain(client.stream(ask()))
      expect(Either.isLeft(outcome) && outcome.left).toMatchObject({ reason: "Overloaded", partialContent: "Hi, " })
      expect((yield* backup.calls).length).toBe(0)
    }))
})

describe("Resilient.stream: checks, hedging, degradation", () => {
  it.scoped("finishReason length marks the end degraded Truncated; a repetitive answer Repetitive", () =>
    Effect.gen(function*() {
      const cut = yield* scripted("openai", [ScriptedProvider.success("cut", { finishReason: "length" })])
      const looping = yield* scripted("anthropic", [ScriptedProvider.success("again and again ".repeat(30))])
      const first = yield* drain((yield* Resilient.make({ chain: [{ provider: cut }] })).stream(ask()))
      const second = yield* drain((yield* Resilient.make({ chain: [{ provider: looping }] })).stream(ask()))
      expect(Either.isRight(first) && first.right.end.result.degraded).toBe("Truncated")
      expect(Either.isRight(second) && second.right.end.result.degraded).toBe("Repetitive")
    }))

  it.scoped("buffer: a soft failure (JSON that does not decode) still falls back; unbuffered it is delivered", () =>
    Effect.gen(function*() {
      const make = Effect.gen(function*() {
        const primary = yield* scripted("openai", [ScriptedProvider.success("not json", { chunks: ["not ", "json"] })])
        const backup = yield* scripted("anthropic", [ScriptedProvider.success("{\"ok\":true}")])
        return yield* Resilient.make({
          chain: [{ provider: primary, retry: false, quality: Quality.json }, { provider: backup }],
          relaxation: false
        })
      })
      const buffered = yield* drain((yield* make).stream(ask(), { buffer: true }))
      expect(Either.isRight(buffered) && buffered.right.text).toBe("{\"ok\":true}")
      expect(Either.isRight(buffered) && buffered.right.end.result.attempts.map((attempt) => attempt.reason)).toEqual([
        "FormatViolation"
      ])
      const streamed = yield* drain((yield* make).stream(ask()))
      expect(Either.isRight(streamed) && streamed.right.text).toBe("not json")
    }))

  it.scoped("hedging on the first token: the faster step wins, the slower one is interrupted and gives back its permit", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("slow", { latency: "10 seconds" })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("fast", { latency: "500 millis" })])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, limits: { concurrency: 1 } }, { provider: backup }],
        hedging: { delay: "1 second", maxFraction: 1 }
      })
      const fiber = yield* Effect.fork(drain(client.stream(ask()), "0 millis"))
      yield* TestClock.adjust("1499 millis")
      expect(fiber.unsafePoll()).toBeNull()
      expect((yield* backup.calls).map((call) => call.at)).toEqual([1000])
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      expect(Either.isRight(outcome) && outcome.right.text).toBe("fast")
      expect(Either.isRight(outcome) && outcome.right.end.result.servedBy).toBe("anthropic:anthropic-model")
      expect((yield* client.limiter.snapshot("openai:openai-model")).inFlight).toBe(0)
    }))

  it.scoped("degradation as a stream: the cached answer of a completed stream, then the static answer", () =>
    Effect.gen(function*() {
      let down = false
      const primary = yield* scripted(
        "openai",
        () => down ? ScriptedProvider.failure("ServerError", { status: 503 }) : ScriptedProvider.success("fresh answer")
      )
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }],
        degrade: { cache: { ttl: "1 hour", capacity: 10 }, staticResponse: "We are answering slowly." }
      })
      const fresh = yield* drain(client.stream(ask("cached")))
      expect(Either.isRight(fresh) && fresh.right.end.result.degraded).toBeUndefined()
      down = true
      const cached = yield* drain(client.stream(ask("cached")))
      expect(Either.isRight(cached) && [cached.right.text, cached.right.end.result.degraded]).toEqual([
        "fresh answer",
        "cache"
      ])
      const fixed = yield* drain(client.stream(ask("other")))
      expect(Either.isRight(fixed) && fixed.right.chunks.map((chunk) => chunk._tag)).toEqual([
        "ContentDelta",
        "StreamEnd"
      ])
      expect(Either.isRight(fixed) && [fixed.right.text, fixed.right.end.result.servedBy]).toEqual([
        "We are answering slowly.",
        "static"
      ])
      expect(Either.isRight(fixed) && fixed.right.end.result.attempts.map((attempt) => attempt.reason)).toEqual([
        "ServerError"
      ])
    }))

  it.scoped("Resilient.stream at module level uses the client of the context", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("from the layer")])
      const outcome = yield* drain(Resilient.stream(ask())).pipe(
        Effect.provide(Layer.fresh(Resilient.layer({ chain: [{ provider: primary }] })))
      )
      expect(Either.isRight(outcome) && outcome.right.end.result.content).toBe("from the layer")
    }))
})
