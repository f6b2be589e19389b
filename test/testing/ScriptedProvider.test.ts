import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Exit, Fiber, Option, Ref, Stream, TestClock } from "effect"
import type { CompletionRequestInput, StreamChunk } from "../../src/Llm.js"
import { HardFailure, InvalidRequest } from "../../src/LlmError.js"
import { LlmProvider } from "../../src/LlmProvider.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"
import type { RecordedCall } from "../../src/testing/ScriptedProvider.js"

const request: CompletionRequestInput = { messages: [{ role: "user", content: "Hello" }] }

const texts = (chunks: ReadonlyArray<StreamChunk>) =>
  chunks.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : [])

/** Runs a stream in a fiber, recording each chunk with the clock time it arrived. */
const consume = <E>(stream: Stream.Stream<StreamChunk, E>) =>
  Effect.gen(function*() {
    const received = yield* Ref.make<ReadonlyArray<{ readonly chunk: StreamChunk; readonly at: number }>>([])
    const fiber = yield* stream.pipe(
      Stream.runForEach((chunk) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => Ref.update(received, (all) => [...all, { chunk, at }]))
      ),
      Effect.fork
    )
    return { fiber, received: Ref.get(received) }
  })

describe("ScriptedProvider", () => {
  describe("complete", () => {
    it.effect("plays outcomes in order, then repeats the last", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [
            ScriptedProvider.success("one"),
            ScriptedProvider.failure("Overloaded"),
            ScriptedProvider.success("three")
          ]
        })
        const results = yield* Effect.forEach(
          [1, 2, 3, 4, 5],
          () => Effect.either(provider.complete(request).pipe(Effect.map((r) => r.content))),
          { concurrency: 1 }
        )
        expect(results.map((r) => r._tag === "Right" ? r.right : r.left._tag === "HardFailure" && r.left.reason))
          .toEqual(["one", "Overloaded", "three", "three", "three"])
      }))

    it.effect("a one-outcome script repeats forever", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("same")] })
        for (let i = 0; i < 3; i++) expect((yield* provider.complete(request)).content).toBe("same")
      }))

    it.effect("a function script sees each call", () =>
      Effect.gen(function*() {
        const seen: Array<RecordedCall> = []
        const provider = yield* ScriptedProvider.make({
          model: "base-model",
          script: (call) => {
            seen.push(call)
            return call.index === 0
              ? ScriptedProvider.failure("RateLimited")
              : ScriptedProvider.success(`${call.kind}#${call.index} ${call.model} ${call.request.messages.length}`)
          }
        })
        const first = yield* Effect.flip(provider.complete(request))
        expect(first._tag === "HardFailure" && first.reason).toBe("RateLimited")
        const second = yield* provider.complete({ ...request, model: "other-model" })
        expect(second.content).toBe("complete#1 other-model 1")
        const streamed = yield* Stream.runCollect(provider.stream(request))
        expect(texts(Chunk.toReadonlyArray(streamed))).toEqual(["stream#2 base-model 1"])
        expect(seen.map((call) => [call.index, call.kind, call.model])).toEqual([
          [0, "complete", "base-model"],
          [1, "complete", "other-model"],
          [2, "stream", "base-model"]
        ])
        expect(seen[1]?.request.model).toBe("other-model")
        expect(seen[0]?.request.messages).toEqual(request.messages)
      }))

    it.effect("a success with latency completes only when the clock reaches it", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.success("late", { latency: "1 second" })]
        })
        yield* TestClock.adjust("5 seconds") // the latency is measured from the call, not from time zero
        const fiber = yield* Effect.fork(provider.complete(request))
        yield* TestClock.adjust("999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const result = yield* Fiber.join(fiber)
        expect(result.content).toBe("late")
        expect(result.latencyMs).toBe(1000)
      }))

    it.effect("a success reports provider, model, finish reason, usage and a request id", () =>
      Effect.gen(function*() {
        const usage = { inputTokens: 3, outputTokens: 5, totalTokens: 8 }
        const provider = yield* ScriptedProvider.make({
          name: "fake",
          model: "fake-1",
          script: [ScriptedProvider.success("ok", { usage, finishReason: "length" }), ScriptedProvider.success("a")]
        })
        const first = yield* provider.complete(request)
        expect(first).toEqual({
          content: "ok",
          usage,
          model: "fake-1",
          provider: "fake",
          finishReason: "length",
          latencyMs: 0,
          requestId: "fake-0"
        })
        const second = yield* provider.complete(request)
        expect(second.finishReason).toBe("stop")
        expect(second.requestId).toBe("fake-1")
        // Default usage: ceil(chars / 4) + 4 per message.
        expect(second.usage).toEqual({ inputTokens: 2 + 4, outputTokens: 1 + 4, totalTokens: 11 })
        expect(provider.name).toBe("fake")
        expect(provider.model).toBe("fake-1")
        expect(provider.key).toBe("fake:fake-1")
      }))

    it.effect("a failure carries reason, status, retryAfter as a Duration and derived retryable", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "fake",
          model: "fake-1",
          script: [
            ScriptedProvider.failure("RateLimited", {
              status: 429,
              retryAfter: "2 seconds",
              providerCode: "rate_limit_exceeded"
            }),
            ScriptedProvider.failure("BadRequest", { status: 400 })
          ]
        })
        const limited = yield* Effect.flip(provider.complete(request))
        expect(limited).toBeInstanceOf(HardFailure)
        if (limited._tag !== "HardFailure") throw new Error("expected a HardFailure")
        expect(limited.reason).toBe("RateLimited")
        expect(limited.status).toBe(429)
        expect(Duration.isDuration(limited.retryAfter)).toBe(true)
        expect(limited.retryAfter !== undefined && Duration.toMillis(limited.retryAfter)).toBe(2000)
        expect(limited.providerCode).toBe("rate_limit_exceeded")
        expect(limited.retryable).toBe(true)
        expect(limited.provider).toBe("fake")
        expect(limited.model).toBe("fake-1")
        expect(limited.partialContent).toBeUndefined()
        const bad = yield* Effect.flip(provider.complete(request))
        expect(bad._tag === "HardFailure" && [bad.reason, bad.status, bad.retryable, bad.retryAfter]).toEqual([
          "BadRequest",
          400,
          false,
          undefined
        ])
      }))

    it.effect("a failure honours an explicit retryable", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [
            ScriptedProvider.failure("ServerError", { retryable: false }),
            ScriptedProvider.failure("Forbidden", { retryable: true })
          ]
        })
        const first = yield* Effect.flip(provider.complete(request))
        const second = yield* Effect.flip(provider.complete(request))
        expect(first._tag === "HardFailure" && first.retryable).toBe(false)
        expect(second._tag === "HardFailure" && second.retryable).toBe(true)
      }))

    it.effect("a failure with latency fails only when the clock reaches it", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.failure("Timeout", { latency: "30 seconds" })]
        })
        const fiber = yield* Effect.fork(Effect.either(provider.complete(request)))
        yield* TestClock.adjust("29 seconds")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 second")
        const result = yield* Fiber.join(fiber)
        expect(result._tag === "Left" && result.left._tag === "HardFailure" && result.left.reason).toBe("Timeout")
      }))

    it.effect("hang never completes until interrupted", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.hang] })
        const fiber = yield* Effect.fork(provider.complete(request))
        yield* TestClock.adjust("1 hour")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect((yield* provider.calls).length).toBe(1)
      }))

    it.effect("calls records every call with the clock time it arrived", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.success("a", { latency: "1 second" })]
        })
        expect(yield* provider.calls).toEqual([])
        const first = yield* Effect.fork(provider.complete(request))
        yield* TestClock.adjust("250 millis")
        const second = yield* Effect.fork(provider.complete({ ...request, temperature: 0.5 }))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(first)
        yield* Fiber.join(second)
        const third = yield* Effect.fork(Stream.runDrain(provider.stream(request)))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(third)
        const calls = yield* provider.calls
        expect(calls.map((call) => [call.index, call.kind, call.at])).toEqual([
          [0, "complete", 0],
          [1, "complete", 250],
          [2, "stream", 5250]
        ])
        expect(calls[1]?.request.temperature).toBe(0.5)
        expect(calls[0]?.model).toBe("scripted-model")
      }))

    it.effect("an invalid request fails with InvalidRequest and is not recorded", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("ok")] })
        const error = yield* Effect.flip(provider.complete({ messages: [] }))
        expect(error).toBeInstanceOf(InvalidRequest)
        expect(error._tag === "InvalidRequest" && error.field).toBe("messages")
        const streamError = yield* Effect.flip(
          Stream.runDrain(provider.stream({ messages: [{ role: "user", content: "hi" }], temperature: 5 }))
        )
        expect(streamError._tag === "InvalidRequest" && streamError.field).toBe("temperature")
        expect(yield* provider.calls).toEqual([])
        // The script did not advance either: the first valid call gets the first outcome.
        expect((yield* provider.complete(request)).requestId).toBe("scripted-0")
      }))

    it.effect("a model override in the request shows in the result and the recorded call", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ model: "default", script: [ScriptedProvider.success("x")] })
        const result = yield* provider.complete({ ...request, model: "override" })
        expect(result.model).toBe("override")
        const end = Chunk.toReadonlyArray(yield* Stream.runCollect(provider.stream({ ...request, model: "s-model" })))
          .find((chunk) => chunk._tag === "StreamEnd")
        expect(end?._tag === "StreamEnd" && end.model).toBe("s-model")
        const calls = yield* provider.calls
        expect(calls.map((call) => call.model)).toEqual(["override", "s-model"])
        expect(calls[0]?.request.model).toBe("override")
        expect(provider.model).toBe("default")
      }))

    it.effect("countTokens estimates about four characters a token plus 4 per message", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("x")] })
        const count = yield* provider.countTokens([
          { role: "user", content: "12345678" },
          { role: "assistant", content: "123456789" }
        ])
        expect(count).toBe(2 + 4 + 3 + 4)
      }))
  })

  describe("stream", () => {
    it.effect("delivers chunks with chunkDelay between them, then a StreamEnd", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [
            ScriptedProvider.success("abc", { chunks: ["a", "b", "c"], latency: "100 millis", chunkDelay: "50 millis" })
          ]
        })
        yield* TestClock.adjust("1 second") // timings are relative to the call
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("99 millis")
        expect(yield* received).toEqual([])
        yield* TestClock.adjust("1 millis")
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["a"])
        yield* TestClock.adjust("49 millis")
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["a"])
        yield* TestClock.adjust("1 millis")
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["a", "b"])
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("50 millis")
        yield* Fiber.join(fiber)
        const all = yield* received
        expect(all.map((r) => r.at)).toEqual([1100, 1150, 1200, 1200])
        const end = all[3]?.chunk
        expect(end?._tag).toBe("StreamEnd")
        if (end?._tag !== "StreamEnd") throw new Error("expected a StreamEnd")
        expect(end.ttftMs).toBe(100)
        expect(end.latencyMs).toBe(200)
        expect(end.finishReason).toBe("stop")
        expect(end.model).toBe("scripted-model")
        expect(end.provider).toBe("scripted")
        expect(end.requestId).toBe("scripted-0")
      }))

    it.effect("without chunks the content is one delta, and ttftMs is the latency", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.success("whole", { latency: "300 millis", finishReason: "length" })]
        })
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("300 millis")
        yield* Fiber.join(fiber)
        const all = (yield* received).map((r) => r.chunk)
        expect(all.map((chunk) => chunk._tag)).toEqual(["ContentDelta", "StreamEnd"])
        expect(texts(all)).toEqual(["whole"])
        const end = all[1]
        expect(end?._tag === "StreamEnd" && [end.ttftMs, end.latencyMs, end.finishReason]).toEqual([
          300,
          300,
          "length"
        ])
      }))

    it.effect("an empty success ends after its latency with no ttftMs", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.success("", { chunks: [], latency: "2 seconds" })]
        })
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("1 second")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        const all = (yield* received).map((r) => r.chunk)
        expect(all).toHaveLength(1)
        const end = all[0]
        expect(end?._tag === "StreamEnd" && end.latencyMs).toBe(2000)
        expect(end?._tag === "StreamEnd" && end.ttftMs).toBeUndefined()
      }))

    it.effect("a Failure with chunks fails mid-stream after delivering them, carrying them as partialContent", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [
            ScriptedProvider.failure("Overloaded", {
              status: 529,
              chunks: ["Hel", "lo, ", "wor"],
              latency: "10 millis",
              chunkDelay: "10 millis"
            })
          ]
        })
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("10 millis")
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["Hel"])
        yield* TestClock.adjust("10 millis")
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["Hel", "lo, "])
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("10 millis")
        const exit = yield* Fiber.await(fiber)
        expect(texts((yield* received).map((r) => r.chunk))).toEqual(["Hel", "lo, ", "wor"])
        expect((yield* received).some((r) => r.chunk._tag === "StreamEnd")).toBe(false)
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error).toBeInstanceOf(HardFailure)
        if (error._tag !== "HardFailure") throw new Error("expected a HardFailure")
        expect(error.reason).toBe("Overloaded")
        expect(error.status).toBe(529)
        expect(error.partialContent).toBe("Hello, wor")
        expect(error.message).not.toContain("Hello")
      }))

    it.effect("a Failure without chunks fails after its latency with no partialContent", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [ScriptedProvider.failure("ServerError", { latency: "1 second" })]
        })
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error._tag === "HardFailure" && [error.reason, error.partialContent]).toEqual([
          "ServerError",
          undefined
        ])
        expect(yield* received).toEqual([])
      }))

    it.effect("hang never emits until interrupted", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({ script: [ScriptedProvider.hang] })
        const { fiber, received } = yield* consume(provider.stream(request))
        yield* TestClock.adjust("1 hour")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        expect(yield* received).toEqual([])
        expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      }))
  })

  describe("layer", () => {
    it.effect("provides LlmProvider", () =>
      Effect.gen(function*() {
        const llm = yield* LlmProvider
        expect(llm.name).toBe("layered")
        expect(llm.model).toBe("layered-model")
        expect(llm.key).toBe("layered:layered-model")
        const first = yield* llm.complete(request)
        expect(first.content).toBe("from the layer")
        expect(first.provider).toBe("layered")
        const second = yield* Effect.flip(llm.complete(request))
        expect(second._tag === "HardFailure" && second.reason).toBe("NotFound")
      }).pipe(
        Effect.provide(
          ScriptedProvider.layer({
            name: "layered",
            model: "layered-model",
            script: [ScriptedProvider.success("from the layer"), ScriptedProvider.failure("NotFound")]
          })
        )
      ))
  })
})
