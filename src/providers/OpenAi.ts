/**
 * OpenAI chat completions over the official `openai` SDK.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type OpenAI from "openai"
import * as openAiChat from "../internal/openAiChat.js"
import * as validate from "../internal/options.js"
import * as sdk from "../internal/sdk.js"
import type { InvalidOptions } from "../LlmError.js"
import { allCapabilities, LlmProvider, type Service } from "../LlmProvider.js"

/**
 * Either an `apiKey` (the client is built here) or a pre-built `client`. The SDK's own retries are always off:
 * every request is sent with `maxRetries: 0`, because retry belongs to this library.
 *
 * @since 0.1.0
 * @category Models
 */
export type Options =
  & {
    readonly model: string
    /** Defaults to `openai`; breakers and limiters are keyed by `name:model`. */
    readonly name?: string | undefined
    /**
     * Per-attempt timeout of the whole response, body and stream included; a request's own `timeout` wins. Default:
     * none (the SDK's 10 minutes for the headers).
     */
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
      readonly organization?: string | undefined
      readonly project?: string | undefined
      readonly defaultHeaders?: Record<string, string> | undefined
    }
    | { readonly client: OpenAI }
  )

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, InvalidOptions> =>
  Effect.gen(function*() {
    yield* validate.nonBlank("model", options.model)
    yield* validate.nonBlank("name", options.name)
    const timeout = yield* validate.positiveDuration("timeout", options.timeout)
    const connectTimeout = yield* validate.positiveDuration("connectTimeout", options.connectTimeout)
    if ("apiKey" in options) yield* validate.url("baseURL", options.baseURL)
    const OpenAI = yield* sdk.openAi
    const client = "client" in options ? options.client : new OpenAI({
      apiKey: Redacted.value(yield* validate.secret("apiKey", options.apiKey)),
      maxRetries: 0,
      ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
      ...(options.organization !== undefined ? { organization: options.organization } : {}),
      ...(options.project !== undefined ? { project: options.project } : {}),
      ...(options.defaultHeaders !== undefined ? { defaultHeaders: options.defaultHeaders } : {})
    })
    return openAiChat.make({
      name: options.name ?? "openai",
      model: options.model,
      client,
      sdk: OpenAI,
      timeout,
      connectTimeout,
      tokenizer: "openai",
      takesOpenAiOptions: true,
      capabilities: allCapabilities
    })
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LlmProvider, InvalidOptions> =>
  Layer.effect(LlmProvider, make(options))

/**
 * Reads `OPENAI_API_KEY` (redacted), `OPENAI_MODEL` (default `gpt-4.1-mini`) and the optional `OPENAI_BASE_URL`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig: Layer.Layer<LlmProvider, InvalidOptions | ConfigError.ConfigError> = Layer
  .effect(
    LlmProvider,
    Effect.flatMap(
      Config.all({
        apiKey: Config.redacted("OPENAI_API_KEY"),
        model: Config.withDefault(Config.string("OPENAI_MODEL"), "gpt-4.1-mini"),
        baseURL: Config.option(Config.string("OPENAI_BASE_URL"))
      }),
      ({ apiKey, baseURL, model }) =>
        make({ apiKey, model, ...(baseURL._tag === "Some" ? { baseURL: baseURL.value } : {}) })
    )
  )
