import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { countTokens as cl100k } from "gpt-tokenizer/encoding/cl100k_base"
import { countTokens as o200k } from "gpt-tokenizer/encoding/o200k_base"
import { countTokens, estimateTokens, openAiEncoding } from "../../src/internal/tokens.js"
import type { ChatMessage } from "../../src/Llm.js"
import { messageText } from "../../src/Llm.js"

const messages: ReadonlyArray<ChatMessage> = [
  { role: "system", content: "You are a terse assistant. Answer in one sentence." },
  { role: "user", content: "Explain retries with exponential backoff and jitter, in plain English." },
  { role: "assistant", content: "Wait longer after each failure, plus a random bit, so clients don't stampede." },
  { role: "user", content: "Und auf Deutsch? 日本語でも。 🚀" }
]

const sum = (count: (text: string) => number) => messages.reduce((total, m) => total + count(messageText(m)), 0)

describe("openAiEncoding", () => {
  const cases: ReadonlyArray<readonly [string, "o200k_base" | "cl100k_base" | undefined]> = [
    ["gpt-4o", "o200k_base"],
    ["gpt-4o-mini", "o200k_base"],
    ["gpt-4.1", "o200k_base"],
    ["gpt-4.1-nano", "o200k_base"],
    ["o1", "o200k_base"],
    ["o3", "o200k_base"],
    ["o4-mini", "o200k_base"],
    ["gpt-5", "o200k_base"],
    ["GPT-4O", "o200k_base"],
    ["gpt-4", "cl100k_base"],
    ["gpt-4-turbo", "cl100k_base"],
    ["gpt-3.5-turbo", "cl100k_base"],
    ["llama3", undefined],
    ["llama3.1:8b", undefined],
    ["claude-sonnet-4-5", undefined],
    ["claude-3-5-haiku-latest", undefined],
    ["mistral-large", undefined]
  ]
  for (const [model, encoding] of cases) {
    it(`${model} → ${encoding ?? "undefined"}`, () => {
      expect(openAiEncoding(model)).toBe(encoding)
    })
  }
})

describe("countTokens", () => {
  it.effect("openai gpt-4o: o200k tokens of each content + 3 per message + 3", () =>
    Effect.gen(function*() {
      const count = yield* countTokens("openai", "gpt-4o")(messages)
      expect(count).toBe(sum(o200k) + 3 * messages.length + 3)
    }))

  it.effect("openai gpt-4: cl100k tokens + 3 per message + 3", () =>
    Effect.gen(function*() {
      const count = yield* countTokens("openai", "gpt-4")(messages)
      expect(count).toBe(sum(cl100k) + 3 * messages.length + 3)
    }))

  it.effect("the two encodings really differ on this input (so the tests above tell them apart)", () =>
    Effect.gen(function*() {
      expect(sum(o200k)).not.toBe(sum(cl100k))
      const a = yield* countTokens("openai", "gpt-4o")(messages)
      const b = yield* countTokens("openai", "gpt-4")(messages)
      expect(a).not.toBe(b)
    }))

  it.effect("anthropic: ceil(1.2 × cl100k) + 4 per message, whatever the model name", () =>
    Effect.gen(function*() {
      const expected = Math.ceil(sum(cl100k) * 1.2) + 4 * messages.length
      expect(yield* countTokens("anthropic", "claude-sonnet-4-5")(messages)).toBe(expected)
      expect(yield* countTokens("anthropic", "gpt-4o")(messages)).toBe(expected)
    }))

  it.effect("generic: cl100k + 4 per message for a non-OpenAI model", () =>
    Effect.gen(function*() {
      expect(yield* countTokens("generic", "llama3")(messages)).toBe(sum(cl100k) + 4 * messages.length)
    }))

  it.effect("generic with an OpenAI model name counts exactly", () =>
    Effect.gen(function*() {
      expect(yield* countTokens("generic", "gpt-4o-mini")(messages)).toBe(sum(o200k) + 3 * messages.length + 3)
    }))

  it.effect("a single message", () =>
    Effect.gen(function*() {
      const one: ReadonlyArray<ChatMessage> = [{ role: "user", content: "Hello, world!" }]
      expect(yield* countTokens("openai", "gpt-4o")(one)).toBe(o200k("Hello, world!") + 3 + 3)
      expect(yield* countTokens("anthropic", "claude")(one)).toBe(Math.ceil(cl100k("Hello, world!") * 1.2) + 4)
    }))

  it.effect("no messages: only the reply priming for OpenAI, zero for estimates", () =>
    Effect.gen(function*() {
      expect(yield* countTokens("openai", "gpt-4o")([])).toBe(3)
      expect(yield* countTokens("anthropic", "claude")([])).toBe(0)
      expect(yield* countTokens("generic", "llama3")([])).toBe(0)
    }))

  it.effect("counting is repeatable (the encoder is loaded once and reused)", () =>
    Effect.gen(function*() {
      const count = countTokens("openai", "gpt-4o")
      const first = yield* count(messages)
      const again = yield* Effect.all([count(messages), count(messages)], { concurrency: "unbounded" })
      expect(again).toEqual([first, first])
    }))
})

describe("estimateTokens (without gpt-tokenizer)", () => {
  const english = [
    "You are a terse assistant. Answer in one sentence.",
    "Explain retries with exponential backoff and jitter, in plain English. The circuit breaker opens after five "
    + "consecutive failures, and the client then fails over to the backup provider within milliseconds.",
    "function add(a: number, b: number): number { return a + b } // 12345 67890",
    "The quick brown fox jumps over the lazy dog. ".repeat(20)
  ]
  for (const text of english) {
    it(`English and code land within -5 % and +30 % of the exact counts: ${text.slice(0, 30)}…`, () => {
      for (const exact of [cl100k(text), o200k(text)]) {
        expect(estimateTokens(text)).toBeGreaterThanOrEqual(Math.floor(exact * 0.95))
        expect(estimateTokens(text)).toBeLessThanOrEqual(Math.ceil(exact * 1.3))
      }
    })
  }
  it("CJK within ±25 %", () => {
    const text = "日本語のテキストを数えます。東京は晴れです。"
    const ratio = estimateTokens(text) / cl100k(text)
    expect(ratio).toBeGreaterThan(0.75)
    expect(ratio).toBeLessThan(1.25)
  })
})
