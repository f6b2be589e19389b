import * as EffectConfig from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { InvalidOptions } from "../LlmError.js"
import { checkDuration } from "./duration.js"

/** @internal */
export const nonBlank = (field: string, value: string | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || value.trim().length > 0
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: "must not be empty" }))

/**
 * An http(s) URL without credentials in it. The URL itself is never echoed: a `user:key@` part would leak with it.
 * @internal
 */
export const url = (field: string, value: string | undefined): Effect.Effect<void, InvalidOptions> => {
  if (value === undefined) return Effect.void
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    return Effect.fail(new InvalidOptions({ field, reason: "must be an http(s) URL" }))
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return Effect.fail(new InvalidOptions({ field, reason: "must be an http(s) URL" }))
  }
  return parsed.username !== "" || parsed.password !== ""
    ? Effect.fail(
      new InvalidOptions({
        field,
        reason: "must not carry credentials (user:password@); pass the key as apiKey (value hidden)"
      })
    )
    : Effect.void
}

export { checkDuration, MAX_TIMER_MILLIS } from "./duration.js"

/** {@link checkDuration} as an `InvalidOptions` naming `field`. @internal */
export const duration = (
  field: string,
  value: Duration.DurationInput | undefined,
  options: { readonly allowZero?: boolean | undefined } = {}
): Effect.Effect<Duration.Duration | undefined, InvalidOptions> => {
  if (value === undefined) return Effect.succeed(undefined)
  const checked = checkDuration(value, options)
  return "millis" in checked
    ? Effect.succeed(Duration.millis(checked.millis))
    : Effect.fail(new InvalidOptions({ field, reason: checked.problem }))
}

/** @internal */
export const positiveDuration = (
  field: string,
  value: Duration.DurationInput | undefined
): Effect.Effect<Duration.Duration | undefined, InvalidOptions> => duration(field, value)

/** @internal */
export const positiveInteger = (field: string, value: number | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || (Number.isSafeInteger(value) && value > 0)
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: "must be a positive integer" }))

/** A share between 0 and 1. @internal */
export const fraction = (field: string, value: number | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || (typeof value === "number" && value >= 0 && value <= 1)
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: `must be between 0 and 1, got ${String(value)}` }))

/** @internal */
export const nonNegativeNumber = (field: string, value: number | undefined): Effect.Effect<void, InvalidOptions> =>
  value === undefined || (typeof value === "number" && Number.isFinite(value) && value >= 0)
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field, reason: `must be a finite, non-negative number, got ${String(value)}` }))

// Controls (CR, LF, NUL, …) in a key would be sent in the `Authorization` header, where Node's fetch refuses them
// with an error that quotes the header; the key then shows in every log of that error.

const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * An API key given as a value or as a `Config` to read (`Config.redacted("OPENAI_API_KEY")`). A key that cannot be
 * read, is empty, or holds control characters is `InvalidOptions` for `apiKey`: the message never holds the value.
 * @internal
 */
export const secret = (
  field: string,
  value: Redacted.Redacted<string> | EffectConfig.Config<Redacted.Redacted<string>>
): Effect.Effect<Redacted.Redacted<string>, InvalidOptions> =>
  Effect.flatMap(
    EffectConfig.isConfig(value)
      ? Effect.mapError(value, (error) => new InvalidOptions({ field, reason: `cannot be read: ${String(error)}` }))
      : Effect.succeed(value),
    (key) => {
      const text = Redacted.value(key)
      if (typeof text !== "string" || text.trim() === "") {
        return Effect.fail(new InvalidOptions({ field, reason: "must not be empty (value hidden)" }))
      }
      if (CONTROL.test(text)) {
        return Effect.fail(
          new InvalidOptions({ field, reason: "must not contain control characters such as CR or LF (value hidden)" })
        )
      }
      return Effect.succeed(key)
    }
  )
