/**
 * The domain model ↔ Anthropic Messages wire format: request bodies, answers and stream events. Pure functions, no
 * SDK call: `anthropic.ts` sends what this builds and reads what this decodes.
 * @internal
 */
import type AnthropicClient from "@anthropic-ai/sdk"
import * as Schema from "effect/Schema"
import type { ChatMessage, CompletionRequest, ContentPart, FinishReason, ToolCall, Usage } from "../../Llm.js"
import { makeUsage, messageText } from "../../Llm.js"
import type { PieceChunk } from "../streaming.js"
import { droppedNotes } from "./notes.js"

type MessageParam = AnthropicClient.MessageParam
type BlockParam = AnthropicClient.ContentBlockParam
type ImageSource = AnthropicClient.ImageBlockParam["source"]

// The Messages API has no JSON mode: the instruction goes into the system prompt.
const JSON_INSTRUCTION = "Respond with a single valid JSON value and nothing else."

// Anthropic accepts tool ids of letters, digits, `_` and `-`; OpenAI's (`call_…`) already are. Another server's id is
// rewritten the same way in the call and in its result, so the pair still matches.
const toolId = (id: string): string => id.replace(/[^a-zA-Z0-9_-]/g, "_")

const DATA_URL = /^data:(image\/(?:png|jpeg|gif|webp));base64,(.*)$/s

const imageSource = (part: Extract<ContentPart, { readonly type: "image" }>): ImageSource => {
  if (part.data !== undefined && part.mediaType !== undefined) {
    return { type: "base64", media_type: part.mediaType, data: part.data }
  }
  const url = part.url ?? ""
  const inline = DATA_URL.exec(url)
  if (inline === null) return { type: "url", url }
  const mediaType = inline[1] === "image/png" || inline[1] === "image/gif" || inline[1] === "image/webp"
    ? inline[1]
    : "image/jpeg"
  return { type: "base64", media_type: mediaType, data: inline[2] ?? "" }
}

const blocks = (content: ChatMessage["content"]): Array<BlockParam> =>
  content === undefined
    ? []
    : typeof content === "string"
    ? [{ type: "text", text: content }]
    : content.map((part): BlockParam =>
      part.type === "text" ? { type: "text", text: part.text } : { type: "image", source: imageSource(part) }
    )

const toolInput = (text: string): Record<string, unknown> => {
  // Validated as a JSON object (or empty) when the request was decoded.
  const value: unknown = text.trim() === "" ? {} : JSON.parse(text)
  return typeof value === "object" && value !== null && !Array.isArray(value) ? { ...value } : {}
}

/**
 * The conversation as Anthropic turns. Tool results become `tool_result` blocks of a user turn; consecutive user-side
 * messages (tool results, then the user's next text) share one turn, as the API requires results to follow the call.
 */
const messages = (history: ReadonlyArray<ChatMessage>): Array<MessageParam> => {
  const turns: Array<{ role: "user" | "assistant"; content: Array<BlockParam> }> = []
  const userTurn = (): Array<BlockParam> => {
    const last = turns.at(-1)
    if (last !== undefined && last.role === "user") return last.content
    const content: Array<BlockParam> = []
    turns.push({ role: "user", content })
    return content
  }
  for (const message of history) {
    switch (message.role) {
      case "system":
        break
      case "user":
        userTurn().push(...blocks(message.content))
        break
      case "tool":
        userTurn().push({
          type: "tool_result",
          tool_use_id: toolId(message.toolCallId ?? ""),
          content: messageText(message)
        })
        break
      case "assistant":
        turns.push({
          role: "assistant",
          content: [
            ...blocks(message.content),
            ...(message.toolCalls ?? []).map((call): BlockParam => ({
              type: "tool_use",
              id: toolId(call.id),
              name: call.name,
              input: toolInput(call.arguments)
            }))
          ]
        })
    }
  }
  // A turn of one text block is sent as a plain string, as before tools existed.
  return turns.map(({ content, role }) => {
    const only = content.length === 1 ? content[0] : undefined
    return { role, content: only !== undefined && only.type === "text" ? only.text : content }
  })
}

const toolChoice = (request: CompletionRequest): { readonly tool_choice?: AnthropicClient.ToolChoice } => {
  const choice = request.toolChoice
  const single = request.parallelToolCalls === false ? { disable_parallel_tool_use: true } : {}
  if (choice === "none") return { tool_choice: { type: "none" } }
  if (choice === "required") return { tool_choice: { type: "any", ...single } }
  if (typeof choice === "object") return { tool_choice: { type: "tool", name: choice.name, ...single } }
  return choice === "auto" || request.parallelToolCalls === false ? { tool_choice: { type: "auto", ...single } } : {}
}

/**
 * The Messages body of a request, and the notes on what it left out.
 * @internal
 */
export const body = (request: CompletionRequest, model: string, defaultMaxTokens: number) => {
  const system = request.messages.filter((message) => message.role === "system").map(messageText)
  if (request.responseFormat === "json") system.push(JSON_INSTRUCTION)
  const format = request.responseFormat
  const options = request.providerOptions?.anthropic
  const tools = request.tools ?? []
  return {
    body: {
      model,
      max_tokens: request.maxTokens ?? defaultMaxTokens,
      messages: messages(request.messages),
      ...(system.length > 0 ? { system: system.join("\n\n") } : {}),
      // Anthropic's temperature range is 0..1; the domain model allows OpenAI's 0..2.
      ...(request.temperature !== undefined ? { temperature: Math.min(request.temperature, 1) } : {}),
      ...(request.topP !== undefined ? { top_p: request.topP } : {}),
      ...(request.stopSequences !== undefined ? { stop_sequences: [...request.stopSequences] } : {}),
      ...(request.user !== undefined ? { metadata: { user_id: request.user } } : {}),
      ...(tools.length > 0
        ? {
          tools: tools.map((tool) => ({
            name: tool.name,
            ...(tool.description !== undefined ? { description: tool.description } : {}),
            input_schema: { ...tool.parameters, type: "object" as const }
          }))
        }
        : {}),
      ...(tools.length > 0 ? toolChoice(request) : {}),
      // Structured outputs are native in the Messages API (`output_config.format`).
      ...(typeof format === "object"
        ? { output_config: { format: { type: "json_schema" as const, schema: format.schema } } }
        : {}),
      ...(options?.thinking !== undefined
        ? { thinking: { type: "enabled" as const, budget_tokens: options.thinking.budgetTokens } }
        : {}),
      ...(options?.topK !== undefined ? { top_k: options.topK } : {})
    },
    notes: droppedNotes(request, "anthropic", ["seed"])
  }
}

const UsageBody = Schema.Struct({
  input_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  output_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  cache_read_input_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  output_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({
    thinking_tokens: Schema.optional(Schema.NullOr(Schema.Number))
  })))
})

/** @internal */
export type UsageBody = typeof UsageBody.Type

const MessageBody = Schema.Struct({
  model: Schema.optional(Schema.String),
  content: Schema.Array(Schema.Struct({
    type: Schema.String,
    text: Schema.optional(Schema.String),
    id: Schema.optional(Schema.String),
    name: Schema.optional(Schema.String),
    input: Schema.optional(Schema.Unknown)
  })),
  stop_reason: Schema.optional(Schema.NullOr(Schema.String)),
  usage: UsageBody
})

const EventBody = Schema.Struct({
  type: Schema.String,
  index: Schema.optional(Schema.Number),
  message: Schema.optional(Schema.Struct({ model: Schema.optional(Schema.String), usage: Schema.optional(UsageBody) })),
  content_block: Schema.optional(Schema.Struct({
    type: Schema.String,
    id: Schema.optional(Schema.String),
    name: Schema.optional(Schema.String)
  })),
  delta: Schema.optional(Schema.Struct({
    type: Schema.optional(Schema.String),
    text: Schema.optional(Schema.String),
    partial_json: Schema.optional(Schema.String),
    stop_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(UsageBody)
})

/** @internal */
export const decodeMessage = Schema.decodeUnknownOption(MessageBody)
/** @internal */
export const decodeEvent = Schema.decodeUnknownOption(EventBody)

/** @internal */
export type Event = typeof EventBody.Type

/** @internal */
export const finishReason = (raw: string | null | undefined): FinishReason | "content_filter" => {
  switch (raw) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "stop"
  }
}

/** @internal */
export const usage = (input: number, output: number, raw: UsageBody | undefined): Usage => {
  const cached = raw?.cache_read_input_tokens
  const reasoning = raw?.output_tokens_details?.thinking_tokens
  return {
    ...makeUsage(input, output),
    ...(cached != null ? { cachedInputTokens: cached } : {}),
    ...(reasoning != null ? { reasoningTokens: reasoning } : {})
  }
}

/** The text and the tool calls of an answer. @internal */
export const answer = (
  content: typeof MessageBody.Type["content"]
): { readonly text: string; readonly toolCalls: ReadonlyArray<ToolCall> } => ({
  text: content.map((block) => block.type === "text" ? block.text ?? "" : "").join(""),
  toolCalls: content.flatMap((block) =>
    block.type === "tool_use" && block.id !== undefined && block.name !== undefined
      ? [{ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) }]
      : []
  )
})

/**
 * Reads content-block events of one stream into deltas: text, and tool calls numbered in their order of appearance
 * (Anthropic numbers every block, text included).
 * @internal
 */
export const blockReader = () => {
  const toolIndex = new Map<number, number>()
  return (event: Event): ReadonlyArray<PieceChunk> => {
    const block = event.index ?? 0
    if (event.type === "content_block_start" && event.content_block?.type === "tool_use") {
      const index = toolIndex.size
      toolIndex.set(block, index)
      return [{
        _tag: "ToolCallDelta",
        index,
        ...(event.content_block.id !== undefined ? { id: event.content_block.id } : {}),
        ...(event.content_block.name !== undefined ? { name: event.content_block.name } : {}),
        argumentsDelta: ""
      }]
    }
    if (event.type !== "content_block_delta") return []
    if (event.delta?.type === "text_delta" && event.delta.text !== undefined && event.delta.text !== "") {
      return [{ _tag: "ContentDelta", text: event.delta.text }]
    }
    const index = toolIndex.get(block)
    if (event.delta?.type === "input_json_delta" && index !== undefined) {
      return [{ _tag: "ToolCallDelta", index, argumentsDelta: event.delta.partial_json ?? "" }]
    }
    return []
  }
}
