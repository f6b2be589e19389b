import type AnthropicClient from "@anthropic-ai/sdk"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { CompletionRequest } from "../Llm.js"
import { makeUsage } from "../Llm.js"
import { type HardFailure, hardFailure } from "../LlmError.js"
import { allCapabilities, type Service } from "../LlmProvider.js"
import { fromSdkError } from "./classify.js"
import { anthropicRateLimit } from "./headers.js"
import * as mapping from "./providers/anthropicMapping.js"
import {
  boundedStream,
  boundResponse,
  type CompleteWithin,
  honouringDeadlines,
  sdkOptions
} from "./providerTimeouts.js"
import { validateRequest } from "./request.js"
import { assemble } from "./streaming.js"
import { countTokens } from "./tokens.js"

/** @internal */
export interface AnthropicOptions {
  readonly name: string
  readonly model: string
  readonly client: AnthropicClient
  /** The loaded SDK, whose error classes classify what the client throws. */
  readonly sdk: typeof AnthropicClient
  readonly timeout: Duration.Duration | undefined
  readonly connectTimeout?: Duration.Duration | undefined
  readonly defaultMaxTokens: number
}

/** @internal */
export const make = (options: AnthropicOptions): Service => {
  const { client, name } = options
  const tokens = countTokens("anthropic", options.model)

  const requestOptions = (request: CompletionRequest, signal: AbortSignal) => sdkOptions(request, options, signal)

  const toHardFailure =
    (model: string, partialContent?: string) => (error: unknown): Effect.Effect<never, HardFailure> =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (nowMillis) => Effect.fail(mapError(options.sdk, error, name, model, nowMillis, partialContent))
      )

  const malformed = (model: string, requestId: string | undefined) =>
    hardFailure({ reason: "ServerError", provider: name, model, requestId, providerCode: "malformed_response" })

  const completeWithin: CompleteWithin = (input, attempt) =>
    Effect.gen(function*() {
      const request = yield* validateRequest(input)
      const model = request.model ?? options.model
      const { body, notes } = mapping.body(request, model, options.defaultMaxTokens)
      const started = yield* Clock.currentTimeMillis
      const { data, request_id, response } = yield* boundResponse(
        (signal) => client.messages.create({ ...body, stream: false }, requestOptions(request, signal)).withResponse(),
        toHardFailure(model),
        request,
        options,
        name,
        model,
        attempt
      )
      const finished = yield* Clock.currentTimeMillis
      const requestId = request_id ?? undefined
      const parsed = mapping.decodeMessage(data)
      if (Option.isNone(parsed)) return yield* Effect.fail(malformed(model, requestId))
      const { text: content, toolCalls } = mapping.answer(parsed.value.content)
      const reason = mapping.finishReason(parsed.value.stop_reason)
      if (reason === "content_filter") {
        return yield* Effect.fail(hardFailure({
          reason: "ContentFiltered",
          provider: name,
          model,
          status: response.status,
          requestId,
          providerCode: "refusal",
          partialContent: content
        }))
      }
      const rateLimit = anthropicRateLimit(response.headers, finished)
      return {
        content,
        usage: mapping.usage(
          parsed.value.usage.input_tokens ?? 0,
          parsed.value.usage.output_tokens ?? 0,
          parsed.value.usage
        ),
        model: parsed.value.model ?? model,
        provider: name,
        finishReason: reason,
        latencyMs: finished - started,
        ...(requestId !== undefined ? { requestId } : {}),
        ...(rateLimit !== undefined ? { rateLimit } : {}),
        ...(toolCalls.length > 0 ? { toolCalls } : {}),
        ...(notes.length > 0 ? { notes } : {})
      }
    })

  const complete = honouringDeadlines(completeWithin)

  const unbounded: Service["stream"] = (input) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const request = yield* validateRequest(input)
      const model = request.model ?? options.model
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const { body, notes } = mapping.body(request, model, options.defaultMaxTokens)
      const started = yield* Clock.currentTimeMillis
      const { data, request_id, response } = yield* Effect.tryPromise({
        try: () =>
          client.messages.create(
            { ...body, stream: true },
            requestOptions(request, controller.signal)
          ).withResponse(),
        catch: (error) => error
      }).pipe(Effect.catchAll(toHardFailure(model)))
      const requestId = request_id ?? undefined
      const readBlock = mapping.blockReader()
      let reported: mapping.UsageBody | undefined
      return assemble({
        provider: name,
        model,
        requestId,
        rateLimit: anthropicRateLimit(response.headers, yield* Clock.currentTimeMillis),
        started,
        events: data,
        abort: () => controller.abort(),
        notes,
        mapError: (error, state) => toHardFailure(state.model, state.text)(error),
        step: (raw, state) => {
          const event = mapping.decodeEvent(raw)
          if (Option.isNone(event)) return malformed(state.model, requestId)
          const { delta, message, type, usage } = event.value
          switch (type) {
            case "message_start": {
              if (message?.model !== undefined) state.model = message.model
              state.inputTokens = message?.usage?.input_tokens ?? state.inputTokens
              reported = message?.usage ?? reported
              return ""
            }
            case "content_block_start":
            case "content_block_delta":
              return readBlock(event.value)
            case "message_delta": {
              if (delta?.stop_reason != null) state.finish = mapping.finishReason(delta.stop_reason)
              reported = { ...reported, ...usage }
              state.outputTokens = usage?.output_tokens ?? state.outputTokens
              state.inputTokens = usage?.input_tokens ?? state.inputTokens
              return ""
            }
            case "message_stop": {
              state.ended = true
              state.finish ??= "stop"
              return ""
            }
            default:
              return ""
          }
        },
        isComplete: (state) => state.ended,
        usage: (state) =>
          state.inputTokens !== undefined && state.outputTokens !== undefined
            ? Effect.succeed(mapping.usage(state.inputTokens, state.outputTokens, reported))
            : Effect.zipWith(
              tokens(request.messages, request.tools),
              tokens([{ role: "assistant", content: state.text.length > 0 ? state.text : " " }]),
              (input, output) => makeUsage(state.inputTokens ?? input, state.outputTokens ?? output)
            )
      })
    }))

  // The whole stream, headers to last event, within the timeout (see ./providerTimeouts.ts).
  const stream = boundedStream(unbounded, options, name)

  return {
    name,
    model: options.model,
    key: `${name}:${options.model}`,
    complete,
    stream,
    countTokens: tokens,
    capabilities: allCapabilities,
    baseURL: client.baseURL
  }
}

/**
 * Maps anything the SDK throws to a HardFailure (see `fromSdkError`).
 * @internal
 */
export const mapError = (
  sdk: typeof AnthropicClient,
  error: unknown,
  provider: string,
  model: string,
  nowMillis: number,
  partialContent?: string
): HardFailure =>
  fromSdkError(sdk, (apiError) => apiError.errorCode, error, { provider, model, nowMillis }, partialContent)
