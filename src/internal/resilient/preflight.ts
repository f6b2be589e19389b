/**
 * The checks a ladder step makes before it sends anything: what the step's model cannot take is settled locally.
 *
 * - A prompt larger than the tier's `contextWindow` (by that tier's token count) is not uploaded: the step fails with
 *   `HardFailure ContextLengthExceeded` (`providerCode: "context_window_preflight"`) — no call, no breaker count, no
 *   retry — and relaxation, when on, trims it and tries again. Counting costs a tokenizer pass, so it runs only when
 *   the prompt has more characters than the window has tokens (a token is at least one character).
 * - `maxTokens` above what the model can produce (the tier's `maxOutputTokens`, or the default for a model name the
 *   docs use) is clamped to it: the provider would refuse the request, and the caller asked for "as much as possible".
 * @internal
 */
import * as Effect from "effect/Effect"
import type { ChatMessage, CompletionRequest, Tool } from "../../Llm.js"
import { type HardFailure, hardFailure } from "../../LlmError.js"
import type { Step } from "./plan.js"

/**
 * Output limits of the model names the docs use, from the providers' model pages. A tier's `maxOutputTokens` wins;
 * a model not listed has no limit here (the provider decides).
 * @internal
 */
export const defaultMaxOutputTokens: Readonly<Record<string, number>> = {
  "gpt-4.1": 32_768,
  "gpt-4.1-mini": 32_768,
  "gpt-4.1-nano": 32_768,
  "gpt-4o": 16_384,
  "gpt-4o-mini": 16_384,
  "claude-sonnet-4-6": 64_000,
  "claude-sonnet-4-5": 64_000,
  "claude-haiku-4-5": 64_000,
  "claude-opus-4-1": 32_000
}

/** @internal */
export interface StepLimits {
  readonly provider: string
  readonly model: string
  readonly contextWindow: number
  readonly maxOutputTokens: number | undefined
  readonly countTokens: (
    messages: ReadonlyArray<ChatMessage>,
    tools?: ReadonlyArray<Tool> | undefined
  ) => Effect.Effect<number>
}

/** A step's limits. @internal */
export const limitsOf = ({ model, tier }: Pick<Step, "model" | "tier">): StepLimits => ({
  provider: tier.provider.name,
  model,
  contextWindow: tier.contextWindow,
  maxOutputTokens: tier.config.maxOutputTokens,
  countTokens: tier.provider.countTokens
})

// No image costs more than this many tokens in either provider's accounting (see tokens.ts).
const IMAGE_TOKEN_BOUND = 1_600

/** An upper bound of the prompt's tokens without a tokenizer: a token is at least one character. */
const characters = (request: CompletionRequest): number => {
  let total = 0
  for (const message of request.messages) {
    if (typeof message.content === "string") total += message.content.length
    else {
      for (const part of message.content ?? []) {
        total += part.type === "text" ? part.text.length : IMAGE_TOKEN_BOUND
      }
    }
    for (const call of message.toolCalls ?? []) total += call.name.length + call.arguments.length + 16
  }
  for (const tool of request.tools ?? []) total += JSON.stringify(tool).length + 16
  return total
}

/**
 * The request as the step sends it when its prompt fits without counting tokens (`maxTokens` clamped); `undefined`
 * when only a tokenizer can tell.
 * @internal
 */
export const fitsUncounted = (request: CompletionRequest, limits: StepLimits): CompletionRequest | undefined =>
  characters(request) <= limits.contextWindow ? clamp(request, limits) : undefined

const clamp = (request: CompletionRequest, limits: StepLimits): CompletionRequest => {
  const maxOutput = limits.maxOutputTokens ?? defaultMaxOutputTokens[limits.model]
  return maxOutput !== undefined && request.maxTokens !== undefined && request.maxTokens > maxOutput
    ? { ...request, maxTokens: maxOutput }
    : request
}

/** The request as the step sends it, or the local refusal. @internal */
export const preflight = (
  request: CompletionRequest,
  limits: StepLimits
): Effect.Effect<CompletionRequest, HardFailure> => {
  const fits = fitsUncounted(request, limits)
  if (fits !== undefined) return Effect.succeed(fits)
  return Effect.flatMap(limits.countTokens(request.messages, request.tools), (tokens) =>
    tokens <= limits.contextWindow
      ? Effect.succeed(clamp(request, limits))
      : Effect.fail(hardFailure({
        reason: "ContextLengthExceeded",
        provider: limits.provider,
        model: limits.model,
        providerCode: "context_window_preflight",
        retryable: false
      })))
}
