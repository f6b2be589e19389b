/**
 * Any @effect/ai `LanguageModel` as a provider of a resilient chain: the request becomes a prompt, a toolkit of the
 * request's tools (never run here: the caller runs its tools) and a structured-output schema; the response becomes
 * a `CompletionResult` or stream chunks; an `AiError` becomes a `HardFailure`.
 * @internal
 */
import type * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as AiResponse from "@effect/ai/Response"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type {
  CompletionRequest,
  CompletionRequestInput,
  CompletionResult,
  FinishReason,
  StreamChunk,
  ToolCall,
  Usage
} from "../../Llm.js"
import { InvalidRequest } from "../../LlmError.js"
import type { HardFailure } from "../../LlmError.js"
import { hardFailure } from "../../LlmError.js"
import type { Capabilities, Service } from "../../LlmProvider.js"
import { allCapabilities } from "../../LlmProvider.js"
import { validateRequest } from "../request.js"
import { countTokens, estimateTokens, type TokenizerFamily } from "../tokens.js"
import { fromAiError } from "./errors.js"
import { carrying, toolkitOf } from "./jsonSchema.js"
import { toPrompt } from "./prompt.js"

/** @internal */
export interface Options {
  readonly name: string
  readonly model: string
  readonly capabilities?: Capabilities | undefined
  readonly tokenizer?: TokenizerFamily | undefined
}

// Generation options live in each @effect/ai provider's own config (e.g. `OpenAiLanguageModel.withConfigOverride`),
// not in `generateText`: a request's are left out, and said so in `notes`.
const generationFields = [
  "temperature",
  "maxTokens",
  "stopSequences",
  "topP",
  "seed",
  "user",
  "parallelToolCalls",
  "providerOptions",
  "connectTimeout"
] as const satisfies ReadonlyArray<keyof CompletionRequest>

const notesOf = (request: CompletionRequest): ReadonlyArray<string> =>
  generationFields.filter((field) => request[field] !== undefined).map((field) =>
    `${field} not applied: an @effect/ai model takes it from its own provider config`
  )

const toolChoiceOf = (choice: CompletionRequest["toolChoice"]): LanguageModel.ToolChoice<string> | undefined =>
  choice === undefined || typeof choice === "string" ? choice : { tool: choice.name }

const finishOf = (reason: AiResponse.FinishReason, toolCalls: number): FinishReason | "content_filter" | "error" => {
  switch (reason) {
    case "stop":
    case "length":
      return reason
    case "tool-calls":
      return "tool_calls"
    case "content-filter":
      return "content_filter"
    case "error":
      return "error"
    default:
      return toolCalls > 0 ? "tool_calls" : "stop"
  }
}

// The caller runs its tools: @effect/ai only reports the calls.
const baseOptions = (request: CompletionRequest) => ({
  prompt: toPrompt(request.messages),
  disableToolCallResolution: true as const,
  ...(request.tools !== undefined && request.tools.length > 0
    ? { toolkit: toolkitOf(request.tools), toolChoice: toolChoiceOf(request.toolChoice) }
    : {})
})

/** @internal */
export const make = (model: LanguageModel.Service, options: Options): Service => {
  const { name } = options
  const key = `${name}:${options.model}`
  const count = countTokens(options.tokenizer ?? "generic", options.model)

  const prepare = (input: CompletionRequestInput) =>
    Effect.flatMap(validateRequest(input), (request) =>
      request.model !== undefined && request.model !== options.model
        ? Effect.fail(
          new InvalidRequest({
            field: "model",
            issues: [{
              field: "model",
              message: `must be ${options.model}: an @effect/ai model's id is fixed by its Layer (one tier per model)`
            }]
          })
        )
        : Effect.succeed(request))

  const call = (request: CompletionRequest) => {
    const base = baseOptions(request)
    const format = request.responseFormat
    if (format === undefined || format === "text") return model.generateText(base)
    const schema = format === "json" ? { type: "object" } : format.schema
    return model.generateObject({
      ...base,
      schema: carrying(schema),
      ...(format === "json" ? {} : { objectName: format.name })
    })
  }

  const failed = (error: AiError.AiError, partialContent?: string) =>
    Effect.flatMap(
      Clock.currentTimeMillis,
      (nowMillis) =>
        Effect.fail(fromAiError(error, { provider: name, model: options.model, nowMillis, partialContent }))
    )

  const usageOf = (
    reported: AiResponse.Usage | undefined,
    request: CompletionRequest,
    text: string
  ): Effect.Effect<Usage> =>
    Effect.map(
      // Without the provider's count (some report none, a failed stream none), the limiter still needs one.
      reported?.inputTokens === undefined
        ? count(request.messages, request.tools)
        : Effect.succeed(reported.inputTokens),
      (inputTokens) => {
        const outputTokens = reported?.outputTokens ?? estimateTokens(text)
        return {
          inputTokens,
          outputTokens,
          totalTokens: inputTokens + outputTokens,
          ...(reported?.cachedInputTokens !== undefined ? { cachedInputTokens: reported.cachedInputTokens } : {}),
          ...(reported?.reasoningTokens !== undefined ? { reasoningTokens: reported.reasoningTokens } : {})
        }
      }
    )

  const finished = (
    finish: ReturnType<typeof finishOf>,
    text: string
  ): Effect.Effect<FinishReason, HardFailure> =>
    finish === "content_filter" || finish === "error"
      ? Effect.fail(hardFailure({
        reason: finish === "content_filter" ? "ContentFiltered" : "ServerError",
        provider: name,
        model: options.model,
        providerCode: finish,
        ...(text !== "" ? { partialContent: text } : {})
      }))
      : Effect.succeed(finish)

  const toolCallOf = (part: { readonly id: string; readonly name: string; readonly params: unknown }): ToolCall => ({
    id: part.id,
    name: part.name,
    arguments: JSON.stringify(part.params ?? {})
  })

  const completeValid = (request: CompletionRequest): Effect.Effect<CompletionResult, HardFailure> =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      const response = yield* Effect.catchAll(call(request), (error) => failed(error))
      const toolCalls = response.toolCalls.filter((part) => !part.providerExecuted).map(toolCallOf)
      const text = response.text
      const finishReason = yield* finished(finishOf(response.finishReason, toolCalls.length), text)
      const usage = yield* usageOf(response.usage, request, text)
      const metadata = response.content.find((part) => part.type === "response-metadata")
      const notes = notesOf(request)
      const now = yield* Clock.currentTimeMillis
      return {
        content: text,
        usage,
        model: metadata !== undefined ? Option.getOrElse(metadata.modelId, () => options.model) : options.model,
        provider: name,
        finishReason,
        latencyMs: now - started,
        ...(metadata !== undefined && Option.isSome(metadata.id) ? { requestId: metadata.id.value } : {}),
        ...(toolCalls.length > 0 ? { toolCalls } : {}),
        ...(notes.length > 0 ? { notes } : {})
      }
    }).pipe(withTimeout(request, name, options.model))

  const complete = (input: CompletionRequestInput): Effect.Effect<CompletionResult, HardFailure | InvalidRequest> =>
    Effect.flatMap(prepare(input), completeValid)

  const streamOf = (request: CompletionRequest, started: number): Stream.Stream<StreamChunk, HardFailure> => {
    const state = {
      text: "",
      firstAt: undefined as number | undefined,
      modelId: options.model,
      requestId: undefined as string | undefined,
      finish: undefined as AiResponse.FinishPart | undefined,
      calls: [] as Array<ToolCall>,
      indexById: new Map<string, number>()
    }
    const indexOf = (id: string): number => {
      const known = state.indexById.get(id)
      if (known !== undefined) return known
      const index = state.indexById.size
      state.indexById.set(id, index)
      return index
    }
    const chunksOf = (part: AiResponse.StreamPart<Record<string, never>>): ReadonlyArray<StreamChunk> => {
      switch (part.type) {
        case "text-delta":
          state.text += part.delta
          return part.delta === "" ? [] : [{ _tag: "ContentDelta", text: part.delta }]
        case "tool-params-start":
          return [{ _tag: "ToolCallDelta", index: indexOf(part.id), id: part.id, name: part.name, argumentsDelta: "" }]
        case "tool-params-delta":
          return [{ _tag: "ToolCallDelta", index: indexOf(part.id), argumentsDelta: part.delta }]
        case "tool-call": {
          if (part.providerExecuted) return []
          const call = toolCallOf(part)
          state.calls.push(call)
          // A provider that streamed the arguments already sent them; one that did not sends the call whole here.
          if (state.indexById.has(part.id)) return []
          return [{
            _tag: "ToolCallDelta",
            index: indexOf(part.id),
            id: call.id,
            name: call.name,
            argumentsDelta: call.arguments
          }]
        }
        case "response-metadata":
          if (Option.isSome(part.modelId)) state.modelId = part.modelId.value
          if (Option.isSome(part.id)) state.requestId = part.id.value
          return []
        case "finish":
          state.finish = part
          return []
        default:
          return []
      }
    }
    const end = Effect.gen(function*() {
      const finish = state.finish
      if (finish === undefined) {
        return yield* Effect.fail(hardFailure({
          reason: "Connection",
          provider: name,
          model: options.model,
          providerCode: "stream_incomplete",
          ...(state.text !== "" ? { partialContent: state.text } : {})
        }))
      }
      const finishReason = yield* finished(finishOf(finish.reason, state.calls.length), state.text)
      const usage = yield* usageOf(finish.usage, request, state.text)
      const now = yield* Clock.currentTimeMillis
      const notes = notesOf(request)
      const streamEnd: StreamChunk = {
        _tag: "StreamEnd",
        finishReason,
        usage,
        model: state.modelId,
        provider: name,
        latencyMs: now - started,
        ...(state.firstAt !== undefined ? { ttftMs: state.firstAt - started } : {}),
        ...(state.requestId !== undefined ? { requestId: state.requestId } : {}),
        ...(state.calls.length > 0 ? { toolCalls: state.calls } : {}),
        ...(notes.length > 0 ? { notes } : {})
      }
      return streamEnd
    })
    const base = baseOptions(request)
    return model.streamText(base).pipe(
      Stream.catchAll((error) => Stream.fromEffect(failed(error, state.text))),
      Stream.mapEffect((part) => {
        const chunks = chunksOf(part)
        if (state.firstAt !== undefined || chunks.length === 0) return Effect.succeed(chunks)
        return Effect.map(Clock.currentTimeMillis, (now) => {
          state.firstAt = now
          return chunks
        })
      }),
      Stream.flattenIterables,
      Stream.concat(Stream.fromEffect(end))
    )
  }

  const stream = (input: CompletionRequestInput): Stream.Stream<StreamChunk, HardFailure | InvalidRequest> =>
    Stream.unwrap(Effect.gen(function*() {
      const request = yield* prepare(input)
      const started = yield* Clock.currentTimeMillis
      const format = request.responseFormat
      // @effect/ai streams text only: a structured output arrives whole, as one chunk and the end.
      if (format !== undefined && format !== "text") {
        return Stream.flatMap(
          Stream.fromEffect(completeValid(request)),
          (result): Stream.Stream<StreamChunk> =>
            Stream.fromIterable([
              ...(result.content !== "" ? [{ _tag: "ContentDelta" as const, text: result.content }] : []),
              {
                _tag: "StreamEnd" as const,
                finishReason: result.finishReason,
                usage: result.usage,
                model: result.model,
                provider: name,
                latencyMs: result.latencyMs,
                ttftMs: result.latencyMs,
                ...(result.requestId !== undefined ? { requestId: result.requestId } : {}),
                ...(result.toolCalls !== undefined ? { toolCalls: result.toolCalls } : {}),
                ...(result.notes !== undefined ? { notes: result.notes } : {})
              }
            ])
        )
      }
      return streamOf(request, started)
    }))

  return {
    name,
    model: options.model,
    key,
    complete,
    stream,
    countTokens: count,
    capabilities: options.capabilities ?? allCapabilities
  }
}

// A request's `timeout` bounds the whole call, as it does for the SDK providers.
const withTimeout =
  (request: CompletionRequest, provider: string, model: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | HardFailure, R> =>
    request.timeout === undefined
      ? effect
      : Effect.timeoutFail(effect, {
        duration: request.timeout,
        onTimeout: () => hardFailure({ reason: "Timeout", provider, model, providerCode: "timeout" })
      })
