import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { FinishReason, RateLimitInfo, StreamChunk, ToolCall, Usage } from "../Llm.js"
import { HardFailure, hardFailure } from "../LlmError.js"

/** What a provider's stream events have told so far. @internal */
export interface StreamState {
  text: string
  model: string
  finish: FinishReason | "content_filter" | undefined
  /** The provider's explicit end-of-message event was seen (Anthropic `message_stop`); OpenAI ends on finish. */
  ended: boolean
  inputTokens: number | undefined
  outputTokens: number | undefined
  firstTokenAt: number | undefined
  /** Tool calls assembled from the deltas so far, by their index in the answer. */
  toolCalls: Array<{ id: string; name: string; arguments: string }>
}

/** What one provider event carried: text, or chunks (text and tool-call deltas), or a malformed-event failure. @internal */
export type StepOutput = string | ReadonlyArray<PieceChunk> | HardFailure

/** @internal */
export type PieceChunk = Extract<StreamChunk, { readonly _tag: "ContentDelta" | "ToolCallDelta" }>

/** @internal */
export interface AssembleOptions {
  readonly provider: string
  readonly model: string
  readonly requestId: string | undefined
  readonly rateLimit: RateLimitInfo | undefined
  readonly started: number
  readonly events: AsyncIterable<unknown>
  /** Aborts the HTTP request behind `events`. */
  readonly abort: () => void
  /** Maps whatever the SDK iterator throws, with the text received so far. */
  readonly mapError: (error: unknown, state: StreamState) => Effect.Effect<never, HardFailure>
  /** Folds one event into the state; returns what it carried, or a failure for a malformed event. */
  readonly step: (event: unknown, state: StreamState) => StepOutput
  /** Whether the events seen so far make a complete response. */
  readonly isComplete: (state: StreamState) => boolean
  readonly usage: (state: StreamState) => Effect.Effect<Usage>
  /** What the provider left out of the request (see `CompletionResult.notes`). */
  readonly notes?: ReadonlyArray<string> | undefined
}

// A tool-call delta extends the call at its index: `id` and `name` arrive with its first piece.
const applyToolDelta = (state: StreamState, delta: Extract<PieceChunk, { readonly _tag: "ToolCallDelta" }>) => {
  const call = state.toolCalls[delta.index] ?? { id: "", name: "", arguments: "" }
  if (delta.id !== undefined) call.id = delta.id
  if (delta.name !== undefined) call.name += delta.name
  call.arguments += delta.argumentsDelta
  state.toolCalls[delta.index] = call
}

const completeToolCalls = (state: StreamState): ReadonlyArray<ToolCall> =>
  state.toolCalls.filter((call) => call !== undefined).map((call) => ({
    ...call,
    // A call without arguments streams none.
    arguments: call.arguments === "" ? "{}" : call.arguments
  }))

// Stream.fromAsyncIterable ends an interrupted stream by awaiting the iterator's `return()`, and the SDK's generator
// settles `return()` only after its pending `next()` — which waits for body bytes that may never come. Aborting the
// request first makes `next()` settle, so interruption is prompt and the connection is closed.
const abortOnReturn = (events: AsyncIterable<unknown>, abort: () => void): AsyncIterable<unknown> => ({
  [Symbol.asyncIterator]: () => {
    const iterator = events[Symbol.asyncIterator]()
    return {
      next: () => iterator.next(),
      return: (value?: unknown): Promise<IteratorResult<unknown>> => {
        abort()
        return iterator.return?.(value) ?? Promise.resolve({ done: true, value: undefined })
      }
    }
  }
})

/**
 * Turns an SDK event iterator into `ContentDelta`s and one final `StreamEnd`. A stream that stops before the
 * provider said it was complete fails with `Connection` / `stream_incomplete`, carrying the partial text.
 * @internal
 */
export const assemble = (options: AssembleOptions): Stream.Stream<StreamChunk, HardFailure> => {
  const state: StreamState = {
    text: "",
    model: options.model,
    finish: undefined,
    ended: false,
    inputTokens: undefined,
    outputTokens: undefined,
    firstTokenAt: undefined,
    toolCalls: []
  }
  const failure = (reason: "Connection" | "ContentFiltered", providerCode: string) =>
    hardFailure({
      reason,
      provider: options.provider,
      model: state.model,
      requestId: options.requestId,
      providerCode,
      partialContent: state.text
    })

  const deltas = Stream.fromAsyncIterable(abortOnReturn(options.events, options.abort), (error) => error).pipe(
    Stream.catchAll((error) => Stream.fromEffect(options.mapError(error, state))),
    Stream.mapEffect((event) => {
      const output = options.step(event, state)
      if (output instanceof HardFailure) return Effect.fail(output)
      const pieces: ReadonlyArray<PieceChunk> = typeof output === "string"
        ? output === "" ? [] : [{ _tag: "ContentDelta", text: output }]
        : output
      for (const piece of pieces) {
        if (piece._tag === "ContentDelta") state.text += piece.text
        else applyToolDelta(state, piece)
      }
      if (pieces.length === 0 || state.firstTokenAt !== undefined) return Effect.succeed(pieces)
      return Effect.map(Clock.currentTimeMillis, (now) => {
        state.firstTokenAt = now
        return pieces
      })
    }),
    Stream.flattenIterables
  )

  const end = Effect.gen(function*() {
    const finished = yield* Clock.currentTimeMillis
    if (!options.isComplete(state) || state.finish === undefined) {
      return yield* Effect.fail(failure("Connection", "stream_incomplete"))
    }
    if (state.finish === "content_filter") return yield* Effect.fail(failure("ContentFiltered", "content_filter"))
    const usage = yield* options.usage(state)
    const toolCalls = completeToolCalls(state)
    return {
      _tag: "StreamEnd",
      finishReason: state.finish,
      usage,
      model: state.model,
      provider: options.provider,
      latencyMs: finished - options.started,
      ...(state.firstTokenAt !== undefined ? { ttftMs: state.firstTokenAt - options.started } : {}),
      ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
      ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
      ...(options.notes !== undefined && options.notes.length > 0 ? { notes: options.notes } : {})
    } satisfies StreamChunk
  })

  return Stream.concat(deltas, Stream.fromEffect(end))
}
