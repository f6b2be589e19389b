import * as Duration from "effect/Duration"

/**
 * The longest delay a JavaScript timer can wait. Node clamps a longer `setTimeout` to 1 ms (an SDK timeout would fire
 * at once) and Effect's clock treats it as "never": either way the option would not mean what it says.
 * @internal
 */
export const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * What is wrong with a duration option, or its milliseconds. Checked once, here, for every building block: negative
 * inputs (which `Duration` quietly turns into zero), unparsable or infinite ones, and ones too long for a timer.
 * @internal
 */
export const checkDuration = (
  value: unknown,
  options: { readonly allowZero?: boolean | undefined } = {}
): { readonly millis: number } | { readonly problem: string } => {
  if (
    (typeof value === "number" && !(value >= 0)) || (typeof value === "bigint" && value < 0)
    || (typeof value === "string" && value.trim().startsWith("-"))
  ) {
    return { problem: Number.isNaN(value) ? "must be a duration, got NaN" : "must not be negative" }
  }
  const decoded = Duration.decodeUnknown(value)
  if (decoded._tag === "None" || !Duration.isFinite(decoded.value)) {
    return { problem: `must be a finite duration such as "30 seconds"` }
  }
  const millis = Duration.toMillis(decoded.value)
  if (millis > MAX_TIMER_MILLIS) return { problem: `must be at most ${MAX_TIMER_MILLIS} ms (about 24.8 days)` }
  if (millis > 0 || (options.allowZero === true && millis === 0)) return { millis }
  return { problem: options.allowZero === true ? "must not be negative" : "must be positive" }
}
