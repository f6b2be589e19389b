/**
 * Where the demo's three tiers send their requests: the embedded emulator (default: no keys, no network), or the
 * real OpenAI and Anthropic APIs (`--live`). Both give the same three provider services; only the fault injection
 * differs — over real HTTP from the emulator, or inside the SDKs' `fetch` in live mode, so that no real provider
 * is hammered to produce a 429.
 */
import AnthropicClient from "@anthropic-ai/sdk"
import type { ChatCompletionRequest, FixtureResponse } from "@copilotkit/aimock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import OpenAI from "openai"
import type { Service as LlmProvider } from "../../LlmProvider.js"
import * as Anthropic from "../../providers/Anthropic.js"
import * as OpenAi from "../../providers/OpenAi.js"
import * as OpenAiCompatible from "../../providers/OpenAiCompatible.js"
import type { Price } from "../../Resilient.js"
import * as ProviderEmulator from "../../testing/ProviderEmulator.js"
import { answerFor, type InjectedError, type OutageSwitch } from "./demoScenario.js"

/** The demo cannot start: missing keys, bad option values. Its message is meant for the terminal as is. */
export class DemoSetupError extends Data.TaggedError("DemoSetupError")<{ readonly message: string }> {}

export interface Backend {
  readonly mode: "emulator" | "live"
  /** One line: where the requests go. */
  readonly description: string
  readonly openAi: LlmProvider
  readonly anthropic: LlmProvider
  readonly local: LlmProvider
  /** Per-attempt timeouts: short against the emulator, realistic against real APIs. */
  readonly cloudTimeout: Duration.Duration
  readonly localTimeout: Duration.Duration
  readonly prices: {
    readonly openAi?: Price | undefined
    readonly anthropic?: Price | undefined
    readonly local: Price
  }
}

export class DemoBackend extends Context.Tag("effect-llm-resilience/cli/DemoBackend")<DemoBackend, Backend>() {}

export const MODELS = { openAi: "gpt-4.1-mini", anthropic: "claude-haiku-4-5", local: "llama3.1" } as const

// List prices per 1,000 tokens (USD) of the default models; a model set through the environment without an entry
// here is shown at no cost rather than at a guessed one.
const PRICES: Readonly<Record<string, Price>> = {
  "gpt-4.1-mini": { inputPer1k: 0.0004, outputPer1k: 0.0016 },
  "gpt-4.1": { inputPer1k: 0.002, outputPer1k: 0.008 },
  "claude-haiku-4-5": { inputPer1k: 0.001, outputPer1k: 0.005 },
  "claude-sonnet-4-6": { inputPer1k: 0.003, outputPer1k: 0.015 }
}

const FREE: Price = { inputPer1k: 0, outputPer1k: 0 }

// The emulator answers at once; these server-side delays give each provider a recognisable latency profile.
const LATENCY = {
  openAi: [35, 65],
  anthropic: [50, 90],
  local: [70, 130],
  error: [5, 15]
} as const satisfies Record<string, readonly [number, number]>

const between = ([min, max]: readonly [number, number]) => min + Math.random() * (max - min)

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const textOf = (content: ChatCompletionRequest["messages"][number]["content"]): string =>
  typeof content === "string"
    ? content
    : content === null
    ? ""
    : content.map((part) => ("text" in part && typeof part.text === "string" ? part.text : "")).join("")

const lastUserText = (request: ChatCompletionRequest): string => {
  const user = request.messages.filter((message) => message.role === "user").at(-1)
  return user === undefined ? "" : textOf(user.content)
}

const tokensOf = (text: string) => Math.max(1, Math.round(text.length / 4))

/** An aimock response factory: the fault of the moment, or a canned answer, after a provider-like delay. */
const respond = (latency: readonly [number, number], fault: () => InjectedError | undefined) =>
async (
  request: ChatCompletionRequest
): Promise<FixtureResponse> => {
  // Decided on arrival, like a real outage that starts between two requests.
  const error = fault()
  await sleep(between(error === undefined ? latency : LATENCY.error))
  if (error !== undefined) {
    return {
      status: error.status,
      error: { message: error.message, type: error.type, ...(error.code !== undefined ? { code: error.code } : {}) },
      ...(error.retryAfterSeconds !== undefined ? { retryAfter: error.retryAfterSeconds } : {})
    }
  }
  const question = lastUserText(request)
  const answer = answerFor(question)
  const input = 12 + tokensOf(question)
  const output = tokensOf(answer)
  return {
    content: answer,
    usage: { prompt_tokens: input, completion_tokens: output, input_tokens: input, output_tokens: output }
  }
}

// The emulator accepts any key; the Redacted wrapper is what real keys travel in.
const EMULATOR_KEY = Redacted.make("demo-key-not-a-secret")

/** Starts aimock on 127.0.0.1 with one fixture per model, each reading the outage switch on every request. */
export const emulator = (outage: OutageSwitch): Layer.Layer<DemoBackend, DemoSetupError> =>
  Layer.scoped(
    DemoBackend,
    Effect.gen(function*() {
      const server = yield* ProviderEmulator.make
      server.mock.on({ model: MODELS.openAi }, respond(LATENCY.openAi, () => outage.openAi()))
      server.mock.on({ model: MODELS.anthropic }, respond(LATENCY.anthropic, () => outage.anthropic()))
      server.mock.on({ model: MODELS.local }, respond(LATENCY.local, () => undefined))
      const backend: Backend = {
        mode: "emulator",
        description: `embedded emulator (aimock) on ${server.anthropicBaseUrl}: real SDKs, real HTTP, no keys`,
        openAi: yield* OpenAi.make({
          model: MODELS.openAi,
          client: new OpenAI({
            apiKey: Redacted.value(EMULATOR_KEY),
            baseURL: server.openAiBaseUrl,
            maxRetries: 0,
            fetch: withoutStaticRateLimitHeaders
          })
        }),
        anthropic: yield* Anthropic.make({
          model: MODELS.anthropic,
          apiKey: EMULATOR_KEY,
          baseURL: server.anthropicBaseUrl
        }),
        // A local OpenAI-compatible server (Ollama, vLLM…) played by the same emulator under another model name.
        local: yield* OpenAiCompatible.make({ name: "local", model: MODELS.local, baseURL: server.openAiBaseUrl }),
        // Short next to real APIs' tens of seconds, yet 30 times the emulator's latency: a starved CI machine must
        // not time out healthy calls and trip breakers the script did not ask for.
        cloudTimeout: Duration.seconds(2),
        localTimeout: Duration.seconds(4),
        prices: { openAi: PRICES[MODELS.openAi], anthropic: PRICES[MODELS.anthropic], local: FREE }
      }
      return backend
    }).pipe(Effect.mapError((error) => new DemoSetupError({ message: `demo setup: ${error.message}` })))
  )

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/**
 * aimock answers every 429 with the same static `x-ratelimit-*` headers ("remaining 0", tokens reset in 6m0s), which
 * do not describe the scripted storm. The library reads a 429's rate-limit headers (they would hold the key for six
 * minutes), so the demo drops them: its 429 says only what the script means, Retry-After.
 */
const withoutStaticRateLimitHeaders: Fetch = async (input, init) => {
  const response = await fetch(input, init)
  if (response.status !== 429) return response
  const headers = new Headers(response.headers)
  const names: Array<string> = []
  headers.forEach((_value, name) => names.push(name))
  for (const name of names) if (name.startsWith("x-ratelimit-")) headers.delete(name)
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
}

/**
 * The SDK's `fetch`, answering the injected fault in the provider's wire format instead of sending the request.
 * The SDK parses it like any API error, so the library sees exactly what a real outage would give it.
 */
const injecting = (shape: "openai" | "anthropic", fault: () => InjectedError | undefined): Fetch => (input, init) => {
  const error = fault()
  if (error === undefined) return fetch(input, init)
  const body = shape === "openai"
    ? { error: { message: error.message, type: error.type, param: null, code: error.code ?? null } }
    : { type: "error", error: { type: error.type, message: error.message } }
  const headers: Record<string, string> = { "content-type": "application/json" }
  if (error.retryAfterSeconds !== undefined) headers["retry-after"] = String(error.retryAfterSeconds)
  return Promise.resolve(new Response(JSON.stringify(body), { status: error.status, headers }))
}

const present = (key: Option.Option<Redacted.Redacted<string>>) =>
  Option.filter(key, (value) => Redacted.value(value).trim() !== "")

/**
 * The real APIs, keys read with `Config.redacted` (never printed). The local tier is `LOCAL_LLM_BASE_URL` when set,
 * else the embedded emulator standing in for a local model.
 */
export const live = (outage: OutageSwitch): Layer.Layer<DemoBackend, DemoSetupError> =>
  Layer.scoped(
    DemoBackend,
    Effect.gen(function*() {
      const env = yield* Config.all({
        openAiKey: Config.option(Config.redacted("OPENAI_API_KEY")),
        anthropicKey: Config.option(Config.redacted("ANTHROPIC_API_KEY")),
        openAiModel: Config.withDefault(Config.string("OPENAI_MODEL"), MODELS.openAi),
        anthropicModel: Config.withDefault(Config.string("ANTHROPIC_MODEL"), MODELS.anthropic),
        localBaseUrl: Config.option(Config.string("LOCAL_LLM_BASE_URL")),
        localModel: Config.withDefault(Config.string("LOCAL_LLM_MODEL"), MODELS.local)
      }).pipe(Effect.mapError((error) => new DemoSetupError({ message: `demo --live: ${error}` })))
      const openAiKey = present(env.openAiKey)
      const anthropicKey = present(env.anthropicKey)
      if (Option.isNone(openAiKey) || Option.isNone(anthropicKey)) {
        const missing = [
          ...(Option.isNone(openAiKey) ? ["OPENAI_API_KEY"] : []),
          ...(Option.isNone(anthropicKey) ? ["ANTHROPIC_API_KEY"] : [])
        ]
        return yield* new DemoSetupError({
          message: `demo --live sends real requests and needs OPENAI_API_KEY and ANTHROPIC_API_KEY in the environment `
            + `(missing: ${missing.join(", ")}). Without --live the demo runs against the embedded emulator.`
        })
      }
      const openAiClient = new OpenAI({
        apiKey: Redacted.value(openAiKey.value),
        maxRetries: 0,
        fetch: injecting("openai", () => outage.openAi())
      })
      const anthropicClient = new AnthropicClient({
        apiKey: Redacted.value(anthropicKey.value),
        maxRetries: 0,
        fetch: injecting("anthropic", () => outage.anthropic())
      })
      let local: LlmProvider
      let localDescription: string
      if (Option.isSome(env.localBaseUrl)) {
        local = yield* OpenAiCompatible.make({ name: "local", model: env.localModel, baseURL: env.localBaseUrl.value })
        localDescription = `local model ${env.localModel} at ${env.localBaseUrl.value}`
      } else {
        const server = yield* ProviderEmulator.make
        server.mock.on({ model: env.localModel }, respond(LATENCY.local, () => undefined))
        local = yield* OpenAiCompatible.make({ name: "local", model: env.localModel, baseURL: server.openAiBaseUrl })
        localDescription = "the embedded emulator as the local model (set LOCAL_LLM_BASE_URL for a real one)"
      }
      const backend: Backend = {
        mode: "live",
        description: `the real OpenAI and Anthropic APIs (outage injected client-side), ${localDescription}`,
        openAi: yield* OpenAi.make({ model: env.openAiModel, client: openAiClient }),
        anthropic: yield* Anthropic.make({ model: env.anthropicModel, client: anthropicClient }),
        local,
        cloudTimeout: Duration.seconds(20),
        localTimeout: Duration.seconds(30),
        prices: { openAi: PRICES[env.openAiModel], anthropic: PRICES[env.anthropicModel], local: FREE }
      }
      return backend
    }).pipe(
      Effect.catchTag("InvalidOptions", (error) => new DemoSetupError({ message: `demo --live: ${error.message}` }))
    )
  )
