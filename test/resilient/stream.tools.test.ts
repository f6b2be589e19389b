import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { CompletionRequestInput, StreamChunk } from "../../src/Llm.js"
import { hardFailure } from "../../src/LlmError.js"
import type { Service as LlmProvider } from "../../src/LlmProvider.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const weatherTool = {
  name: "get_weather",
  description: "The weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
}

const ask: CompletionRequestInput = {
  messages: [{ role: "user", content: "Weather in Paris?" }],
  tools: [weatherTool]
}

/** A provider whose stream sends the first piece of a tool call, then fails overloaded: a call cut short. */
const cutShort = (calls: { count: number }): LlmProvider => ({
  name: "openai",
  model: "gpt-4.1",
  key: "openai:gpt-4.1",
  complete: () => Effect.die("not used"),
  stream: () =>
    Stream.suspend(() => {
      calls.count++
      return Stream.concat(
        Stream.make<Array<StreamChunk>>({
          _tag: "ToolCallDelta",
          index: 0,
          id: "call_1",
          name: "get_weather",
          argumentsDelta: "{\"city\":"
        }),
        Stream.fail(hardFailure({
          reason: "Overloaded",
          provider: "openai",
          model: "gpt-4.1",
          status: 529,
          retryable: true
        }))
      )
    }),
  countTokens: () => Effect.succeed(10)
})

const backupCall = { id: "toolu_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }

const collect = <E>(stream: Stream.Stream<Resilient.ResilientStreamChunk, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(Stream.runCollect(stream)))
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("Resilient.stream with tool calls", () => {
  it.scoped("a tool-call delta is the commit point: a call cut short is not continued on another provider", () =>
    Effect.gen(function*() {
      const calls = { count: 0 }
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        script: [ScriptedProvider.success("", { toolCalls: [backupCall] })]
      })
      const client = yield* Resilient.make({
        chain: [{ provider: cutShort(calls), retry: false }, { provider: backup }],
        continuation: true
      })
      const seen: Array<Resilient.ResilientStreamChunk> = []
      const outcome = yield* collect(
        client.stream(ask).pipe(Stream.tap((chunk) => Effect.sync(() => seen.push(chunk))))
      )
      // The consumer already holds the first piece of `call_1`: a second provider's call would be a second tool call.
      expect(seen.map((chunk) => chunk._tag)).toEqual(["ToolCallDelta"])
      expect(Either.isLeft(outcome) && outcome.left).toMatchObject({ _tag: "HardFailure", reason: "Overloaded" })
      expect(yield* backup.calls).toHaveLength(0)
      expect(calls.count).toBe(1)
    }))

  it.scoped("with buffer, a tool call cut short falls over whole: the caller sees only the backup's call", () =>
    Effect.gen(function*() {
      const calls = { count: 0 }
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        script: [ScriptedProvider.success("", { toolCalls: [backupCall], toolCallChunkSize: 5 })]
      })
      const client = yield* Resilient.make({
        chain: [{ provider: cutShort(calls), retry: false }, { provider: backup }]
      })
      const outcome = yield* collect(client.stream(ask, { buffer: true }))
      expect(Either.isRight(outcome)).toBe(true)
      if (Either.isLeft(outcome)) return
      const chunks = [...outcome.right]
      const deltas = chunks.filter((chunk) => chunk._tag === "ToolCallDelta")
      expect(deltas.map((delta) => delta.id).filter((id) => id !== undefined)).toEqual(["toolu_1"])
      expect(deltas.map((delta) => delta.argumentsDelta).join("")).toBe(backupCall.arguments)
      const end = chunks.at(-1)
      expect(end?._tag).toBe("StreamEnd")
      if (end?._tag !== "StreamEnd") return
      expect(end.toolCalls).toEqual([backupCall])
      expect(end.result).toMatchObject({
        servedBy: "anthropic:scripted-model",
        finishReason: "tool_calls",
        toolCalls: [backupCall]
      })
      expect(end.result.attempts.map((attempt) => attempt.reason)).toEqual(["Overloaded"])
    }))

  it.scoped("a stream that needs tools skips a step without them, no call and no breaker count", () =>
    Effect.gen(function*() {
      const local = yield* ScriptedProvider.make({
        name: "local",
        script: [ScriptedProvider.success("never")],
        capabilities: { tools: false, images: false, jsonSchema: false }
      })
      const cloud = yield* ScriptedProvider.make({
        name: "cloud",
        script: [ScriptedProvider.success("", { toolCalls: [backupCall] })]
      })
      const client = yield* Resilient.make({ chain: [{ provider: local }, { provider: cloud }] })
      const outcome = yield* collect(client.stream(ask))
      expect(Either.isRight(outcome)).toBe(true)
      if (Either.isLeft(outcome)) return
      const end = [...outcome.right].at(-1)
      if (end?._tag !== "StreamEnd") throw new Error("no end")
      expect(end.result.servedBy).toBe("cloud:scripted-model")
      expect(end.result.attempts).toEqual([
        expect.objectContaining({ label: "local:scripted-model", error: "UnsupportedRequest", skipped: true })
      ])
      expect(yield* local.calls).toHaveLength(0)
      expect((yield* client.breakers.get("local:scripted-model")!.snapshot).calls).toBe(0)
    }))
})
