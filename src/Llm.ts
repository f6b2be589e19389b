/**
 * The provider-neutral domain model: messages, requests, results, stream chunks and usage.
 *
 * Every provider speaks this model; every policy (retry, breaker, limiter, fallback) is written against it.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as JSONSchema from "effect/JSONSchema"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { checkDuration } from "./internal/duration.js"

/**
 * @since 0.1.0
 * @category Schemas
 */
export const Role = Schema.Literal("system", "user", "assistant", "tool").annotations({
  message: () => ({ message: "must be one of system, user, assistant, tool", override: true })
})

/**
 * @since 0.1.0
 * @category Models
 */
export type Role = typeof Role.Type

const NonBlank = Schema.String.pipe(Schema.filter((s) => s.trim().length > 0, { message: () => "must not be empty" }))

/**
 * The largest image accepted inline (base64 `data`, or a `data:` URL), in decoded bytes: 5 MB, Anthropic's per-image
 * limit and the smaller of the two providers' limits, so an image that one provider takes can fail over to the other.
 *
 * @since 0.2.0
 * @category Constants
 */
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024

/**
 * The image types both providers take.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ImageMediaType = Schema.Literal("image/png", "image/jpeg", "image/gif", "image/webp").annotations({
  message: () => ({ message: "must be one of image/png, image/jpeg, image/gif, image/webp", override: true })
})

const base64Bytes = (data: string): number => {
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0
  return Math.floor((data.length * 3) / 4) - padding
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const DATA_URL = /^data:(image\/(?:png|jpeg|gif|webp));base64,(.*)$/s

const base64Issue = (data: string): string | undefined =>
  !BASE64.test(data) || data.length % 4 !== 0
    ? "must be base64"
    : base64Bytes(data) > MAX_IMAGE_BYTES
    ? `must be at most ${MAX_IMAGE_BYTES} bytes (MAX_IMAGE_BYTES)`
    : undefined

const urlIssue = (url: string): string | undefined => {
  const data = DATA_URL.exec(url)
  if (data !== null) return base64Issue(data[2]!)
  if (url.startsWith("data:")) return "must be a base64 data URL of a png, jpeg, gif or webp image"
  try {
    const protocol = new URL(url).protocol
    return protocol === "http:" || protocol === "https:" ? undefined : "must be an http(s) URL or a data URL"
  } catch {
    return "must be an http(s) URL or a data URL"
  }
}

/**
 * Text in a multi-part message.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: NonBlank })

/**
 * @since 0.2.0
 * @category Models
 */
export type TextPart = typeof TextPart.Type

/**
 * An image, by `url` (http(s), or a `data:` URL) or inline as base64 `data` with its `mediaType`. Inline images are
 * limited to {@link MAX_IMAGE_BYTES}.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ImagePart = Schema.Struct({
  type: Schema.Literal("image"),
  url: Schema.optional(Schema.String.pipe(Schema.filter((url) => urlIssue(url) ?? true))),
  data: Schema.optional(Schema.String.pipe(Schema.filter((data) => base64Issue(data) ?? true))),
  mediaType: Schema.optional(ImageMediaType)
}).pipe(Schema.filter((part) => {
  if (part.url !== undefined && part.data !== undefined) {
    return { path: ["data"], message: "must not be given together with url" }
  }
  if (part.url === undefined && part.data === undefined) return { path: ["url"], message: "is missing (or data)" }
  if (part.data !== undefined && part.mediaType === undefined) return { path: ["mediaType"], message: "is missing" }
  return true
}))

/**
 * @since 0.2.0
 * @category Models
 */
export type ImagePart = typeof ImagePart.Type

/**
 * @since 0.2.0
 * @category Schemas
 */
export const ContentPart = Schema.Union(TextPart, ImagePart)

/**
 * @since 0.2.0
 * @category Models
 */
export type ContentPart = typeof ContentPart.Type

/**
 * A message's content: a string, or parts (text and images).
 *
 * @since 0.2.0
 * @category Schemas
 */
export const MessageContent = Schema.Union(
  NonBlank,
  Schema.Array(ContentPart).pipe(Schema.filter((parts) => parts.length > 0 || "must not be empty"))
)

/**
 * @since 0.2.0
 * @category Models
 */
export type MessageContent = typeof MessageContent.Type

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/
const ToolName = Schema.String.pipe(
  Schema.filter((name) => TOOL_NAME.test(name) || "must be 1 to 64 letters, digits, _ or -")
)

const isJsonObject = (text: string): boolean => {
  if (text.trim() === "") return true
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
  } catch {
    return false
  }
}

/**
 * A tool call the model made. `arguments` is the JSON object text the model wrote (not checked against the tool's
 * schema: see `Quality.toolArguments`). Ids are kept as the provider gave them, so a conversation can fail over.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ToolCall = Schema.Struct({
  id: NonBlank,
  name: ToolName,
  arguments: Schema.String.pipe(Schema.filter((text) => isJsonObject(text) || "must be a JSON object (as text)"))
})

/**
 * @since 0.2.0
 * @category Models
 */
export type ToolCall = typeof ToolCall.Type

/**
 * A chat message.
 *
 * - `system` / `user`: `content` (a string; a user message may also hold parts, with images).
 * - `assistant`: `content`, `toolCalls`, or both.
 * - `tool`: the result of the call `toolCallId` names, as `content` (text).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChatMessage = Schema.Struct({
  role: Role,
  content: Schema.optional(MessageContent),
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  toolCallId: Schema.optional(NonBlank)
}).pipe(Schema.filter((message) => {
  const issues: Array<Schema.FilterIssue> = []
  const calls = message.toolCalls !== undefined && message.toolCalls.length > 0
  if (message.content === undefined && !(message.role === "assistant" && calls)) {
    issues.push({ path: ["content"], message: "is missing" })
  }
  if (message.toolCalls !== undefined && message.role !== "assistant") {
    issues.push({ path: ["toolCalls"], message: "is only for assistant messages" })
  }
  if (message.role === "tool" && message.toolCallId === undefined) {
    issues.push({ path: ["toolCallId"], message: "is missing" })
  }
  if (message.role !== "tool" && message.toolCallId !== undefined) {
    issues.push({ path: ["toolCallId"], message: "is only for tool messages" })
  }
  if (Array.isArray(message.content) && message.role !== "user") {
    for (const [index, part] of message.content.entries()) {
      if (part.type === "image") {
        issues.push({ path: ["content", index], message: "images are only accepted in user messages" })
      }
    }
  }
  return issues
}))

/**
 * @since 0.1.0
 * @category Models
 */
export type ChatMessage = typeof ChatMessage.Type

/**
 * The text of a message: its string content, or its text parts joined by a newline.
 *
 * @since 0.2.0
 * @category Utils
 */
export const messageText = (message: { readonly content?: MessageContent | undefined }): string =>
  message.content === undefined
    ? ""
    : typeof message.content === "string"
    ? message.content
    : message.content.flatMap((part) => part.type === "text" ? [part.text] : []).join("\n")

/**
 * A JSON Schema describing an object (`type: "object"`): tool parameters, structured outputs.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const JsonSchemaObject = Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
  Schema.filter((schema) => schema["type"] === "object" || "must be a JSON Schema object (type: \"object\")")
)

/**
 * @since 0.2.0
 * @category Models
 */
export type JsonSchemaObject = typeof JsonSchemaObject.Type

/**
 * The JSON Schema of an Effect Schema (`JSONSchema.make`), without its `$schema` line.
 *
 * @since 0.2.0
 * @category Constructors
 */
export const jsonSchemaOf = <A, I, R>(schema: Schema.Schema<A, I, R>): { readonly [key: string]: unknown } => {
  const { $schema: _, ...rest } = JSONSchema.make(schema)
  return rest
}

/**
 * A function the model may call. `parameters` is a JSON Schema object; {@link tool} builds one from an Effect Schema.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const Tool = Schema.Struct({
  name: ToolName,
  description: Schema.optional(NonBlank),
  parameters: JsonSchemaObject
})

/**
 * @since 0.2.0
 * @category Models
 */
export type Tool = typeof Tool.Type

/**
 * A tool whose parameters are an Effect Schema's JSON Schema. Decode the calls with `Quality.toolArguments`.
 *
 * @example
 * ```ts
 * const weather = Llm.tool("get_weather", {
 *   description: "Current weather of a city",
 *   parameters: Schema.Struct({ city: Schema.String })
 * })
 * ```
 *
 * @since 0.2.0
 * @category Constructors
 */
export const tool = <A, I, R>(
  name: string,
  options: { readonly parameters: Schema.Schema<A, I, R>; readonly description?: string | undefined }
): Tool => ({
  name,
  ...(options.description !== undefined ? { description: options.description } : {}),
  parameters: jsonSchemaOf(options.parameters)
})

/**
 * `auto` (default), `none`, `required` (some tool), or one tool by name.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ToolChoice = Schema.Union(
  Schema.Literal("auto", "none", "required").annotations({
    message: () => ({ message: "must be auto, none, required or { name }", override: true })
  }),
  Schema.Struct({ name: ToolName })
)

/**
 * @since 0.2.0
 * @category Models
 */
export type ToolChoice = typeof ToolChoice.Type

/**
 * Ask for JSON that matches `schema` (OpenAI `response_format: json_schema`, Anthropic `output_config.format`).
 * {@link jsonSchemaFormat} builds one from an Effect Schema; decode the answer with `Quality.decode`.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const JsonSchemaFormat = Schema.Struct({
  type: Schema.Literal("json_schema"),
  name: ToolName,
  schema: JsonSchemaObject,
  strict: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.2.0
 * @category Models
 */
export type JsonSchemaFormat = typeof JsonSchemaFormat.Type

/**
 * `text` (default), `json` (a single JSON value), or a {@link JsonSchemaFormat}.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ResponseFormat = Schema.Union(
  Schema.Literal("text", "json").annotations({
    message: () => ({ message: "must be text, json or a json_schema format", override: true })
  }),
  JsonSchemaFormat
)

/**
 * @since 0.1.0
 * @category Models
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * A structured-output format from an Effect Schema. `strict` (default true) asks OpenAI to enforce the schema.
 *
 * @since 0.2.0
 * @category Constructors
 */
export const jsonSchemaFormat = <A, I, R>(
  name: string,
  schema: Schema.Schema<A, I, R>,
  options: { readonly strict?: boolean | undefined } = {}
): JsonSchemaFormat => ({ type: "json_schema", name, schema: jsonSchemaOf(schema), strict: options.strict ?? true })

/**
 * Options only one provider understands. The provider they are for applies them; any other provider leaves them out
 * and says so in the result's `notes`.
 *
 * - `openai.reasoningEffort`: `reasoning_effort` of reasoning models; `openai.serviceTier`: `service_tier`.
 * - `anthropic.thinking.budgetTokens`: extended thinking (`thinking: { type: "enabled", budget_tokens }`, at least
 *   1024 and below `maxTokens`); `anthropic.topK`: `top_k`.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ProviderOptions = Schema.Struct({
  openai: Schema.optional(Schema.Struct({
    reasoningEffort: Schema.optional(Schema.Literal("minimal", "low", "medium", "high")),
    serviceTier: Schema.optional(Schema.Literal("auto", "default", "flex", "priority"))
  })),
  anthropic: Schema.optional(Schema.Struct({
    thinking: Schema.optional(Schema.Struct({
      budgetTokens: Schema.Number.pipe(
        Schema.filter((n) => (Number.isSafeInteger(n) && n >= 1024) || "must be an integer of at least 1024")
      )
    })),
    topK: Schema.optional(Schema.Number.pipe(
      Schema.filter((n) => (Number.isSafeInteger(n) && n > 0) || "must be a positive integer")
    ))
  }))
})

/**
 * @since 0.2.0
 * @category Models
 */
export type ProviderOptions = typeof ProviderOptions.Type

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

// Rules across fields, checked once the fields themselves are valid; each names the path the caller must fix.
function requestIssues(request: {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly tools?: ReadonlyArray<Tool> | undefined
  readonly toolChoice?: ToolChoice | undefined
}): ReadonlyArray<Schema.FilterIssue> {
  const issues: Array<Schema.FilterIssue> = []
  const names = new Map<string, number>()
  for (const [index, tool] of (request.tools ?? []).entries()) {
    const first = names.get(tool.name)
    if (first !== undefined) {
      issues.push({ path: ["tools", index, "name"], message: `duplicates tools[${first}].name` })
    } else names.set(tool.name, index)
  }
  const choice = request.toolChoice
  if (typeof choice === "object" && !names.has(choice.name)) {
    issues.push({ path: ["toolChoice", "name"], message: "names no tool in tools" })
  } else if (choice === "required" && names.size === 0) {
    issues.push({ path: ["toolChoice"], message: "is required, but there are no tools" })
  }
  const calls = new Set<string>()
  for (const [index, message] of request.messages.entries()) {
    for (const call of message.toolCalls ?? []) calls.add(call.id)
    if (message.role === "tool" && message.toolCallId !== undefined && !calls.has(message.toolCallId)) {
      issues.push({ path: ["messages", index, "toolCallId"], message: "matches no tool call of an earlier message" })
    }
  }
  return issues
}

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
  tools: Schema.optional(Schema.Array(Tool)),
  toolChoice: Schema.optional(ToolChoice),
  /** Let the model call several tools in one turn (both providers' default). */
  parallelToolCalls: Schema.optional(Schema.Boolean),
  topP: Schema.optional(
    Schema.Number.pipe(Schema.filter((p) => (p > 0 && p <= 1) || "must be above 0 and at most 1"))
  ),
  /** Best-effort determinism where the provider supports it (OpenAI); others leave it out, with a note. */
  seed: Schema.optional(Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) || "must be an integer"))),
  /** An end-user id for the provider's abuse monitoring (OpenAI `user`, Anthropic `metadata.user_id`). */
  user: Schema.optional(NonBlank),
  providerOptions: Schema.optional(ProviderOptions),
  /** The whole response, body included. */
  timeout: Schema.optional(PositiveDuration),
  /** The wait for the response headers only (connection, TLS, queueing at the provider). */
  connectTimeout: Schema.optional(PositiveDuration),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
}).pipe(Schema.filter(requestIssues))

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
  totalTokens: TokenCount,
  /** Input tokens read from the provider's prompt cache, where it reports them. */
  cachedInputTokens: Schema.optional(TokenCount),
  /** Output tokens spent on reasoning (OpenAI reasoning, Anthropic thinking), where the provider reports them. */
  reasoningTokens: Schema.optional(TokenCount)
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
  rateLimit: Schema.optional(RateLimitInfo),
  /** The tools the model called (`finishReason: "tool_calls"`), ids as the provider gave them. */
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  /** What the provider left out of the request because it does not take it (`seed`, another provider's options). */
  notes: Schema.optional(Schema.Array(Schema.String))
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
  rateLimit: Schema.optional(RateLimitInfo),
  /** The complete tool calls, assembled from the stream's {@link ToolCallDelta}s. */
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  /** As `CompletionResult.notes`. */
  notes: Schema.optional(Schema.Array(Schema.String))
})

/**
 * A piece of a tool call, for consumers that render progressively: `index` is the call's position in this answer;
 * `id` and `name` come with its first delta, `argumentsDelta` is the next piece of its JSON arguments. The
 * `StreamEnd` carries every call assembled.
 *
 * @since 0.2.0
 * @category Schemas
 */
export const ToolCallDelta = Schema.TaggedStruct("ToolCallDelta", {
  index: Schema.Number,
  id: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  argumentsDelta: Schema.String
})

/**
 * @since 0.1.0
 * @category Schemas
 */
export const StreamChunk = Schema.Union(ContentDelta, ToolCallDelta, StreamEnd)

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
export const addUsage = (a: Usage, b: Usage): Usage => {
  const cached = sumOptional(a.cachedInputTokens, b.cachedInputTokens)
  const reasoning = sumOptional(a.reasoningTokens, b.reasoningTokens)
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    ...(cached !== undefined ? { cachedInputTokens: cached } : {}),
    ...(reasoning !== undefined ? { reasoningTokens: reasoning } : {})
  }
}

const sumOptional = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined && b === undefined ? undefined : (a ?? 0) + (b ?? 0)

/**
 * @since 0.1.0
 * @category Constructors
 */
export const makeUsage = (inputTokens: number, outputTokens: number): Usage => ({
  inputTokens,
  outputTokens,
  totalTokens: inputTokens + outputTokens
})
