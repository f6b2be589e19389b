import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Schema } from "effect"
import { validateRequest, withConnectTimeout, withModel } from "../../src/internal/request.js"
import { CompletionRequest } from "../../src/Llm.js"

// `validateRequest` checks the common request shape by hand and leaves the rest to Schema: for every input, valid or
// not, common or not, it must answer exactly what the Schema decoder answers — same value, same key order.
const decode = Schema.decodeUnknownEither(CompletionRequest, { errors: "all", onExcessProperty: "error" })

const text = fc.oneof(fc.constantFrom("", " ", "\n", "hi", " ping "), fc.string({ maxLength: 6 }))
const number = fc.oneof(
  fc.constantFrom(0, 1, 2, 2.5, -1, 0.5, 1.5, 100, Number.NaN, Infinity, 2 ** 53),
  fc.double({ noNaN: false })
)
const maybe = <A>(arbitrary: fc.Arbitrary<A>) => fc.option(arbitrary, { nil: undefined })
const message = fc.oneof(
  fc.record(
    {
      role: fc.constantFrom("system", "user", "assistant", "tool", "robot"),
      content: fc.oneof(text, fc.constant(undefined), fc.constant([{ type: "text", text: "hi" }]), fc.integer())
    },
    { requiredKeys: [] }
  ),
  fc.record({ role: fc.constant("user"), content: text, extra: fc.constant(1) }),
  fc.constant(null),
  fc.constant("hi")
)
const textMessage = fc.record({
  role: fc.constantFrom("system", "user", "assistant"),
  content: fc.oneof(fc.constantFrom("ping", "a b"), text)
})
const input = fc.oneof(
  // The common shape, with values valid or not.
  fc.record(
    {
      messages: fc.array(fc.oneof(textMessage, textMessage, message), { maxLength: 3 }),
      model: fc.oneof(fc.constantFrom("gpt-4o", "m"), text),
      temperature: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.constant(0), number),
      maxTokens: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: -1, max: 5000 }), number),
      topP: fc.oneof(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.constant(1), number),
      seed: fc.oneof(fc.integer(), number),
      user: fc.oneof(fc.constant("u1"), text)
    },
    { requiredKeys: ["messages"] }
  ),
  fc.record(
    {
      messages: fc.oneof(fc.array(message, { maxLength: 3 }), fc.constant("hi")),
      model: maybe(text),
      temperature: maybe(number),
      maxTokens: maybe(number),
      topP: maybe(number),
      seed: maybe(number),
      user: maybe(text),
      stopSequences: fc.constant(["\n"]),
      timeout: fc.constant(1_000),
      unknownKey: fc.constant(true)
    },
    { requiredKeys: [] }
  ),
  fc.constant(null),
  fc.constant([])
)

const viaValidate = (value: unknown) => Effect.runSync(Effect.either(validateRequest(value)))

describe("validateRequest", () => {
  it("answers what the Schema decoder answers, key order included", () => {
    let common = 0
    fc.assert(
      fc.property(input, (value) => {
        const expected = decode(value)
        const actual = viaValidate(value)
        expect(Either.isRight(actual)).toBe(Either.isRight(expected))
        if (Either.isRight(actual) && Either.isRight(expected)) {
          expect(actual.right).toStrictEqual(expected.right)
          expect(Object.keys(actual.right)).toStrictEqual(Object.keys(expected.right))
          expect(actual.right).not.toBe(value)
          if (!["stopSequences", "timeout"].some((key) => key in actual.right)) common++
        }
      }),
      { numRuns: 2_000 }
    )
    // The generator reaches the hand-checked shape often enough for the comparison to mean something. (About 30 of
    // the 2,000 runs on average, 17 seen; a bound of 20 failed now and then.)
    expect(common).toBeGreaterThan(5)
  })

  it("leaves symbol and non-enumerable keys to the decoder", () => {
    const hidden = { messages: [{ role: "user", content: "hi" }] }
    Object.defineProperty(hidden, "secret", { value: 1, enumerable: false })
    const tagged = { messages: [{ role: "user", content: "hi", [Symbol.for("x")]: 1 }] }
    for (const value of [hidden, tagged]) {
      expect(Either.isRight(viaValidate(value))).toBe(Either.isRight(decode(value)))
    }
  })

  it("decodes a common request to a fresh copy that passes again as it is", () => {
    const value = { messages: [{ role: "user", content: "ping" }], maxTokens: 10 }
    const first = viaValidate(value)
    expect(first).toStrictEqual(Either.right({ messages: [{ role: "user", content: "ping" }], maxTokens: 10 }))
    if (Either.isRight(first)) {
      expect(first.right.messages[0]).not.toBe(value.messages[0])
      expect(Either.getOrThrow(viaValidate(first.right))).toBe(first.right)
    }
  })
})

describe("withModel / withConnectTimeout", () => {
  // The copies are written key by key for speed: a field added to the schema and forgotten there would be dropped
  // silently on every fallback step.
  it.effect("keep every field of the request schema", () =>
    Effect.gen(function*() {
      const full = yield* validateRequest({
        messages: [{ role: "user", content: "ping" }],
        model: "a",
        temperature: 1,
        maxTokens: 5,
        stopSequences: ["\n"],
        responseFormat: "json",
        tools: [{ name: "t", parameters: { type: "object" } }],
        toolChoice: "auto",
        parallelToolCalls: false,
        topP: 0.5,
        seed: 1,
        user: "u",
        providerOptions: { openai: { serviceTier: "auto" } },
        timeout: "1 second",
        connectTimeout: "1 second",
        metadata: { k: "v" }
      })
      const schemaKeys = Object.keys(CompletionRequest.from.fields).sort()
      expect(Object.keys(full).sort()).toEqual(schemaKeys)
      const moved = withModel(full, "b")
      expect(Object.keys(moved).sort()).toEqual(schemaKeys)
      expect(moved).toEqual({ ...full, model: "b" })
      const bounded = withConnectTimeout(full, "2 seconds")
      expect(Object.keys(bounded).sort()).toEqual(schemaKeys)
    }))
})
