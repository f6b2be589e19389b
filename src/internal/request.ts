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
// request used to be decoded three times on its way (≈ 6.5 µs each). What this module decoded passes again for free:
// decoder outputs (fresh objects, never the caller's) and the requests `withModel` builds from them are made with a
// prototype of their own, and requests are immutable by type, so such a request is still valid. The prototype adds
// nothing to `Object.prototype`, not even a `constructor`: a decoded request reads, spreads, serializes and compares as
// a plain object, and any copy of it (a spread, a changed field) is a plain object, decoded again. (It was a `WeakSet`
// of decoded requests: ≈ 0.2 µs per entry, as much as the rest of a fast-path request's setup.)
class DecodedRequest {
  constructor(readonly messages: CompletionRequest["messages"]) {}
}
Reflect.deleteProperty(DecodedRequest.prototype, "constructor")

/** @internal */
export const isDecoded = (input: unknown): input is CompletionRequest =>
  typeof input === "object" && input !== null && Object.getPrototypeOf(input) === DecodedRequest.prototype

type Writable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * `{ ...request }` key by key, in the schema's order (a decoded request's own order): V8's generic spread of a request
 * costs ≈ 1 µs per call here, as much as the rest of a step's setup.
 */
const copyOf = (request: CompletionRequest): Writable<CompletionRequest> => {
  const copy: Writable<CompletionRequest> = new DecodedRequest(request.messages)
  if ("model" in request) copy.model = request.model
  if ("temperature" in request) copy.temperature = request.temperature
  if ("maxTokens" in request) copy.maxTokens = request.maxTokens
  if ("stopSequences" in request) copy.stopSequences = request.stopSequences
  if ("responseFormat" in request) copy.responseFormat = request.responseFormat
  if ("tools" in request) copy.tools = request.tools
  if ("toolChoice" in request) copy.toolChoice = request.toolChoice
  if ("parallelToolCalls" in request) copy.parallelToolCalls = request.parallelToolCalls
  if ("topP" in request) copy.topP = request.topP
  if ("seed" in request) copy.seed = request.seed
  if ("user" in request) copy.user = request.user
  if ("providerOptions" in request) copy.providerOptions = request.providerOptions
  if ("timeout" in request) copy.timeout = request.timeout
  if ("connectTimeout" in request) copy.connectTimeout = request.connectTimeout
  if ("metadata" in request) copy.metadata = request.metadata
  return copy
}

/**
 * A decoded request with another model: valid without decoding again, given a model that is not blank (a provider's
 * model or a validated downgrade).
 * @internal
 */
export const withModel = (request: CompletionRequest, model: string): CompletionRequest => {
  // `copyOf` with `model` set, in one pass over the keys the request has (a decoded request's are the schema's, in
  // its order, `model` second) instead of a test for each of the schema's fifteen: this runs for every request.
  const derived: Writable<CompletionRequest> = new DecodedRequest(request.messages)
  derived.model = model
  for (const key in request) {
    if (key !== "messages" && key !== "model") copyKey(derived, request, key as keyof CompletionRequest)
  }
  return derived
}

const copyKey = <K extends keyof CompletionRequest>(
  to: Writable<CompletionRequest>,
  from: CompletionRequest,
  key: K
): void => {
  to[key] = from[key]
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
  const derived = copyOf(request)
  derived.connectTimeout = Duration.decode(connectTimeout)
  return derived
}

// The common request — text messages and a few scalar settings — checked by hand: the Schema decode costs ≈ 6–8 µs
// per call (a tenth of the client's success path). It accepts exactly what the decoder accepts for this shape and
// builds the same output (fresh objects, keys in the schema's order); anything else, valid or not, goes to the
// decoder, which alone produces the error's details.
const isNonBlank = (value: unknown): value is string => typeof value === "string" && value.trim().length > 0

// Symbol and non-enumerable keys are left to the decoder, which sees them as excess properties.
const isPlainObject = (value: unknown): value is object =>
  typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype

/**
 * The own keys of `value` as the decoder sees them (`Reflect.ownKeys`), when none is a symbol; else `undefined` (an
 * excess property, left to the decoder). Two arrays of names and symbols cost a quarter of `Reflect.ownKeys`'s
 * allocation in Node 20 (97 against 393 bytes for a two-key object).
 */
const ownStringKeys = (value: object): ReadonlyArray<string> | undefined =>
  Object.getOwnPropertySymbols(value).length === 0 ? Object.getOwnPropertyNames(value) : undefined

const textRoles: Readonly<Record<string, true>> = { system: true, user: true, assistant: true }

const textMessage = (
  message: unknown
): { readonly role: "system" | "user" | "assistant"; readonly content: string } | undefined => {
  if (!isPlainObject(message)) return undefined
  // Own keys as the decoder sees them (non-enumerable ones too): any other is an excess property.
  const keys = ownStringKeys(message)
  if (keys === undefined || keys.length !== 2 || !keys.includes("role") || !keys.includes("content")) return undefined
  const { content, role } = message as { readonly role?: unknown; readonly content?: unknown }
  if (typeof role !== "string" || textRoles[role] !== true || !isNonBlank(content)) return undefined
  return { role: role as "system" | "user" | "assistant", content }
}

/** `input` decoded without Schema when it has the common shape, else `undefined`. */
const decodeCommon = (input: unknown): CompletionRequest | undefined => {
  if (!isPlainObject(input)) return undefined
  const { maxTokens, messages, model, seed, temperature, topP, user } = input as Record<string, unknown>
  const keys = ownStringKeys(input)
  if (keys === undefined) return undefined
  for (const key of keys) {
    switch (key) {
      case "messages":
      case "model":
      case "temperature":
      case "maxTokens":
      case "topP":
      case "seed":
      case "user":
        // An optional key set to `undefined` is kept by the decoder: left to it.
        if ((input as Record<string, unknown>)[key] === undefined) return undefined
        continue
      default:
        return undefined
    }
  }
  if (!Array.isArray(messages) || messages.length === 0) return undefined
  // Sized at once: the first `push` on an empty array allocates room for 17.
  const decodedMessages: Array<CompletionRequest["messages"][number]> = new Array(messages.length)
  for (let i = 0; i < messages.length; i++) {
    const decoded = textMessage(messages[i])
    if (decoded === undefined) return undefined
    decodedMessages[i] = decoded
  }
  if (model !== undefined && !isNonBlank(model)) return undefined
  if (
    temperature !== undefined
    && !(typeof temperature === "number" && Number.isFinite(temperature) && temperature >= 0 && temperature <= 2)
  ) return undefined
  if (maxTokens !== undefined && !(typeof maxTokens === "number" && Number.isSafeInteger(maxTokens) && maxTokens > 0)) {
    return undefined
  }
  if (topP !== undefined && !(typeof topP === "number" && topP > 0 && topP <= 1)) return undefined
  if (seed !== undefined && !(typeof seed === "number" && Number.isSafeInteger(seed))) return undefined
  if (user !== undefined && !isNonBlank(user)) return undefined
  // The schema's key order: messages, model, temperature, maxTokens, …, topP, seed, user.
  const request: Writable<CompletionRequest> = new DecodedRequest(decodedMessages)
  if (model !== undefined) request.model = model as string
  if (temperature !== undefined) request.temperature = temperature as number
  if (maxTokens !== undefined) request.maxTokens = maxTokens as number
  if (topP !== undefined) request.topP = topP as number
  if (seed !== undefined) request.seed = seed as number
  if (user !== undefined) request.user = user as string
  return request
}

/**
 * `input` decoded without Schema, when it is a request this module decoded already or of the common shape (text
 * messages and the scalar fields, checked by hand); else `undefined`, and `validateRequest` decodes it.
 * @internal
 */
export const decodedNow = (input: unknown): CompletionRequest | undefined =>
  isDecoded(input) ? input : decodeCommon(input)

/** @internal */
export const validateRequest = (input: unknown): Effect.Effect<CompletionRequest, InvalidRequest> => {
  const common = decodedNow(input)
  if (common !== undefined) return Effect.succeed(common)
  const decoded = decode(input)
  if (decoded._tag === "Right") return Effect.succeed(copyOf(decoded.right))
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
