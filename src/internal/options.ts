import * as EffectConfig from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import { InvalidOptions } from "../LlmError.js"

/** @internal */
export const nonBlank = (field: string, value: string | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || value.trim().length > 0
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: "must not be empty" }))

/** @internal */
export const url = (field: string, value: string | undefined): Effect.Effect<void, InvalidOptions> => {
  if (value === undefined) return Effect.void
  try {
    const parsed = new URL(value)
    return parsed.protocol === "http:" || parsed.protocol === "https:"
      ? Effect.void
      : Effect.fail(new InvalidOptions({ field, reason: "must be an http(s) URL" }))
  } catch {
    return Effect.fail(new InvalidOptions({ field, reason: "must be an http(s) URL" }))
  }
}

/** @internal */
export const positiveDuration = (
  field: string,
  value: Duration.DurationInput | undefined
): Effect.Effect<Duration.Duration | undefined, InvalidOptions> => {
  if (value === undefined) return Effect.succeed(undefined)
  const decoded = Duration.decodeUnknown(value)
  return decoded._tag === "Some" && Duration.isFinite(decoded.value)
      && Duration.greaterThan(decoded.value, Duration.zero)
    ? Effect.succeed(decoded.value)
    : Effect.fail(new InvalidOptions({ field, reason: "must be a positive, finite duration" }))
}

/** @internal */
export const positiveInteger = (field: string, value: number | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || (Number.isSafeInteger(value) && value > 0)
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: "must be a positive integer" }))

/**
 * An API key given as a value or as a `Config` to read (`Config.redacted("OPENAI_API_KEY")`). A key that cannot be
 * read is `InvalidOptions` for `apiKey`, naming the variable: the message never holds a value.
 * @internal
 */
export const secret = (
  field: string,
  value: Redacted.Redacted<string> | EffectConfig.Config<Redacted.Redacted<string>>
): Effect.Effect<Redacted.Redacted<string>, InvalidOptions> =>
  EffectConfig.isConfig(value)
    ? Effect.mapError(value, (error) => new InvalidOptions({ field, reason: `cannot be read: ${String(error)}` }))
    : Effect.succeed(value)
