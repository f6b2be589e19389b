/**
 * The provider interface every policy is written against, and its `Context` tag.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import * as internalRequest from "./internal/request.js"
import type {
  ChatMessage,
  CompletionRequest,
  CompletionRequestInput,
  CompletionResult,
  StreamChunk,
  Tool
} from "./Llm.js"
import type { HardFailure, InvalidRequest } from "./LlmError.js"

/**
 * One model at one provider. `complete` and `stream` validate the request before any network call; interrupting
 * either aborts the HTTP request.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** The provider's name, e.g. `openai`, `anthropic`, `ollama`. */
  readonly name: string
  /** The default model; a request's `model` overrides it for that call. */
  readonly model: string
  /** `name:model`, the key breakers and limiters are kept under. */
  readonly key: string
  readonly complete: (request: CompletionRequestInput) => Effect.Effect<CompletionResult, HardFailure | InvalidRequest>
  /**
   * Zero or more `ContentDelta` chunks, then exactly one `StreamEnd`. A stream cut off before its end fails with a
   * `HardFailure` carrying the text received so far in `partialContent`.
   */
  readonly stream: (request: CompletionRequestInput) => Stream.Stream<StreamChunk, HardFailure | InvalidRequest>
  /** Prompt tokens for these messages (and tool definitions), including per-message overhead. */
  readonly countTokens: (
    messages: ReadonlyArray<ChatMessage>,
    tools?: ReadonlyArray<Tool> | undefined
  ) => Effect.Effect<number>
  /** What requests the provider can take; a resilient chain skips it for others. Unset: everything. */
  readonly capabilities?: Capabilities | undefined
  /**
   * The deployment this service is, in a `Resilient` tier with several: its limiter key is then
   * `name:model@deployment`.
   */
  readonly deployment?: string | undefined
  /** Where the provider is served (the SDK client's base URL), for the spans' `server.address`. Unset: unknown. */
  readonly baseURL?: string | undefined
}

/**
 * What a provider (or a tier of a resilient chain) can take: tool definitions, images, JSON-schema outputs. A chain
 * skips a step whose capabilities a request needs but it lacks, without calling it.
 *
 * @since 0.2.0
 * @category Models
 */
export interface Capabilities {
  readonly tools: boolean
  readonly images: boolean
  readonly jsonSchema: boolean
}

/**
 * Everything: the built-in OpenAI and Anthropic providers, and any provider that says nothing.
 *
 * @since 0.2.0
 * @category Constants
 */
export const allCapabilities: Capabilities = { tools: true, images: true, jsonSchema: true }

/**
 * @since 0.1.0
 * @category Tags
 */
export class LlmProvider extends Context.Tag("effect-llm-resilience/LlmProvider")<LlmProvider, Service>() {}

/**
 * Validates a request, failing with `InvalidRequest` naming every offending field. Values are never copied into
 * the error: they may be prompt text.
 *
 * @since 0.1.0
 * @category Validation
 */
export const validateRequest: (input: unknown) => Effect.Effect<CompletionRequest, InvalidRequest> =
  internalRequest.validateRequest
