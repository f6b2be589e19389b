/**
 * The stream call of a step, up to its commit point: rate limiter → breaker (admission, and a record when the stream
 * ends) → first-chunk and stall timeouts → the provider's stream, pulled until its first content chunk (or, when
 * buffered, to its end and through the tier's checks). Until then a failure is a failed step like any other —
 * retried, relaxed, failed over, hedged. The step's resources (the HTTP request, the permit, a probe slot) live in a
 * scope of their own, closed when the committed stream ends, or at once when the step fails or loses a hedge.
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { CompletionRequestInput, CompletionResult, StreamChunk } from "../../Llm.js"
import { hardFailure } from "../../LlmError.js"
import * as Streaming from "../../Streaming.js"
import * as metrics from "../metrics.js"
import type { AttemptError, CallShape, Client } from "./client.js"
import { breakerOf } from "./deployments.js"
import type { Step } from "./plan.js"

type StreamEnd = Extract<StreamChunk, { readonly _tag: "StreamEnd" }>

/** A stream past its commit point: what was pulled to get there, and the rest. @internal */
export interface Committed {
  /** The chunks up to the first content chunk (with `buffer`: every chunk). */
  readonly head: ReadonlyArray<StreamChunk>
  /** The rest of the step's stream; its end closes the step's scope. */
  readonly rest: Stream.Stream<StreamChunk, AttemptError>
}

/** A served result as a committed stream: one content chunk and its end (a degraded answer, the cache). @internal */
export const resultChunks = (result: CompletionResult): Array<StreamChunk> => [
  ...(result.content === "" ? [] : [{ _tag: "ContentDelta", text: result.content } as const]),
  {
    _tag: "StreamEnd",
    finishReason: result.finishReason,
    usage: result.usage,
    model: result.model,
    provider: result.provider,
    latencyMs: result.latencyMs,
    ...(result.requestId !== undefined ? { requestId: result.requestId } : {}),
    ...(result.rateLimit !== undefined ? { rateLimit: result.rateLimit } : {}),
    ...(result.toolCalls !== undefined ? { toolCalls: result.toolCalls } : {}),
    ...(result.notes !== undefined ? { notes: result.notes } : {})
  }
]

/** The text and end of collected chunks as a result. @internal */
export const resultOf = (text: string, end: StreamEnd): CompletionResult => ({
  content: text,
  usage: end.usage,
  model: end.model,
  provider: end.provider,
  finishReason: end.finishReason,
  latencyMs: end.latencyMs,
  ...(end.requestId !== undefined ? { requestId: end.requestId } : {}),
  ...(end.rateLimit !== undefined ? { rateLimit: end.rateLimit } : {}),
  ...(end.toolCalls !== undefined ? { toolCalls: end.toolCalls } : {}),
  ...(end.notes !== undefined ? { notes: end.notes } : {})
})

/**
 * Pulls `source` in `scope` until its first content chunk — text or a piece of a tool call, the first thing a consumer
 * may render — or (with `buffer`) to its end.
 */
const open = (
  source: Stream.Stream<StreamChunk, AttemptError>,
  scope: Scope.CloseableScope,
  step: Step,
  buffer: boolean
): Effect.Effect<Committed, AttemptError> =>
  Effect.gen(function*() {
    const pull = yield* Scope.extend(Stream.toPull(source), scope)
    const head: Array<StreamChunk> = []
    let text = ""
    let end: StreamEnd | undefined
    let committed = false
    while (end === undefined && (buffer || !committed)) {
      const pulled = yield* Effect.matchEffect(pull, {
        onSuccess: (chunk) => Effect.succeed(Option.some(chunk)),
        onFailure: Option.match({ onNone: () => Effect.succeed(Option.none()), onSome: Effect.fail })
      })
      if (Option.isNone(pulled)) break
      for (const chunk of pulled.value) {
        head.push(chunk)
        if (chunk._tag === "ContentDelta") {
          text += chunk.text
          committed ||= chunk.text !== ""
        } else if (chunk._tag === "ToolCallDelta") committed = true
        else end = chunk
      }
    }
    const check = step.tier.config.quality
    if (buffer && check !== undefined) {
      if (end === undefined) {
        return yield* hardFailure({
          reason: "Connection",
          provider: step.tier.provider.name,
          model: step.model,
          providerCode: "stream_incomplete",
          partialContent: text
        })
      }
      yield* check(resultOf(text, end))
    }
    const rest = end !== undefined
      ? Stream.empty
      : Stream.repeatEffectChunkOption(pull)
    return {
      head,
      rest: Stream.ensuringWith(rest, (exit) => Scope.close(scope, exit))
    }
  })

/** Whether a step's stream is held back until it passed the tier's checks: the call's choice, else the tier's. */
const buffered = (step: Step, buffer: boolean | undefined): boolean => buffer ?? step.tier.config.buffer ?? false

/** @internal */
export const streamShape = (
  client: Client,
  request: Scope.Scope,
  buffer: boolean | undefined
): CallShape<Committed> => ({
  checkedBeforeCommit: (step) => buffered(step, buffer),
  hedger: client.hedgers?.stream,
  fromResult: (result) => ({ head: resultChunks(result), rest: Stream.empty }),
  call: (step, input, context) => {
    const { label, model, tier } = step
    // A deployment kept in rotation with its breaker open runs without it (./deployments.ts).
    const breaker = breakerOf(client, step)
    const run = (admitted: CompletionRequestInput) => {
      // The guard pulls chunk by chunk: only a tier with stream timeouts pays for it.
      const guarded = tier.firstChunkTimeout === undefined && tier.stallTimeout === undefined
        ? tier.provider.stream(admitted)
        : Streaming.guard(tier.provider.stream(admitted), {
          provider: tier.provider.name,
          model,
          firstChunkTimeout: tier.firstChunkTimeout,
          stallTimeout: tier.stallTimeout
        })
      return breaker === undefined ? guarded : breaker.executeStream(guarded)
    }
    const entered = context.clock.unsafeCurrentTimeMillis()
    const source: Stream.Stream<StreamChunk, AttemptError> = client.limiter.stream(
      tier.provider,
      input,
      client.limited
        ? (admitted) =>
          Stream.suspend(() => {
            const waited = context.clock.unsafeCurrentTimeMillis() - entered
            if (waited > 0) metrics.update(metrics.forLabel(label).rateLimitWait, waited)
            return run(admitted)
          })
        : run
    )
    // The step's scope is a child of the request's: whatever happens, nothing outlives the request.
    return Effect.flatMap(Scope.fork(request, ExecutionStrategy.sequential), (scope) =>
      Effect.onExit(
        open(source, scope, step, buffered(step, buffer)),
        (exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit)
      ))
  }
})

/** The committed stream as chunks: what was pulled, then the rest. @internal */
export const chunksOf = (committed: Committed): Stream.Stream<StreamChunk, AttemptError> =>
  Stream.concat(Stream.fromChunk(Chunk.unsafeFromArray(committed.head.slice())), committed.rest)
