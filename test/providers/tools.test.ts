/**
 * Tool calls, structured outputs and images through both real SDKs over real HTTP: aimock answers with tool calls
 * (complete and streamed), mockttp captures the exact request bodies. Ends with a failover OpenAI → Anthropic in the
 * middle of a tool conversation, and the other way: Anthropic → OpenAI.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { MockedEndpoint } from "mockttp"
import * as Llm from "../../src/Llm.js"
import type { CompletionRequestInput, StreamChunk } from "../../src/Llm.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Quality from "../../src/Quality.js"
import * as Resilient from "../../src/Resilient.js"
import {
  type AnthropicServers,
  JSON_HEADERS,
  messageBody,
  startAnthropicServers,
  uniquePrefix,
  uniqueToken
} from "../support/anthropic-servers.js"
import { completionJson } from "../support/openai-servers.js"

const apiKey = Redacted.make("sk-test-tools")

let servers: AnthropicServers

beforeAll(async () => {
  servers = await startAnthropicServers()
})

afterAll(async () => {
  await servers.stop()
})

const Weather = Schema.Struct({ city: Schema.String })
const Time = Schema.Struct({ zone: Schema.String })
const tools = [
  Llm.tool("get_weather", { description: "Current weather of a city", parameters: Weather }),
  Llm.tool("get_time", { parameters: Time })
]

const openAi = (baseURL: string) => OpenAi.make({ model: "gpt-4o", apiKey, baseURL })
const anthropic = (baseURL: string) => Anthropic.make({ model: "claude-x", apiKey, baseURL })

const collect = (stream: Stream.Stream<StreamChunk, unknown>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Array.from(chunks))

const endOf = (chunks: ReadonlyArray<StreamChunk>) => {
  const end = chunks.at(-1)
  if (end?._tag !== "StreamEnd") throw new Error("the stream did not end with a StreamEnd")
  return end
}

/** A mockttp rule at a fresh prefix that answers `body`; the base URL reaches it (OpenAI's needs `/v1`). */
const capture = (body: string, openAiStyle: boolean) =>
  Effect.promise(async () => {
    const prefix = uniquePrefix()
    const path = openAiStyle ? `${prefix}/v1/chat/completions` : `${prefix}/v1/messages`
    const endpoint = await servers.http.forPost(path).thenReply(200, body, JSON_HEADERS)
    return { baseURL: `${servers.httpUrl}${prefix}${openAiStyle ? "/v1" : ""}`, endpoint }
  })

const sentBody = (endpoint: MockedEndpoint) =>
  Effect.promise(async () => {
    const [seen] = await endpoint.getSeenRequests()
    if (seen === undefined) throw new Error("no request reached the server")
    return (await seen.body.getJson()) as Record<string, unknown>
  })

const parallelCalls = [
  { name: "get_weather", arguments: "{\"city\":\"Paris\"}", id: "call_W1" },
  { name: "get_time", arguments: "{\"zone\":\"CET\"}", id: "call_T1" }
]

describe.each([
  { sdk: "openai", make: (url: string) => openAi(`${url}/v1`) },
  { sdk: "anthropic", make: anthropic }
])("$sdk SDK: tool calls from aimock", ({ make }) => {
  it.effect("a tool call comes back with its id, name, arguments and finish reason tool_calls", () =>
    Effect.gen(function*() {
      const marker = uniqueToken("one-tool")
      servers.aimock.onMessage(marker, { toolCalls: [parallelCalls[0]!] })
      const llm = yield* make(servers.aimockUrl)
      const result = yield* llm.complete({ messages: [{ role: "user", content: marker }], tools })
      expect(result.finishReason).toBe("tool_calls")
      expect(result.toolCalls).toEqual([{ id: "call_W1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }])
      const decoded = yield* Quality.decodeToolCalls({ get_weather: Weather, get_time: Time })(result)
      expect(decoded).toEqual([{ id: "call_W1", name: "get_weather", value: { city: "Paris" } }])
    }))

  it.effect("parallel tool calls come back in order", () =>
    Effect.gen(function*() {
      const marker = uniqueToken("two-tools")
      servers.aimock.onMessage(marker, { toolCalls: parallelCalls })
      const llm = yield* make(servers.aimockUrl)
      const result = yield* llm.complete({ messages: [{ role: "user", content: marker }], tools })
      expect(result.toolCalls?.map((call) => [call.id, call.name, JSON.parse(call.arguments)])).toEqual([
        ["call_W1", "get_weather", { city: "Paris" }],
        ["call_T1", "get_time", { zone: "CET" }]
      ])
    }))

  it.effect("a stream delivers tool-call deltas and ends with the calls assembled", () =>
    Effect.gen(function*() {
      const marker = uniqueToken("stream-tools")
      servers.aimock.onMessage(marker, { toolCalls: parallelCalls }, { chunkSize: 4 })
      const llm = yield* make(servers.aimockUrl)
      const chunks = yield* collect(llm.stream({ messages: [{ role: "user", content: marker }], tools }))
      const deltas = chunks.flatMap((chunk) => chunk._tag === "ToolCallDelta" ? [chunk] : [])
      expect(deltas.length).toBeGreaterThanOrEqual(2)
      expect(deltas.filter((delta) => delta.id !== undefined).map((delta) => [delta.index, delta.id, delta.name]))
        .toEqual([[0, "call_W1", "get_weather"], [1, "call_T1", "get_time"]])
      const end = endOf(chunks)
      expect(end.finishReason).toBe("tool_calls")
      expect(end.toolCalls?.map((call) => [call.id, call.name, JSON.parse(call.arguments)])).toEqual([
        ["call_W1", "get_weather", { city: "Paris" }],
        ["call_T1", "get_time", { zone: "CET" }]
      ])
    }))
})

describe("request bodies on the wire", () => {
  const image = { type: "image" as const, data: "iVBORw0KGgo=", mediaType: "image/png" as const }
  const imageRequest: CompletionRequestInput = {
    messages: [{
      role: "user",
      content: [{ type: "text", text: "What is in these?" }, image, { type: "image", url: "https://x.test/cat.jpg" }]
    }]
  }

  it.effect("OpenAI: image parts become image_url parts, base64 as a data URL", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(completionJson({ content: "a cat" }), true)
      const llm = yield* openAi(baseURL)
      yield* llm.complete(imageRequest)
      const body = yield* sentBody(endpoint)
      expect(body["messages"]).toEqual([{
        role: "user",
        content: [
          { type: "text", text: "What is in these?" },
          { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
          { type: "image_url", image_url: { url: "https://x.test/cat.jpg" } }
        ]
      }])
    }))

  it.effect("Anthropic: image parts become image blocks (base64 and url sources)", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(messageBody({ content: [{ type: "text", text: "a cat" }] }), false)
      const llm = yield* anthropic(baseURL)
      yield* llm.complete(imageRequest)
      const body = yield* sentBody(endpoint)
      expect(body["messages"]).toEqual([{
        role: "user",
        content: [
          { type: "text", text: "What is in these?" },
          { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
          { type: "image", source: { type: "url", url: "https://x.test/cat.jpg" } }
        ]
      }])
    }))

  const Answer = Schema.Struct({ answer: Schema.String, confidence: Schema.Number })
  const format = Llm.jsonSchemaFormat("answer", Answer)

  it.effect("OpenAI: a json_schema answer is asked with response_format and decodes", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(
        completionJson({ content: "{\"answer\":\"42\",\"confidence\":0.9}" }),
        true
      )
      const llm = yield* openAi(baseURL)
      const result = yield* llm.complete({ messages: [{ role: "user", content: "why?" }], responseFormat: format })
      const body = yield* sentBody(endpoint)
      expect(body["response_format"]).toEqual({
        type: "json_schema",
        json_schema: { name: "answer", schema: format.schema, strict: true }
      })
      expect(yield* Quality.decode(Answer)(result)).toEqual({ answer: "42", confidence: 0.9 })
    }))

  it.effect("Anthropic: a json_schema answer is asked with output_config.format", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(
        messageBody({ content: [{ type: "text", text: "{\"answer\":\"42\"}" }] }),
        false
      )
      const llm = yield* anthropic(baseURL)
      const result = yield* llm.complete({ messages: [{ role: "user", content: "why?" }], responseFormat: format })
      const body = yield* sentBody(endpoint)
      expect(body["output_config"]).toEqual({ format: { type: "json_schema", schema: format.schema } })
      // The answer misses `confidence`: a SchemaMismatch, not a pass.
      const failure = yield* Effect.flip(Quality.decode(Answer)(result))
      expect(failure.reason).toBe("SchemaMismatch")
    }))

  const conversation: CompletionRequestInput = {
    messages: [
      { role: "system", content: "Use the tools." },
      { role: "user", content: "Weather and time in Paris?" },
      {
        role: "assistant",
        toolCalls: parallelCalls.map(({ arguments: args, id, name }) => ({ id, name, arguments: args }))
      },
      { role: "tool", toolCallId: "call_W1", content: "{\"celsius\":21}" },
      { role: "tool", toolCallId: "call_T1", content: "{\"time\":\"10:00\"}" }
    ],
    tools,
    toolChoice: "auto",
    parallelToolCalls: false,
    seed: 7,
    providerOptions: { openai: { reasoningEffort: "low" } }
  }

  it.effect("OpenAI: tools, tool_choice, tool_calls and tool results as OpenAI messages", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(completionJson({ content: "21 °C at 10:00" }), true)
      const llm = yield* openAi(baseURL)
      const result = yield* llm.complete(conversation)
      expect(result.notes).toBeUndefined()
      const body = yield* sentBody(endpoint)
      expect(body["tools"]).toEqual([
        {
          type: "function",
          function: { name: "get_weather", description: "Current weather of a city", parameters: tools[0]!.parameters }
        },
        { type: "function", function: { name: "get_time", parameters: tools[1]!.parameters } }
      ])
      expect([body["tool_choice"], body["parallel_tool_calls"], body["seed"], body["reasoning_effort"]])
        .toEqual(["auto", false, 7, "low"])
      expect((body["messages"] as Array<unknown>).slice(2)).toEqual([
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_W1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } },
            { id: "call_T1", type: "function", function: { name: "get_time", arguments: "{\"zone\":\"CET\"}" } }
          ]
        },
        { role: "tool", tool_call_id: "call_W1", content: "{\"celsius\":21}" },
        { role: "tool", tool_call_id: "call_T1", content: "{\"time\":\"10:00\"}" }
      ])
    }))

  it.effect("Anthropic: the same history as tool_use / tool_result blocks, ids kept; OpenAI-only options noted", () =>
    Effect.gen(function*() {
      const { baseURL, endpoint } = yield* capture(messageBody({ content: [{ type: "text", text: "21 °C" }] }), false)
      const llm = yield* anthropic(baseURL)
      const result = yield* llm.complete(conversation)
      expect(result.notes).toEqual([
        "providerOptions.openai not applied: this provider does not take it",
        "seed not applied: this provider does not support it"
      ])
      const body = yield* sentBody(endpoint)
      expect(body["system"]).toBe("Use the tools.")
      expect(body["tools"]).toEqual([
        { name: "get_weather", description: "Current weather of a city", input_schema: tools[0]!.parameters },
        { name: "get_time", input_schema: tools[1]!.parameters }
      ])
      expect(body["tool_choice"]).toEqual({ type: "auto", disable_parallel_tool_use: true })
      expect(body["seed"]).toBeUndefined()
      expect(body["messages"]).toEqual([
        { role: "user", content: "Weather and time in Paris?" },
        {
          role: "assistant",
          content: [
            { type: "tool_use", id: "call_W1", name: "get_weather", input: { city: "Paris" } },
            { type: "tool_use", id: "call_T1", name: "get_time", input: { zone: "CET" } }
          ]
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "call_W1", content: "{\"celsius\":21}" },
            { type: "tool_result", tool_use_id: "call_T1", content: "{\"time\":\"10:00\"}" }
          ]
        }
      ])
    }))
})

describe("failover in the middle of a tool conversation", () => {
  it.scoped("OpenAI is down: Anthropic gets the history with the OpenAI call ids and answers with a tool call", () =>
    Effect.gen(function*() {
      const down = yield* Effect.promise(async () => {
        const prefix = uniquePrefix()
        const endpoint = await servers.http.forPost(`${prefix}/v1/chat/completions`).thenReply(
          503,
          JSON.stringify({ error: { message: "overloaded", type: "server_error" } }),
          JSON_HEADERS
        )
        return { baseURL: `${servers.httpUrl}${prefix}/v1`, endpoint }
      })
      const backup = yield* capture(
        messageBody({
          content: [{ type: "tool_use", id: "toolu_02", name: "get_time", input: { zone: "CET" } }],
          stopReason: "tool_use"
        }),
        false
      )
      const client = yield* Resilient.make({
        chain: [
          { provider: openAi(down.baseURL), retry: false },
          { provider: anthropic(backup.baseURL), retry: false }
        ]
      })
      const result = yield* client.complete({
        messages: [
          { role: "user", content: "Weather in Paris, then the time?" },
          {
            role: "assistant",
            toolCalls: [{ id: "call_abc123", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }]
          },
          { role: "tool", toolCallId: "call_abc123", content: "{\"celsius\":21}" }
        ],
        tools
      })
      expect(result.servedBy).toBe("anthropic:claude-x")
      expect(result.fallbackFrom).toBe("openai:gpt-4o")
      expect(result.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
        ["openai:gpt-4o", "Overloaded"]
      ])
      expect(result.toolCalls).toEqual([{ id: "toolu_02", name: "get_time", arguments: "{\"zone\":\"CET\"}" }])
      expect((yield* Effect.promise(() => down.endpoint.getSeenRequests())).length).toBe(1)
      const body = yield* sentBody(backup.endpoint)
      expect(body["messages"]).toEqual([
        { role: "user", content: "Weather in Paris, then the time?" },
        {
          role: "assistant",
          content: [{ type: "tool_use", id: "call_abc123", name: "get_weather", input: { city: "Paris" } }]
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "call_abc123", content: "{\"celsius\":21}" }] }
      ])
    }))
})

describe("failover in the middle of a tool conversation, the other way", () => {
  it.scoped("Anthropic is overloaded: OpenAI gets the history with the Anthropic tool_use ids and answers", () =>
    Effect.gen(function*() {
      const down = yield* Effect.promise(async () => {
        const prefix = uniquePrefix()
        const endpoint = await servers.http.forPost(`${prefix}/v1/messages`).thenReply(
          529,
          JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }),
          JSON_HEADERS
        )
        return { baseURL: `${servers.httpUrl}${prefix}`, endpoint }
      })
      const backup = yield* capture(completionJson({ content: "21 °C in Paris, 10:00 CET." }), true)
      const client = yield* Resilient.make({
        chain: [
          { provider: anthropic(down.baseURL), retry: false },
          { provider: openAi(backup.baseURL), retry: false }
        ]
      })
      const result = yield* client.complete({
        messages: [
          { role: "system", content: "Answer briefly." },
          { role: "user", content: "Weather in Paris, then the time?" },
          {
            role: "assistant",
            content: "Checking both.",
            toolCalls: [
              { id: "toolu_01W", name: "get_weather", arguments: "{\"city\":\"Paris\"}" },
              { id: "toolu_01T", name: "get_time", arguments: "{\"zone\":\"CET\"}" }
            ]
          },
          { role: "tool", toolCallId: "toolu_01W", content: "{\"celsius\":21}" },
          { role: "tool", toolCallId: "toolu_01T", content: "{\"time\":\"10:00\"}" }
        ],
        tools
      })
      expect(result.servedBy).toBe("openai:gpt-4o")
      expect(result.fallbackFrom).toBe("anthropic:claude-x")
      expect(result.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
        ["anthropic:claude-x", "Overloaded"]
      ])
      expect(result.content).toBe("21 °C in Paris, 10:00 CET.")
      expect((yield* Effect.promise(() => down.endpoint.getSeenRequests())).length).toBe(1)
      const body = yield* sentBody(backup.endpoint)
      expect(body["messages"]).toEqual([
        { role: "system", content: "Answer briefly." },
        { role: "user", content: "Weather in Paris, then the time?" },
        {
          role: "assistant",
          content: "Checking both.",
          tool_calls: [
            { id: "toolu_01W", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } },
            { id: "toolu_01T", type: "function", function: { name: "get_time", arguments: "{\"zone\":\"CET\"}" } }
          ]
        },
        { role: "tool", tool_call_id: "toolu_01W", content: "{\"celsius\":21}" },
        { role: "tool", tool_call_id: "toolu_01T", content: "{\"time\":\"10:00\"}" }
      ])
      expect(body["tools"]).toEqual([
        expect.objectContaining({ type: "function", function: expect.objectContaining({ name: "get_weather" }) }),
        expect.objectContaining({ type: "function", function: expect.objectContaining({ name: "get_time" }) })
      ])
    }))
})
