/**
 * Whether a step of the ladder can take a request: a step lacking a capability the request needs (tools, images,
 * a JSON-schema output) is skipped without a call and without a breaker count.
 * @internal
 */
import type { CompletionRequest } from "../../Llm.js"
import { type Capability, UnsupportedRequest } from "../../LlmError.js"
import { allCapabilities, type Capabilities } from "../../LlmProvider.js"

/** The capabilities a request needs, in a fixed order. @internal */
export const needed = (request: CompletionRequest): ReadonlyArray<Capability> => {
  // A plain text request (most of them) allocates nothing here.
  let needs: Array<Capability> | undefined
  if ((request.tools !== undefined && request.tools.length > 0) || request.messages.some(hasToolCalls)) {
    needs = ["tools"]
  }
  if (request.messages.some(hasImage)) (needs ??= []).push("images")
  if (typeof request.responseFormat === "object") (needs ??= []).push("jsonSchema")
  return needs ?? none
}

const none: ReadonlyArray<Capability> = []
const hasToolCalls = (message: CompletionRequest["messages"][number]): boolean => message.toolCalls !== undefined
const hasImage = (message: CompletionRequest["messages"][number]): boolean =>
  Array.isArray(message.content) && message.content.some(isImage)
const isImage = (part: { readonly type: string }): boolean => part.type === "image"

/**
 * The refusal for a step whose capabilities (the tier's, over the provider's, over everything) lack one the request
 * needs; `undefined` when it can take the request.
 * @internal
 */
export const refusal = (
  request: CompletionRequest,
  label: string,
  provider: Capabilities | undefined,
  tier: Partial<Capabilities> | undefined
): UnsupportedRequest | undefined => {
  const needs = needed(request)
  if (needs.length === 0) return undefined
  const can = { ...allCapabilities, ...provider, ...tier }
  const missing = needs.filter((capability) => !can[capability])
  return missing.length === 0 ? undefined : new UnsupportedRequest({ key: label, missing })
}
