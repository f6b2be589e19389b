/**
 * The limiter's options: checked (a typed `InvalidOptions` naming the field) and resolved per key.
 * @internal
 */
import { InvalidOptions } from "../LlmError.js"
import type { Limits, Options } from "../RateLimit.js"
import { type IdleExpiry, resolveIdleExpiry } from "./idleExpiry.js"
import { checkDuration } from "./options.js"
import type { ResolvedLimits } from "./rateLimitBucket.js"

const invalid = (field: string, reason: string) => new InvalidOptions({ field, reason })

const checkLimit = (field: string, value: unknown): InvalidOptions | undefined =>
  value === undefined || value === Infinity || (typeof value === "number" && Number.isSafeInteger(value) && value > 0)
    ? undefined
    : invalid(field, "must be a positive integer (or Infinity for no limit)")

/** @internal */
export const checkLimits = (prefix: string, limits: Limits | undefined): InvalidOptions | undefined => {
  if (limits === undefined) return undefined
  if (typeof limits !== "object" || limits === null) return invalid(prefix, "must be an object")
  return checkLimit(`${prefix}.concurrency`, limits.concurrency) ?? checkLimit(`${prefix}.rpm`, limits.rpm)
    ?? checkLimit(`${prefix}.tpm`, limits.tpm)
}

/** Every option of a limiter; `limits` and `perKey` name their keys. @internal */
export const validate = (
  options: Options
): InvalidOptions | { readonly maxWaitMillis: number; readonly idle: IdleExpiry | undefined } => {
  const problem = checkLimits("limits", options.limits)
    ?? Object.entries(options.perKey ?? {}).map(([key, limits]) =>
      key.trim() === "" ? invalid("perKey", "keys must not be empty") : checkLimits(`perKey.${key}`, limits)
    ).find((p) => p !== undefined)
  if (problem !== undefined) return problem
  if (options.mode !== undefined && options.mode !== "wait" && options.mode !== "fail-fast") {
    return invalid("mode", "must be wait or fail-fast")
  }
  if (
    options.outputTokenEstimate !== undefined
    && !(Number.isSafeInteger(options.outputTokenEstimate) && options.outputTokenEstimate >= 0)
  ) {
    return invalid("outputTokenEstimate", "must be a non-negative integer")
  }
  const idle = resolveIdleExpiry("idleExpiry", options.idleExpiry)
  if (idle instanceof InvalidOptions) return idle
  if (options.maxWait === undefined) return { maxWaitMillis: 30_000, idle }
  if (typeof options.maxWait === "string" && options.maxWait.trim().toLowerCase() === "infinity") {
    return { maxWaitMillis: Infinity, idle }
  }
  const checked = checkDuration(options.maxWait, { allowZero: true })
  return "millis" in checked ? { maxWaitMillis: checked.millis, idle } : invalid("maxWait", checked.problem)
}

/** The limits of `key`: its own, else its provider's (`perKey`), else the limiter's. @internal */
export const resolveLimits = (options: Options, key: string): ResolvedLimits => {
  const colon = key.indexOf(":")
  const provider = colon > 0 ? options.perKey?.[key.slice(0, colon)] : undefined
  const exact = options.perKey?.[key]
  const pick = (field: keyof Limits) => exact?.[field] ?? provider?.[field] ?? options.limits?.[field] ?? Infinity
  return { concurrency: pick("concurrency"), rpm: pick("rpm"), tpm: pick("tpm") }
}
