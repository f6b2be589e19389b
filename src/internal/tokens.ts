import * as Effect from "effect/Effect"
import type { ChatMessage, Tool } from "../Llm.js"

type Encoding = "o200k_base" | "cl100k_base"

interface Encoder {
  readonly countTokens: (text: string) => number
}

// gpt-tokenizer is an optional peer (30 MB installed: every encoding, in CJS, ESM and source). Each encoding is
// ~1-2 MB of ranks and takes 150-270 ms to load: loaded on first use, once. Without the package every count is the
// estimate below, which the rate limiter reconciles with the usage the API reports.
const loaders: Record<Encoding, () => Promise<Encoder>> = {
  o200k_base: () => import("gpt-tokenizer/encoding/o200k_base"),
  cl100k_base: () => import("gpt-tokenizer/encoding/cl100k_base")
}

// Letters as runs (with their combining marks), digits as runs, every other visible character alone.
const PIECES = /[\p{L}\p{M}]+|\p{N}+|[^\s\p{L}\p{M}\p{N}]/gu
const IDEOGRAPHIC = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/gu

/**
 * A tokenizer-free estimate for when gpt-tokenizer is not installed: a letter run costs one token per 6 letters
 * (rounded up; BPE vocabularies hold most short English words whole), an ideographic character one token, a digit run
 * one per 3 digits, any other visible character one. On English prose and code it lands within -5 % and +30 % of
 * cl100k and o200k (mostly above: the safe side for a rate-limit charge or a context-window check); on CJK text
 * within ±25 %.
 * @internal
 */
export const estimateTokens = (text: string): number => {
  let tokens = 0
  for (const [piece] of text.matchAll(PIECES)) {
    if (/^\p{N}/u.test(piece)) tokens += Math.ceil(piece.length / 3)
    else if (/^[\p{L}\p{M}]/u.test(piece)) {
      const ideographs = piece.match(IDEOGRAPHIC)?.length ?? 0
      tokens += ideographs + Math.ceil((piece.length - ideographs) / 6)
    } else tokens += 1
  }
  return tokens
}

const estimator: Encoder = { countTokens: estimateTokens }

const loading = new Map<Encoding, Promise<Encoder>>()
// Once loaded, an encoder is used synchronously: waiting on its settled promise would still suspend the fiber for a
// microtask on every count.
const loaded = new Map<Encoding, Encoder>()

const encoder = (encoding: Encoding): Effect.Effect<Encoder> => {
  const ready = loaded.get(encoding)
  if (ready !== undefined) return Effect.succeed(ready)
  return Effect.promise(() => {
    let promise = loading.get(encoding)
    if (promise === undefined) {
      promise = loaders[encoding]().catch(() => estimator).then((enc) => {
        loaded.set(encoding, enc)
        return enc
      })
      loading.set(encoding, promise)
    }
    return promise
  })
}

/** @internal */
export type TokenizerFamily = "openai" | "anthropic" | "generic"

/**
 * The exact encoding of an OpenAI model, or `undefined` when the model is not an OpenAI one.
 * @internal
 */
export const openAiEncoding = (model: string): Encoding | undefined => {
  const name = model.toLowerCase()
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|chatgpt|o\d)/.test(name)) return "o200k_base"
  if (/^(gpt-4|gpt-3\.5)/.test(name)) return "cl100k_base"
  return undefined
}

// OpenAI's documented chat framing: 3 tokens per message and 3 to prime the reply.
const OPENAI_PER_MESSAGE = 3
const OPENAI_REPLY_PRIMING = 3

// Anthropic publishes no tokenizer for current Claude models. Measured comparisons put Claude's counts 10-30 %
// above cl100k for English prose; 1.2 x cl100k leans high, which is the safe side for a rate-limit charge, and the
// limiter reconciles the estimate with the usage the API reports.
const ANTHROPIC_FACTOR = 1.2
const ESTIMATE_PER_MESSAGE = 4

// Images: OpenAI charges 85 + 170 per 512 px tile at high detail; without reading the image's size, every image is
// counted as a 1024 x 1024 one (4 tiles): 765 tokens. Anthropic charges width x height / 750, at most about 1,600 for
// an image it does not downscale: that bound is its estimate. The limiter reconciles with the reported usage.
const IMAGE_TOKENS: Record<TokenizerFamily, number> = { openai: 85 + 170 * 4, anthropic: 1_600, generic: 85 + 170 * 4 }

// A tool definition is sent as its JSON (name, description, parameters); a tool call as its name and arguments.
const TOOL_OVERHEAD = 8

/**
 * Counts prompt tokens for a model: exactly for OpenAI models' text when gpt-tokenizer is installed, an estimate
 * otherwise. Tool definitions count as their JSON text, tool calls as their name and arguments, images as
 * {@link IMAGE_TOKENS}.
 * @internal
 */
export const countTokens = (family: TokenizerFamily, model: string) => {
  const exact = family === "anthropic" ? undefined : openAiEncoding(model)
  return (messages: ReadonlyArray<ChatMessage>, tools?: ReadonlyArray<Tool> | undefined): Effect.Effect<number> =>
    Effect.map(encoder(exact ?? "cl100k_base"), (enc) => {
      let content = 0
      let images = 0
      for (const message of messages) {
        if (typeof message.content === "string") content += enc.countTokens(message.content)
        else {
          for (const part of message.content ?? []) {
            if (part.type === "text") content += enc.countTokens(part.text)
            else images++
          }
        }
        for (const call of message.toolCalls ?? []) {
          content += enc.countTokens(call.name) + enc.countTokens(call.arguments) + TOOL_OVERHEAD
        }
      }
      for (const tool of tools ?? []) content += enc.countTokens(JSON.stringify(tool)) + TOOL_OVERHEAD
      const pictures = images * IMAGE_TOKENS[family]
      if (exact !== undefined) {
        return content + pictures + messages.length * OPENAI_PER_MESSAGE + OPENAI_REPLY_PRIMING
      }
      const scaled = family === "anthropic" ? Math.ceil(content * ANTHROPIC_FACTOR) : content
      return scaled + pictures + messages.length * ESTIMATE_PER_MESSAGE
    })
}
