/**
 * Continuing a stream on another step after its commit point: the request that asks for the rest (an assistant
 * prefill where the provider continues one, a continuation instruction otherwise), and the filter that keeps the
 * caller from seeing delivered text twice.
 * @internal
 */
import * as Stream from "effect/Stream"
import type { ChatMessage, CompletionRequest, CompletionRequestInput, StreamChunk } from "../../Llm.js"
import { endsInSpace, prepare, repeatedLength } from "./overlap.js"

/** The instruction sent with a continuation. */
const CONTINUE = "Continue exactly where your previous message stopped. Do not repeat any of it."

// Anthropic continues a final assistant message (a prefill), which it refuses with trailing whitespace; the OpenAI
// chat API has no prefill, so the text goes back as the assistant's turn with an instruction to continue.
const PREFILL_PROVIDERS = new Set(["anthropic"])

/** The request for the rest of `delivered`, sent to `provider`. @internal */
export const continuationRequest = <R extends CompletionRequestInput | CompletionRequest>(
  request: R,
  delivered: string,
  provider: string
): R => ({
  ...request,
  messages: PREFILL_PROVIDERS.has(provider)
    ? [...request.messages, { role: "assistant", content: delivered.trimEnd() } satisfies ChatMessage]
    : [
      ...request.messages,
      { role: "assistant", content: delivered } satisfies ChatMessage,
      { role: "user", content: CONTINUE } satisfies ChatMessage
    ]
})

/**
 * Drops the part of a continuation that repeats `delivered` (see ./overlap.ts). The first characters are held back
 * while they could still be a repeat.
 * @internal
 */
export const dropRepeated =
  (delivered: string) => <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E, R> =>
    Stream.suspend(() => {
      const prepared = prepare(delivered)
      let buffer = ""
      let deciding = true
      // Until the first new character, leading whitespace would double the delivered text's trailing space.
      let trimming = endsInSpace(delivered)
      const emit = (raw: string): Array<StreamChunk> => {
        const text = trimming ? raw.trimStart() : raw
        if (text === "") return []
        trimming = false
        return [{ _tag: "ContentDelta", text }]
      }
      const decide = (final: boolean): Array<StreamChunk> => {
        const repeated = repeatedLength(prepared, buffer, final)
        if (repeated === undefined) return []
        deciding = false
        const rest = buffer.slice(repeated)
        buffer = ""
        return emit(rest)
      }
      return Stream.mapConcat(self, (chunk): Array<StreamChunk> => {
        if (chunk._tag !== "ContentDelta") return deciding ? [...decide(true), chunk] : [chunk]
        if (!deciding) return trimming ? emit(chunk.text) : [chunk]
        buffer += chunk.text
        return decide(false)
      })
    })
