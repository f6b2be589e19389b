import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit } from "effect"
import type { CompletionResult } from "../src/Llm.js"
import {
  DegradedResponse,
  failureClass,
  HardFailure,
  hardFailure,
  type HardReason,
  InvalidOptions,
  InvalidRequest,
  isDegradedResponse,
  isHardFailure,
  isRetryableReason,
  isSoftFailure,
  SoftFailure
} from "../src/LlmError.js"

const retryableReasons: ReadonlyArray<HardReason> = [
  "RateLimited",
  "ServerError",
  "Overloaded",
  "Timeout",
  "Connection"
]
const terminalReasons: ReadonlyArray<HardReason> = [
  "QuotaExhausted",
  "BadRequest",
  "ContextLengthExceeded",
  "Unauthorized",
  "Forbidden",
  "NotFound",
  "ContentFiltered",
  "Unknown"
]

const base = { provider: "openai", model: "gpt-4o" }

const result: CompletionResult = {
  content: "RESULT-CONTENT",
  usage: { inputTokens: 10, outputTokens: 4096, totalTokens: 4106 },
  model: "gpt-4o",
  provider: "openai",
  finishReason: "length",
  latencyMs: 1234
}

describe("hardFailure", () => {
  for (const reason of retryableReasons) {
    it(`${reason} is retryable`, () => {
      expect(hardFailure({ ...base, reason }).retryable).toBe(true)
      expect(isRetryableReason(reason)).toBe(true)
    })
  }

  for (const reason of terminalReasons) {
    it(`${reason} is not retryable`, () => {
      expect(hardFailure({ ...base, reason }).retryable).toBe(false)
      expect(isRetryableReason(reason)).toBe(false)
    })
  }

  it("honours an explicit retryable in either direction", () => {
    expect(hardFailure({ ...base, reason: "RateLimited", retryable: false }).retryable).toBe(false)
    expect(hardFailure({ ...base, reason: "BadRequest", retryable: true }).retryable).toBe(true)
    expect(hardFailure({ ...base, reason: "ServerError", retryable: true }).retryable).toBe(true)
  })

  it("builds a HardFailure carrying every field given", () => {
    const error = hardFailure({
      ...base,
      reason: "RateLimited",
      status: 429,
      requestId: "req_123",
      retryAfter: Duration.seconds(2),
      providerCode: "rate_limit_exceeded",
      partialContent: "partial"
    })
    expect(error).toBeInstanceOf(HardFailure)
    expect(error._tag).toBe("HardFailure")
    expect(error.reason).toBe("RateLimited")
    expect(error.provider).toBe("openai")
    expect(error.model).toBe("gpt-4o")
    expect(error.status).toBe(429)
    expect(error.requestId).toBe("req_123")
    expect(error.retryAfter !== undefined && Duration.toMillis(error.retryAfter)).toBe(2000)
    expect(error.providerCode).toBe("rate_limit_exceeded")
    expect(error.partialContent).toBe("partial")
  })

  it("rejects a reason outside the taxonomy", () => {
    expect(() => hardFailure({ ...base, reason: "Teapot" as HardReason })).toThrow()
  })
})

describe("HardFailure.message", () => {
  it("names reason, provider/model, status, request id, provider code and retry-after", () => {
    const error = hardFailure({
      ...base,
      reason: "RateLimited",
      status: 429,
      requestId: "req_123",
      providerCode: "rate_limit_exceeded",
      retryAfter: Duration.millis(2500)
    })
    expect(error.message).toContain("RateLimited")
    expect(error.message).toContain("openai/gpt-4o")
    expect(error.message).toContain("HTTP 429")
    expect(error.message).toContain("req_123")
    expect(error.message).toContain("rate_limit_exceeded")
    expect(error.message).toContain(`retry after ${Duration.format(Duration.millis(2500))}`)
    expect(error.message).toBe(
      "RateLimited from openai/gpt-4o (HTTP 429, request req_123, code rate_limit_exceeded, retry after 2s 500ms)"
    )
  })

  it("omits the parenthesis when there are no details", () => {
    expect(hardFailure({ ...base, reason: "Connection" }).message).toBe("Connection from openai/gpt-4o")
  })

  it("never contains partialContent or the cause", () => {
    const error = hardFailure({
      ...base,
      reason: "Connection",
      status: 502,
      partialContent: "PARTIAL-SECRET-TEXT",
      cause: new Error("CAUSE-WITH-PROMPT")
    })
    expect(error.message).not.toContain("PARTIAL-SECRET-TEXT")
    expect(error.message).not.toContain("CAUSE-WITH-PROMPT")
    expect(String(error)).not.toContain("PARTIAL-SECRET-TEXT")
  })
})

describe("SoftFailure and DegradedResponse", () => {
  it("SoftFailure carries reason, detail and score, and describes them", () => {
    const error = new SoftFailure({
      ...base,
      reason: "QualityBelowThreshold",
      retryable: true,
      detail: "judge rejected",
      score: 0.25
    })
    expect(error._tag).toBe("SoftFailure")
    expect(error.reason).toBe("QualityBelowThreshold")
    expect(error.retryable).toBe(true)
    expect(error.message).toBe("QualityBelowThreshold from openai/gpt-4o (judge rejected, score 0.25)")
  })

  it("DegradedResponse carries the usable result and does not quote it", () => {
    const error = new DegradedResponse({
      ...base,
      reason: "Truncated",
      retryable: false,
      detail: "hit maxTokens",
      result
    })
    expect(error._tag).toBe("DegradedResponse")
    expect(error.reason).toBe("Truncated")
    expect(error.result).toEqual(result)
    expect(error.result.content).toBe("RESULT-CONTENT")
    expect(error.message).toBe("Truncated from openai/gpt-4o (hit maxTokens)")
    expect(error.message).not.toContain("RESULT-CONTENT")
  })

  it("constructors validate their reason", () => {
    expect(() => new SoftFailure({ ...base, reason: "Bogus" as "FormatViolation", retryable: false })).toThrow()
    expect(() => new DegradedResponse({ ...base, reason: "Bogus" as "Slow", retryable: false, result })).toThrow()
  })
})

describe("classification and guards", () => {
  const hard = hardFailure({ ...base, reason: "Timeout" })
  const soft = new SoftFailure({ ...base, reason: "FormatViolation", retryable: true })
  const degraded = new DegradedResponse({ ...base, reason: "Slow", retryable: false, result })

  it("failureClass", () => {
    expect(failureClass(hard)).toBe("hard")
    expect(failureClass(soft)).toBe("soft")
    expect(failureClass(degraded)).toBe("degraded")
  })

  it("each guard recognises only its own class", () => {
    expect([isHardFailure(hard), isHardFailure(soft), isHardFailure(degraded)]).toEqual([true, false, false])
    expect([isSoftFailure(hard), isSoftFailure(soft), isSoftFailure(degraded)]).toEqual([false, true, false])
    expect([isDegradedResponse(hard), isDegradedResponse(soft), isDegradedResponse(degraded)]).toEqual([
      false,
      false,
      true
    ])
  })

  it("guards reject non-errors", () => {
    for (const value of [null, undefined, "HardFailure", new Error("HardFailure"), {}]) {
      expect(isHardFailure(value)).toBe(false)
      expect(isSoftFailure(value)).toBe(false)
      expect(isDegradedResponse(value)).toBe(false)
    }
  })

  it("errors are Error instances", () => {
    expect(hard).toBeInstanceOf(Error)
    expect(soft).toBeInstanceOf(Error)
    expect(degraded).toBeInstanceOf(Error)
  })
})

describe("InvalidRequest and InvalidOptions", () => {
  it("InvalidRequest lists every issue in its message", () => {
    const error = new InvalidRequest({
      field: "temperature",
      issues: [
        { field: "temperature", message: "must be between 0 and 2" },
        { field: "maxTokens", message: "must be a positive integer" }
      ]
    })
    expect(error.message).toBe(
      "Invalid request: temperature must be between 0 and 2; maxTokens must be a positive integer"
    )
  })

  it("InvalidOptions names the option", () => {
    expect(new InvalidOptions({ field: "apiKey", reason: "is missing" }).message).toBe(
      "Invalid options: apiKey is missing"
    )
  })
})

describe("errors are yieldable", () => {
  it.effect("yield* a HardFailure fails the effect with it", () =>
    Effect.gen(function*() {
      const error = hardFailure({ ...base, reason: "Overloaded", status: 529 })
      const program = Effect.gen(function*() {
        yield* error
        return "unreachable"
      })
      const exit = yield* Effect.exit(program)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* Effect.flip(program)).toBe(error)
    }))

  it.effect("Effect.catchTag(\"HardFailure\") catches it and leaves other tags alone", () =>
    Effect.gen(function*() {
      const fails = (error: HardFailure | SoftFailure) =>
        Effect.gen(function*() {
          yield* error
          return "unreachable"
        })
      const caught = yield* fails(hardFailure({ ...base, reason: "Timeout" })).pipe(
        Effect.catchTag("HardFailure", (e) => Effect.succeed(`caught ${e.reason}`))
      )
      expect(caught).toBe("caught Timeout")
      const soft = new SoftFailure({ ...base, reason: "SchemaMismatch", retryable: false })
      const passedThrough = yield* fails(soft).pipe(
        Effect.catchTag("HardFailure", () => Effect.succeed("wrong")),
        Effect.flip
      )
      expect(passedThrough).toBe(soft)
    }))

  it.effect("SoftFailure and DegradedResponse are yieldable too", () =>
    Effect.gen(function*() {
      const degraded = new DegradedResponse({ ...base, reason: "Repetitive", retryable: false, result })
      const recovered = yield* Effect.gen(function*() {
        yield* degraded
        return result
      }).pipe(Effect.catchTag("DegradedResponse", (e) => Effect.succeed(e.result)))
      expect(recovered).toEqual(result)
      const error = yield* Effect.flip(new SoftFailure({ ...base, reason: "FormatViolation", retryable: true }))
      expect(error._tag).toBe("SoftFailure")
    }))
})
