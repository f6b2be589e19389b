/**
 * A resilient chain as @effect/ai's `LanguageModel`: the prompt, tools, tool choice and output format become a
 * `CompletionRequest`, the `ResilientResult` (or stream) becomes response parts, and a failure becomes an `AiError`
 * carrying this library's failure.
 * @internal
 */
import type * as AiError from "@effect/ai/AiError"
import * as IdGenerator from "@effect/ai/IdGenerator"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as AiResponse from "@effect/ai/Response"
import * as AiTool from "@effect/ai/Tool"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import type { CompletionRequestInput, FinishReason, ToolCall, Usage } from "../../Llm.js"
import type * as Resilient from "../../Resilient.js"
import { type ChainFailure, malformedInput, MODULE, toAiError } from "./errors.js"
import { jsonSchemaOf } from "./jsonSchema.js"
import { fromPrompt } from "./prompt.js"

/** What the chain's `LanguageModel` adds to every request, and how it calls the chain. @internal */
export interface Options {
  /** Generation options for every call (@effect/ai's own call options have no place for them). */
  readonly request?: Omit<CompletionRequestInput, "messages" | "tools" | "toolChoice" | "responseFormat"> | undefined
  readonly call?: Resilient.CallOptions | undefined
}

const finishReasons: Record<FinishReason, AiResponse.FinishReason> = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  tool_calls: "tool-calls"
}

const usageOf = (usage: Usage): AiResponse.FinishPartEncoded["usage"] => ({
  inputTokens: usage.inputTokens,
  outputTokens: usage.outputTokens,
  totalTokens: usage.totalTokens,
  ...(usage.cachedInputTokens !== undefined ? { cachedInputTokens: usage.cachedInputTokens } : {}),
  ...(usage.reasoningTokens !== undefined ? { reasoningTokens: usage.reasoningTokens } : {})
})

/**
 * How the chain served: under the finish part's `metadata["effect-llm-resilience"]` (see `Ai.resilienceOf`).
 * @internal
 */
export const metadataOf = (result: Resilient.ResilientResult): Record<string, unknown> => ({
  servedBy: result.servedBy,
  provider: result.provider,
  model: result.model,
  tier: result.tier,
  ...(result.fallbackFrom !== undefined ? { fallbackFrom: result.fallbackFrom } : {}),
  attempts: result.attempts,
  costUsd: result.costUsd,
  latencyMs: result.latencyMs,
  ...(result.degraded !== undefined ? { degraded: result.degraded } : {}),
  ...(result.requestId !== undefined ? { requestId: result.requestId } : {}),
  ...(result.rateLimit !== undefined ? { rateLimit: result.rateLimit } : {}),
  ...(result.notes !== undefined ? { notes: result.notes } : {})
})

const paramsOf = (call: ToolCall): unknown => (call.arguments.trim() === "" ? {} : JSON.parse(call.arguments))

const finishPart = (result: Resilient.ResilientResult): AiResponse.FinishPartEncoded => ({
  type: "finish",
  reason: finishReasons[result.finishReason],
  usage: usageOf(result.usage),
  metadata: { [MODULE]: metadataOf(result) }
})

const metadataPart = (result: Resilient.ResilientResult): AiResponse.ResponseMetadataPartEncoded => ({
  type: "response-metadata",
  modelId: result.model,
  ...(result.requestId !== undefined ? { id: result.requestId } : {})
})

const toolCallPart = (call: ToolCall): AiResponse.ToolCallPartEncoded => ({
  type: "tool-call",
  id: call.id,
  name: call.name,
  params: paramsOf(call)
})

// A schema's name becomes the structured output's name, which both providers limit to 64 letters, digits, _ or -.
const outputName = (name: string): string => name.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 64) || "output"

const toolChoiceOf = (choice: LanguageModel.ToolChoice<string>): CompletionRequestInput["toolChoice"] =>
  typeof choice === "string" ? choice : "tool" in choice ? { name: choice.tool } : choice.mode ?? "auto"

/** The chain's request for @effect/ai's provider options, or what in them has no equivalent here. @internal */
export const requestOf = (
  options: LanguageModel.ProviderOptions,
  defaults: Options["request"]
): Either.Either<CompletionRequestInput, { readonly path: string; readonly message: string }> =>
  Either.gen(function*() {
    const messages = yield* fromPrompt(options.prompt)
    const tools: Array<NonNullable<CompletionRequestInput["tools"]>[number]> = []
    for (const tool of options.tools) {
      if (AiTool.isProviderDefined(tool)) {
        return yield* Either.left({
          path: `toolkit.${tool.name}`,
          message: "is a provider-defined tool, which only its own provider runs; a resilient chain takes user tools"
        })
      }
      tools.push({
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        parameters: jsonSchemaOf(tool.parametersSchema)
      })
    }
    const format = options.responseFormat
    return {
      ...defaults,
      messages,
      ...(tools.length > 0 ? { tools, toolChoice: toolChoiceOf(options.toolChoice) } : {}),
      ...(format.type === "json"
        ? {
          responseFormat: {
            type: "json_schema",
            name: outputName(format.objectName),
            schema: jsonSchemaOf(format.schema)
          }
        }
        : {})
    }
  })

/** @internal */
export const make = (resilient: Resilient.Service, options: Options = {}): Effect.Effect<LanguageModel.Service> => {
  const prepare = (providerOptions: LanguageModel.ProviderOptions, method: string) =>
    Either.mapLeft(
      requestOf(providerOptions, options.request),
      (issue) => malformedInput(method, `${issue.path} ${issue.message}`)
    )
  const fail = (method: string) => (failure: ChainFailure): AiError.AiError => toAiError(failure, method)

  return LanguageModel.make({
    generateText: (providerOptions) =>
      Effect.flatMap(prepare(providerOptions, "generateText"), (request) =>
        Effect.map(
          Effect.mapError(resilient.complete(request, options.call), fail("generateText")),
          (result): Array<AiResponse.PartEncoded> => {
            providerOptions.span.attribute("effect_llm_resilience.served_by", result.servedBy)
            providerOptions.span.attribute("effect_llm_resilience.tier", result.tier)
            return [
              metadataPart(result),
              ...(result.content !== "" ? [{ type: "text" as const, text: result.content }] : []),
              ...(result.toolCalls ?? []).map(toolCallPart),
              finishPart(result)
            ]
          }
        )),
    streamText: (providerOptions) =>
      Stream.unwrap(Effect.gen(function*() {
        const request = yield* prepare(providerOptions, "streamText")
        const ids = yield* IdGenerator.IdGenerator
        const textId = yield* ids.generateId()
        let textOpen = false
        const calls = new Map<number, string>()
        return Stream.mapError(resilient.stream(request, options.call), fail("streamText")).pipe(
          Stream.mapConcat((chunk): ReadonlyArray<AiResponse.StreamPartEncoded> => {
            switch (chunk._tag) {
              case "ContentDelta": {
                if (chunk.text === "") return []
                const start: ReadonlyArray<AiResponse.StreamPartEncoded> = textOpen
                  ? []
                  : [{ type: "text-start", id: textId }]
                textOpen = true
                return [...start, { type: "text-delta", id: textId, delta: chunk.text }]
              }
              case "ToolCallDelta": {
                const parts: Array<AiResponse.StreamPartEncoded> = []
                if (chunk.id !== undefined && !calls.has(chunk.index)) {
                  calls.set(chunk.index, chunk.id)
                  parts.push({ type: "tool-params-start", id: chunk.id, name: chunk.name ?? "" })
                }
                const id = calls.get(chunk.index)
                if (id !== undefined && chunk.argumentsDelta !== "") {
                  parts.push({ type: "tool-params-delta", id, delta: chunk.argumentsDelta })
                }
                return parts
              }
              case "StreamEnd": {
                providerOptions.span.attribute("effect_llm_resilience.served_by", chunk.result.servedBy)
                providerOptions.span.attribute("effect_llm_resilience.tier", chunk.result.tier)
                return [
                  ...(textOpen ? [{ type: "text-end" as const, id: textId }] : []),
                  ...[...calls.values()].map((id) => ({ type: "tool-params-end" as const, id })),
                  ...(chunk.result.toolCalls ?? []).map(toolCallPart),
                  metadataPart(chunk.result),
                  finishPart(chunk.result)
                ]
              }
            }
          })
        )
      }))
  })
}
