/**
 * Resilient streaming through the real SDKs over real HTTP: mockttp plays the failing provider, aimock the healthy
 * one.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { StreamChunk } from "../src/Llm.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as Streaming from "../src/Streaming.js"
import { completeStream, errorEvent, SSE_HEADERS, streamPrefix } from "./support/anthropic-servers.js"
import { chunkEvent, sse, useLoopbackServers } from "./support/openai-servers.js"

const apiKey = Redacted.make("test-key")
const servers = useLoopbackServers()

const ask = (content: string) => ({ messages: [{ role: "user" as const, content }] })

const consume = <E>(stream: Stream.Stream<StreamChunk, E>) =>
  Effect.gen(function*() {
    const received: Array<StreamChunk> = []
    const outcome = yield* Effect.either(
      Stream.runForEach(stream, (chunk) => Effect.sync(() => received.push(chunk)))
    )
    const text = received.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : []).join("")
    const end = received.find((chunk) => chunk._tag === "StreamEnd")
    return { outcome, text, end }
  })

const journalHas = (marker: string) =>
  servers.aimock.getRequests().some((entry) => JSON.stringify(entry.body ?? {}).includes(marker))

describe("resilient streaming over real HTTP", () => {
  it.live("an OpenAI 503 before the first chunk fails over to Anthropic", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() =>
        servers.http.forPost("/s1/v1/chat/completions").thenReply(
          503,
          JSON.stringify({ error: { message: "overloaded", type: "server_error" } }),
          { "content-type": "application/json" }
        )
      )
      servers.aimock.onMessage("failover-one", { content: "Answer from Claude." })
      const openai = yield* OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}/s1/v1` })
      const anthropic = yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: servers.aimock.url })
      const { end, outcome, text } = yield* consume(Streaming.failover([openai, anthropic], ask("failover-one")))
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("Answer from Claude.")
      expect(end?._tag === "StreamEnd" && end.provider).toBe("anthropic")
    }))

  it.live("an OpenAI error line after the first chunk fails the stream, typed, with the text — no failover", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() =>
        servers.http.forPost("/s2/v1/chat/completions").thenReply(
          200,
          sse([
            chunkEvent({ content: "Hel" }),
            chunkEvent({ content: "lo" }),
            { error: { message: "internal", type: "server_error" } }
          ]),
          SSE_HEADERS
        )
      )
      servers.aimock.onMessage("no-failover-after-commit", { content: "should not be used" })
      const openai = yield* OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}/s2/v1` })
      const anthropic = yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: servers.aimock.url })
      const { outcome, text } = yield* consume(
        Streaming.failover([openai, anthropic], ask("no-failover-after-commit"))
      )
      expect(text).toBe("Hello")
      expect(outcome._tag === "Left" && outcome.left._tag).toBe("HardFailure")
      expect(outcome._tag === "Left" && outcome.left._tag === "HardFailure" && outcome.left.partialContent).toBe(
        "Hello"
      )
      expect(journalHas("no-failover-after-commit")).toBe(false)
    }))

  it.live("an Anthropic overloaded_error event mid-stream continues on OpenAI when continuation is on", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() =>
        servers.http.forPost("/s3/v1/messages").thenReply(
          200,
          streamPrefix(["The breaker ", "opened "]) + errorEvent("overloaded_error", "Overloaded"),
          SSE_HEADERS
        )
      )
      servers.aimock.onMessage(/Continue exactly where/, { content: "and traffic moved to the backup." })
      const anthropic = yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: `${servers.http.url}/s3` })
      const openai = yield* OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.aimock.url}/v1` })
      const { end, outcome, text } = yield* consume(
        Streaming.failover([anthropic, openai], ask("continuation-over-http"), { continuation: true })
      )
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("The breaker opened and traffic moved to the backup.")
      expect(end?._tag === "StreamEnd" && end.provider).toBe("openai")
      const continued = servers.aimock.getRequests().find((entry) =>
        JSON.stringify(entry.body ?? {}).includes("continuation-over-http")
      )
      expect(JSON.stringify(continued?.body)).toContain("The breaker opened ")
    }))

  it.live("a stream that sends nothing within the first-chunk timeout fails over; the slow request is aborted", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => servers.http.forPost("/s4/v1/messages").thenTimeout())
      servers.aimock.onMessage("ttft-over-http", { content: "Fast answer." })
      const anthropic = yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: `${servers.http.url}/s4` })
      const openai = yield* OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.aimock.url}/v1` })
      const { outcome, text } = yield* consume(
        Streaming.failover([anthropic, openai], ask("ttft-over-http"), { firstChunkTimeout: "300 millis" })
      )
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("Fast answer.")
    }))

  it.live("a complete Anthropic stream passes through the guard with its usage and TTFT", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() =>
        servers.http.forPost("/s5/v1/messages").thenReply(
          200,
          completeStream(["Hi ", "there"], { inputTokens: 7, outputTokens: 2 }),
          SSE_HEADERS
        )
      )
      const anthropic = yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: `${servers.http.url}/s5` })
      const { end, outcome, text } = yield* consume(
        Streaming.failover([anthropic], ask("guarded"), { firstChunkTimeout: "5 seconds", stallTimeout: "5 seconds" })
      )
      expect(outcome._tag).toBe("Right")
      expect(text).toBe("Hi there")
      expect(end?._tag === "StreamEnd" && end.usage).toEqual({ inputTokens: 7, outputTokens: 2, totalTokens: 9 })
      expect(end?._tag === "StreamEnd" && typeof end.ttftMs).toBe("number")
    }))
})
