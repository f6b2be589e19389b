/**
 * The domain model ↔ OpenAI chat completions wire format: request bodies, answers and stream chunks. Pure functions,
 * no SDK call: `openAiChat.ts` sends what this builds and reads what this decodes.
 * @internal
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type OpenAI from "openai"
import type { ChatMessage, CompletionRequest, ContentPart, FinishReason, ToolCall, Usage } from "../../Llm.js"
import { makeUsage, messageText } from "../../Llm.js"
import type { PieceChunk } from "../streaming.js"
import { droppedNotes } from "./notes.js"

type MessageParam = OpenAI.Chat.Completions.ChatCompletionMessageParam
type ContentPartParam = OpenAI.Chat.Completions.ChatCompletionContentPart

const imageUrl = (part: Extract<ContentPart, { readonly type: "image" }>): string =>
  part.url ?? `data:${part.mediaType};base64,${part.data}`

const userContent = (content: ChatMessage["content"]): string | Array<ContentPartParam> =>
  typeof content === "string" || content === undefined
    ? content ?? ""
    : content.map((part): ContentPartParam =>
      part.type === "text"
        ? { type: "text", text: part.text }
        : { type: "image_url", image_url: { url: imageUrl(part) } }
    )

const message = (message: ChatMessage): MessageParam => {
  switch (message.role) {
    case "system":
      return { role: "system", content: messageText(message) }
    case "user":
      return { role: "user", content: userContent(message.content) }
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId ?? "", content: messageText(message) }
    case "assistant": {
      const calls = message.toolCalls ?? []
      return {
        role: "assistant",
        content: message.content === undefined ? null : messageText(message),
        ...(calls.length > 0
          ? {
            tool_calls: calls.map((call) => ({
              id: call.id,
              type: "function" as const,
              function: { name: call.name, arguments: call.arguments === "" ? "{}" : call.arguments }
            }))
          }
          : {})
      }
    }
  }
}

const responseFormat = (format: CompletionRequest["responseFormat"]) => {
  if (format === undefined || format === "text") return {}
  if (format === "json") return { response_format: { type: "json_object" as const } }
  return {
    response_format: {
      type: "json_schema" as const,
      json_schema: {
        name: format.name,
        schema: format.schema,
        ...(format.strict !== undefined ? { strict: format.strict } : {})
      }
    }
  }
}

const toolChoice = (choice: CompletionRequest["toolChoice"]) =>
  choice === undefined ? {} : {
    tool_choice: typeof choice === "string"
      ? choice
      : { type: "function" as const, function: { name: choice.name } }
  }

/**
 * The chat completions body of a request, and the notes on what it left out. `takesOpenAiOptions` is false for
 * OpenAI-compatible servers, which may refuse OpenAI-only fields.
 * @internal
 */
export const body = (
  request: CompletionRequest,
  model: string,
  takesOpenAiOptions: boolean
) => {
  const openai = takesOpenAiOptions ? request.providerOptions?.openai : undefined
  const tools = request.tools ?? []
  return {
    body: {
      model,
      messages: request.messages.map(message),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.topP !== undefined ? { top_p: request.topP } : {}),
      ...(request.seed !== undefined ? { seed: request.seed } : {}),
      ...(request.user !== undefined ? { user: request.user } : {}),
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
      ...(request.stopSequences !== undefined ? { stop: [...request.stopSequences] } : {}),
      ...responseFormat(request.responseFormat),
      ...(tools.length > 0
        ? {
          tools: tools.map((tool) => ({
            type: "function" as const,
            function: {
              name: tool.name,
              ...(tool.description !== undefined ? { description: tool.description } : {}),
              parameters: tool.parameters
            }
          }))
        }
        : {}),
      ...toolChoice(request.toolChoice),
      ...(request.parallelToolCalls !== undefined && tools.length > 0
        ? { parallel_tool_calls: request.parallelToolCalls }
        : {}),
      ...(openai?.reasoningEffort !== undefined ? { reasoning_effort: openai.reasoningEffort } : {}),
      ...(openai?.serviceTier !== undefined ? { service_tier: openai.serviceTier } : {})
    },
    notes: droppedNotes(request, takesOpenAiOptions ? "openai" : undefined, [])
  }
}

const UsageBody = Schema.Struct({
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number,
  prompt_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({
    cached_tokens: Schema.optional(Schema.NullOr(Schema.Number))
  }))),
  completion_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({
    reasoning_tokens: Schema.optional(Schema.NullOr(Schema.Number))
  })))
})

/** @internal */
export type UsageBody = typeof UsageBody.Type

const ToolCallBody = Schema.Struct({
  id: Schema.String,
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
})

const CompletionBody = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.NonEmptyArray(Schema.Struct({
    message: Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      refusal: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCallBody)))
    }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(UsageBody))
})

const ToolCallDeltaBody = Schema.Struct({
  index: Schema.Number,
  id: Schema.optional(Schema.NullOr(Schema.String)),
  function: Schema.optional(Schema.NullOr(Schema.Struct({
    name: Schema.optional(Schema.NullOr(Schema.String)),
    arguments: Schema.optional(Schema.NullOr(Schema.String))
  })))
})

const ChunkBody = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.optional(Schema.Array(Schema.Struct({
    delta: Schema.optional(Schema.NullOr(Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCallDeltaBody)))
    }))),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  }))),
  usage: Schema.optional(Schema.NullOr(UsageBody))
})

/** @internal */
export const decodeCompletion = Schema.decodeUnknownOption(CompletionBody)
/** @internal */
export const decodeChunk = Schema.decodeUnknownOption(ChunkBody)

/** @internal */
export type Chunk = typeof ChunkBody.Type

/** @internal */
export const finishReason = (raw: string | null | undefined): FinishReason | "content_filter" =>
  raw === "length"
    ? "length"
    : raw === "content_filter"
    ? "content_filter"
    : raw === "tool_calls" || raw === "function_call"
    ? "tool_calls"
    : "stop"

/** The usage OpenAI reported, with its cached and reasoning details when present. @internal */
export const usage = (raw: UsageBody): Usage => {
  const cached = raw.prompt_tokens_details?.cached_tokens
  const reasoning = raw.completion_tokens_details?.reasoning_tokens
  return {
    ...makeUsage(raw.prompt_tokens, raw.completion_tokens),
    ...(cached != null ? { cachedInputTokens: cached } : {}),
    ...(reasoning != null ? { reasoningTokens: reasoning } : {})
  }
}

/** @internal */
export const toolCalls = (
  raw: ReadonlyArray<typeof ToolCallBody.Type> | null | undefined
): Option.Option<ReadonlyArray<ToolCall>> =>
  raw == null || raw.length === 0
    ? Option.none()
    : Option.some(raw.map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments })))

/** The content and tool-call deltas of one stream chunk, in order. @internal */
export const chunkPieces = (chunk: Chunk): ReadonlyArray<PieceChunk> => {
  const pieces: Array<PieceChunk> = []
  for (const choice of chunk.choices ?? []) {
    const content = choice.delta?.content
    if (content != null && content !== "") pieces.push({ _tag: "ContentDelta", text: content })
    for (const call of choice.delta?.tool_calls ?? []) {
      pieces.push({
        _tag: "ToolCallDelta",
        index: call.index,
        ...(call.id != null ? { id: call.id } : {}),
        ...(call.function?.name != null ? { name: call.function.name } : {}),
        argumentsDelta: call.function?.arguments ?? ""
      })
    }
  }
  return pieces
}
