/**
 * The provider-neutral domain model: messages, requests, results, stream chunks and usage.
 *
 * Every provider speaks this model; every policy (retry, breaker, limiter, fallback) is written against it.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { checkDuration } from "./internal/duration.js"

/**
 * @since 0.1.0
 * @category Schemas
 */
export const Role = Schema.Literal("system", "user", "assistant").annotations({
  message: () => ({ message: "must be one of system, user, assistant", override: true })
})

/**
 * @since 0.1.0
 * @category Models
 */
export type Role = typeof Role.Type

const NonBlank = Schema.String.pipe(Schema.filter((s) => s.trim().length > 0, { message: () => "must not be empty" }))

/**
 * A chat message with text content.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChatMessage = Schema.Struct({
  role: Role,
  content: NonBlank
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ChatMessage = typeof ChatMessage.Type

/**
 * `text` (default) or `json`: ask the model for a single JSON value.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ResponseFormat = Schema.Literal("text", "json").annotations({
  message: () => ({ message: "must be text or json", override: true })
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * Accepts what `Duration.decode` accepts (`"30 seconds"`, milliseconds as a number, a `Duration`) and requires it
 * to be positive and finite.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const PositiveDuration = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String, Schema.DurationFromSelf),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) => {
      const checked = checkDuration(input)
      return "millis" in checked
        ? ParseResult.succeed(Duration.millis(checked.millis))
        : ParseResult.fail(new ParseResult.Type(ast, input, checked.problem))
    },
    encode: ParseResult.succeed
  }
)

/**
 * What a caller asks for. `model` overrides the provider's default model for this call.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const CompletionRequest = Schema.Struct({
  messages: Schema.Array(ChatMessage).pipe(
    Schema.filter((messages) => messages.length > 0, { message: () => "must contain at least one message" })
  ),
  model: Schema.optional(NonBlank),
  temperature: Schema.optional(
    Schema.Number.pipe(
      Schema.filter((t) => Number.isFinite(t) && t >= 0 && t <= 2, { message: () => "must be between 0 and 2" })
    )
  ),
  maxTokens: Schema.optional(
    Schema.Number.pipe(
      Schema.filter((n) => Number.isSafeInteger(n) && n > 0, { message: () => "must be a positive integer" })
    )
  ),
  // "\n" is a common stop sequence: only the empty string is refused.
  stopSequences: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.filter((s) => s.length > 0, { message: () => "must not be empty" })))
  ),
  responseFormat: Schema.optional(ResponseFormat),
  /** The whole response, body included. */
  timeout: Schema.optional(PositiveDuration),
  /** The wait for the response headers only (connection, TLS, queueing at the provider). */
  connectTimeout: Schema.optional(PositiveDuration),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

/**
 * A validated request.
 *
 * @since 0.1.0
 * @category Models
 */
export type CompletionRequest = typeof CompletionRequest.Type

/**
 * What callers write: like {@link CompletionRequest}, with `timeout` as milliseconds, a string such as
 * `"30 seconds"`, or a `Duration`.
 *
 * @since 0.1.0
 * @category Models
 */
export type CompletionRequestInput = typeof CompletionRequest.Encoded

/**
 * @since 0.1.0
 * @category Schemas
 */
export const FinishReason = Schema.Literal("stop", "length", "content_filter", "tool_calls")

/**
 * @since 0.1.0
 * @category Models
 */
export type FinishReason = typeof FinishReason.Type

const TokenCount = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

/**
 * @since 0.1.0
 * @category Schemas
 */
export const Usage = Schema.Struct({
  inputTokens: TokenCount,
  outputTokens: TokenCount,
  totalTokens: TokenCount
})

/**
 * @since 0.1.0
 * @category Models
 */
export type Usage = typeof Usage.Type

/**
 * The provider's own view of its rate limits, read from response headers (OpenAI `x-ratelimit-*`, Anthropic
 * `anthropic-ratelimit-*`). Resets are durations from the moment the response was read.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RateLimitInfo = Schema.Struct({
  limitRequests: Schema.optional(TokenCount),
  remainingRequests: Schema.optional(TokenCount),
  resetRequests: Schema.optional(Schema.DurationFromSelf),
  limitTokens: Schema.optional(TokenCount),
  remainingTokens: Schema.optional(TokenCount),
  resetTokens: Schema.optional(Schema.DurationFromSelf)
})

/**
 * @since 0.1.0
 * @category Models
 */
export type RateLimitInfo = typeof RateLimitInfo.Type

/**
 * @since 0.1.0
 * @category Schemas
 */
export const CompletionResult = Schema.Struct({
  content: Schema.String,
  usage: Usage,
  model: Schema.String,
  provider: Schema.String,
  finishReason: FinishReason,
  latencyMs: Schema.Number,
  requestId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitInfo)
})

/**
 * @since 0.1.0
 * @category Models
 */
export type CompletionResult = typeof CompletionResult.Type

/**
 * A piece of generated text.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ContentDelta = Schema.TaggedStruct("ContentDelta", { text: Schema.String })

/**
 * The last element of a successful stream: how it finished and what it cost. `ttftMs` is the time from sending the
 * request to the first content delta.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const StreamEnd = Schema.TaggedStruct("StreamEnd", {
  finishReason: FinishReason,
  usage: Usage,
  model: Schema.String,
  provider: Schema.String,
  latencyMs: Schema.Number,
  ttftMs: Schema.optional(Schema.Number),
  requestId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitInfo)
})

/**
 * @since 0.1.0
 * @category Schemas
 */
export const StreamChunk = Schema.Union(ContentDelta, StreamEnd)

/**
 * @since 0.1.0
 * @category Models
 */
export type StreamChunk = typeof StreamChunk.Type

/**
 * Sums two usages.
 *
 * @since 0.1.0
 * @category Utils
 */
export const addUsage = (a: Usage, b: Usage): Usage => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  totalTokens: a.totalTokens + b.totalTokens
})

/**
 * @since 0.1.0
 * @category Constructors
 */
export const makeUsage = (inputTokens: number, outputTokens: number): Usage => ({
  inputTokens,
  outputTokens,
  totalTokens: inputTokens + outputTokens
})
