import * as Duration from "effect/Duration"
import type { RateLimitInfo } from "../Llm.js"

/** The part of a fetch `Headers` this module reads. @internal */
export interface HeaderReader {
  readonly get: (name: string) => string | null
}

const nonNegativeNumber = (raw: string | null): number | undefined => {
  if (raw === null || raw.trim() === "") return undefined
  const value = Number(raw.trim())
  return Number.isFinite(value) && value >= 0 ? value : undefined
}

const count = (raw: string | null): number | undefined => {
  const value = nonNegativeNumber(raw)
  return value !== undefined && Number.isSafeInteger(value) ? value : undefined
}

const unitMillis: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
  us: 0.001,
  "µs": 0.001,
  ns: 1e-6
}

/**
 * Parses a Go duration such as `6m0s`, `1.5s` or `12ms`, as OpenAI sends in `x-ratelimit-reset-*`.
 * @internal
 */
export const parseGoDuration = (raw: string | null): Duration.Duration | undefined => {
  if (raw === null) return undefined
  const text = raw.trim()
  if (text === "") return undefined
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/y
  let millis = 0
  let index = 0
  while (index < text.length) {
    part.lastIndex = index
    const match = part.exec(text)
    if (match === null) return undefined
    millis += Number(match[1]) * (unitMillis[match[2] ?? ""] ?? Number.NaN)
    index = part.lastIndex
  }
  return Number.isFinite(millis) ? Duration.millis(millis) : undefined
}

// Date.parse accepts nearly anything ("soon 5" is May 2001, "60" is 1960): check the format first.
const HTTP_DATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/
const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

const untilTimestamp = (raw: string | null, format: RegExp, nowMillis: number): Duration.Duration | undefined => {
  const text = raw?.trim()
  if (text === undefined || !format.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isFinite(at) ? Duration.millis(Math.max(0, at - nowMillis)) : undefined
}

/**
 * The provider's Retry-After hint: `retry-after-ms` first, then `retry-after` as seconds or an HTTP date.
 * Malformed values are ignored.
 * @internal
 */
export const retryAfter = (headers: HeaderReader, nowMillis: number): Duration.Duration | undefined => {
  const millis = nonNegativeNumber(headers.get("retry-after-ms"))
  if (millis !== undefined) return Duration.millis(millis)
  const raw = headers.get("retry-after")
  const seconds = nonNegativeNumber(raw)
  if (seconds !== undefined) return Duration.seconds(seconds)
  return untilTimestamp(raw, HTTP_DATE, nowMillis)
}

const compact = (
  info: { -readonly [K in keyof RateLimitInfo]: RateLimitInfo[K] | undefined }
): RateLimitInfo | undefined => {
  const entries = Object.entries(info).filter(([, value]) => value !== undefined)
  return entries.length === 0 ? undefined : Object.fromEntries(entries)
}

/**
 * OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go durations.
 * @internal
 */
export const openAiRateLimit = (headers: HeaderReader): RateLimitInfo | undefined =>
  compact({
    limitRequests: count(headers.get("x-ratelimit-limit-requests")),
    remainingRequests: count(headers.get("x-ratelimit-remaining-requests")),
    resetRequests: parseGoDuration(headers.get("x-ratelimit-reset-requests")),
    limitTokens: count(headers.get("x-ratelimit-limit-tokens")),
    remainingTokens: count(headers.get("x-ratelimit-remaining-tokens")),
    resetTokens: parseGoDuration(headers.get("x-ratelimit-reset-tokens"))
  })

/**
 * Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`; resets are RFC 3339 timestamps.
 * When the combined `tokens` family is absent, the input-token family stands in for it.
 * @internal
 */
export const anthropicRateLimit = (headers: HeaderReader, nowMillis: number): RateLimitInfo | undefined => {
  const tokens = (field: string) =>
    headers.get(`anthropic-ratelimit-tokens-${field}`) ?? headers.get(`anthropic-ratelimit-input-tokens-${field}`)
  return compact({
    limitRequests: count(headers.get("anthropic-ratelimit-requests-limit")),
    remainingRequests: count(headers.get("anthropic-ratelimit-requests-remaining")),
    resetRequests: untilTimestamp(headers.get("anthropic-ratelimit-requests-reset"), RFC_3339, nowMillis),
    limitTokens: count(tokens("limit")),
    remainingTokens: count(tokens("remaining")),
    resetTokens: untilTimestamp(tokens("reset"), RFC_3339, nowMillis)
  })
}

/**
 * The rate-limit headers of a response from either provider (an error response's too): OpenAI's family when present,
 * else Anthropic's.
 * @internal
 */
export const rateLimitOf = (headers: HeaderReader, nowMillis: number): RateLimitInfo | undefined =>
  openAiRateLimit(headers) ?? anthropicRateLimit(headers, nowMillis)
