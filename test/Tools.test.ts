/**
 * Tools, images and structured outputs above the providers: request validation, capabilities in the ladder, tool
 * argument checks, token estimates, the cache key, scripted tool calls and the exported SDK error classifier.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import OpenAI from "openai"
import * as Fallback from "../src/Fallback.js"
import { countTokens } from "../src/internal/tokens.js"
import * as Llm from "../src/Llm.js"
import type { CompletionRequestInput, CompletionResult } from "../src/Llm.js"
import * as LlmError from "../src/LlmError.js"
import { validateRequest } from "../src/LlmProvider.js"
import * as Quality from "../src/Quality.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const Weather = Schema.Struct({ city: Schema.String })
const weather = Llm.tool("get_weather", { parameters: Weather })
const user = { role: "user" as const, content: "Weather in Paris?" }
const call = { id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }

const fieldsOf = (input: unknown) =>
  Effect.map(Effect.flip(validateRequest(input)), (error) => error.issues.map((issue) => issue.field))

describe("bad tool, image and format input is refused before any call, naming the path", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly input: unknown; readonly field: string }> = [
    {
      name: "parameters that are not an object schema",
      input: { messages: [user], tools: [{ name: "f", parameters: { type: "string" } }] },
      field: "tools[0].parameters"
    },
    {
      name: "duplicate tool names",
      input: { messages: [user], tools: [weather, weather] },
      field: "tools[1].name"
    },
    {
      name: "a toolChoice naming an unknown tool",
      input: { messages: [user], tools: [weather], toolChoice: { name: "get_time" } },
      field: "toolChoice.name"
    },
    {
      name: "a tool message without a matching earlier call",
      input: {
        messages: [user, { role: "assistant", toolCalls: [call] }, { role: "tool", toolCallId: "call_2", content: "x" }]
      },
      field: "messages[2].toolCallId"
    },
    {
      name: "a tool result before its call",
      input: {
        messages: [user, { role: "tool", toolCallId: "call_1", content: "x" }, { role: "assistant", toolCalls: [call] }]
      },
      field: "messages[1].toolCallId"
    },
    {
      name: "an image URL that is neither http(s) nor a data URL",
      input: { messages: [{ role: "user", content: [{ type: "image", url: "file:///etc/passwd" }] }] },
      field: "messages[0].content[0].url"
    },
    {
      name: "base64 image data over MAX_IMAGE_BYTES",
      input: {
        messages: [{
          role: "user",
          content: [{ type: "image", data: "A".repeat((Llm.MAX_IMAGE_BYTES / 3) * 4 + 4), mediaType: "image/png" }]
        }]
      },
      field: "messages[0].content[0].data"
    },
    {
      name: "a data URL over MAX_IMAGE_BYTES",
      input: {
        messages: [{
          role: "user",
          content: [{ type: "image", url: `data:image/png;base64,${"A".repeat((Llm.MAX_IMAGE_BYTES / 3) * 4 + 4)}` }]
        }]
      },
      field: "messages[0].content[0].url"
    },
    {
      name: "an image in an assistant message",
      input: {
        messages: [user, { role: "assistant", content: [{ type: "image", url: "https://x.test/a.png" }] }]
      },
      field: "messages[1].content[0]"
    },
    {
      name: "tool call arguments that are not a JSON object",
      input: { messages: [user, { role: "assistant", toolCalls: [{ ...call, arguments: "[1]" }] }] },
      field: "messages[1].toolCalls[0].arguments"
    },
    {
      name: "a json_schema format whose schema is not an object",
      input: { messages: [user], responseFormat: { type: "json_schema", name: "x", schema: { type: "array" } } },
      field: "responseFormat.schema"
    }
  ]
  for (const c of cases) {
    it.effect(c.name, () =>
      Effect.gen(function*() {
        expect(yield* fieldsOf(c.input)).toContain(c.field)
      }))
  }

  it.effect("string-content requests and a complete tool conversation pass", () =>
    Effect.gen(function*() {
      yield* validateRequest({ messages: [{ role: "user", content: "hi" }] })
      const request = yield* validateRequest({
        messages: [
          user,
          { role: "assistant", toolCalls: [call] },
          { role: "tool", toolCallId: "call_1", content: "{\"celsius\":21}" },
          {
            role: "user",
            content: [{ type: "text", text: "and this?" }, { type: "image", url: "https://x.test/a.png" }]
          }
        ],
        tools: [weather],
        toolChoice: { name: "get_weather" },
        responseFormat: Llm.jsonSchemaFormat("w", Weather),
        topP: 0.9,
        seed: 1,
        user: "u-1",
        providerOptions: { anthropic: { thinking: { budgetTokens: 2048 } } }
      })
      expect(request.tools?.[0]?.parameters).toEqual({
        type: "object",
        required: ["city"],
        properties: { city: { type: "string" } },
        additionalProperties: false
      })
    }))
})

describe("capabilities in the ladder", () => {
  const imageRequest: CompletionRequestInput = {
    messages: [{ role: "user", content: [{ type: "image", url: "https://x.test/a.png" }] }]
  }

  it.scoped("a text-only step is skipped without a call or a breaker count; the next one answers", () =>
    Effect.gen(function*() {
      const local = yield* ScriptedProvider.make({
        name: "local",
        script: [ScriptedProvider.success("never")],
        capabilities: { tools: true, images: false, jsonSchema: false }
      })
      const cloud = yield* ScriptedProvider.make({ name: "cloud", script: [ScriptedProvider.success("a cat")] })
      const client = yield* Resilient.make({ chain: [{ provider: local }, { provider: cloud }] })
      const result = yield* client.complete(imageRequest)
      expect(result.servedBy).toBe("cloud:scripted-model")
      expect(result.attempts).toEqual([expect.objectContaining({
        label: "local:scripted-model",
        error: "UnsupportedRequest",
        reason: "Unsupported",
        skipped: true
      })])
      expect(yield* local.calls).toHaveLength(0)
      const breaker = client.breakers.get("local:scripted-model")!
      expect((yield* breaker.snapshot).calls).toBe(0)
      // A text request still goes to the first step.
      expect((yield* client.complete({ messages: [{ role: "user", content: "hi" }] })).servedBy).toBe(
        "local:scripted-model"
      )
    }))

  it.scoped("a tier's capabilities override its provider's; when no step can take it, the chain is exhausted", () =>
    Effect.gen(function*() {
      const only = yield* ScriptedProvider.make({ name: "only", script: [ScriptedProvider.success("{}")] })
      const client = yield* Resilient.make({ chain: [{ provider: only, capabilities: { jsonSchema: false } }] })
      const error = yield* Effect.flip(
        client.complete({ messages: [user], responseFormat: Llm.jsonSchemaFormat("w", Weather) })
      )
      expect(error._tag).toBe("FallbackExhausted")
      expect(error.message).toContain("UnsupportedRequest")
      expect(yield* only.calls).toHaveLength(0)
    }))
})

describe("tool calls through the scripted provider and Quality", () => {
  const resultWith = (toolCalls: ReadonlyArray<Llm.ToolCall>): CompletionResult => ({
    content: "",
    usage: Llm.makeUsage(1, 1),
    model: "m",
    provider: "p",
    finishReason: "tool_calls",
    latencyMs: 1,
    toolCalls
  })
  const check = Quality.toolArguments({ get_weather: Weather })

  it.effect("arguments that do not match, and unknown tools, are SchemaMismatch soft failures", () =>
    Effect.gen(function*() {
      yield* check(resultWith([call]))
      const mismatch = yield* Effect.flip(check(resultWith([{ ...call, arguments: "{\"town\":\"Paris\"}" }])))
      expect([mismatch.reason, mismatch.message]).toEqual([
        "SchemaMismatch",
        expect.stringContaining("tool call call_1 (get_weather): arguments mismatch at city")
      ])
      const unknown = yield* Effect.flip(check(resultWith([{ ...call, name: "get_time" }])))
      expect([unknown.reason, unknown.message]).toEqual(["SchemaMismatch", expect.stringContaining("unknown tool")])
      const broken = yield* Effect.flip(check(resultWith([{ ...call, arguments: "{\"city\":" }])))
      expect(broken.reason).toBe("SchemaMismatch")
    }))

  it.scoped("a tier whose tool arguments do not decode falls back to the next", () =>
    Effect.gen(function*() {
      const bad = yield* ScriptedProvider.make({
        name: "bad",
        script: [ScriptedProvider.success("", { toolCalls: [{ ...call, arguments: "{}" }] })]
      })
      const good = yield* ScriptedProvider.make({
        name: "good",
        script: [ScriptedProvider.success("", { toolCalls: [call] })]
      })
      const client = yield* Resilient.make({
        chain: [{ provider: bad, quality: check, retry: false }, { provider: good, quality: check }],
        relaxation: false
      })
      const result = yield* client.complete({ messages: [user], tools: [weather] })
      expect([result.servedBy, result.finishReason, result.toolCalls]).toEqual([
        "good:scripted-model",
        "tool_calls",
        [call]
      ])
      expect(result.attempts.map((attempt) => attempt.reason)).toEqual(["SchemaMismatch"])
    }))

  it.effect("a scripted stream delivers tool-call deltas and ends with the calls", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        script: [ScriptedProvider.success("Checking.", { toolCalls: [call], toolCallChunkSize: 5 })]
      })
      const chunks = Array.from(yield* Stream.runCollect(provider.stream({ messages: [user], tools: [weather] })))
      const deltas = chunks.flatMap((chunk) => chunk._tag === "ToolCallDelta" ? [chunk.argumentsDelta] : [])
      expect(deltas.join("")).toBe(call.arguments)
      expect(deltas.length).toBeGreaterThan(2)
      const end = chunks.at(-1)
      expect(end?._tag === "StreamEnd" ? [end.finishReason, end.toolCalls] : undefined).toEqual(["tool_calls", [call]])
    }))
})

describe("token estimates and the cache key", () => {
  it.effect("tool definitions and images add to the estimate (765 tokens per image for OpenAI models)", () =>
    Effect.gen(function*() {
      const count = countTokens("openai", "gpt-4o")
      const text = yield* count([user])
      expect(yield* count([user], [weather])).toBeGreaterThan(text + 10)
      const withImage = yield* count([{
        role: "user",
        content: [{ type: "text", text: "Weather in Paris?" }, { type: "image", url: "https://x.test/a.png" }]
      }])
      expect(withImage).toBe(text + 765)
    }))

  it.effect("requests differing only in tools or response format are cached apart", () =>
    Effect.gen(function*() {
      const cache = yield* Fallback.makeResponseCache({ ttl: "1 hour", capacity: 10 })
      const answer: CompletionResult = {
        content: "21",
        usage: Llm.makeUsage(1, 1),
        model: "m",
        provider: "p",
        finishReason: "stop",
        latencyMs: 1
      }
      yield* cache.set({ messages: [user] }, answer)
      expect(Option.isSome(yield* cache.get({ messages: [user] }))).toBe(true)
      expect(Option.isNone(yield* cache.get({ messages: [user], tools: [weather] }))).toBe(true)
      expect(Option.isNone(yield* cache.get({ messages: [user], responseFormat: Llm.jsonSchemaFormat("w", Weather) })))
        .toBe(true)
    }))
})

describe("LlmError.fromSdkError", () => {
  it.effect("classifies an SDK error as the providers do, with Retry-After and without the provider's message", () =>
    Effect.gen(function*() {
      const error = OpenAI.APIError.generate(
        429,
        { error: { message: "slow down, secret prompt", type: "rate_limit_error", code: "rate_limit_exceeded" } },
        "slow down, secret prompt",
        new Headers({ "retry-after": "3" })
      )
      const failure = yield* LlmError.fromSdkError(OpenAI, error, { provider: "openai", model: "gpt-4o" })
      expect([failure.reason, failure.status, failure.providerCode, failure.retryable]).toEqual([
        "RateLimited",
        429,
        "rate_limit_exceeded",
        true
      ])
      expect(failure.retryAfter === undefined ? undefined : Duration.toMillis(failure.retryAfter)).toBe(3000)
      expect(JSON.stringify(failure)).not.toContain("secret prompt")
    }))
})
