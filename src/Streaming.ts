/**
 * Resilient streaming: time-to-first-token and stall timeouts, a repeated-chunk detector, and failover that respects
 * the commit point — a stream may move to another provider only before its first chunk reached the caller, unless
 * continuation is switched on, in which case the next provider continues the text without repeating it.
 *
 * @since 0.1.0
 */
import type * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { shouldFallBack } from "./Fallback.js"
import { continuationRequest, dropRepeated } from "./internal/resilient/continuation.js"
import { timeoutFail } from "./internal/timeout.js"
import type { CompletionRequestInput, StreamChunk } from "./Llm.js"
import { DegradedResponse, type HardFailure, hardFailure, type InvalidRequest } from "./LlmError.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface GuardOptions {
  /** Names the provider in the failures the guard raises. */
  readonly provider: string
  readonly model: string
  /** Time allowed until the first content chunk. */
  readonly firstChunkTimeout?: Duration.DurationInput | undefined
  /** Time allowed between two chunks once content flows. */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /** Identical consecutive content chunks tolerated before the stream is declared repetitive. */
  readonly maxRepeatedChunks?: number | undefined
}

const decodeOptional = (input: Duration.DurationInput | undefined) =>
  input === undefined ? undefined : Duration.decode(input)

/**
 * Guards a stream of chunks. A missing first chunk fails with `HardFailure` `Timeout` (`providerCode:
 * "first_chunk_timeout"`), a stall with `"stream_stall"`, both carrying the text received so far; more than
 * `maxRepeatedChunks` identical chunks in a row fails with `DegradedResponse` `Repetitive` carrying what arrived.
 * Timeouts interrupt the source stream, which aborts its HTTP request.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const guard: {
  (options: GuardOptions): <E, R>(
    self: Stream.Stream<StreamChunk, E, R>
  ) => Stream.Stream<StreamChunk, E | HardFailure | DegradedResponse, R>
  <E, R>(
    self: Stream.Stream<StreamChunk, E, R>,
    options: GuardOptions
  ): Stream.Stream<StreamChunk, E | HardFailure | DegradedResponse, R>
} = dual(2, <E, R>(
  self: Stream.Stream<StreamChunk, E, R>,
  options: GuardOptions
): Stream.Stream<StreamChunk, E | HardFailure | DegradedResponse, R> => {
  const firstChunk = decodeOptional(options.firstChunkTimeout)
  const stall = decodeOptional(options.stallTimeout)
  const maxRepeats = options.maxRepeatedChunks
  return Stream.unwrapScoped(Effect.gen(function*() {
    const pull = yield* Stream.toPull(self)
    const started = yield* Clock.currentTimeMillis
    let text = ""
    let flowing = false
    let previous: string | undefined
    let repeats = 0

    const timedOut = (providerCode: string) =>
      Option.some(hardFailure({
        reason: "Timeout",
        provider: options.provider,
        model: options.model,
        providerCode,
        ...(text !== "" ? { partialContent: text } : {})
      }))

    const repetitive = (now: number) =>
      Option.some(
        new DegradedResponse({
          reason: "Repetitive",
          provider: options.provider,
          model: options.model,
          retryable: false,
          detail: `${repeats} identical chunks in a row`,
          result: {
            content: text,
            usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0 },
            model: options.model,
            provider: options.provider,
            finishReason: "stop",
            latencyMs: now - started
          }
        })
      )

    const next = Effect.suspend(() => {
      const limit = flowing ? stall : firstChunk
      const pulled: Effect.Effect<Chunk.Chunk<StreamChunk>, Option.Option<E | HardFailure>, R> = limit === undefined
        ? pull
        // One fiber per pull, not two (./internal/timeout.ts); the pull runs the caller's stream, so fiber refs it
        // sets are carried back, as `Effect.timeoutFail` would.
        : timeoutFail(pull, limit, () => timedOut(flowing ? "stream_stall" : "first_chunk_timeout"), {
          inheritFiberRefs: true
        })
      return Effect.flatMap(
        pulled,
        (chunk): Effect.Effect<Chunk.Chunk<StreamChunk>, Option.Option<E | HardFailure | DegradedResponse>> => {
          for (const element of chunk) {
            if (element._tag !== "ContentDelta") continue
            flowing = true
            text += element.text
            repeats = element.text === previous ? repeats + 1 : 1
            previous = element.text
            if (maxRepeats !== undefined && repeats > maxRepeats) {
              return Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(repetitive(now)))
            }
          }
          return Effect.succeed(chunk)
        }
      )
    })
    return Stream.repeatEffectChunkOption(next)
  }))
})

/**
 * Drops the part of a continuation that repeats `delivered`: a model asked to continue sometimes starts over — from
 * the beginning or from the start of its sentence — or re-emits the last words, often in other case or spacing.
 * The first characters are held back while they could still be a repeat.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const dropRepeatedPrefix: (
  delivered: string
) => <E, R>(self: Stream.Stream<StreamChunk, E, R>) => Stream.Stream<StreamChunk, E, R> = dropRepeated

/**
 * Anything that streams a request: a provider service, or one wrapped in a breaker or a rate limiter.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Source<E> {
  readonly name: string
  readonly model: string
  readonly stream: (request: CompletionRequestInput) => Stream.Stream<StreamChunk, E>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface FailoverOptions<E = HardFailure | InvalidRequest> {
  readonly firstChunkTimeout?: Duration.DurationInput | undefined
  readonly stallTimeout?: Duration.DurationInput | undefined
  readonly maxRepeatedChunks?: number | undefined
  /**
   * After the commit point, continue on the next provider with the text so far as an assistant message, instead of
   * failing. Off by default: the caller then owns the failure (it has `partialContent`).
   */
  readonly continuation?: boolean | undefined
  /**
   * Which failures (before the commit point) move to the next provider. Default `Fallback.shouldFallBack`: every
   * hard failure but `BadRequest`, degraded streams, and local refusals (open breaker, rate limit); never
   * `InvalidRequest`.
   */
  readonly shouldFailover?: ((error: E | HardFailure | DegradedResponse) => boolean) | undefined
}

/**
 * Streams `request` from the first provider, moving to the next on a failure **before the first content chunk
 * reached the caller** (the commit point). After it, the stream fails with the failure (carrying
 * `partialContent`) — or, with `continuation`, the next provider continues the text: it gets the text so far as an
 * assistant prefill (Anthropic) or as an assistant message and an instruction to continue, and any repeat of
 * delivered text is dropped.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const failover = <E = HardFailure | InvalidRequest>(
  providers: readonly [Source<E>, ...Array<Source<E>>],
  request: CompletionRequestInput,
  options: FailoverOptions<E> = {}
): Stream.Stream<StreamChunk, E | HardFailure | DegradedResponse> => {
  const shouldFailover = options.shouldFailover ?? shouldFallBack
  const from = (
    index: number,
    attempt: CompletionRequestInput,
    delivered: string
  ): Stream.Stream<StreamChunk, E | HardFailure | DegradedResponse> =>
    Stream.suspend(() => {
      const provider = providers[index] ?? providers[0]
      let received = ""
      const guarded = guard(provider.stream(attempt), {
        provider: provider.name,
        model: attempt.model ?? provider.model,
        firstChunkTimeout: options.firstChunkTimeout,
        stallTimeout: options.stallTimeout,
        maxRepeatedChunks: options.maxRepeatedChunks
      })
      const source = delivered === "" ? guarded : dropRepeatedPrefix(delivered)(guarded)
      return source.pipe(
        Stream.tap((chunk) =>
          chunk._tag === "ContentDelta" ? Effect.sync(() => (received += chunk.text)) : Effect.void
        ),
        Stream.catchAll((error) => {
          const soFar = delivered + received
          const canMove = index + 1 < providers.length && shouldFailover(error)
          if (!canMove) return Stream.fail(error)
          if (soFar === "") return from(index + 1, attempt, "")
          return options.continuation === true
            ? from(index + 1, continuationRequest(request, soFar, providers[index + 1]?.name ?? ""), soFar)
            : Stream.fail(error)
        })
      )
    })
  return from(0, request, "")
}

/**
 * Collects a stream into its text and final `StreamEnd`.
 *
 * @since 0.1.0
 * @category Destructors
 */
export const collect = <E, R>(
  self: Stream.Stream<StreamChunk, E, R>
): Effect.Effect<{ readonly text: string; readonly end: Option.Option<StreamChunk & { _tag: "StreamEnd" }> }, E, R> =>
  Stream.runFold(
    self,
    { text: "", end: Option.none<StreamChunk & { _tag: "StreamEnd" }>() },
    (acc, chunk) =>
      chunk._tag === "ContentDelta"
        ? { ...acc, text: acc.text + chunk.text }
        : chunk._tag === "StreamEnd"
        ? { ...acc, end: Option.some(chunk) }
        : acc
  )
