/**
 * Failures both ways: @effect/ai's `AiError` into this library's taxonomy (a model used as a tier), and this
 * library's failures into an `AiError` that carries them (a chain used as a `LanguageModel`).
 * @internal
 */
import * as AiError from "@effect/ai/AiError"
import * as Option from "effect/Option"
import type { FallbackExhausted, HardFailure, InvalidRequest } from "../../LlmError.js"
import { hardFailure } from "../../LlmError.js"
import { fromApiError } from "../classify.js"

/** What a resilient call fails with. @internal */
export type ChainFailure = FallbackExhausted | HardFailure | InvalidRequest

/** The `module` of every `AiError` this library raises. @internal */
export const MODULE = "effect-llm-resilience"

const chainTags = new Set(["FallbackExhausted", "HardFailure", "InvalidRequest"])
const isChainFailure = (u: unknown): u is ChainFailure =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" && chainTags.has(u._tag)

/**
 * The chain's failure as an `AiError`, carried whole in `cause`: an invalid request is `MalformedInput` (the
 * caller's to fix), everything else `UnknownError`. The description is the failure's message, which never holds
 * prompt text.
 * @internal
 */
export const toAiError = (failure: ChainFailure, method: string): AiError.AiError =>
  failure._tag === "InvalidRequest"
    ? new AiError.MalformedInput({ module: MODULE, method, description: failure.message, cause: failure })
    : new AiError.UnknownError({ module: MODULE, method, description: failure.message, cause: failure })

/** The chain's failure an `AiError` carries, if this library raised it. @internal */
export const chainFailure = (error: AiError.AiError): Option.Option<ChainFailure> =>
  "cause" in error && isChainFailure(error.cause) ? Option.some(error.cause) : Option.none()

interface ErrorBody {
  readonly type?: string | undefined
  readonly code?: string | undefined
  readonly message: string
}

const text = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" ? String(u) : undefined

// The provider's error body (OpenAI `{error: {type, code, message}}`, Anthropic `{error: {type, message}}`, Google
// `{error: {status, code, message}}`), read for classification only: the message may quote the request.
const errorBody = (body: string | undefined): ErrorBody => {
  if (body === undefined) return { message: "" }
  try {
    const parsed: unknown = JSON.parse(body)
    const inner: unknown = typeof parsed === "object" && parsed !== null && "error" in parsed ? parsed.error : parsed
    if (typeof inner !== "object" || inner === null) return { message: "" }
    const field = (name: string): unknown => (name in inner ? (inner as Record<string, unknown>)[name] : undefined)
    return {
      type: text(field("type")) ?? text(field("status")),
      code: text(field("code")),
      message: text(field("message")) ?? ""
    }
  } catch {
    return { message: body }
  }
}

const lowerCased = (headers: Readonly<Record<string, string>>) => {
  const byName = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]))
  return { get: (name: string): string | null => byName.get(name.toLowerCase()) ?? null }
}

/**
 * An @effect/ai model's failure in the taxonomy. An HTTP response error is classified like the SDK providers' errors
 * (status, the body's error type and code, `Retry-After` and `x-should-retry` from the response headers); a transport
 * error is `Connection`; malformed input is the caller's `BadRequest`; an undecodable answer is the provider's
 * `ServerError`. Only what classifies it is kept as the cause.
 * @internal
 */
export const fromAiError = (
  error: AiError.AiError,
  context: {
    readonly provider: string
    readonly model: string
    readonly nowMillis: number
    readonly partialContent?: string | undefined
  }
): HardFailure => {
  const cause = { name: error._tag, module: error.module, method: error.method }
  const partial = context.partialContent !== undefined && context.partialContent !== ""
    ? { partialContent: context.partialContent }
    : {}
  const failure = (reason: HardFailure["reason"], providerCode: string) =>
    hardFailure({ reason, provider: context.provider, model: context.model, providerCode, cause, ...partial })
  switch (error._tag) {
    case "HttpResponseError": {
      if (error.reason !== "StatusCode") return failure("ServerError", `malformed_response`)
      const headers = lowerCased(error.response.headers)
      const body = errorBody(error.body)
      return fromApiError(
        {
          status: error.response.status,
          headers,
          requestId: headers.get("x-request-id") ?? headers.get("request-id") ?? undefined,
          type: body.type,
          code: body.code,
          message: body.message
        },
        { ...context, cause: error }
      )
    }
    case "HttpRequestError":
      return error.reason === "Transport"
        ? failure("Connection", "transport")
        : failure("BadRequest", error.reason === "Encode" ? "encode" : "invalid_url")
    case "MalformedInput":
      return failure("BadRequest", "malformed_input")
    case "MalformedOutput":
      return failure("ServerError", "malformed_output")
    case "UnknownError":
      return failure("Unknown", "unknown")
  }
}

/** A prompt this library cannot send, named by its path. @internal */
export const malformedInput = (method: string, description: string): AiError.MalformedInput =>
  new AiError.MalformedInput({ module: MODULE, method, description })
