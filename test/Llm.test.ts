import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck } from "effect"
import type { CompletionRequestInput } from "../src/Llm.js"
import { InvalidRequest } from "../src/LlmError.js"
import { validateRequest } from "../src/LlmProvider.js"

const SECRET = "TOP-SECRET-PROMPT"

const user = (content: string) => ({ role: "user", content })

const valid = { messages: [user("Hello")] }

/** The `InvalidRequest` a request fails with (the test fails if it validates). */
const rejection = (input: unknown) => Effect.flip(validateRequest(input))

const fieldsOf = (error: InvalidRequest) => error.issues.map((issue) => issue.field)

const expectNoSecret = (error: InvalidRequest) => {
  expect(error.message).not.toContain(SECRET)
  expect(JSON.stringify(error.issues)).not.toContain(SECRET)
  expect(error.field).not.toContain(SECRET)
}

describe("LlmProvider.validateRequest", () => {
  describe("accepts", () => {
    it.effect("a minimal request, unchanged", () =>
      Effect.gen(function*() {
        const request = yield* validateRequest(valid)
        expect(request).toEqual(valid)
      }))

    it.effect("a request using every field", () =>
      Effect.gen(function*() {
        const input: CompletionRequestInput = {
          messages: [
            { role: "system", content: "Be brief." },
            { role: "user", content: "Hi" },
            { role: "assistant", content: "Hello." }
          ],
          model: "gpt-4o",
          temperature: 0,
          maxTokens: 256,
          stopSequences: ["END"],
          responseFormat: "json",
          timeout: 1000,
          metadata: { tenant: "acme" }
        }
        const request = yield* validateRequest(input)
        expect(request.messages).toEqual(input.messages)
        expect(request.model).toBe("gpt-4o")
        expect(request.temperature).toBe(0)
        expect(request.maxTokens).toBe(256)
        expect(request.stopSequences).toEqual(["END"])
        const newline = yield* validateRequest({ ...valid, stopSequences: ["\n"] })
        expect(newline.stopSequences).toEqual(["\n"])
        expect(request.responseFormat).toBe("json")
        expect(request.metadata).toEqual({ tenant: "acme" })
      }))

    it.effect("temperature at both bounds", () =>
      Effect.gen(function*() {
        expect((yield* validateRequest({ ...valid, temperature: 0 })).temperature).toBe(0)
        expect((yield* validateRequest({ ...valid, temperature: 2 })).temperature).toBe(2)
      }))

    it.effect("a timeout as a string, decoded to a Duration", () =>
      Effect.gen(function*() {
        const { timeout } = yield* validateRequest({ ...valid, timeout: "30 seconds" })
        expect(Duration.isDuration(timeout)).toBe(true)
        expect(timeout !== undefined && Duration.toMillis(timeout)).toBe(30_000)
      }))

    it.effect("a timeout as milliseconds, decoded to a Duration", () =>
      Effect.gen(function*() {
        const { timeout } = yield* validateRequest({ ...valid, timeout: 1500 })
        expect(Duration.isDuration(timeout)).toBe(true)
        expect(timeout !== undefined && Duration.toMillis(timeout)).toBe(1500)
      }))

    it.effect("a timeout as a Duration", () =>
      Effect.gen(function*() {
        const { timeout } = yield* validateRequest({ ...valid, timeout: Duration.minutes(2) })
        expect(Duration.isDuration(timeout)).toBe(true)
        expect(timeout !== undefined && Duration.toMillis(timeout)).toBe(120_000)
      }))
  })

  describe("rejects with InvalidRequest naming the field", () => {
    const cases: ReadonlyArray<{ readonly name: string; readonly input: unknown; readonly field: string }> = [
      { name: "no messages", input: { messages: [] }, field: "messages" },
      { name: "missing messages", input: {}, field: "messages" },
      { name: "empty content", input: { messages: [user("")] }, field: "messages[0].content" },
      { name: "whitespace-only content", input: { messages: [user(" \n\t ")] }, field: "messages[0].content" },
      { name: "unknown role", input: { messages: [{ role: "bot", content: "hi" }] }, field: "messages[0].role" },
      { name: "negative maxTokens", input: { ...valid, maxTokens: -1 }, field: "maxTokens" },
      { name: "zero maxTokens", input: { ...valid, maxTokens: 0 }, field: "maxTokens" },
      { name: "non-integer maxTokens", input: { ...valid, maxTokens: 1.5 }, field: "maxTokens" },
      { name: "temperature below 0", input: { ...valid, temperature: -0.1 }, field: "temperature" },
      { name: "temperature above 2", input: { ...valid, temperature: 2.01 }, field: "temperature" },
      { name: "NaN temperature", input: { ...valid, temperature: Number.NaN }, field: "temperature" },
      { name: "empty stop sequence", input: { ...valid, stopSequences: [""] }, field: "stopSequences[0]" },
      { name: "unknown responseFormat", input: { ...valid, responseFormat: "xml" }, field: "responseFormat" },
      { name: "zero timeout", input: { ...valid, timeout: 0 }, field: "timeout" },
      { name: "negative timeout", input: { ...valid, timeout: -5 }, field: "timeout" },
      { name: "zero timeout as a string", input: { ...valid, timeout: "0 seconds" }, field: "timeout" },
      { name: "unparseable timeout", input: { ...valid, timeout: "soon" }, field: "timeout" },
      { name: "infinite timeout", input: { ...valid, timeout: Duration.infinity }, field: "timeout" },
      { name: "unknown extra property", input: { ...valid, stream: true }, field: "stream" },
      { name: "blank model", input: { ...valid, model: " " }, field: "model" }
    ]
    for (const { field, input, name } of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const error = yield* rejection(input)
          expect(error).toBeInstanceOf(InvalidRequest)
          expect(error._tag).toBe("InvalidRequest")
          expect(error.field).toBe(field)
          expect(fieldsOf(error)).toContain(field)
          expect(error.message).toContain(field)
          for (const issue of error.issues) expect(issue.message.length).toBeGreaterThan(0)
        }))
    }

    it.effect("the messages of a rejection say what is wrong", () =>
      Effect.gen(function*() {
        const temperature = yield* rejection({ ...valid, temperature: 3 })
        expect(temperature.issues).toEqual([{ field: "temperature", message: "must be between 0 and 2" }])
        const role = yield* rejection({ messages: [{ role: "bot", content: "hi" }] })
        expect(role.issues).toEqual([{
          field: "messages[0].role",
          message: "must be one of system, user, assistant, tool"
        }])
        const maxTokens = yield* rejection({ ...valid, maxTokens: 0 })
        expect(maxTokens.issues).toEqual([{ field: "maxTokens", message: "must be a positive integer" }])
        expect(maxTokens.message).toBe("Invalid request: maxTokens must be a positive integer")
      }))
  })

  describe("lists every problem", () => {
    it.effect("across messages and options, with the first as `field`", () =>
      Effect.gen(function*() {
        const error = yield* rejection({
          messages: [{ role: "bot", content: "hi" }, user("   ")],
          maxTokens: -1,
          temperature: Number.NaN,
          stopSequences: ["ok", ""],
          responseFormat: "xml",
          timeout: -5,
          extra: 1
        })
        const fields = fieldsOf(error)
        for (
          const field of [
            "messages[0].role",
            "messages[1].content",
            "maxTokens",
            "temperature",
            "stopSequences[1]",
            "responseFormat",
            "timeout",
            "extra"
          ]
        ) {
          expect(fields).toContain(field)
        }
        expect(error.field).toBe(error.issues[0]?.field)
        expect(new Set(fields).size).toBe(fields.length)
      }))

    it.effect("one issue per blank message", () =>
      Effect.gen(function*() {
        const error = yield* rejection({ messages: [user(""), user("fine"), user("  ")] })
        expect(error.issues).toEqual([
          { field: "messages[0].content", message: "must not be empty" },
          { field: "messages[2].content", message: "must not be empty" }
        ])
        expect(error.field).toBe("messages[0].content")
      }))

    // An optional field is a union with `undefined`; a bad element inside it must not add an "Expected undefined"
    // issue for the field itself.
    it.effect("an invalid element of an optional array or record yields only that element's issue", () =>
      Effect.gen(function*() {
        const stop = yield* rejection({ ...valid, stopSequences: ["ok", ""] })
        expect(stop.issues).toEqual([{ field: "stopSequences[1]", message: "must not be empty" }])
        const metadata = yield* rejection({ ...valid, metadata: { tenant: 1 } })
        expect(fieldsOf(metadata)).toEqual(["metadata.tenant"])
      }))
  })

  describe("never copies prompt text into the error", () => {
    it.effect("a message with an unknown role", () =>
      Effect.gen(function*() {
        const error = yield* rejection({ messages: [{ role: "bot", content: SECRET }] })
        expect(error.field).toBe("messages[0].role")
        expectNoSecret(error)
      }))

    it.effect("prompt text in the wrong place or of the wrong shape", () =>
      Effect.gen(function*() {
        const inputs: ReadonlyArray<unknown> = [
          SECRET,
          { messages: SECRET },
          { messages: [SECRET] },
          { messages: [{ role: SECRET, content: SECRET }] },
          { messages: [user(SECRET)], model: "", temperature: SECRET, stopSequences: SECRET, timeout: SECRET },
          { messages: [user(SECRET)], responseFormat: SECRET, maxTokens: SECRET, metadata: { note: [SECRET] } }
        ]
        for (const input of inputs) expectNoSecret(yield* rejection(input))
      }))
  })

  describe("properties", () => {
    const nonBlank = FastCheck.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim().length > 0)
    const message = FastCheck.record({
      role: FastCheck.constantFrom("system" as const, "user" as const, "assistant" as const),
      content: nonBlank
    })
    const validRequest = FastCheck.record({
      messages: FastCheck.array(message, { minLength: 1, maxLength: 5 }),
      model: FastCheck.option(nonBlank, { nil: undefined }),
      temperature: FastCheck.option(FastCheck.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
      maxTokens: FastCheck.option(FastCheck.integer({ min: 1, max: 1_000_000 }), { nil: undefined }),
      stopSequences: FastCheck.option(FastCheck.array(nonBlank, { maxLength: 4 }), { nil: undefined }),
      responseFormat: FastCheck.option(FastCheck.constantFrom("text" as const, "json" as const), { nil: undefined }),
      timeoutMs: FastCheck.option(FastCheck.integer({ min: 1, max: 3_600_000 }), { nil: undefined })
    })

    it("any request built from valid values validates and keeps its values", () => {
      FastCheck.assert(
        FastCheck.property(validRequest, ({ timeoutMs, ...fields }) => {
          const input = Object.fromEntries(
            Object.entries({ ...fields, timeout: timeoutMs }).filter(([, value]) => value !== undefined)
          )
          const result = Effect.runSync(Effect.either(validateRequest(input)))
          if (Either.isLeft(result)) throw new Error(`rejected: ${result.left.message}`)
          const request = result.right
          expect(request.messages).toEqual(fields.messages)
          expect(request.model).toBe(fields.model)
          expect(request.temperature).toBe(fields.temperature)
          expect(request.maxTokens).toBe(fields.maxTokens)
          expect(request.stopSequences).toEqual(fields.stopSequences)
          expect(request.responseFormat).toBe(fields.responseFormat)
          expect(request.timeout === undefined ? undefined : Duration.toMillis(request.timeout)).toBe(timeoutMs)
        })
      )
    })

    it("any temperature outside [0, 2] is rejected naming temperature", () => {
      const outside = FastCheck.oneof(
        FastCheck.double({ max: 0, noNaN: true }).filter((t) => t < 0),
        FastCheck.double({ min: 2, noNaN: true }).filter((t) => t > 2),
        FastCheck.constant(Number.NaN)
      )
      FastCheck.assert(
        FastCheck.property(outside, (temperature) => {
          const result = Effect.runSync(Effect.either(validateRequest({ ...valid, temperature })))
          if (Either.isRight(result)) throw new Error(`accepted temperature ${temperature}`)
          expect(result.left.field).toBe("temperature")
          expect(result.left.issues).toEqual([{ field: "temperature", message: "must be between 0 and 2" }])
        })
      )
    })
  })
})
