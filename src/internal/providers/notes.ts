import type { CompletionRequest } from "../../Llm.js"

/** A provider's key in `providerOptions`. @internal */
export type OptionsKey = "openai" | "anthropic"

const keys: ReadonlyArray<OptionsKey> = ["openai", "anthropic"]

/**
 * What a provider leaves out of a request, said in the result's `notes` so that a caller who failed over sees that
 * its options did not apply. `takes` is the `providerOptions` key the provider applies (none for OpenAI-compatible
 * servers); `unsupported` names request fields it has no equivalent for.
 * @internal
 */
export const droppedNotes = (
  request: CompletionRequest,
  takes: OptionsKey | undefined,
  unsupported: ReadonlyArray<"seed">
): ReadonlyArray<string> => {
  const notes: Array<string> = []
  for (const key of keys) {
    if (key !== takes && request.providerOptions?.[key] !== undefined) {
      notes.push(`providerOptions.${key} not applied: this provider does not take it`)
    }
  }
  for (const field of unsupported) {
    if (request[field] !== undefined) notes.push(`${field} not applied: this provider does not support it`)
  }
  return notes
}
