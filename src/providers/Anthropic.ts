/**
 * Anthropic's Messages API over the official `@anthropic-ai/sdk`.
 *
 * System messages go to the `system` field. HTTP 529 and an `overloaded_error` event inside an HTTP 200 stream both
 * become `HardFailure` with reason `Overloaded`.
 *
 * @since 0.1.0
 */
import type AnthropicClient from "@anthropic-ai/sdk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as internal from "../internal/anthropic.js"
import * as validate from "../internal/options.js"
import * as sdk from "../internal/sdk.js"
import type { InvalidOptions } from "../LlmError.js"
import { LlmProvider, type Service } from "../LlmProvider.js"

/**
 * Either an `apiKey` (the client is built here) or a pre-built `client`. Every request is sent with
 * `maxRetries: 0`: retry belongs to this library.
 *
 * @since 0.1.0
 * @category Models
 */
export type Options =
  & {
    readonly model: string
    /** Defaults to `anthropic`. */
    readonly name?: string | undefined
    /** `max_tokens` is required by the Messages API; used when a request sets no `maxTokens`. Default 4096. */
    readonly defaultMaxTokens?: number | undefined
    /** Per-attempt timeout of the whole response, body and stream included; a request's own `timeout` wins. */
    readonly timeout?: Duration.DurationInput | undefined
    /**
     * The wait for the response headers only (connection, TLS, queueing): a refused or black-holed host fails over in
     * seconds instead of after `timeout`. A request's own `connectTimeout` wins. Default: `timeout`.
     */
    readonly connectTimeout?: Duration.DurationInput | undefined
  }
  & (
    | {
      /** The key, or the `Config` to read it from: `Config.redacted("OPENAI_API_KEY")`. */
      readonly apiKey: Redacted.Redacted<string> | Config.Config<Redacted.Redacted<string>>
      readonly baseURL?: string | undefined
      readonly defaultHeaders?: Record<string, string> | undefined
    }
    | { readonly client: AnthropicClient }
  )

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, InvalidOptions> =>
  Effect.gen(function*() {
    yield* validate.nonBlank("model", options.model)
    yield* validate.nonBlank("name", options.name)
    yield* validate.positiveInteger("defaultMaxTokens", options.defaultMaxTokens)
    const timeout = yield* validate.positiveDuration("timeout", options.timeout)
    const connectTimeout = yield* validate.positiveDuration("connectTimeout", options.connectTimeout)
    if ("apiKey" in options) yield* validate.url("baseURL", options.baseURL)
    const Sdk = yield* sdk.anthropic
    const client = "client" in options ? options.client : new Sdk({
      apiKey: Redacted.value(yield* validate.secret("apiKey", options.apiKey)),
      maxRetries: 0,
      ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
      ...(options.defaultHeaders !== undefined ? { defaultHeaders: options.defaultHeaders } : {})
    })
    return internal.make({
      name: options.name ?? "anthropic",
      model: options.model,
      client,
      sdk: Sdk,
      timeout,
      connectTimeout,
      defaultMaxTokens: options.defaultMaxTokens ?? 4096
    })
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LlmProvider, InvalidOptions> =>
  Layer.effect(LlmProvider, make(options))

/**
 * Reads `ANTHROPIC_API_KEY` (redacted), `ANTHROPIC_MODEL` (default `claude-sonnet-4-6`) and the optional
 * `ANTHROPIC_BASE_URL`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig: Layer.Layer<LlmProvider, InvalidOptions | ConfigError.ConfigError> = Layer.effect(
  LlmProvider,
  Effect.flatMap(
    Config.all({
      apiKey: Config.redacted("ANTHROPIC_API_KEY"),
      model: Config.withDefault(Config.string("ANTHROPIC_MODEL"), "claude-sonnet-4-6"),
      baseURL: Config.option(Config.string("ANTHROPIC_BASE_URL"))
    }),
    ({ apiKey, baseURL, model }) =>
      make({ apiKey, model, ...(baseURL._tag === "Some" ? { baseURL: baseURL.value } : {}) })
  )
)
