/**
 * Any OpenAI-compatible chat endpoint — vLLM, Ollama, llama.cpp, LM Studio, a gateway — over the `openai` SDK.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as openAiChat from "../internal/openAiChat.js"
import * as validate from "../internal/options.js"
import * as sdk from "../internal/sdk.js"
import { InvalidOptions } from "../LlmError.js"
import { type Capabilities, LlmProvider, type Service } from "../LlmProvider.js"

/**
 * `name` and `baseURL` are required; the API key is optional because local servers rarely check one.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly name: string
  readonly model: string
  readonly baseURL: string
  /** The key, or the `Config` to read it from. */
  readonly apiKey?: Redacted.Redacted<string> | Config.Config<Redacted.Redacted<string>> | undefined
  /** Per-attempt timeout of the whole response, body and stream included; local models often need a longer one. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The wait for the response headers only (connection, TLS, queueing): a refused or black-holed host fails over in
   * seconds instead of after `timeout`. A request's own `connectTimeout` wins. Default: `timeout`.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly defaultHeaders?: Record<string, string> | undefined
  /**
   * What the server and model take. Default: tools, but no images and no JSON-schema outputs (many local models are
   * text-only, and servers differ on `response_format`): a resilient chain skips this provider for such requests.
   */
  readonly capabilities?: Partial<Capabilities> | undefined
}

/**
 * The capabilities an OpenAI-compatible provider has unless told otherwise.
 *
 * @since 0.2.0
 * @category Constants
 */
export const defaultCapabilities: Capabilities = { tools: true, images: false, jsonSchema: false }

// The SDK refuses to start without some key; local servers ignore the Authorization header.
const NO_KEY = "no-key"

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, InvalidOptions> =>
  Effect.gen(function*() {
    if (options.name === undefined) return yield* new InvalidOptions({ field: "name", reason: "is required" })
    yield* validate.nonBlank("name", options.name)
    yield* validate.nonBlank("model", options.model)
    if (options.baseURL === undefined) return yield* new InvalidOptions({ field: "baseURL", reason: "is required" })
    yield* validate.url("baseURL", options.baseURL)
    const timeout = yield* validate.positiveDuration("timeout", options.timeout)
    const connectTimeout = yield* validate.positiveDuration("connectTimeout", options.connectTimeout)
    const apiKey = options.apiKey === undefined ? undefined : yield* validate.secret("apiKey", options.apiKey)
    const OpenAI = yield* sdk.openAi
    const client = new OpenAI({
      apiKey: apiKey !== undefined ? Redacted.value(apiKey) : NO_KEY,
      baseURL: options.baseURL,
      maxRetries: 0,
      ...(options.defaultHeaders !== undefined ? { defaultHeaders: options.defaultHeaders } : {})
    })
    // Unknown model families are counted with cl100k, documented as an estimate.
    return openAiChat.make({
      name: options.name,
      model: options.model,
      client,
      sdk: OpenAI,
      timeout,
      connectTimeout,
      tokenizer: "generic",
      // `providerOptions.openai` may hold fields a local server refuses: left out, with a note.
      takesOpenAiOptions: false,
      capabilities: { ...defaultCapabilities, ...options.capabilities }
    })
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LlmProvider, InvalidOptions> =>
  Layer.effect(LlmProvider, make(options))
