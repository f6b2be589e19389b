/**
 * @effect/ai models as tiers, without a network: a LanguageModel built with `LanguageModel.make` answers or fails as
 * a provider would, and the tier classifies it (TestClock for the retries it drives).
 */
import * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as AiResponse from "@effect/ai/Response"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Ai from "../../src/Ai.js"
import type { HardFailure, InvalidRequest } from "../../src/LlmError.js"
import * as Resilient from "../../src/Resilient.js"

const request = {
  method: "POST" as const,
  url: "https://example.test/v1/generate",
  urlParams: [],
  hash: Option.none(),
  headers: {}
}

const httpError = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new AiError.HttpResponseError({
    module: "FakeModel",
    method: "generateText",
    reason: "StatusCode",
    request,
    response: { status, headers },
    body: JSON.stringify(body)
  })

const finish = (reason: AiResponse.FinishReason = "stop"): AiResponse.FinishPartEncoded => ({
  type: "finish",
  reason,
  usage: { inputTokens: 10, outputTokens: 2, totalTokens: 12 }
})

const fakeModel = (options: {
  readonly generate?: (call: number) => Effect.Effect<Array<AiResponse.PartEncoded>, AiError.AiError>
  readonly stream?: Stream.Stream<AiResponse.StreamPartEncoded, AiError.AiError>
}) => {
  let calls = 0
  return LanguageModel.make({
    generateText: () => options.generate?.(calls++) ?? Effect.succeed([]),
    streamText: () => options.stream ?? Stream.empty
  })
}

const ask = { messages: [{ role: "user" as const, content: "hi" }] }

const asHard = (error: HardFailure | InvalidRequest): HardFailure => {
  if (error._tag !== "HardFailure") throw new Error(`expected a HardFailure, got ${error._tag}`)
  return error
}

const failureFor = (error: AiError.AiError) =>
  Effect.gen(function*() {
    const model = yield* fakeModel({ generate: () => Effect.fail(error) })
    const tier = Ai.fromLanguageModel(model, { name: "fake", model: "f-1" })
    return asHard(yield* Effect.flip(tier.complete(ask)))
  })

describe("an @effect/ai model as a tier: its AiErrors in the taxonomy", () => {
  it.effect("status, the body's error type and code, Retry-After and the request id are read", () =>
    Effect.gen(function*() {
      const overloaded = yield* failureFor(
        httpError(529, { type: "error", error: { type: "overloaded_error", message: "busy" } }, {
          "Retry-After": "3",
          "request-id": "req_9"
        })
      )
      expect([overloaded.reason, overloaded.status, overloaded.retryable, overloaded.requestId]).toEqual([
        "Overloaded",
        529,
        true,
        "req_9"
      ])
      expect(overloaded.retryAfter !== undefined ? Duration.toMillis(overloaded.retryAfter) : undefined).toBe(3_000)

      const quota = yield* failureFor(httpError(429, { error: { code: "insufficient_quota", message: "pay up" } }))
      expect([quota.reason, quota.retryable]).toEqual(["QuotaExhausted", false])

      const context = yield* failureFor(
        httpError(400, { error: { code: 400, status: "INVALID_ARGUMENT", message: "prompt is too long: 2M tokens" } })
      )
      expect(context.reason).toBe("ContextLengthExceeded")

      const gemini = yield* failureFor(httpError(503, { error: { code: 503, status: "UNAVAILABLE", message: "x" } }))
      expect([gemini.reason, gemini.retryable]).toEqual(["Overloaded", true])
    }))

  it.effect("no prompt text from the error body is kept in the failure", () =>
    Effect.gen(function*() {
      const failure = yield* failureFor(
        httpError(400, { error: { type: "invalid_request_error", message: "SECRET PROMPT quoted back" } })
      )
      expect(failure.reason).toBe("BadRequest")
      expect(JSON.stringify(failure)).not.toContain("SECRET PROMPT")
      expect(failure.message).not.toContain("SECRET PROMPT")
    }))

  it.effect("transport, malformed input, malformed output and unknown errors", () =>
    Effect.gen(function*() {
      const transport = yield* failureFor(
        new AiError.HttpRequestError({ module: "FakeModel", method: "generateText", reason: "Transport", request })
      )
      expect([transport.reason, transport.retryable]).toEqual(["Connection", true])
      const input = yield* failureFor(new AiError.MalformedInput({ module: "FakeModel", method: "generateText" }))
      expect([input.reason, input.retryable]).toEqual(["BadRequest", false])
      const output = yield* failureFor(new AiError.MalformedOutput({ module: "FakeModel", method: "generateText" }))
      expect([output.reason, output.providerCode, output.retryable]).toEqual(["ServerError", "malformed_output", true])
      const unknown = yield* failureFor(new AiError.UnknownError({ module: "FakeModel", method: "generateText" }))
      expect([unknown.reason, unknown.retryable]).toEqual(["Unknown", false])
    }))

  it.effect("a content-filter finish is ContentFiltered; a request for another model is refused, naming model", () =>
    Effect.gen(function*() {
      const model = yield* fakeModel({
        generate: () => Effect.succeed([{ type: "text", text: "I can't" }, finish("content-filter")])
      })
      const tier = Ai.fromLanguageModel(model, { name: "fake", model: "f-1" })
      const filtered = asHard(yield* Effect.flip(tier.complete(ask)))
      expect([filtered.reason, filtered.partialContent]).toEqual(["ContentFiltered", "I can't"])
      const other = yield* Effect.flip(tier.complete({ ...ask, model: "f-2" }))
      expect(other._tag === "InvalidRequest" ? other.issues.map((issue) => issue.field) : []).toEqual(["model"])
    }))

  it.effect("a stream cut by a transport error keeps the text so far; one without a finish is incomplete", () =>
    Effect.gen(function*() {
      const deltas: Array<AiResponse.StreamPartEncoded> = [
        { type: "text-start", id: "t" },
        { type: "text-delta", id: "t", delta: "Hel" },
        { type: "text-delta", id: "t", delta: "lo" }
      ]
      const cut = yield* fakeModel({
        stream: Stream.concat(
          Stream.fromIterable(deltas),
          Stream.fail(
            new AiError.HttpRequestError({ module: "FakeModel", method: "streamText", reason: "Transport", request })
          )
        )
      })
      const cutTier = Ai.fromLanguageModel(cut, { name: "fake", model: "f-1" })
      const cutFailure = asHard(yield* Effect.flip(Stream.runDrain(cutTier.stream(ask))))
      expect([cutFailure.reason, cutFailure.partialContent]).toEqual(["Connection", "Hello"])

      const unfinished = yield* fakeModel({ stream: Stream.fromIterable(deltas) })
      const unfinishedTier = Ai.fromLanguageModel(unfinished, { name: "fake", model: "f-1" })
      const incomplete = asHard(yield* Effect.flip(Stream.runDrain(unfinishedTier.stream(ask))))
      expect([incomplete.reason, incomplete.providerCode, incomplete.partialContent]).toEqual([
        "Connection",
        "stream_incomplete",
        "Hello"
      ])

      const whole = yield* fakeModel({ stream: Stream.fromIterable([...deltas, finish()]) })
      const chunks = yield* Stream.runCollect(Ai.fromLanguageModel(whole, { name: "fake", model: "f-1" }).stream(ask))
      const end = [...chunks].at(-1)
      expect(end?._tag === "StreamEnd" ? [end.finishReason, end.usage.totalTokens] : []).toEqual(["stop", 12])
    }))

  it.effect("in a chain, the model's 429 Retry-After paces the retry on the TestClock", () =>
    Effect.gen(function*() {
      const calledAt: Array<number> = []
      const model = yield* fakeModel({
        generate: (call) =>
          Effect.flatMap(TestClock.currentTimeMillis, (now) => {
            calledAt.push(now)
            return call === 0
              ? Effect.fail(
                httpError(429, { error: { type: "rate_limit_error", message: "slow" } }, { "retry-after": "2" })
              )
              : Effect.succeed([{ type: "text", text: "after the wait" }, finish()])
          })
      })
      const client = yield* Resilient.make({
        chain: [{ provider: Ai.fromLanguageModel(model, { name: "fake", model: "f-1" }) }]
      })
      const fiber = yield* Effect.fork(client.complete(ask))
      yield* TestClock.adjust("1999 millis")
      expect(calledAt).toEqual([0])
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(result.content).toBe("after the wait")
      expect(calledAt[1]).toBeGreaterThanOrEqual(2_000)
    }).pipe(Effect.scoped))
})
