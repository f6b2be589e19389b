import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { StreamChunk } from "../src/Llm.js"
import * as Streaming from "../src/Streaming.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const request = { messages: [{ role: "user" as const, content: "Tell me a story" }] }

/** Runs a stream under TestClock, recording each chunk the consumer receives and the outcome. */
const consume = <E>(stream: Stream.Stream<StreamChunk, E>, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const received: Array<StreamChunk> = []
    const fiber = yield* stream.pipe(
      Stream.runForEach((chunk) => Effect.sync(() => received.push(chunk))),
      Effect.either,
      Effect.fork
    )
    yield* TestClock.adjust(advance)
    const outcome = yield* Fiber.join(fiber)
    const text = received.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : []).join("")
    const end = received.find((chunk) => chunk._tag === "StreamEnd")
    return { outcome, received, text, end }
  })

describe("Streaming.guard", () => {
  it.effect("a missing first chunk times out with first_chunk_timeout and interrupts the source", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [ScriptedProvider.success("late", { latency: "10 seconds" })]
      })
      const guarded = Streaming.guard(provider.stream(request), {
        provider: "scripted",
        model: "m",
        firstChunkTimeout: "2 seconds"
      })
      const fiber = yield* Effect.fork(Effect.either(Stream.runCollect(guarded)))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      expect(outcome._tag).toBe("Left")
      if (outcome._tag === "Left") {
        expect(outcome.left._tag).toBe("HardFailure")
        expect(outcome.left._tag === "HardFailure" && outcome.left.reason).toBe("Timeout")
        expect(outcome.left._tag === "HardFailure" && outcome.left.providerCode).toBe("first_chunk_timeout")
      }
    }))

  it.effect("a stall between chunks fails with stream_stall carrying the text received", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [ScriptedProvider.success("abc", { chunks: ["a", "b", "c"], chunkDelay: "5 seconds" })]
      })
      const { outcome, text } = yield* consume(
        Streaming.guard(provider.stream(request), { provider: "p", model: "m", stallTimeout: "2 seconds" })
      )
      expect(text).toBe("a")
      expect(outcome._tag === "Left" && outcome.left._tag === "HardFailure" && outcome.left.providerCode).toBe(
        "stream_stall"
      )
      expect(outcome._tag === "Left" && outcome.left._tag === "HardFailure" && outcome.left.partialContent).toBe("a")
    }))

  it.effect("a stream within its timeouts passes unchanged, with TTFT on its end", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [
          ScriptedProvider.success("abc", { chunks: ["a", "b", "c"], latency: "1 second", chunkDelay: "1 second" })
        ]
      })
      const { end, outcome, text } = yield* consume(
        Streaming.guard(provider.stream(request), {
          provider: "p",
          model: "m",
          firstChunkTimeout: "2 seconds",
          stallTimeout: "2 seconds"
        })
      )
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("abc")
      expect(end?._tag === "StreamEnd" && end.ttftMs).toBe(1000)
    }))

  it.effect("more identical chunks in a row than allowed is a Repetitive degraded stream", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [ScriptedProvider.success("x", { chunks: Array.from({ length: 10 }, () => "ha") })]
      })
      const { outcome } = yield* consume(
        Streaming.guard(provider.stream(request), { provider: "p", model: "m", maxRepeatedChunks: 5 })
      )
      expect(outcome._tag === "Left" && outcome.left._tag).toBe("DegradedResponse")
      if (outcome._tag === "Left" && outcome.left._tag === "DegradedResponse") {
        expect(outcome.left.reason).toBe("Repetitive")
        expect(outcome.left.result.content).toBe("ha".repeat(6))
      }
    }))
})

describe("Streaming.failover", () => {
  it.effect("before the first chunk, a failure moves to the next provider", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "primary",
        script: [ScriptedProvider.failure("ServerError", { status: 503 })]
      })
      const backup = yield* ScriptedProvider.make({ name: "backup", script: [ScriptedProvider.success("from backup")] })
      const { end, outcome, text } = yield* consume(Streaming.failover([primary, backup], request))
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("from backup")
      expect(end?._tag === "StreamEnd" && end.provider).toBe("backup")
      expect((yield* primary.calls).length).toBe(1)
      expect((yield* backup.calls).length).toBe(1)
    }))

  it.effect("a first-chunk timeout on the primary fails over without waiting for it", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({ name: "primary", script: [ScriptedProvider.hang] })
      const backup = yield* ScriptedProvider.make({ name: "backup", script: [ScriptedProvider.success("fast")] })
      const { outcome, text } = yield* consume(
        Streaming.failover([primary, backup], request, { firstChunkTimeout: "3 seconds" })
      )
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("fast")
      expect((yield* backup.calls)[0]?.at).toBe(3000)
    }))

  it.effect("after the first chunk (the commit point) there is no failover: a typed failure with the text so far", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "primary",
        script: [ScriptedProvider.failure("Overloaded", { chunks: ["Once upon", " a time"] })]
      })
      const backup = yield* ScriptedProvider.make({ name: "backup", script: [ScriptedProvider.success("other")] })
      const { outcome, text } = yield* consume(Streaming.failover([primary, backup], request))
      expect(text).toBe("Once upon a time")
      expect(outcome._tag === "Left" && outcome.left._tag === "HardFailure" && outcome.left.reason).toBe("Overloaded")
      expect(outcome._tag === "Left" && outcome.left._tag === "HardFailure" && outcome.left.partialContent).toBe(
        "Once upon a time"
      )
      expect((yield* backup.calls).length).toBe(0)
    }))

  it.effect("caller faults do not fail over", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({ script: [ScriptedProvider.failure("BadRequest")] })
      const backup = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("x")] })
      const { outcome } = yield* consume(Streaming.failover([primary, backup], request))
      expect(outcome._tag === "Left" && outcome.left._tag).toBe("HardFailure")
      const invalid = yield* consume(Streaming.failover([primary, backup], { messages: [] }))
      expect(invalid.outcome._tag === "Left" && invalid.outcome.left._tag).toBe("InvalidRequest")
      expect((yield* backup.calls).length).toBe(0)
    }))

  describe("continuation", () => {
    const run = (continuationText: string, primaryChunks: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const primary = yield* ScriptedProvider.make({
          name: "primary",
          script: [ScriptedProvider.failure("Overloaded", { chunks: primaryChunks })]
        })
        const backup = yield* ScriptedProvider.make({
          name: "backup",
          script: [ScriptedProvider.success(continuationText, { chunks: [...continuationText].map((c) => c) })]
        })
        const result = yield* consume(Streaming.failover([primary, backup], request, { continuation: true }))
        return { ...result, backupCalls: yield* backup.calls }
      })

    it.effect("continues on the next provider with the text so far as an assistant message", () =>
      Effect.gen(function*() {
        const { backupCalls, end, outcome, text } = yield* run("ld, said the program.", ["Hello, ", "wor"])
        expect(outcome._tag).toBe("Right")
        expect(text).toBe("Hello, world, said the program.")
        expect(end?._tag === "StreamEnd" && end.provider).toBe("backup")
        const messages = backupCalls[0]?.request.messages ?? []
        expect(messages.slice(0, 2)).toEqual([
          { role: "user", content: "Tell me a story" },
          { role: "assistant", content: "Hello, wor" }
        ])
        expect(messages[2]?.role).toBe("user")
      }))

    it.effect("never repeats delivered text when the next model starts over", () =>
      Effect.gen(function*() {
        const { text } = yield* run("Hello, world! How are you?", ["Hello, ", "wor"])
        expect(text).toBe("Hello, world! How are you?")
      }))

    it.effect("never repeats delivered text when the next model re-emits the last words", () =>
      Effect.gen(function*() {
        const { text } = yield* run("brown fox jumps over the dog.", ["The quick ", "brown fox"])
        expect(text).toBe("The quick brown fox jumps over the dog.")
      }))

    it.effect("keeps a short coincidental overlap", () =>
      Effect.gen(function*() {
        const { text } = yield* run("s are useful.", ["Retries and breaker"])
        expect(text).toBe("Retries and breakers are useful.")
      }))
  })
})

describe("Streaming.dropRepeatedPrefix", () => {
  it.effect("flushes a short buffered continuation at the end of the stream", () =>
    Effect.gen(function*() {
      const source = Stream.fromIterable<StreamChunk>([
        { _tag: "ContentDelta", text: "ok." },
        {
          _tag: "StreamEnd",
          finishReason: "stop",
          usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
          model: "m",
          provider: "p",
          latencyMs: 1
        }
      ])
      const chunks = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Streaming.dropRepeatedPrefix("A long answer that was cut")(source))
      )
      expect(chunks.map((chunk) => chunk._tag)).toEqual(["ContentDelta", "StreamEnd"])
      const collected = yield* Streaming.collect(Stream.fromIterable(chunks))
      expect(collected.text).toBe("ok.")
      expect(Option.isSome(collected.end)).toBe(true)
    }))
})
