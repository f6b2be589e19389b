import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { type ApiErrorFacts, fromApiError, reasonOf } from "../../src/internal/classify.js"
import type { HardReason } from "../../src/LlmError.js"

const facts = (overrides: Partial<ApiErrorFacts>): ApiErrorFacts => ({
  status: undefined,
  headers: undefined,
  requestId: undefined,
  type: undefined,
  code: undefined,
  message: "",
  ...overrides
})

interface Row {
  readonly status: number | undefined
  readonly type?: string
  readonly code?: string
  readonly message?: string
  readonly reason: HardReason
}

const table: ReadonlyArray<Row> = [
  { status: 429, code: "insufficient_quota", reason: "QuotaExhausted" },
  { status: 429, type: "insufficient_quota", reason: "QuotaExhausted" },
  { status: 429, type: "requests", code: "rate_limit_exceeded", reason: "RateLimited" },
  { status: 429, reason: "RateLimited" },
  { status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded", reason: "RateLimited" },
  { status: 400, code: "context_length_exceeded", reason: "ContextLengthExceeded" },
  {
    status: 400,
    type: "invalid_request_error",
    message: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
    reason: "ContextLengthExceeded"
  },
  { status: 400, message: "maximum context length is 8192 tokens", reason: "ContextLengthExceeded" },
  {
    status: 400,
    type: "invalid_request_error",
    message: "prompt is too long: 210000 tokens > 200000 maximum",
    reason: "ContextLengthExceeded"
  },
  { status: 413, type: "request_too_large", reason: "ContextLengthExceeded" },
  { status: 400, code: "content_filter", reason: "ContentFiltered" },
  { status: 400, code: "content_policy_violation", reason: "ContentFiltered" },
  { status: 400, type: "invalid_request_error", message: "Invalid value for 'temperature'", reason: "BadRequest" },
  { status: 529, reason: "Overloaded" },
  { status: 529, type: "overloaded_error", reason: "Overloaded" },
  { status: undefined, type: "overloaded_error", reason: "Overloaded" },
  { status: undefined, type: "rate_limit_error", reason: "RateLimited" },
  { status: undefined, type: "api_error", reason: "ServerError" },
  { status: undefined, type: "some_new_error", reason: "ServerError" },
  { status: undefined, reason: "ServerError" },
  { status: undefined, type: "invalid_request_error", message: "prompt is too long", reason: "ContextLengthExceeded" },
  { status: 401, reason: "Unauthorized" },
  { status: 401, type: "authentication_error", reason: "Unauthorized" },
  { status: 402, reason: "QuotaExhausted" },
  { status: 403, reason: "Forbidden" },
  { status: 403, type: "permission_error", reason: "Forbidden" },
  { status: 404, reason: "NotFound" },
  { status: 404, type: "not_found_error", code: "model_not_found", reason: "NotFound" },
  { status: 408, reason: "Timeout" },
  { status: 409, reason: "ServerError" },
  { status: 413, reason: "ContextLengthExceeded" },
  { status: 422, reason: "BadRequest" },
  { status: 418, reason: "BadRequest" },
  { status: 500, reason: "ServerError" },
  { status: 500, message: "context length of the worker pool exceeded", reason: "ServerError" },
  { status: 502, reason: "ServerError" },
  { status: 503, reason: "Overloaded" },
  { status: 504, reason: "ServerError" }
]

describe("reasonOf", () => {
  for (const { reason, ...row } of table) {
    it(
      `${row.status ?? "no status"} ${row.type ?? "-"} ${row.code ?? "-"} ${
        JSON.stringify(row.message ?? "")
      } → ${reason}`,
      () => {
        expect(reasonOf(facts(row))).toBe(reason)
      }
    )
  }

  it("matches codes and types case-insensitively", () => {
    expect(reasonOf(facts({ status: 429, code: "INSUFFICIENT_QUOTA" }))).toBe("QuotaExhausted")
    expect(reasonOf(facts({ status: undefined, type: "Overloaded_Error" }))).toBe("Overloaded")
  })
})

describe("fromApiError", () => {
  const NOW = Date.parse("2025-01-01T00:00:00Z")
  const context = { provider: "openai", model: "gpt-4o", nowMillis: NOW, cause: new Error("sdk error") }

  it("builds a HardFailure with reason, status, request id, code and derived retryable", () => {
    const error = fromApiError(
      facts({ status: 429, requestId: "req_9", code: "rate_limit_exceeded", message: "Slow down" }),
      context
    )
    expect(error._tag).toBe("HardFailure")
    expect(error.reason).toBe("RateLimited")
    expect(error.status).toBe(429)
    expect(error.requestId).toBe("req_9")
    expect(error.providerCode).toBe("rate_limit_exceeded")
    expect(error.provider).toBe("openai")
    expect(error.model).toBe("gpt-4o")
    expect(error.retryable).toBe(true)
    expect(error.retryAfter).toBeUndefined()
    expect(error.partialContent).toBeUndefined()
  })

  it("falls back to the type as providerCode", () => {
    expect(fromApiError(facts({ status: 529, type: "overloaded_error" }), context).providerCode).toBe(
      "overloaded_error"
    )
  })

  it("never stores the provider's message", () => {
    const error = fromApiError(
      facts({ status: 400, message: "Invalid prompt: PROMPT-QUOTED-BACK", type: "invalid_request_error" }),
      context
    )
    expect(error.message).not.toContain("PROMPT-QUOTED-BACK")
    expect(JSON.stringify({ ...error })).not.toContain("PROMPT-QUOTED-BACK")
  })

  it("x-should-retry: false makes a retryable reason terminal", () => {
    const error = fromApiError(facts({ status: 503, headers: new Headers({ "x-should-retry": "false" }) }), context)
    expect(error.reason).toBe("Overloaded")
    expect(error.retryable).toBe(false)
  })

  it("x-should-retry: true makes a terminal reason retryable, except an exhausted quota", () => {
    const headers = new Headers({ "x-should-retry": "true" })
    const conflict = fromApiError(facts({ status: 400, headers }), context)
    expect(conflict.reason).toBe("BadRequest")
    expect(conflict.retryable).toBe(true)
    const quota = fromApiError(facts({ status: 429, code: "insufficient_quota", headers }), context)
    expect(quota.reason).toBe("QuotaExhausted")
    expect(quota.retryable).toBe(false)
  })

  it("without x-should-retry, retryable follows the reason", () => {
    const headers = new Headers({ "x-request-id": "r" })
    expect(fromApiError(facts({ status: 500, headers }), context).retryable).toBe(true)
    expect(fromApiError(facts({ status: 401, headers }), context).retryable).toBe(false)
  })

  it("reads retry-after-ms, retry-after seconds and an HTTP date", () => {
    const ms = fromApiError(facts({ status: 429, headers: new Headers({ "retry-after-ms": "250" }) }), context)
    expect(ms.retryAfter !== undefined && Duration.toMillis(ms.retryAfter)).toBe(250)
    const seconds = fromApiError(facts({ status: 429, headers: new Headers({ "retry-after": "7" }) }), context)
    expect(seconds.retryAfter !== undefined && Duration.toMillis(seconds.retryAfter)).toBe(7000)
    const date = fromApiError(
      facts({ status: 503, headers: new Headers({ "retry-after": "Wed, 01 Jan 2025 00:00:20 GMT" }) }),
      context
    )
    expect(date.retryAfter !== undefined && Duration.toMillis(date.retryAfter)).toBe(20_000)
  })

  it("carries non-empty partial content and drops an empty one", () => {
    const partial = fromApiError(facts({ status: undefined, type: "overloaded_error" }), {
      ...context,
      partialContent: "Hel"
    })
    expect(partial.partialContent).toBe("Hel")
    expect(partial.message).not.toContain("Hel")
    const empty = fromApiError(facts({ status: undefined, type: "overloaded_error" }), {
      ...context,
      partialContent: ""
    })
    expect(empty.partialContent).toBeUndefined()
  })

  it("keeps a cause that classifies the error without the provider's message", () => {
    const cause = new Error("your prompt 'TOP-SECRET' was rejected")
    const failure = fromApiError(facts({ status: 500, type: "api_error", code: "x1", requestId: "req_9" }), {
      ...context,
      cause
    })
    expect(failure.cause).toEqual({ name: "Error", status: 500, type: "api_error", code: "x1", requestId: "req_9" })
    expect(JSON.stringify(failure)).not.toContain("TOP-SECRET")
  })
})
