/**
 * Interop with `@effect/ai` (0.37, the effect 3.22 line), both ways:
 *
 * - {@link layer} / {@link layerChain}: a resilient chain as `@effect/ai`'s `LanguageModel`, so
 *   `LanguageModel.generateText`, `streamText` and `generateObject` (with a `Toolkit`) run through the whole ladder
 *   (breakers, retries, rate limits, failover, hedging, quality checks, degradation). A failure is an `AiError`
 *   carrying this library's failure ({@link failureOf}); how the chain served is in the finish part's metadata
 *   ({@link servedOf}).
 * - {@link provider}: any `@effect/ai` `LanguageModel` (Gemini through `@effect/ai-google`, Bedrock through
 *   `@effect/ai-amazon-bedrock`, …) as a provider of a chain, its `AiError`s classified into the taxonomy.
 *
 * `@effect/ai` is an optional peer dependency: only this module (`effect-llm-resilience/ai`) imports it. See
 * docs/effect-ai.md.
 *
 * @since 0.2.0
 */
import type * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as AiResponse from "@effect/ai/Response"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as errors from "./internal/ai/errors.js"
import * as internalModel from "./internal/ai/languageModel.js"
import * as tier from "./internal/ai/tier.js"
import type { TokenizerFamily } from "./internal/tokens.js"
import { RateLimitInfo } from "./Llm.js"
import { FallbackAttempt } from "./LlmError.js"
import type { FallbackExhausted, HardFailure, InvalidOptions, InvalidRequest } from "./LlmError.js"
import type { Capabilities, Service as LlmProviderService } from "./LlmProvider.js"
import * as Resilient from "./Resilient.js"

/**
 * @since 0.2.0
 * @category Models
 */
export type LanguageModelOptions = internalModel.Options

/**
 * A chain's failure as the `AiError` an `@effect/ai` caller sees: `MalformedInput` for an `InvalidRequest` (the
 * caller's to fix), `UnknownError` for everything else, with the failure in `cause` and its message as the
 * description.
 *
 * @since 0.2.0
 * @category Models
 */
export type ChainFailure = FallbackExhausted | HardFailure | InvalidRequest

/**
 * The `LanguageModel` service of a resilient client.
 *
 * @since 0.2.0
 * @category Constructors
 */
export const make = (
  resilient: Resilient.Service,
  options?: LanguageModelOptions
): Effect.Effect<LanguageModel.Service> => internalModel.make(resilient, options)

/**
 * `@effect/ai`'s `LanguageModel`, backed by the `Resilient` client in the context.
 *
 * @example
 * ```ts
 * const AppModel = Ai.layer().pipe(Layer.provide(Resilient.layer({ chain: [{ provider: primary }, { provider: backup }] })))
 * const answer = LanguageModel.generateText({ prompt: "Hello" }).pipe(Effect.provide(AppModel))
 * ```
 *
 * @since 0.2.0
 * @category Layers
 */
export const layer = (
  options?: LanguageModelOptions
): Layer.Layer<LanguageModel.LanguageModel, never, Resilient.Resilient> =>
  Layer.effect(
    LanguageModel.LanguageModel,
    Effect.flatMap(Resilient.Resilient, (resilient) => make(resilient, options))
  )

/**
 * {@link layer} over a chain built from `config` (`Resilient.layer`).
 *
 * @since 0.2.0
 * @category Layers
 */
export const layerChain = (
  config: Resilient.Config,
  options?: LanguageModelOptions
): Layer.Layer<LanguageModel.LanguageModel | Resilient.Resilient, InvalidOptions> =>
  Layer.provideMerge(layer(options), Resilient.layer(config))

/**
 * The chain's failure an `AiError` carries, if the chain raised it: `HardFailure`, `FallbackExhausted` (every step
 * with its reason, including soft and degraded failures) or `InvalidRequest`.
 *
 * @since 0.2.0
 * @category Utils
 */
export const failureOf: (error: AiError.AiError) => Option.Option<ChainFailure> = errors.chainFailure

/**
 * How the chain served an answer: the finish part's `metadata["effect-llm-resilience"]` (`response.content` of
 * `generateText` and `generateObject`, the finish part of `streamText`).
 *
 * @since 0.2.0
 * @category Schemas
 */
export const Served = Schema.Struct({
  /** `provider:model` that answered, or `cache` / `static`. */
  servedBy: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  /** 1-based step of the ladder. */
  tier: Schema.Number,
  fallbackFrom: Schema.optional(Schema.String),
  attempts: Schema.Array(FallbackAttempt),
  costUsd: Schema.Number,
  latencyMs: Schema.Number,
  degraded: Schema.optional(Schema.String),
  requestId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitInfo),
  notes: Schema.optional(Schema.Array(Schema.String))
})

/**
 * @since 0.2.0
 * @category Models
 */
export type Served = typeof Served.Type

const decodeServed = Schema.decodeUnknownOption(Served)

const isPart = (u: ReadonlyArray<AiResponse.AnyPart> | AiResponse.AnyPart): u is AiResponse.AnyPart =>
  AiResponse.isPart(u)

/**
 * The {@link Served} record of a response's parts (or its finish part), when a resilient chain produced them.
 *
 * @since 0.2.0
 * @category Utils
 */
export const servedOf = (
  parts: ReadonlyArray<AiResponse.AnyPart> | AiResponse.AnyPart
): Option.Option<Served> => {
  const list: ReadonlyArray<AiResponse.AnyPart> = isPart(parts) ? [parts] : parts
  const finish = list.find((part): part is AiResponse.FinishPart => part.type === "finish")
  return finish === undefined ? Option.none() : decodeServed(finish.metadata[errors.MODULE])
}

/**
 * @since 0.2.0
 * @category Models
 */
export interface ProviderOptions {
  /** The provider's name in keys, metrics and results, e.g. `google`, `bedrock`. */
  readonly name: string
  /** The model the `LanguageModel` was built for (its id is fixed by its Layer: one tier per model). */
  readonly model: string
  /** What the model can take. Default: everything. */
  readonly capabilities?: Capabilities | undefined
  /** How prompts are counted for rate limits and context windows when the response reports no usage. Default generic. */
  readonly tokenizer?: TokenizerFamily | undefined
}

/**
 * The `LanguageModel` in the context as a provider of a resilient chain. Its `AiError`s become `HardFailure`s
 * (status, the body's error type and code, `Retry-After`); generation options it cannot take per call are left
 * out and named in the result's `notes`.
 *
 * @example
 * ```ts
 * const gemini = Ai.provider({ name: "google", model: "gemini-2.5-flash" }).pipe(
 *   Effect.provide(GoogleLanguageModel.model("gemini-2.5-flash")),
 *   Effect.provide(GoogleClient.layerConfig({ apiKey: Config.redacted("GOOGLE_API_KEY") })),
 *   Effect.provide(NodeHttpClient.layerUndici)
 * )
 * Resilient.layer({ chain: [{ provider: primary }, { provider: gemini }] })
 * ```
 *
 * @since 0.2.0
 * @category Constructors
 */
export const provider = (
  options: ProviderOptions
): Effect.Effect<LlmProviderService, never, LanguageModel.LanguageModel> =>
  Effect.map(LanguageModel.LanguageModel, (model) => tier.make(model, options))

/**
 * {@link provider} from a `LanguageModel` service at hand.
 *
 * @since 0.2.0
 * @category Constructors
 */
export const fromLanguageModel = (model: LanguageModel.Service, options: ProviderOptions): LlmProviderService =>
  tier.make(model, options)
