import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { FinishReason, RateLimitInfo, StreamChunk, Usage } from "../Llm.js"
import { type HardFailure, hardFailure } from "../LlmError.js"

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
}

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
  /** Folds one event into the state; returns the text it carried, or a failure for a malformed event. */
  readonly step: (event: unknown, state: StreamState) => string | HardFailure
  /** Whether the events seen so far make a complete response. */
  readonly isComplete: (state: StreamState) => boolean
  readonly usage: (state: StreamState) => Effect.Effect<Usage>
}

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
    firstTokenAt: undefined
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
      const text = options.step(event, state)
      if (typeof text !== "string") return Effect.fail(text)
      if (text === "") return Effect.succeed(Option.none<StreamChunk>())
      state.text += text
      const delta = Option.some<StreamChunk>({ _tag: "ContentDelta", text })
      return state.firstTokenAt !== undefined ? Effect.succeed(delta) : Effect.map(Clock.currentTimeMillis, (now) => {
        state.firstTokenAt = now
        return delta
      })
    }),
    Stream.filterMap((chunk) => chunk)
  )

  const end = Effect.gen(function*() {
    const finished = yield* Clock.currentTimeMillis
    if (!options.isComplete(state) || state.finish === undefined) {
      return yield* Effect.fail(failure("Connection", "stream_incomplete"))
    }
    if (state.finish === "content_filter") return yield* Effect.fail(failure("ContentFiltered", "content_filter"))
    const usage = yield* options.usage(state)
    return {
      _tag: "StreamEnd",
      finishReason: state.finish,
      usage,
      model: state.model,
      provider: options.provider,
      latencyMs: finished - options.started,
      ...(state.firstTokenAt !== undefined ? { ttftMs: state.firstTokenAt - options.started } : {}),
      ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
      ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {})
    } satisfies StreamChunk
  })

  return Stream.concat(deltas, Stream.fromEffect(end))
}
