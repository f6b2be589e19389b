import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { CompletionResult } from "../src/Llm.js"
import * as Quality from "../src/Quality.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const result = (content: string, extra: Partial<CompletionResult> = {}): CompletionResult => ({
  content,
  usage: { inputTokens: 10, outputTokens: 20, totalTokens: 30 },
  model: "gpt-4.1",
  provider: "openai",
  finishReason: "stop",
  latencyMs: 120,
  requestId: "req_1",
  ...extra
})

const failureOf = <E>(effect: Effect.Effect<void, E>) => Effect.flip(effect)

describe("Quality", () => {
  describe("format checks", () => {
    it.effect("json accepts JSON, tolerates a code fence, and rejects prose as FormatViolation", () =>
      Effect.gen(function*() {
        yield* Quality.json(result("{\"a\":1}"))
        yield* Quality.json(result("```json\n{\"a\":1}\n```"))
        const error = yield* failureOf(Quality.json(result("Sure! Here it is: {a:1}")))
        expect(error._tag).toBe("SoftFailure")
        expect(error._tag === "SoftFailure" && error.reason).toBe("FormatViolation")
        expect(error.provider).toBe("openai")
        expect(error.requestId).toBe("req_1")
        expect(error.message).not.toContain("Sure!")
      }))

    it.effect("requiredKeys names the missing keys, and rejects arrays and non-JSON", () =>
      Effect.gen(function*() {
        yield* Quality.requiredKeys(["a", "b"])(result("{\"a\":1,\"b\":null}"))
        const missing = yield* failureOf(Quality.requiredKeys(["a", "b", "c"])(result("{\"a\":1}")))
        expect(missing._tag === "SoftFailure" && missing.reason).toBe("SchemaMismatch")
        expect(missing._tag === "SoftFailure" && missing.detail).toBe("missing keys: b, c")
        const array = yield* failureOf(Quality.requiredKeys(["a"])(result("[1,2]")))
        expect(array._tag === "SoftFailure" && array.reason).toBe("FormatViolation")
        const prose = yield* failureOf(Quality.requiredKeys(["a"])(result("no")))
        expect(prose._tag === "SoftFailure" && prose.reason).toBe("FormatViolation")
      }))

    it.effect("matches and length bound the content without quoting it", () =>
      Effect.gen(function*() {
        yield* Quality.matches(/^\d{4}-\d{2}-\d{2}$/, "an ISO date")(result("2026-11-23"))
        const wrong = yield* failureOf(Quality.matches(/^\d{4}-\d{2}-\d{2}$/, "an ISO date")(result("PRIVATE TEXT")))
        expect(wrong._tag === "SoftFailure" && wrong.detail).toBe("content does not match an ISO date")
        expect(wrong.message).not.toContain("PRIVATE")
        // A global regex keeps lastIndex between calls: the check must reset it.
        const global = Quality.matches(/ok/g)
        yield* global(result("ok"))
        yield* global(result("ok"))
        yield* Quality.length({ min: 2, max: 5 })(result("abc"))
        const short = yield* failureOf(Quality.length({ min: 5 })(result("abc")))
        expect(short._tag === "SoftFailure" && short.detail).toBe("content length 3 is below 5")
        const long = yield* failureOf(Quality.length({ max: 2 })(result("abc")))
        expect(long._tag === "SoftFailure" && long.detail).toBe("content length 3 is above 2")
      }))
  })

  describe("structured output", () => {
    const Answer = Schema.Struct({ answer: Schema.String, confidence: Schema.Number.pipe(Schema.between(0, 1)) })

    it.effect("decode returns the typed value", () =>
      Effect.gen(function*() {
        const value = yield* Quality.decode(Answer)(result("{\"answer\":\"42\",\"confidence\":0.9}"))
        expect(value).toEqual({ answer: "42", confidence: 0.9 })
      }))

    it.effect("a mismatch is SchemaMismatch with the ParseError kept and the paths named, not the values", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Quality.decode(Answer)(result("{\"answer\":\"SECRET-ANSWER\",\"confidence\":7}"))
        )
        expect(error.reason).toBe("SchemaMismatch")
        expect(ParseResult.isParseError(error.cause)).toBe(true)
        expect(error.detail).toBe("schema mismatch at confidence")
        expect(error.message).not.toContain("SECRET-ANSWER")
        const invalidJson = yield* Effect.flip(Quality.decode(Answer)(result("{answer")))
        expect(invalidJson.reason).toBe("FormatViolation")
        yield* Quality.schema(Answer)(result("{\"answer\":\"x\",\"confidence\":0}"))
      }))
  })

  describe("quality score", () => {
    it.effect("a score under the threshold (default 0.7) is QualityBelowThreshold carrying the score", () =>
      Effect.gen(function*() {
        yield* Quality.score(() => 0.7)(result("x"))
        const low = yield* Effect.flip(Quality.score(() => 0.42)(result("x")))
        expect(low.reason).toBe("QualityBelowThreshold")
        expect(low.score).toBe(0.42)
        const custom = yield* Effect.flip(Quality.score(() => 0.8, { threshold: 0.9 })(result("x")))
        expect(custom.score).toBe(0.8)
        yield* Quality.score(() => Effect.succeed(0.95))(result("x"))
      }))

    it.effect("a scorer that throws, or returns a value outside 0..1, is a defect, not a provider failure", () =>
      Effect.gen(function*() {
        const thrown = yield* Effect.exit(
          Quality.score(() => {
            throw new Error("bug in the scorer")
          })(result("x"))
        )
        expect(Exit.isFailure(thrown) && Cause.isDie(thrown.cause)).toBe(true)
        const nan = yield* Effect.exit(Quality.score(() => Number.NaN)(result("x")))
        expect(Exit.isFailure(nan) && Cause.isDie(nan.cause)).toBe(true)
        const above = yield* Effect.exit(Quality.score(() => 1.5)(result("x")))
        expect(Exit.isFailure(above) && Cause.isDie(above.cause)).toBe(true)
      }))
  })

  describe("degraded detectors", () => {
    it.effect("truncated: finishReason length carries the result", () =>
      Effect.gen(function*() {
        yield* Quality.truncated(result("done"))
        const cut = result("half an ans", { finishReason: "length" })
        const error = yield* failureOf(Quality.truncated(cut))
        expect(error._tag).toBe("DegradedResponse")
        expect(error._tag === "DegradedResponse" && error.reason).toBe("Truncated")
        expect(error._tag === "DegradedResponse" && error.result).toEqual(cut)
      }))

    it("repeatedNgramRatio measures repetition", () => {
      expect(Quality.repeatedNgramRatio("the cat sat on the mat today", 4)).toBe(0)
      expect(Quality.repeatedNgramRatio("a b c", 4)).toBe(0)
      const loop = Array.from({ length: 20 }, () => "I am sorry").join(" ")
      expect(Quality.repeatedNgramRatio(loop, 4)).toBeGreaterThan(0.9)
    })

    it.effect("repetitive flags a looping answer and spares normal prose and short answers", () =>
      Effect.gen(function*() {
        const prose = "Circuit breakers stop calls to a failing provider so that it can recover, while retries "
          + "handle short glitches and fallbacks route traffic to a healthy alternative until the primary is back."
        yield* Quality.repetitive()(result(prose))
        yield* Quality.repetitive()(result("yes yes yes yes yes yes"))
        const loop = Array.from({ length: 30 }, () => "the answer is").join(" ")
        const error = yield* failureOf(Quality.repetitive()(result(loop)))
        expect(error._tag === "DegradedResponse" && error.reason).toBe("Repetitive")
        expect(error._tag === "DegradedResponse" && error.result.content).toBe(loop)
      }))

    it.effect("slow compares latency with a budget, globally or per model", () =>
      Effect.gen(function*() {
        yield* Quality.slow("1 second")(result("x", { latencyMs: 1000 }))
        const error = yield* failureOf(Quality.slow("1 second")(result("x", { latencyMs: 1001 })))
        expect(error._tag === "DegradedResponse" && error.reason).toBe("Slow")
        const perModel = Quality.slow((model) => model === "llama3" ? "30 seconds" : undefined)
        yield* perModel(result("x", { latencyMs: 60_000 }))
        const local = yield* failureOf(perModel(result("x", { model: "llama3", latencyMs: 31_000 })))
        expect(local._tag === "DegradedResponse" && local.reason).toBe("Slow")
      }))
  })

  describe("composition", () => {
    it.effect("all runs checks in order and the first failure wins", () =>
      Effect.gen(function*() {
        const check = Quality.all(Quality.truncated, Quality.json, Quality.requiredKeys(["a"]))
        yield* check(result("{\"a\":1}"))
        const first = yield* failureOf(check(result("not json", { finishReason: "length" })))
        expect(first._tag).toBe("DegradedResponse")
        const second = yield* failureOf(check(result("not json")))
        expect(second._tag === "SoftFailure" && second.reason).toBe("FormatViolation")
      }))

    it.effect("validate wires checks onto a provider call; acceptDegraded takes the carried result", () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          script: [
            ScriptedProvider.success("{\"a\":1}"),
            ScriptedProvider.success("not json"),
            ScriptedProvider.success("cut", { finishReason: "length" })
          ]
        })
        const call = provider.complete({ messages: [{ role: "user", content: "hi" }] }).pipe(
          Quality.validate(Quality.all(Quality.truncated, Quality.json))
        )
        expect((yield* call).content).toBe("{\"a\":1}")
        const soft = yield* Effect.flip(call)
        expect(soft._tag).toBe("SoftFailure")
        const accepted = yield* Quality.acceptDegraded(call)
        expect(accepted.content).toBe("cut")
        expect(accepted.finishReason).toBe("length")
        const onlySlow = yield* Effect.flip(Quality.acceptDegraded(call, ["Slow"]))
        expect(onlySlow._tag).toBe("DegradedResponse")
      }))
  })
})
