/**
 * The OpenAI-compatible provider (vLLM, Ollama, gateways) over the real `openai` SDK and real HTTP.
 */
import type { LLMock } from "@copilotkit/aimock"
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { assertFalse, assertTrue, deepStrictEqual, strictEqual } from "@effect/vitest/utils"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { countTokens as cl100kCount } from "gpt-tokenizer/encoding/cl100k_base"
import type { ChatMessage } from "../../src/Llm.js"
import { messageText } from "../../src/Llm.js"
import * as OpenAiCompatible from "../../src/providers/OpenAiCompatible.js"
import {
  asHard,
  ask,
  bodyOf,
  chunkEvent,
  collect,
  completionJson,
  deltaTexts,
  exactly,
  type HttpMock,
  journalFor,
  JSON_HEADERS,
  sse,
  SSE_HEADERS,
  startAimock,
  startMockttp
} from "../support/openai-servers.js"

const NAME = "local-vllm"
const MODEL = "llama-3.1-8b"

let mock: LLMock
let http: HttpMock

const compatible = (overrides: Partial<OpenAiCompatible.Options> = {}) =>
  OpenAiCompatible.make({ name: NAME, model: MODEL, baseURL: `${mock.url}/v1`, ...overrides })

beforeAll(async () => {
  ;[mock, http] = await Promise.all([startAimock(), startMockttp()])
  mock.on({ userMessage: exactly("hello") }, {
    content: "Hi from a local model",
    usage: { prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 }
  })
  mock.on({ userMessage: exactly("stream-hello") }, {
    content: "streamed locally",
    usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 }
  }, { chunkSize: 8 })
  mock.on({ userMessage: exactly("server-error") }, {
    error: { message: "CUDA out of memory", type: "server_error" },
    status: 500
  })
  mock.on({ userMessage: exactly("rate-limited") }, {
    error: { message: "Too many requests", type: "requests", code: "rate_limit_exceeded" },
    status: 429,
    retryAfter: 3
  })
  mock.on({ userMessage: exactly("headers") }, { content: "ok" })
})

afterAll(async () => {
  await Promise.all([mock.stop(), http.server.stop()])
})

describe("OpenAiCompatible provider over HTTP", () => {
  describe("options", () => {
    const cases: ReadonlyArray<{ readonly name: string; readonly options: unknown; readonly field: string }> = [
      { name: "missing name", options: { model: MODEL, baseURL: "http://127.0.0.1:1/v1" }, field: "name" },
      { name: "blank name", options: { name: "  ", model: MODEL, baseURL: "http://127.0.0.1:1/v1" }, field: "name" },
      { name: "missing baseURL", options: { name: NAME, model: MODEL }, field: "baseURL" },
      { name: "blank baseURL", options: { name: NAME, model: MODEL, baseURL: "" }, field: "baseURL" },
      {
        name: "baseURL without a scheme",
        options: { name: NAME, model: MODEL, baseURL: "localhost:11434/v1" },
        field: "baseURL"
      },
      { name: "blank model", options: { name: NAME, model: "", baseURL: "http://127.0.0.1:1/v1" }, field: "model" },
      {
        name: "non-positive timeout",
        options: { name: NAME, model: MODEL, baseURL: "http://127.0.0.1:1/v1", timeout: 0 },
        field: "timeout"
      }
    ]
    for (const c of cases) {
      it.effect(`${c.name} → InvalidOptions naming ${c.field}, with no network`, () =>
        Effect.gen(function*() {
          const before = mock.getRequests().length
          const error = yield* Effect.flip(OpenAiCompatible.make(c.options as OpenAiCompatible.Options))
          strictEqual(error._tag, "InvalidOptions")
          strictEqual(error.field, c.field)
          assertTrue(error.message.includes(c.field), error.message)
          strictEqual(mock.getRequests().length, before)
        }))
    }
  })

  describe("without an API key", () => {
    it.effect("completes against the emulator and reports its own name as provider", () =>
      Effect.gen(function*() {
        const llm = yield* compatible()
        strictEqual(llm.name, NAME)
        strictEqual(llm.model, MODEL)
        strictEqual(llm.key, `${NAME}:${MODEL}`)
        const result = yield* llm.complete(ask("hello"))
        strictEqual(result.content, "Hi from a local model")
        strictEqual(result.provider, NAME)
        strictEqual(result.model, MODEL)
        strictEqual(result.finishReason, "stop")
        deepStrictEqual(result.usage, { inputTokens: 6, outputTokens: 5, totalTokens: 11 })
        const entry = journalFor(mock, "hello").at(-1)
        strictEqual(result.requestId, entry?.headers["x-request-id"])
        strictEqual(bodyOf(entry!)["model"], MODEL)
      }))

    it.effect("streams, ending with a StreamEnd that names the provider", () =>
      Effect.gen(function*() {
        const llm = yield* compatible()
        const { received, result } = yield* collect(llm.stream(ask("stream-hello")))
        assertTrue(result._tag === "Right")
        strictEqual(deltaTexts(received).join(""), "streamed locally")
        const end = received.at(-1)
        assertTrue(end !== undefined && end._tag === "StreamEnd")
        strictEqual(received.filter((chunk) => chunk._tag === "StreamEnd").length, 1)
        strictEqual(end.provider, NAME)
        strictEqual(end.finishReason, "stop")
        deepStrictEqual(end.usage, { inputTokens: 4, outputTokens: 3, totalTokens: 7 })
      }))

    it.effect("sends a placeholder key, never an empty Authorization header", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("compat-no-key")
        const endpoint = yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(200, completionJson({ content: "ok" }), JSON_HEADERS)
        )
        const llm = yield* compatible({ baseURL })
        yield* llm.complete(ask("who am I"))
        const [seen] = yield* Effect.promise(() => endpoint.getSeenRequests())
        strictEqual(seen?.headers["authorization"], "Bearer no-key")
      }))
  })

  describe("failures carry the configured name", () => {
    it.effect("a 500 is a ServerError from the named provider, sent once", () =>
      Effect.gen(function*() {
        const llm = yield* compatible()
        const before = journalFor(mock, "server-error").length
        const error = asHard(yield* Effect.flip(llm.complete(ask("server-error"))))
        strictEqual(error.reason, "ServerError")
        strictEqual(error.status, 500)
        strictEqual(error.provider, NAME)
        strictEqual(error.model, MODEL)
        assertTrue(error.message.includes(`${NAME}/${MODEL}`), error.message)
        strictEqual(journalFor(mock, "server-error").length - before, 1)
      }))

    it.effect("a 429 is RateLimited with the retry-after hint, sent once", () =>
      Effect.gen(function*() {
        const llm = yield* compatible()
        const before = journalFor(mock, "rate-limited").length
        const error = asHard(yield* Effect.flip(llm.complete(ask("rate-limited"))))
        strictEqual(error.reason, "RateLimited")
        strictEqual(error.retryable, true)
        strictEqual(error.provider, NAME)
        strictEqual(error.retryAfter !== undefined ? Duration.toMillis(error.retryAfter) : undefined, 3_000)
        strictEqual(journalFor(mock, "rate-limited").length - before, 1)
      }))

    it.live("the timeout option bounds a request to a server that never answers", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("compat-hang")
        yield* Effect.promise(() => http.server.forPost(path).thenTimeout())
        const llm = yield* compatible({ baseURL, timeout: "200 millis" })
        const started = Date.now()
        const error = asHard(yield* Effect.flip(llm.complete(ask("slow local model"))))
        strictEqual(error.reason, "Timeout")
        strictEqual(error.provider, NAME)
        assertTrue(Date.now() - started < 3_000)
      }))

    it.effect("an API key given as Redacted is sent but never printed", () =>
      Effect.gen(function*() {
        const secret = "sk-test-SECRET-123"
        const { baseURL, path } = http.route("compat-keyed")
        const endpoint = yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            401,
            JSON.stringify({ error: { message: `Invalid key ${secret}`, type: "invalid_request_error" } }),
            JSON_HEADERS
          )
        )
        const llm = yield* compatible({ baseURL, apiKey: Redacted.make(secret) })
        const error = asHard(yield* Effect.flip(llm.complete(ask("let me in"))))
        strictEqual(error.reason, "Unauthorized")
        assertFalse(error.message.includes(secret), error.message)
        assertFalse(String(error).includes(secret), String(error))
        const [seen] = yield* Effect.promise(() => endpoint.getSeenRequests())
        strictEqual(seen?.headers["authorization"], `Bearer ${secret}`)
      }))
  })

  describe("servers that send no usage", () => {
    const generic = (messages: ReadonlyArray<ChatMessage>) =>
      messages.reduce((n, m) => n + cl100kCount(messageText(m)), 0) + 4 * messages.length

    it.effect("a completion without usage is estimated with cl100k + 4 per message", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("compat-no-usage")
        const answer = "Paris is the capital of France."
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(200, completionJson({ content: answer, model: MODEL }), JSON_HEADERS)
        )
        const llm = yield* compatible({ baseURL })
        const result = yield* llm.complete(ask("What is the capital of France?"))
        const input = generic([{ role: "user", content: "What is the capital of France?" }])
        const output = generic([{ role: "assistant", content: answer }])
        deepStrictEqual(result.usage, { inputTokens: input, outputTokens: output, totalTokens: input + output })
      }))

    it.effect("a stream without a usage chunk is estimated the same way", () =>
      Effect.gen(function*() {
        const { baseURL, path } = http.route("compat-stream-no-usage")
        yield* Effect.promise(() =>
          http.server.forPost(path).thenReply(
            200,
            sse([
              chunkEvent({ content: "Hello", model: MODEL }),
              chunkEvent({ content: " there", model: MODEL }),
              chunkEvent({ finishReason: "length", model: MODEL }),
              "[DONE]"
            ]),
            SSE_HEADERS
          )
        )
        const llm = yield* compatible({ baseURL })
        const { received, result } = yield* collect(llm.stream(ask("greet me")))
        assertTrue(result._tag === "Right")
        deepStrictEqual(deltaTexts(received), ["Hello", " there"])
        const end = received.at(-1)
        assertTrue(end !== undefined && end._tag === "StreamEnd")
        strictEqual(end.finishReason, "length")
        strictEqual(end.provider, NAME)
        const input = generic([{ role: "user", content: "greet me" }])
        const output = generic([{ role: "assistant", content: "Hello there" }])
        deepStrictEqual(end.usage, { inputTokens: input, outputTokens: output, totalTokens: input + output })
      }))
  })

  describe("requests", () => {
    it.effect("defaultHeaders reach the server", () =>
      Effect.gen(function*() {
        const llm = yield* compatible({ defaultHeaders: { "x-tenant": "team-a" } })
        yield* llm.complete(ask("headers"))
        strictEqual(journalFor(mock, "headers").at(-1)?.headers["x-tenant"], "team-a")
      }))

    it.effect("countTokens for an unknown model family estimates with cl100k + 4 per message", () =>
      Effect.gen(function*() {
        const messages: ReadonlyArray<ChatMessage> = [
          { role: "system", content: "Answer briefly." },
          { role: "user", content: "Déjà vu: 🚀 naïve café, 数据 tokens?" }
        ]
        const llm = yield* compatible()
        strictEqual(
          yield* llm.countTokens(messages),
          messages.reduce((n, m) => n + cl100kCount(messageText(m)), 0) + 4 * messages.length
        )
      }))
  })
})
