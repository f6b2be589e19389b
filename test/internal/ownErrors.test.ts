/**
 * The library's errors built without validation (src/internal/ownErrors.ts) against the validating constructors they
 * stand in for: the same class, the same own keys in the same order, the same values, the same message — and the
 * same JSON, which is what a log line or a report shows of an error.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import { attemptOf } from "../../src/internal/fallbackChain.js"
import { fallbackExhausted, retryBudgetExhausted, timeoutFailure } from "../../src/internal/ownErrors.js"
import {
  type FallbackAttempt,
  FallbackExhausted,
  HardFailure,
  hardFailure,
  RetryBudgetExhausted
} from "../../src/LlmError.js"

const sameError = (built: Error, validated: Error) => {
  expect(built.constructor).toBe(validated.constructor)
  expect(Reflect.ownKeys(built)).toEqual(Reflect.ownKeys(validated))
  expect(JSON.stringify(built)).toEqual(JSON.stringify(validated))
  expect(built.message).toEqual(validated.message)
  expect(built).toEqual(validated)
}

// An attempt with a key the schema does not declare (validation drops it).
const withExtra = { tier: 6, label: "w:x", error: "Y", message: "y", skipped: false, latencyMs: 2, extra: "dropped" }

// Attempts as the ladder makes them (`attemptOf`, whose key order is not the schema's), plus hand-made ones with
// optional keys present but undefined and a key the schema does not declare.
const attempts: ReadonlyArray<FallbackAttempt> = [
  attemptOf(hardFailure({ reason: "ServerError", status: 503, provider: "p", model: "m" }), {
    tier: 1,
    label: "p:m",
    latencyMs: 412.5
  }),
  attemptOf(
    hardFailure({ reason: "RateLimited", status: 429, retryAfter: Duration.seconds(2), provider: "q", model: "n" }),
    { tier: 2, label: "q:n", latencyMs: 3 }
  ),
  attemptOf(timeoutFailure("r", "o", "attempt_timeout"), { tier: 3, label: "r:o", latencyMs: 10_000 }),
  attemptOf("not ours", { tier: 4, label: "s:t", latencyMs: 0 }),
  { tier: 5, label: "u:v", error: "X", reason: undefined, message: "x", skipped: true, latencyMs: 1, code: undefined },
  withExtra
]

describe("ownErrors", () => {
  it("a timeout is the HardFailure hardFailure builds", () => {
    for (const code of ["attempt_timeout", "deadline_exceeded", "response_timeout"]) {
      sameError(
        timeoutFailure("openai", "gpt-4.1-mini", code),
        hardFailure({ reason: "Timeout", provider: "openai", model: "gpt-4.1-mini", providerCode: code })
      )
    }
  })

  it("a spent ladder is the FallbackExhausted the schema builds, attempts copied in the schema's order", () => {
    // Not vacuous: the ladder's attempts are not in the schema's key order, and one has a key the schema drops.
    expect(Object.keys(attempts[1]!)).not.toEqual(Object.keys(new FallbackExhausted({ attempts }).attempts[1]!))
    for (const list of [[], attempts.slice(0, 1), attempts]) {
      sameError(fallbackExhausted(list), new FallbackExhausted({ attempts: list }))
      sameError(fallbackExhausted(list, true), new FallbackExhausted({ attempts: list, deadlineExceeded: true }))
      sameError(fallbackExhausted(list, false), new FallbackExhausted({ attempts: list, deadlineExceeded: false }))
      const built = fallbackExhausted(list).attempts
      const validated = new FallbackExhausted({ attempts: list }).attempts
      expect(built.map((attempt) => Reflect.ownKeys(attempt))).toEqual(
        validated.map((attempt) => Reflect.ownKeys(attempt))
      )
      // A copy, as validation makes one: the caller's list is not shared.
      if (list.length > 0) expect(built).not.toBe(list)
    }
  })

  it("a spent retry budget is the RetryBudgetExhausted the schema builds, the same failure inside", () => {
    const failure = hardFailure({ reason: "ServerError", status: 500, provider: "p", model: "m" })
    const built = retryBudgetExhausted("p:m", failure)
    const validated = new RetryBudgetExhausted({ key: "p:m", failure })
    sameError(built, validated)
    expect(validated.failure).toBe(failure)
    expect(built.failure).toBe(failure)
    expect(built.failure).toBeInstanceOf(HardFailure)
  })
})
