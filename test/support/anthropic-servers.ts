/**
 * Loopback servers and wire-format builders for the Anthropic provider tests.
 *
 * - `aimock` (LLMock) speaks the Messages API at `${aimockUrl}/v1/messages`.
 * - `mockttp` serves hand-written Anthropic responses for what aimock cannot produce (Anthropic error envelopes,
 *   HTTP 529, `request-id`, `anthropic-ratelimit-*`, mid-stream `event: error`, resets, a server that never answers).
 *   Each test takes its own path prefix, so the SDK's `${baseURL}/v1/messages` lands on that test's rule only.
 */
import { LLMock } from "@copilotkit/aimock"
import { getLocal, type Mockttp } from "mockttp"

export interface AnthropicServers {
  readonly aimock: LLMock
  /** aimock's base URL for `@anthropic-ai/sdk` (the SDK appends `/v1/messages`). */
  readonly aimockUrl: string
  readonly http: Mockttp
  /** `http://127.0.0.1:<port>` of the mockttp server. */
  readonly httpUrl: string
  /** Paths of every request mockttp has started to receive, in arrival order. */
  readonly initiated: Array<string>
  /** Paths of every request mockttp saw aborted by the client before it completed. */
  readonly aborted: Array<string>
  readonly stop: () => Promise<void>
}

export const startAnthropicServers = async (): Promise<AnthropicServers> => {
  const aimock = new LLMock({ port: 0, host: "127.0.0.1", logLevel: "silent" })
  await aimock.start()
  const http = getLocal()
  await http.start()
  const initiated: Array<string> = []
  const aborted: Array<string> = []
  await http.on("request-initiated", (request) => {
    initiated.push(request.path)
  })
  await http.on("abort", (request) => {
    aborted.push(request.path)
  })
  return {
    aimock,
    aimockUrl: aimock.url,
    http,
    httpUrl: `http://127.0.0.1:${http.port}`,
    initiated,
    aborted,
    stop: async () => {
      await Promise.all([aimock.stop(), http.stop()])
    }
  }
}

let counter = 0

/** A path prefix no other test uses, e.g. `/t7`. */
export const uniquePrefix = (): string => `/t${++counter}`

/** A token no other test uses, for matching aimock fixtures and journal entries. */
export const uniqueToken = (label: string): string => `${label}-${++counter}`

// ---------------------------------------------------------------------------------------------------------------
// Non-streaming bodies
// ---------------------------------------------------------------------------------------------------------------

/** Anthropic's error envelope: `{"type":"error","error":{"type":...,"message":...}}`. */
export const errorBody = (type: string, message: string): string =>
  JSON.stringify({ type: "error", error: { type, message } })

export type ContentBlock =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "thinking"; readonly thinking: string; readonly signature: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: Record<string, unknown> }

export const messageBody = (options: {
  readonly content: ReadonlyArray<ContentBlock>
  readonly stopReason?: string | null
  readonly model?: string
  readonly inputTokens?: number
  readonly outputTokens?: number
}): string =>
  JSON.stringify({
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: options.model ?? "claude-x",
    content: options.content,
    stop_reason: options.stopReason === undefined ? "end_turn" : options.stopReason,
    stop_sequence: null,
    usage: { input_tokens: options.inputTokens ?? 10, output_tokens: options.outputTokens ?? 5 }
  })

export const JSON_HEADERS = { "content-type": "application/json" } as const

// ---------------------------------------------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------------------------------------------

export const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" } as const

export const sseEvent = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

export const messageStart = (options: { readonly model?: string; readonly inputTokens?: number } = {}): string =>
  sseEvent("message_start", {
    type: "message_start",
    message: {
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: options.model ?? "claude-x",
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: options.inputTokens ?? 10, output_tokens: 1 }
    }
  })

export const contentBlockStart = (index: number): string =>
  sseEvent("content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } })

export const textDelta = (index: number, text: string): string =>
  sseEvent("content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text } })

export const contentBlockStop = (index: number): string =>
  sseEvent("content_block_stop", { type: "content_block_stop", index })

export const messageDelta = (stopReason: string, outputTokens: number): string =>
  sseEvent("message_delta", {
    type: "message_delta",
    delta: { stop_reason: stopReason, stop_sequence: null },
    usage: { output_tokens: outputTokens }
  })

export const messageStop = (): string => sseEvent("message_stop", { type: "message_stop" })

export const ping = (): string => sseEvent("ping", { type: "ping" })

export const errorEvent = (type: string, message: string): string =>
  sseEvent("error", { type: "error", error: { type, message } })

/** `message_start`, one text block with these deltas, `content_block_stop`: everything before the message end. */
export const streamPrefix = (deltas: ReadonlyArray<string>, options: { readonly inputTokens?: number } = {}): string =>
  [messageStart(options), contentBlockStart(0), ...deltas.map((text) => textDelta(0, text)), contentBlockStop(0)]
    .join("")

/** A complete, well-formed stream. */
export const completeStream = (
  deltas: ReadonlyArray<string>,
  options: { readonly inputTokens?: number; readonly outputTokens?: number; readonly stopReason?: string } = {}
): string =>
  streamPrefix(deltas, options) + messageDelta(options.stopReason ?? "end_turn", options.outputTokens ?? 5)
  + messageStop()
