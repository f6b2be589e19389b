/**
 * Timeouts cover the whole response, over real HTTP, for both SDKs: a server that sends the headers and then stalls
 * the body fails the call with a typed `Timeout` and the socket is closed; a separate `connectTimeout` bounds the wait
 * for the headers.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { getLocal, type Mockttp } from "mockttp"
import { PassThrough } from "node:stream"
import * as ResilienceConfig from "../../src/Config.js"
import type { HardFailure, InvalidOptions, InvalidRequest } from "../../src/LlmError.js"
import type { Service as LlmProvider } from "../../src/LlmProvider.js"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Resilient from "../../src/Resilient.js"
import { Forks } from "../support/forks.js"

let server: Mockttp
let counter = 0
const aborted: Array<string> = []
const stalls: Array<PassThrough> = []
beforeAll(async () => {
  server = getLocal()
  await server.start()
  await server.on("abort", (request) => aborted.push(request.path))
})
afterAll(async () => {
  for (const body of stalls) body.end()
  await server.stop()
})

type Sdk = "openai" | "anthropic"

const route = (sdk: Sdk) => {
  const prefix = `/t${++counter}`
  return sdk === "openai"
    ? { baseURL: `http://127.0.0.1:${server.port}${prefix}/v1`, path: `${prefix}/v1/chat/completions` }
    : { baseURL: `http://127.0.0.1:${server.port}${prefix}`, path: `${prefix}/v1/messages` }
}

const provider = (
  sdk: Sdk,
  baseURL: string,
  timeouts: { readonly timeout?: Duration.DurationInput; readonly connectTimeout?: Duration.DurationInput }
): Effect.Effect<LlmProvider, InvalidOptions> =>
  sdk === "openai"
    ? OpenAi.make({ model: "gpt-4.1", apiKey: Redacted.make("sk-test"), baseURL, ...timeouts })
    : Anthropic.make({ model: "claude-sonnet-4-6", apiKey: Redacted.make("sk-test"), baseURL, ...timeouts })

/** Headers, then the start of a body that never ends. */
const stallAfterHeaders = (path: string, stream: boolean, sdk: Sdk) => {
  const body = new PassThrough()
  stalls.push(body)
  body.write(
    stream
      ? sdk === "openai"
        ? `data: ${
          JSON.stringify({
            id: "c",
            object: "chat.completion.chunk",
            created: 1,
            model: "gpt-4.1",
            choices: [{ index: 0, delta: { content: "par" }, finish_reason: null }]
          })
        }\n\n`
        : `event: message_start\ndata: ${
          JSON.stringify({
            type: "message_start",
            message: {
              id: "m",
              type: "message",
              role: "assistant",
              model: "claude-sonnet-4-6",
              content: [],
              usage: { input_tokens: 1, output_tokens: 0 }
            }
          })
        }\n\n`
      : "{\"id\": \"chatcmpl-1\", \"choices\": ["
  )
  return server.forPost(path).thenStream(200, body, {
    "content-type": stream ? "text/event-stream" : "application/json"
  })
}

const ask = { messages: [{ role: "user" as const, content: "hello" }] }

const expectTimeout = (error: HardFailure | InvalidRequest) => {
  expect(error._tag).toBe("HardFailure")
  if (error._tag === "HardFailure") expect(error.reason).toBe("Timeout")
}

const waitForAbort = (path: string) =>
  Effect.promise(async () => {
    for (let i = 0; i < 400 && !aborted.includes(path); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    return aborted.includes(path)
  })

describe.each(["openai", "anthropic"] as const)("the timeout bounds the whole response (%s)", (sdk) => {
  it.live("complete: headers then a stalled body fail with Timeout, and the socket is closed", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => stallAfterHeaders(path, false, sdk))
      const llm = yield* Effect.orDie(provider(sdk, baseURL, { timeout: "300 millis" }))
      const error = yield* Effect.flip(llm.complete(ask))
      expectTimeout(error)
      expect(yield* waitForAbort(path)).toBe(true)
    }))

  it.live("a request's own timeout bounds the body too", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => stallAfterHeaders(path, false, sdk))
      const llm = yield* Effect.orDie(provider(sdk, baseURL, {}))
      expectTimeout(yield* Effect.flip(llm.complete({ ...ask, timeout: "300 millis" })))
    }))

  it.live("stream: headers and a first event, then a stall, fail with Timeout, and the socket is closed", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => stallAfterHeaders(path, true, sdk))
      const llm = yield* Effect.orDie(provider(sdk, baseURL, { timeout: "300 millis" }))
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(ask)))
      expectTimeout(error)
      expect(yield* waitForAbort(path)).toBe(true)
    }))

  it.live("connectTimeout bounds the wait for the headers, apart from the long whole-response timeout", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => server.forPost(path).thenTimeout())
      const llm = yield* Effect.orDie(provider(sdk, baseURL, { timeout: "10 minutes", connectTimeout: "200 millis" }))
      const started = Date.now()
      expectTimeout(yield* Effect.flip(llm.complete(ask)))
      // Not the 10 minutes: the header wait ended the call.
      expect(Date.now() - started).toBeLessThan(5_000)
    }))
})

describe.each(["openai", "anthropic"] as const)("a tier's per-attempt timeout reaches the SDK call (%s)", (sdk) => {
  // The built-in providers take the tier's deadline into their SDK request (no fiber per call): the call still fails
  // with the attempt's typed Timeout, and the request is aborted, whether the body stalls or nothing ever answers.
  const attemptTimedOut = (error: unknown) => {
    expect(error).toMatchObject({ _tag: "FallbackExhausted" })
    const attempts =
      (error as { readonly attempts: ReadonlyArray<{ readonly reason?: string; readonly code?: string }> })
        .attempts
    expect(attempts.map((attempt) => [attempt.reason, attempt.code])).toEqual([["Timeout", "attempt_timeout"]])
  }

  it.scopedLive("headers then a stalled body: typed Timeout at the tier timeout, and the socket is closed", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => stallAfterHeaders(path, false, sdk))
      const client = yield* Resilient.make({
        chain: [{ provider: provider(sdk, baseURL, {}), timeout: "300 millis", retry: false }]
      })
      const started = Date.now()
      attemptTimedOut(yield* Effect.flip(client.complete(ask)))
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(yield* waitForAbort(path)).toBe(true)
    }))

  it.scopedLive("a server that never answers: typed Timeout at the tier timeout, and the request is aborted", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => server.forPost(path).thenTimeout())
      const client = yield* Resilient.make({
        chain: [{ provider: provider(sdk, baseURL, { timeout: "10 minutes" }), timeout: "300 millis", retry: false }]
      })
      const started = Date.now()
      attemptTimedOut(yield* Effect.flip(client.complete(ask)))
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(yield* waitForAbort(path)).toBe(true)
    }))

  it.scopedLive("an answer in time: served, and the tier timeout forks no fiber per call", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() =>
        server.forPost(path).always().thenJson(
          200,
          sdk === "openai"
            ? {
              id: "c",
              object: "chat.completion",
              created: 1,
              model: "gpt-4.1",
              choices: [{ index: 0, message: { role: "assistant", content: "in time" }, finish_reason: "stop" }],
              usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }
            }
            : {
              id: "m",
              type: "message",
              role: "assistant",
              model: "claude-sonnet-4-6",
              content: [{ type: "text", text: "in time" }],
              stop_reason: "end_turn",
              usage: { input_tokens: 1, output_tokens: 2 }
            }
        )
      )
      const forksOf = (timeout: Duration.DurationInput | undefined) =>
        Effect.gen(function*() {
          const client = yield* Resilient.make({
            chain: [{ provider: provider(sdk, baseURL, {}), ...(timeout === undefined ? {} : { timeout }) }]
          })
          const forks = new Forks()
          const results = yield* Effect.supervised(
            Effect.forEach([1, 2, 3], () => client.complete(ask)),
            forks
          )
          expect(results.map((result) => result.content)).toEqual(["in time", "in time", "in time"])
          return forks.count
        })
      const untimed = yield* forksOf(undefined)
      // At most the shared timer itself, started once.
      expect(yield* forksOf("30 seconds")).toBeLessThanOrEqual(untimed + 1)
    }))

  it.scopedLive("a provider timeout shorter than the tier's still ends the call with its own code", () =>
    Effect.gen(function*() {
      const { baseURL, path } = route(sdk)
      yield* Effect.promise(() => stallAfterHeaders(path, false, sdk))
      const client = yield* Resilient.make({
        chain: [{ provider: provider(sdk, baseURL, { timeout: "200 millis" }), timeout: "1 minute", retry: false }]
      })
      const error = yield* Effect.flip(client.complete(ask))
      expect(error).toMatchObject({ _tag: "FallbackExhausted" })
      const attempts =
        (error as { readonly attempts: ReadonlyArray<{ readonly reason?: string; readonly code?: string }> })
          .attempts
      expect(attempts.map((attempt) => [attempt.reason, attempt.code])).toEqual([["Timeout", "response_timeout"]])
    }))
})

describe("timeouts too long for a timer are refused", () => {
  it.effect("a request timeout of 2^31 ms is InvalidRequest timeout, and a provider's is InvalidOptions", () =>
    Effect.gen(function*() {
      const llm = yield* Effect.orDie(provider("openai", "http://127.0.0.1:9/v1", {}))
      const error = yield* Effect.flip(llm.complete({ ...ask, timeout: 2 ** 31 }))
      expect(error._tag).toBe("InvalidRequest")
      if (error._tag === "InvalidRequest") expect(error.field).toBe("timeout")
      const options = yield* Effect.flip(provider("anthropic", "http://127.0.0.1:9", { connectTimeout: "30 days" }))
      expect(options).toMatchObject({ _tag: "InvalidOptions", field: "connectTimeout" })
    }))
})

describe("a tier's connectTimeout", () => {
  it.scopedLive("a black-holed primary fails over after its connectTimeout, not after its long timeout", () =>
    Effect.gen(function*() {
      const hole = route("openai")
      yield* Effect.promise(() => server.forPost(hole.path).thenTimeout())
      const good = route("anthropic")
      yield* Effect.promise(() =>
        server.forPost(good.path).thenJson(200, {
          id: "m",
          type: "message",
          role: "assistant",
          model: "claude-sonnet-4-6",
          content: [{ type: "text", text: "from the backup" }],
          stop_reason: "end_turn",
          usage: { input_tokens: 1, output_tokens: 3 }
        })
      )
      const client = yield* Resilient.make({
        chain: [
          { provider: provider("openai", hole.baseURL, {}), connectTimeout: "200 millis", retry: false },
          { provider: provider("anthropic", good.baseURL, {}) }
        ]
      })
      const started = Date.now()
      const result = yield* client.complete(ask)
      expect(result.content).toBe("from the backup")
      expect(result.attempts[0]?.reason).toBe("Timeout")
      expect(Date.now() - started).toBeLessThan(5_000)
    }))

  it.effect("the config file's connect_timeout reaches the tier", () =>
    Effect.gen(function*() {
      const config = yield* ResilienceConfig.fromString(
        "models: [{ id: a, provider: openai-compatible, name: local, base_url: 'http://127.0.0.1:9/v1', model: m, connect_timeout: 2 seconds, timeout: 5 minutes }]\nchain: [a]\n",
        "yaml"
      )
      expect(config.chain[0].connectTimeout).toEqual(Duration.seconds(2))
    }))
})
