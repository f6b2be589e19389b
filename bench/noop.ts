/**
 * The no-op LLM call every bench wraps: the same result, request and provider, so that their figures compare.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type CompletionRequestInput, type CompletionResult, makeUsage } from "../src/Llm.js"
import type { Service as LlmProvider } from "../src/LlmProvider.js"

export const RESULT: CompletionResult = {
  content: "pong",
  usage: makeUsage(10, 5),
  model: "noop",
  provider: "bench",
  finishReason: "stop",
  latencyMs: 0
}
export const call = (): Promise<CompletionResult> => Promise.resolve(RESULT)
export const effectCall = (): Effect.Effect<CompletionResult> => Effect.promise(call)
export const REQUEST: CompletionRequestInput = { messages: [{ role: "user", content: "ping" }] }
export const TARGET = { name: "bench", model: "noop" }
export const KEY = "bench:noop"

export const provider: LlmProvider = {
  name: TARGET.name,
  model: TARGET.model,
  key: KEY,
  complete: () => effectCall(),
  stream: () => Stream.empty,
  countTokens: () => Effect.succeed(10)
}
