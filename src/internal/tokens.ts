import * as Effect from "effect/Effect"
import type { ChatMessage } from "../Llm.js"

type Encoding = "o200k_base" | "cl100k_base"

interface Encoder {
  readonly countTokens: (text: string) => number
}

// Each encoding is ~1-2 MB of ranks and takes 150-270 ms to load: load on first use, once.
const loaders: Record<Encoding, () => Promise<Encoder>> = {
  o200k_base: () => import("gpt-tokenizer/encoding/o200k_base"),
  cl100k_base: () => import("gpt-tokenizer/encoding/cl100k_base")
}

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
      promise = loaders[encoding]().then((enc) => {
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

/**
 * Counts prompt tokens for a model: exactly for OpenAI models (gpt-tokenizer), an estimate otherwise.
 * @internal
 */
export const countTokens = (family: TokenizerFamily, model: string) => {
  const exact = family === "anthropic" ? undefined : openAiEncoding(model)
  return (messages: ReadonlyArray<ChatMessage>): Effect.Effect<number> =>
    Effect.map(encoder(exact ?? "cl100k_base"), (enc) => {
      let content = 0
      for (const message of messages) content += enc.countTokens(message.content)
      if (exact !== undefined) return content + messages.length * OPENAI_PER_MESSAGE + OPENAI_REPLY_PRIMING
      const scaled = family === "anthropic" ? Math.ceil(content * ANTHROPIC_FACTOR) : content
      return scaled + messages.length * ESTIMATE_PER_MESSAGE
    })
}
