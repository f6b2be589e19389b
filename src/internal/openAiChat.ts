import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type OpenAI from "openai"
import type { ChatMessage, CompletionRequest, Tool, Usage } from "../Llm.js"
import { makeUsage } from "../Llm.js"
import { type HardFailure, hardFailure } from "../LlmError.js"
import type { Capabilities, Service } from "../LlmProvider.js"
import { fromSdkError } from "./classify.js"
import { openAiRateLimit } from "./headers.js"
import * as mapping from "./providers/openAiMapping.js"
import {
  boundedStream,
  boundResponse,
  type CompleteWithin,
  honouringDeadlines,
  sdkOptions
} from "./providerTimeouts.js"
import { validateRequest } from "./request.js"
import { assemble } from "./streaming.js"
import { countTokens, type TokenizerFamily } from "./tokens.js"

/** @internal */
export interface OpenAiChatOptions {
  readonly name: string
  readonly model: string
  readonly client: OpenAI
  /** The loaded SDK, whose error classes classify what the client throws. */
  readonly sdk: typeof OpenAI
  readonly timeout: Duration.Duration | undefined
  readonly connectTimeout?: Duration.Duration | undefined
  readonly tokenizer: TokenizerFamily
  /** Whether `providerOptions.openai` applies (OpenAI itself); OpenAI-compatible servers leave it out. */
  readonly takesOpenAiOptions: boolean
  readonly capabilities: Capabilities
}

/**
 * Builds the provider service over an OpenAI client. Shared by `OpenAi` and `OpenAiCompatible`.
 * @internal
 */
export const make = (options: OpenAiChatOptions): Service => {
  const { client, name } = options
  const tokens = countTokens(options.tokenizer, options.model)

  const requestOptions = (request: CompletionRequest, signal: AbortSignal) => sdkOptions(request, options, signal)

  const toHardFailure =
    (model: string, partialContent?: string) => (error: unknown): Effect.Effect<never, HardFailure> =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (nowMillis) => Effect.fail(mapError(options.sdk, error, name, model, nowMillis, partialContent))
      )

  const malformed = (model: string, requestId: string | undefined, cause: unknown) =>
    hardFailure({
      reason: "ServerError",
      provider: name,
      model,
      requestId,
      providerCode: "malformed_response",
      cause
    })

  const usageOf = (
    raw: mapping.UsageBody | null | undefined,
    request: { readonly messages: ReadonlyArray<ChatMessage>; readonly tools?: ReadonlyArray<Tool> | undefined },
    content: string
  ): Effect.Effect<Usage> =>
    raw != null
      ? Effect.succeed(mapping.usage(raw))
      // Some OpenAI-compatible servers send no usage: estimate both sides with the tokenizer.
      : Effect.zipWith(
        tokens(request.messages, request.tools),
        tokens([{ role: "assistant", content: content.length > 0 ? content : " " }]),
        (input, output) => makeUsage(input, output)
      )

  const completeWithin: CompleteWithin = (input, attempt) =>
    Effect.gen(function*() {
      const request = yield* validateRequest(input)
      const model = request.model ?? options.model
      const { body, notes } = mapping.body(request, model, options.takesOpenAiOptions)
      const started = yield* Clock.currentTimeMillis
      const { data, request_id, response } = yield* boundResponse(
        (signal) =>
          client.chat.completions.create({ ...body, stream: false }, requestOptions(request, signal)).withResponse(),
        toHardFailure(model),
        request,
        options,
        name,
        model,
        attempt
      )
      const finished = yield* Clock.currentTimeMillis
      const requestId = request_id ?? undefined
      const parsed = mapping.decodeCompletion(data)
      if (Option.isNone(parsed)) return yield* Effect.fail(malformed(model, requestId, undefined))
      const choice = parsed.value.choices[0]
      const content = choice.message.content ?? ""
      const reason = mapping.finishReason(choice.finish_reason)
      const toolCalls = mapping.toolCalls(choice.message.tool_calls)
      if (reason === "content_filter" || (choice.message.refusal != null && content === "")) {
        return yield* Effect.fail(hardFailure({
          reason: "ContentFiltered",
          provider: name,
          model,
          status: response.status,
          requestId,
          providerCode: reason === "content_filter" ? "content_filter" : "refusal",
          partialContent: content
        }))
      }
      const usage = yield* usageOf(parsed.value.usage, request, content)
      const rateLimit = openAiRateLimit(response.headers)
      return {
        content,
        usage,
        model: parsed.value.model ?? model,
        provider: name,
        finishReason: reason,
        latencyMs: finished - started,
        ...(requestId !== undefined ? { requestId } : {}),
        ...(rateLimit !== undefined ? { rateLimit } : {}),
        ...(Option.isSome(toolCalls) ? { toolCalls: toolCalls.value } : {}),
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
      const { body, notes } = mapping.body(request, model, options.takesOpenAiOptions)
      const started = yield* Clock.currentTimeMillis
      const { data, request_id, response } = yield* Effect.tryPromise({
        try: () =>
          client.chat.completions.create(
            { ...body, stream: true, stream_options: { include_usage: true } },
            requestOptions(request, controller.signal)
          ).withResponse(),
        catch: (error) => error
      }).pipe(Effect.catchAll(toHardFailure(model)))
      let reported: mapping.UsageBody | undefined
      return assemble({
        provider: name,
        model,
        requestId: request_id ?? undefined,
        rateLimit: openAiRateLimit(response.headers),
        started,
        events: data,
        abort: () => controller.abort(),
        notes,
        mapError: (error, state) => toHardFailure(state.model, state.text)(error),
        step: (raw, state) => {
          const chunk = mapping.decodeChunk(raw)
          if (Option.isNone(chunk)) return malformed(state.model, request_id ?? undefined, undefined)
          if (chunk.value.model !== undefined) state.model = chunk.value.model
          if (chunk.value.usage != null) reported = chunk.value.usage
          for (const choice of chunk.value.choices ?? []) {
            if (choice.finish_reason != null) state.finish = mapping.finishReason(choice.finish_reason)
          }
          return mapping.chunkPieces(chunk.value)
        },
        isComplete: (state) => state.finish !== undefined,
        usage: (state) => usageOf(reported, request, state.text)
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
    capabilities: options.capabilities,
    baseURL: client.baseURL
  }
}

/**
 * Maps anything the SDK throws to a HardFailure (see `fromSdkError`).
 * @internal
 */
export const mapError = (
  sdk: typeof OpenAI,
  error: unknown,
  provider: string,
  model: string,
  nowMillis: number,
  partialContent?: string
): HardFailure => fromSdkError(sdk, (apiError) => apiError.code, error, { provider, model, nowMillis }, partialContent)
