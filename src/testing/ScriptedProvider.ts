/**
 * An in-memory `LlmProvider` that plays a script of outcomes and records every call it receives.
 *
 * Latency is slept on the Effect `Clock`, so under `TestClock` a test decides exactly when each answer arrives.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { validateRequest } from "../internal/request.js"
import type {
  ChatMessage,
  CompletionRequest,
  CompletionResult,
  FinishReason,
  StreamChunk,
  ToolCall,
  Usage
} from "../Llm.js"
import { makeUsage, messageText } from "../Llm.js"
import { type HardFailure, hardFailure, type HardReason } from "../LlmError.js"
import { type Capabilities, LlmProvider, type Service } from "../LlmProvider.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface SuccessOutcome {
  readonly _tag: "Success"
  readonly content: string
  readonly usage?: Usage | undefined
  readonly finishReason?: FinishReason | undefined
  /** Time before the answer (for a stream: before the first chunk). */
  readonly latency?: Duration.DurationInput | undefined
  /** How a stream splits the content; defaults to one chunk. */
  readonly chunks?: ReadonlyArray<string> | undefined
  /** Time between stream chunks. */
  readonly chunkDelay?: Duration.DurationInput | undefined
  /**
   * Tool calls of the answer (the finish reason then defaults to `tool_calls`). A stream delivers each as
   * `ToolCallDelta`s after the content: its id and name, then its arguments in `toolCallChunkSize`-character pieces
   * (default: whole), and the `StreamEnd` carries them assembled.
   */
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  readonly toolCallChunkSize?: number | undefined
}

/**
 * Fails with a `HardFailure`. For a stream, `chunks` are delivered first, so the failure happens mid-stream.
 *
 * @since 0.1.0
 * @category Models
 */
export interface FailureOutcome {
  readonly _tag: "Failure"
  readonly reason: HardReason
  readonly status?: number | undefined
  readonly retryAfter?: Duration.DurationInput | undefined
  readonly providerCode?: string | undefined
  readonly retryable?: boolean | undefined
  readonly latency?: Duration.DurationInput | undefined
  readonly chunks?: ReadonlyArray<string> | undefined
  readonly chunkDelay?: Duration.DurationInput | undefined
}

/**
 * Never answers; only interruption ends the call.
 *
 * @since 0.1.0
 * @category Models
 */
export interface HangOutcome {
  readonly _tag: "Hang"
}

/**
 * @since 0.1.0
 * @category Models
 */
export type Outcome = SuccessOutcome | FailureOutcome | HangOutcome

/**
 * @since 0.1.0
 * @category Constructors
 */
export const success = (content: string, options: Omit<SuccessOutcome, "_tag" | "content"> = {}): SuccessOutcome => ({
  _tag: "Success",
  content,
  ...options
})

/**
 * @since 0.1.0
 * @category Constructors
 */
export const failure = (reason: HardReason, options: Omit<FailureOutcome, "_tag" | "reason"> = {}): FailureOutcome => ({
  _tag: "Failure",
  reason,
  ...options
})

/**
 * @since 0.1.0
 * @category Constructors
 */
export const hang: HangOutcome = { _tag: "Hang" }

/**
 * A call the provider received (after validation).
 *
 * @since 0.1.0
 * @category Models
 */
export interface RecordedCall {
  /** 0-based position among all calls to this provider. */
  readonly index: number
  readonly kind: "complete" | "stream"
  readonly request: CompletionRequest
  readonly model: string
  /** `Clock` time the call arrived, in milliseconds. */
  readonly at: number
}

/**
 * A fixed list (after its end the last outcome repeats) or a function of the call.
 *
 * @since 0.1.0
 * @category Models
 */
export type Script = readonly [Outcome, ...Array<Outcome>] | ((call: RecordedCall) => Outcome)

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly script: Script
  readonly name?: string | undefined
  readonly model?: string | undefined
  /** What the provider says it can take. Default: everything. */
  readonly capabilities?: Capabilities | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface ScriptedProvider extends Service {
  /** Every call received so far, in arrival order. */
  readonly calls: Effect.Effect<ReadonlyArray<RecordedCall>>
}

// A test double needs a fast, deterministic count, not a tokenizer: about four characters a token.
const estimateTokens = (messages: ReadonlyArray<ChatMessage>): number =>
  messages.reduce((sum, message) => sum + Math.ceil(messageText(message).length / 4) + 4, 0)

const finishOf = (outcome: SuccessOutcome): FinishReason =>
  outcome.finishReason ?? (outcome.toolCalls !== undefined && outcome.toolCalls.length > 0 ? "tool_calls" : "stop")

const toolCallDeltas = (outcome: SuccessOutcome): ReadonlyArray<StreamChunk> =>
  (outcome.toolCalls ?? []).flatMap((call, index) => {
    const size = Math.max(1, outcome.toolCallChunkSize ?? call.arguments.length)
    const pieces: Array<StreamChunk> = [{
      _tag: "ToolCallDelta",
      index,
      id: call.id,
      name: call.name,
      argumentsDelta: ""
    }]
    for (let at = 0; at < call.arguments.length; at += size) {
      pieces.push({ _tag: "ToolCallDelta", index, argumentsDelta: call.arguments.slice(at, at + size) })
    }
    return pieces
  })

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<ScriptedProvider> =>
  Effect.gen(function*() {
    const name = options.name ?? "scripted"
    const defaultModel = options.model ?? "scripted-model"
    const calls = yield* Ref.make<ReadonlyArray<RecordedCall>>([])
    const { script } = options

    const receive = (kind: RecordedCall["kind"], request: CompletionRequest) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) =>
        Ref.modify(calls, (recorded): [{ call: RecordedCall; outcome: Outcome }, ReadonlyArray<RecordedCall>] => {
          const call: RecordedCall = { index: recorded.length, kind, request, model: request.model ?? defaultModel, at }
          const outcome = typeof script === "function"
            ? script(call)
            : script[Math.min(call.index, script.length - 1)] ?? script[0]
          return [{ call, outcome }, [...recorded, call]]
        }))

    const sleep = (duration: Duration.DurationInput | undefined) =>
      duration === undefined ? Effect.void : Effect.sleep(duration)

    const fail = (outcome: FailureOutcome, model: string, partialContent: string): HardFailure =>
      hardFailure({
        reason: outcome.reason,
        provider: name,
        model,
        status: outcome.status,
        retryAfter: outcome.retryAfter === undefined ? undefined : Duration.decode(outcome.retryAfter),
        providerCode: outcome.providerCode,
        ...(outcome.retryable !== undefined ? { retryable: outcome.retryable } : {}),
        ...(partialContent !== "" ? { partialContent } : {})
      })

    const usageOf = (outcome: SuccessOutcome, request: CompletionRequest): Usage =>
      outcome.usage
        ?? makeUsage(
          estimateTokens(request.messages),
          estimateTokens([{ role: "assistant", content: outcome.content }])
        )

    const complete: Service["complete"] = (input) =>
      Effect.gen(function*() {
        const request = yield* validateRequest(input)
        const started = yield* Clock.currentTimeMillis
        const { call, outcome } = yield* receive("complete", request)
        if (outcome._tag === "Hang") {
          return yield* Effect.never
        }
        yield* sleep(outcome.latency)
        if (outcome._tag === "Failure") {
          return yield* Effect.fail(fail(outcome, call.model, ""))
        }
        const finished = yield* Clock.currentTimeMillis
        return {
          content: outcome.content,
          usage: usageOf(outcome, request),
          model: call.model,
          provider: name,
          finishReason: finishOf(outcome),
          latencyMs: finished - started,
          requestId: `${name}-${call.index}`,
          ...(outcome.toolCalls !== undefined && outcome.toolCalls.length > 0 ? { toolCalls: outcome.toolCalls } : {})
        } satisfies CompletionResult
      })

    const stream: Service["stream"] = (input) =>
      Stream.unwrap(Effect.gen(function*() {
        const request = yield* validateRequest(input)
        const started = yield* Clock.currentTimeMillis
        const { call, outcome } = yield* receive("stream", request)
        if (outcome._tag === "Hang") {
          return Stream.never
        }
        const chunks = outcome.chunks ?? (outcome._tag === "Success" ? [outcome.content] : [])
        let firstAt: number | undefined
        const deltas = Stream.fromIterable(chunks.entries()).pipe(
          Stream.mapEffect(([index, text]) =>
            Effect.gen(function*() {
              yield* sleep(index === 0 ? outcome.latency : outcome.chunkDelay)
              firstAt ??= yield* Clock.currentTimeMillis
              return { _tag: "ContentDelta", text } satisfies StreamChunk
            })
          ),
          Stream.concat(Stream.fromIterable(outcome._tag === "Success" ? toolCallDeltas(outcome) : []))
        )
        const end: Effect.Effect<StreamChunk, HardFailure> = Effect.gen(function*() {
          if (outcome._tag === "Failure") {
            if (chunks.length === 0) {
              yield* sleep(outcome.latency)
            }
            return yield* Effect.fail(fail(outcome, call.model, chunks.join("")))
          }
          if (chunks.length === 0) {
            yield* sleep(outcome.latency)
          }
          const finished = yield* Clock.currentTimeMillis
          return {
            _tag: "StreamEnd",
            finishReason: finishOf(outcome),
            usage: usageOf(outcome, request),
            ...(outcome.toolCalls !== undefined && outcome.toolCalls.length > 0
              ? { toolCalls: outcome.toolCalls }
              : {}),
            model: call.model,
            provider: name,
            latencyMs: finished - started,
            ...(firstAt !== undefined ? { ttftMs: firstAt - started } : {}),
            requestId: `${name}-${call.index}`
          }
        })
        return Stream.concat(deltas, Stream.fromEffect(end))
      }))

    return {
      name,
      model: defaultModel,
      key: `${name}:${defaultModel}`,
      complete,
      stream,
      countTokens: (messages) =>
        Effect.succeed(estimateTokens(messages)),
      ...(options.capabilities !== undefined ? { capabilities: options.capabilities } : {}),
      calls: Ref.get(calls)
    }
  })

/**
 * Provides the scripted provider as the `LlmProvider` service. Use {@link make} when the test also needs `calls`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LlmProvider> => Layer.effect(LlmProvider, make(options))
