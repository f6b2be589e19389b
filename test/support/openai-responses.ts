/**
 * Complete OpenAI Responses API bodies and stream events, for @effect/ai-openai (which speaks the Responses API and
 * decodes every field of it): aimock's own /v1/responses answers leave out fields @effect/ai-openai requires, so
 * tests serve these as aimock raw-JSON fixtures or from mockttp.
 */

export type OutputItem =
  | { readonly type: "message"; readonly text: string }
  | { readonly type: "function_call"; readonly callId: string; readonly name: string; readonly arguments: string }

const item = (output: OutputItem, index: number): Record<string, unknown> =>
  output.type === "message"
    ? {
      type: "message",
      id: `msg_${index}`,
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: output.text, annotations: [] }]
    }
    : {
      type: "function_call",
      id: `fc_${index}`,
      call_id: output.callId,
      name: output.name,
      arguments: output.arguments,
      status: "completed"
    }

/** A `response` object, as a non-streamed answer or inside `response.created` / `response.completed`. */
export const responseBody = (options: {
  readonly output: ReadonlyArray<OutputItem>
  readonly status?: "completed" | "in_progress"
  readonly usage?: { readonly input: number; readonly output: number }
}): Record<string, unknown> => ({
  id: "resp_test",
  object: "response",
  created_at: 1_700_000_000,
  status: options.status ?? "completed",
  error: null,
  incomplete_details: null,
  instructions: null,
  max_output_tokens: null,
  model: "gpt-4o-mini-2024-07-18",
  output: options.output.map(item),
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: { effort: null, summary: null },
  store: true,
  temperature: 1,
  text: { format: { type: "text" } },
  tool_choice: "auto",
  tools: [],
  top_p: 1,
  truncation: "disabled",
  usage: {
    input_tokens: options.usage?.input ?? 12,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: options.usage?.output ?? 5,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: (options.usage?.input ?? 12) + (options.usage?.output ?? 5)
  },
  user: null,
  metadata: {}
})

/** The server-sent events of a streamed text answer, `pieces` as its deltas; `complete: false` cuts it before the end. */
export const textStreamEvents = (pieces: ReadonlyArray<string>, options: { readonly complete?: boolean } = {}) => {
  const text = pieces.join("")
  let sequence = 0
  const event = (body: Record<string, unknown>) => ({ ...body, sequence_number: sequence++ })
  const events = [
    event({ type: "response.created", response: responseBody({ output: [], status: "in_progress" }) }),
    event({
      type: "response.output_item.added",
      output_index: 0,
      item: { type: "message", id: "msg_0", status: "in_progress", role: "assistant", content: [] }
    }),
    ...pieces.map((delta) =>
      event({ type: "response.output_text.delta", item_id: "msg_0", output_index: 0, content_index: 0, delta })
    )
  ]
  if (options.complete === false) return events
  return [
    ...events,
    event({ type: "response.output_item.done", output_index: 0, item: item({ type: "message", text }, 0) }),
    event({ type: "response.completed", response: responseBody({ output: [{ type: "message", text }] }) })
  ]
}

export const sseOf = (events: ReadonlyArray<Record<string, unknown>>): string =>
  events.map((event) => `event: ${String(event["type"])}\ndata: ${JSON.stringify(event)}\n\n`).join("")
