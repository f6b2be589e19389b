/**
 * No API key and no prompt text in any failure: every failure kind, through both SDKs over real HTTP, with a key
 * holding CR/LF (which Node's fetch quotes in its error) and a URL with `user:key@`, is printed every way a user
 * prints an error — `util.inspect`, `Cause.pretty`, `JSON.stringify`, Effect's default logger, `layerJsonLogger`.
 */
import AnthropicSdk from "@anthropic-ai/sdk"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { getLocal, type Mockttp } from "mockttp"
import { inspect } from "node:util"
import OpenAISdk from "openai"
import { vi } from "vitest"
import type { Service as LlmProvider } from "../src/LlmProvider.js"
import * as Observability from "../src/Observability.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as Redis from "../src/Redis.js"
import * as Resilient from "../src/Resilient.js"

const KEY = "sk-live-KEYMARK-7f3"
const CRLF_KEY = `${KEY}\r\nX-Injected: 1`
const PROMPT = "PROMPTMARK-do-not-print"
const JSON_HEADERS = { "content-type": "application/json" }
const SSE_HEADERS = { "content-type": "text/event-stream" }

let server: Mockttp
let counter = 0
beforeAll(async () => {
  server = getLocal()
  await server.start()
})
afterAll(() => server.stop())

type Sdk = "openai" | "anthropic"

const route = (sdk: Sdk) => {
  const prefix = `/s${++counter}`
  return sdk === "openai"
    ? { baseURL: `http://127.0.0.1:${server.port}${prefix}/v1`, path: `${prefix}/v1/chat/completions` }
    : { baseURL: `http://127.0.0.1:${server.port}${prefix}`, path: `${prefix}/v1/messages` }
}

// An API error body that quotes the key and the prompt, as providers' messages do.
const echoing = (sdk: Sdk, type: string) =>
  JSON.stringify(
    sdk === "openai"
      ? { error: { message: `Incorrect API key ${KEY} for prompt ${PROMPT}`, type, code: type } }
      : { type: "error", error: { type, message: `Incorrect API key ${KEY} for prompt ${PROMPT}` } }
  )

interface Scenario {
  readonly name: string
  /** Serves the failure on `path`; `undefined` for a failure that needs no server. */
  readonly serve?: (path: string, sdk: Sdk) => Promise<unknown>
  /** Builds the provider; by default over a client with the CR/LF-free key. */
  readonly provider?: (baseURL: string, sdk: Sdk) => Effect.Effect<LlmProvider, unknown>
  readonly stream?: boolean
}

const byKey = (key: string) => (baseURL: string, sdk: Sdk) =>
  sdk === "openai"
    ? OpenAi.make({ model: "gpt-4.1", client: new OpenAISdk({ apiKey: key, baseURL, maxRetries: 0 }) })
    : Anthropic.make({ model: "claude-sonnet-4-6", client: new AnthropicSdk({ apiKey: key, baseURL, maxRetries: 0 }) })

const scenarios: ReadonlyArray<Scenario> = [
  ...[400, 401, 403, 404, 413, 422, 429, 500, 503, 529].map((status): Scenario => ({
    name: `HTTP ${status} quoting the key and prompt`,
    serve: (path, sdk) =>
      server.forPost(path).thenReply(
        status,
        echoing(sdk, status === 429 ? "rate_limit_error" : "invalid_request_error"),
        JSON_HEADERS
      )
  })),
  { name: "a connection reset", serve: (path) => server.forPost(path).thenResetConnection() },
  { name: "a connection closed", serve: (path) => server.forPost(path).thenCloseConnection() },
  {
    name: "a malformed body quoting the prompt",
    serve: (path) => server.forPost(path).thenReply(200, `{"echo": "${PROMPT} ${KEY}`, JSON_HEADERS)
  },
  {
    name: "a stream cut off, with an error event quoting the key",
    stream: true,
    serve: (path, sdk) =>
      server.forPost(path).thenReply(
        200,
        sdk === "openai"
          ? `data: ${echoing(sdk, "server_error")}\n\n`
          : `event: error\ndata: ${echoing(sdk, "overloaded_error")}\n\n`,
        SSE_HEADERS
      )
  },
  { name: "a key with CR/LF (fetch quotes the header)", provider: byKey(CRLF_KEY) },
  {
    name: "a base URL with user:key@",
    provider: (baseURL, sdk) => byKey(KEY)(baseURL.replace("http://", `http://user:${KEY}@`), sdk)
  },
  {
    name: "a refused connection",
    provider: (_, sdk) => byKey(KEY)(sdk === "openai" ? "http://127.0.0.1:9/v1" : "http://127.0.0.1:9", sdk)
  }
]

const printed = (error: unknown): ReadonlyArray<string> => [
  inspect(error, { depth: 20, showHidden: true }),
  Cause.pretty(Cause.fail(error)),
  JSON.stringify(error),
  String(error)
]

const expectClean = (texts: ReadonlyArray<string>) => {
  for (const text of texts) {
    expect(text).not.toContain(KEY)
    expect(text).not.toContain(PROMPT)
  }
}

/** Every line written to the console while `effect` runs. */
const consoleLines = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const lines: Array<string> = []
      const capture = (...args: ReadonlyArray<unknown>) => {
        lines.push(args.map((arg) => typeof arg === "string" ? arg : inspect(arg, { depth: 20 })).join(" "))
      }
      return {
        lines,
        spies: [
          vi.spyOn(console, "log").mockImplementation(capture),
          vi.spyOn(console, "error").mockImplementation(capture)
        ]
      }
    }),
    ({ lines }) => Effect.as(Effect.exit(effect), lines),
    ({ spies }) => Effect.sync(() => spies.forEach((spy) => spy.mockRestore()))
  )

describe.each(["openai", "anthropic"] as const)("no key, no prompt in any failure (%s)", (sdk) => {
  for (const scenario of scenarios) {
    it.scopedLive(scenario.name, () =>
      Effect.gen(function*() {
        const { baseURL, path } = route(sdk)
        if (scenario.serve !== undefined) yield* Effect.promise(() => scenario.serve!(path, sdk))
        const provider = yield* Effect.orDie((scenario.provider ?? byKey(KEY))(baseURL, sdk))
        const request = { messages: [{ role: "user" as const, content: PROMPT }], timeout: "5 seconds" }
        const error = scenario.stream === true
          ? yield* Effect.flip(Stream.runDrain(provider.stream(request)))
          : yield* Effect.flip(provider.complete(request))
        expect(error._tag).toBe("HardFailure")
        expectClean(printed(error))
        // Through a chain, under Effect's default logger and under layerJsonLogger: the request event, and a log of
        // the failure's cause as an application would write it.
        const client = yield* Resilient.make({ chain: [{ provider, retry: false, breaker: false }] })
        const run = Effect.flip(client.complete(request)).pipe(
          Effect.tap((failure) => Effect.logError("call failed", Cause.fail(failure)))
        )
        const plain = yield* consoleLines(run)
        const json = yield* consoleLines(run.pipe(Effect.provide(Observability.layerJsonLogger)))
        expect(plain.length).toBeGreaterThan(0)
        expect(json.length).toBeGreaterThan(0)
        expectClean([...plain, ...json])
      }))
  }
})

describe("constructors refuse what would leak, without echoing it", () => {
  const cases = [
    ["an empty key", () => OpenAi.make({ model: "m", apiKey: Redacted.make("") }), "apiKey"],
    ["an empty key (Anthropic)", () => Anthropic.make({ model: "m", apiKey: Redacted.make("  ") }), "apiKey"],
    ["a key with CR/LF", () => OpenAi.make({ model: "m", apiKey: Redacted.make(CRLF_KEY) }), "apiKey"],
    [
      "a key with NUL (Anthropic)",
      () => Anthropic.make({ model: "m", apiKey: Redacted.make(`${KEY}\u0000`) }),
      "apiKey"
    ],
    [
      "a base URL with credentials",
      () =>
        OpenAi.make({ model: "m", apiKey: Redacted.make("sk-x"), baseURL: `https://user:${KEY}@api.example.com/v1` }),
      "baseURL"
    ],
    [
      "a base URL with credentials (Anthropic)",
      () => Anthropic.make({ model: "m", apiKey: Redacted.make("sk-x"), baseURL: `https://${KEY}@api.example.com` }),
      "baseURL"
    ]
  ] as const
  for (const [name, make, field] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(make())
        expect(error._tag).toBe("InvalidOptions")
        expect(error.field).toBe(field)
        expectClean(printed(error))
      }))
  }

  it.effect("Redis.layer with a URL that is not a redis:// URL", () =>
    Effect.gen(function*() {
      for (const url of ["not a url", `http://user:${KEY}@example.com`]) {
        const error = yield* Effect.flip(Layer.build(Redis.layer({ url })).pipe(Effect.scoped))
        expect(error._tag).toBe("InvalidOptions")
        expect(error.field).toBe("url")
        expectClean(printed(error))
      }
    }))
})
