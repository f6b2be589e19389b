import type * as Duration from "effect/Duration"
import { type HardFailure, hardFailure, type HardReason } from "../LlmError.js"
import { type HeaderReader, rateLimitOf, retryAfter } from "./headers.js"

/**
 * What both Stainless-generated SDKs (openai, @anthropic-ai/sdk) tell about an API error, normalised.
 * `message` is read for classification only and never stored: providers may quote input in it.
 * @internal
 */
export interface ApiErrorFacts {
  readonly status: number | undefined
  readonly headers: HeaderReader | undefined
  readonly requestId: string | undefined
  readonly type: string | undefined
  readonly code: string | undefined
  readonly message: string
}

const quotaCodes = new Set(["insufficient_quota", "billing_error", "billing_hard_limit_reached", "quota_exceeded"])
const contentFilterCodes = new Set(["content_filter", "content_policy_violation", "invalid_prompt"])
const contextLengthCodes = new Set(["context_length_exceeded", "string_above_max_length", "request_too_large"])
const contextLengthText = /context.length|context.window|maximum context|too many tokens|prompt is too long/i

const byStatus = (status: number | undefined): HardReason => {
  if (status === undefined) return "ServerError"
  switch (status) {
    case 400:
    case 422:
      return "BadRequest"
    case 401:
      return "Unauthorized"
    case 402:
      return "QuotaExhausted"
    case 403:
      return "Forbidden"
    case 404:
      return "NotFound"
    case 408:
      return "Timeout"
    case 409:
      return "ServerError"
    case 413:
      return "ContextLengthExceeded"
    case 429:
      return "RateLimited"
    case 503:
    case 529:
      return "Overloaded"
  }
  return status >= 500 ? "ServerError" : "BadRequest"
}

/**
 * The taxonomy's reason for an API error. The provider's code and type decide before the status: a 429 can be a
 * rate limit or an exhausted quota, a 400 can be a context overflow or a content-policy refusal, and an error event
 * inside a 200 stream has no status at all.
 * @internal
 */
export const reasonOf = (facts: ApiErrorFacts): HardReason => {
  const code = facts.code?.toLowerCase()
  const type = facts.type?.toLowerCase()
  const has = (set: ReadonlySet<string>) =>
    (code !== undefined && set.has(code)) || (type !== undefined && set.has(type))
  if (has(quotaCodes)) return "QuotaExhausted"
  if (type === "overloaded_error") return "Overloaded"
  if (has(contentFilterCodes)) return "ContentFiltered"
  const clientSide = facts.status === undefined || facts.status === 400 || facts.status === 413
  if (clientSide && (has(contextLengthCodes) || contextLengthText.test(facts.message))) {
    return "ContextLengthExceeded"
  }
  switch (type) {
    case "rate_limit_error":
      return "RateLimited"
    case "timeout_error":
      return "Timeout"
    case "api_error":
    case "server_error": {
      // A generic server-side type: a specific status (408, 429, 503, 529) says more.
      const byCode = byStatus(facts.status)
      return byCode === "BadRequest" ? "ServerError" : byCode
    }
    case "authentication_error":
      return "Unauthorized"
    case "permission_error":
      return "Forbidden"
    case "not_found_error":
      return "NotFound"
  }
  return byStatus(facts.status)
}

/** @internal */
export const fromApiError = (
  facts: ApiErrorFacts,
  context: {
    readonly provider: string
    readonly model: string
    readonly nowMillis: number
    readonly cause: unknown
    readonly partialContent?: string | undefined
  }
): HardFailure => {
  const reason = reasonOf(facts)
  const shouldRetry = facts.headers?.get("x-should-retry")
  const hint: Duration.Duration | undefined = facts.headers === undefined
    ? undefined
    : retryAfter(facts.headers, context.nowMillis)
  const rateLimit = facts.headers === undefined ? undefined : rateLimitOf(facts.headers, context.nowMillis)
  return hardFailure({
    reason,
    provider: context.provider,
    model: context.model,
    status: facts.status,
    requestId: facts.requestId,
    retryAfter: hint,
    providerCode: facts.code ?? facts.type,
    ...(shouldRetry === "true" ? { retryable: reason !== "QuotaExhausted" } : {}),
    ...(shouldRetry === "false" ? { retryable: false } : {}),
    ...(rateLimit !== undefined ? { rateLimit } : {}),
    ...(context.partialContent !== undefined && context.partialContent !== ""
      ? { partialContent: context.partialContent }
      : {}),
    // The SDK error holds the provider's message, which may quote the request: keep only what classifies it.
    cause: {
      name: context.cause instanceof Error ? context.cause.name : "APIError",
      status: facts.status,
      type: facts.type,
      code: facts.code,
      requestId: facts.requestId
    }
  })
}

/** What both SDKs' `APIError` carries; only the name of its error code differs. @internal */
export interface SdkApiError {
  readonly status: number | undefined
  readonly headers: HeaderReader | undefined
  readonly requestID?: string | null | undefined
  readonly type?: string | null | undefined
  readonly message: string
}

/**
 * The error classes both official SDKs export: generated by Stainless, they have the same hierarchy.
 * @internal
 */
export interface SdkErrorClasses<E extends SdkApiError> {
  readonly APIConnectionTimeoutError: abstract new(...args: never) => unknown
  readonly APIUserAbortError: abstract new(...args: never) => unknown
  readonly APIConnectionError: abstract new(...args: never) => unknown
  readonly APIError: abstract new(...args: never) => E
}

/**
 * What classifies a failure that never reached the API (refused, reset, timed out, unreadable body): the error's name
 * and the system facts of it or its causes (`code`, `errno`, `syscall`, the host without userinfo, the port). Not
 * the messages nor the error objects: Node's fetch quotes the request's headers (an `Authorization` key with a CR or
 * LF in it) and URL (`user:key@`), and a parse error quotes the body. `util.inspect`, `Cause.pretty` and Effect's own
 * log lines print a cause whole.
 * @internal
 */
export const connectionFacts = (error: unknown): Readonly<Record<string, string | number>> => {
  const facts: Record<string, string | number> = {
    name: error instanceof Error ? error.name : typeof error
  }
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    for (const field of ["code", "errno", "syscall", "port"] as const) {
      const value: unknown = Reflect.get(current, field)
      if (facts[field] === undefined && (typeof value === "string" || typeof value === "number")) {
        facts[field] = typeof value === "string" ? value.slice(0, 64) : value
      }
    }
    for (const field of ["hostname", "host", "address"] as const) {
      const value: unknown = Reflect.get(current, field)
      if (facts["host"] === undefined && typeof value === "string") facts["host"] = hostOnly(value)
    }
    current = Reflect.get(current, "cause")
  }
  return facts
}

// `user:key@host:port` → `host:port`; anything that is not a plain host name is dropped.
const hostOnly = (value: string): string => {
  const host = value.slice(value.lastIndexOf("@") + 1)
  return /^[\w.:[\]-]{1,255}$/.test(host) ? host : "(hidden)"
}

/**
 * Maps anything an SDK call throws to a HardFailure. Unknown errors never become defects; their cause keeps only
 * {@link connectionFacts}.
 * `codeOf` reads the provider's error code (`code` in openai, `errorCode` in @anthropic-ai/sdk).
 * @internal
 */
export const fromSdkError = <E extends SdkApiError>(
  sdk: SdkErrorClasses<E>,
  codeOf: (error: E) => string | null | undefined,
  error: unknown,
  context: { readonly provider: string; readonly model: string; readonly nowMillis: number },
  partialContent?: string
): HardFailure => {
  const { model, nowMillis, provider } = context
  const partial = partialContent !== undefined && partialContent !== "" ? { partialContent } : {}
  if (error instanceof sdk.APIConnectionTimeoutError) {
    return hardFailure({ reason: "Timeout", provider, model, cause: connectionFacts(error), ...partial })
  }
  if (error instanceof sdk.APIUserAbortError || error instanceof sdk.APIConnectionError) {
    return hardFailure({ reason: "Connection", provider, model, cause: connectionFacts(error), ...partial })
  }
  if (error instanceof sdk.APIError) {
    return fromApiError({
      status: error.status,
      headers: error.headers,
      requestId: error.requestID ?? undefined,
      type: error.type ?? undefined,
      code: codeOf(error) ?? undefined,
      message: error.message
    }, { provider, model, nowMillis, cause: error, partialContent })
  }
  // A body that is not JSON, or a socket reset while reading it.
  if (error instanceof SyntaxError) {
    return hardFailure({
      reason: "ServerError",
      provider,
      model,
      providerCode: "malformed_response",
      cause: connectionFacts(error),
      ...partial
    })
  }
  if (error instanceof TypeError) {
    return hardFailure({ reason: "Connection", provider, model, cause: connectionFacts(error), ...partial })
  }
  return hardFailure({ reason: "Unknown", provider, model, cause: connectionFacts(error), ...partial })
}

/**
 * The code and host a failure can show in a log line or a fallback attempt: the provider's error code, or the system
 * code (`ECONNREFUSED`) and host:port that {@link connectionFacts} kept. Nothing else of the cause.
 * @internal
 */
export const failureFacts = (error: unknown): { readonly code?: string; readonly host?: string } => {
  if (typeof error !== "object" || error === null) return {}
  const failure: unknown = Reflect.get(error, "_tag") === "RetryBudgetExhausted" ? Reflect.get(error, "failure") : error
  if (typeof failure !== "object" || failure === null) return {}
  const providerCode: unknown = Reflect.get(failure, "providerCode")
  const cause: unknown = Reflect.get(failure, "cause")
  // Only a cause `connectionFacts` built (a plain record) is read: an SDK's API error quotes the provider's message.
  const facts = typeof cause === "object" && cause !== null && Object.getPrototypeOf(cause) === Object.prototype
    ? cause
    : undefined
  const systemCode: unknown = facts === undefined ? undefined : Reflect.get(facts, "code")
  const host: unknown = facts === undefined ? undefined : Reflect.get(facts, "host")
  const port: unknown = facts === undefined ? undefined : Reflect.get(facts, "port")
  const code = typeof providerCode === "string" ? providerCode : typeof systemCode === "string" ? systemCode : undefined
  return {
    ...(code !== undefined ? { code } : {}),
    ...(typeof host === "string"
      ? { host: typeof port === "number" && !host.includes(":") ? `${host}:${port}` : host }
      : {})
  }
}
