import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { CompletionRequest } from "../Llm.js"
import { InvalidRequest } from "../LlmError.js"

const decode = Schema.decodeUnknownEither(CompletionRequest, { errors: "all", onExcessProperty: "error" })

// ParseResult's own messages end in ", actual <value>": the value may be prompt text, so it is cut off.
const withoutActualValue = (message: string): string => message.replace(/,\s*actual\s[\s\S]*$/, "")

const fieldPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "request"

// A request is decoded where it enters: `Resilient`, the limiter and the provider each check their input, and one
// request used to be decoded three times on its way (≈ 6.5 µs each). What this module decoded is remembered, weakly,
// and passes again for free. Only decoder outputs (fresh objects, never the caller's) and requests `withModel` built from
// them are remembered, and requests are immutable by type, so a remembered request is still valid.
const decodedRequests = new WeakSet<object>()

const isDecoded = (input: unknown): input is CompletionRequest =>
  typeof input === "object" && input !== null && decodedRequests.has(input)

/**
 * A decoded request with another model: valid without decoding again, given a model that is not blank (a provider's
 * model or a validated downgrade).
 * @internal
 */
export const withModel = (request: CompletionRequest, model: string): CompletionRequest => {
  const derived: CompletionRequest = { ...request, model }
  decodedRequests.add(derived)
  return derived
}

/**
 * A decoded request with a tier's `connectTimeout` when it sets none itself: valid without decoding again.
 * @internal
 */
export const withConnectTimeout = (
  request: CompletionRequest,
  connectTimeout: Duration.DurationInput | undefined
): CompletionRequest => {
  if (connectTimeout === undefined || request.connectTimeout !== undefined) return request
  const derived: CompletionRequest = { ...request, connectTimeout: Duration.decode(connectTimeout) }
  decodedRequests.add(derived)
  return derived
}

/** @internal */
export const validateRequest = (input: unknown): Effect.Effect<CompletionRequest, InvalidRequest> => {
  if (isDecoded(input)) return Effect.succeed(input)
  const decoded = decode(input)
  if (decoded._tag === "Right") {
    decodedRequests.add(decoded.right)
    return Effect.succeed(decoded.right)
  }
  // A union reports one issue per member (an optional field adds "Expected undefined"): keep the first per field.
  const byField = new Map<string, string>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(decoded.left)) {
    const field = fieldPath(issue.path)
    if (!byField.has(field)) byField.set(field, withoutActualValue(issue.message))
  }
  // An invalid element of an optional array or record also fails the field's `undefined` branch: drop that echo.
  const fields = Array.from(byField.keys())
  const issues = Array.from(byField, ([field, message]) => ({ field, message })).filter(({ field, message }) =>
    message !== "Expected undefined"
    || !fields.some((other) => other.startsWith(`${field}[`) || other.startsWith(`${field}.`))
  )
  return Effect.fail(new InvalidRequest({ field: issues[0]?.field ?? "request", issues }))
}
