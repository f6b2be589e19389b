import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { anthropicRateLimit, openAiRateLimit, parseGoDuration, retryAfter } from "../../src/internal/headers.js"

const millis = (duration: Duration.Duration | undefined): number | undefined =>
  duration === undefined ? undefined : Duration.toMillis(duration)

const NOW = Date.parse("2025-01-01T00:00:00Z")

describe("parseGoDuration", () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ["6m0s", 360_000],
    ["1s", 1_000],
    ["12ms", 12],
    ["1h2m3.5s", 3_723_500],
    ["0s", 0],
    ["1.5s", 1_500],
    ["20ms", 20],
    ["2h", 7_200_000],
    ["500us", 0.5],
    [" 7s ", 7_000]
  ]
  for (const [raw, expected] of cases) {
    it(`${JSON.stringify(raw)} → ${expected} ms`, () => {
      const duration = parseGoDuration(raw)
      expect(Duration.isDuration(duration)).toBe(true)
      expect(millis(duration)).toBeCloseTo(expected, 9)
    })
  }

  for (const raw of ["", "   ", "abc", "5x", "-1s", "5", "s", "1s garbage", "1..5s", "1m-1s"]) {
    it(`${JSON.stringify(raw)} is malformed → undefined`, () => {
      expect(parseGoDuration(raw)).toBeUndefined()
    })
  }

  it("null → undefined", () => {
    expect(parseGoDuration(null)).toBeUndefined()
  })
})

describe("retryAfter", () => {
  it("retry-after-ms wins over retry-after", () => {
    const headers = new Headers({ "retry-after-ms": "1500", "retry-after": "30" })
    expect(millis(retryAfter(headers, NOW))).toBe(1500)
  })

  it("retry-after in (possibly fractional) seconds", () => {
    expect(millis(retryAfter(new Headers({ "retry-after": "30" }), NOW))).toBe(30_000)
    expect(millis(retryAfter(new Headers({ "retry-after": "0.5" }), NOW))).toBe(500)
    expect(millis(retryAfter(new Headers({ "retry-after": "0" }), NOW))).toBe(0)
  })

  it("retry-after as an HTTP date, relative to the given now", () => {
    const date = "Wed, 01 Jan 2025 00:00:45 GMT"
    expect(millis(retryAfter(new Headers({ "retry-after": date }), NOW))).toBe(45_000)
    expect(millis(retryAfter(new Headers({ "retry-after": date }), NOW + 40_000))).toBe(5_000)
  })

  it("an HTTP date in the past means no wait", () => {
    expect(millis(retryAfter(new Headers({ "retry-after": "Tue, 31 Dec 2024 23:59:00 GMT" }), NOW))).toBe(0)
  })

  it("a negative or garbage retry-after-ms falls back to retry-after", () => {
    expect(millis(retryAfter(new Headers({ "retry-after-ms": "-5", "retry-after": "2" }), NOW))).toBe(2000)
    expect(millis(retryAfter(new Headers({ "retry-after-ms": "soon", "retry-after": "3" }), NOW))).toBe(3000)
  })

  it("negative or garbage values are ignored", () => {
    for (const value of ["-1", "soon", "", "   ", "NaN", "Infinity", "1e400", "later please"]) {
      expect(retryAfter(new Headers({ "retry-after": value }), NOW)).toBeUndefined()
      expect(retryAfter(new Headers({ "retry-after-ms": value }), NOW)).toBeUndefined()
    }
  })

  // Date.parse is lenient: it reads "soon 5" as 5 May 2001. Only an HTTP date should be accepted.
  it("text that is not an HTTP date is ignored even when Date.parse accepts it", () => {
    expect(retryAfter(new Headers({ "retry-after": "soon 5" }), NOW)).toBeUndefined()
  })

  it("no headers → undefined", () => {
    expect(retryAfter(new Headers(), NOW)).toBeUndefined()
  })
})

describe("openAiRateLimit", () => {
  it("reads all six headers; resets are Go durations", () => {
    const info = openAiRateLimit(
      new Headers({
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29950",
        "x-ratelimit-reset-tokens": "6m0s"
      })
    )
    expect(info).toBeDefined()
    expect(info?.limitRequests).toBe(500)
    expect(info?.remainingRequests).toBe(499)
    expect(millis(info?.resetRequests)).toBe(120)
    expect(info?.limitTokens).toBe(30_000)
    expect(info?.remainingTokens).toBe(29_950)
    expect(millis(info?.resetTokens)).toBe(360_000)
  })

  it("keeps only the headers present", () => {
    const info = openAiRateLimit(new Headers({ "x-ratelimit-remaining-tokens": "0" }))
    expect(info).toEqual({ remainingTokens: 0 })
  })

  it("ignores malformed values without throwing", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "lots",
      "x-ratelimit-remaining-requests": "-1",
      "x-ratelimit-reset-requests": "soon",
      "x-ratelimit-limit-tokens": "1.5",
      "x-ratelimit-remaining-tokens": "12",
      "x-ratelimit-reset-tokens": "-6m"
    })
    expect(() => openAiRateLimit(headers)).not.toThrow()
    expect(openAiRateLimit(headers)).toEqual({ remainingTokens: 12 })
  })

  it("no headers → undefined", () => {
    expect(openAiRateLimit(new Headers())).toBeUndefined()
    expect(openAiRateLimit(new Headers({ "x-ratelimit-limit-requests": "n/a" }))).toBeUndefined()
  })
})

describe("anthropicRateLimit", () => {
  it("reads the requests and tokens families; RFC 3339 resets become durations from now", () => {
    const info = anthropicRateLimit(
      new Headers({
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:10Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2025-01-01T00:01:00.500Z"
      }),
      NOW
    )
    expect(info?.limitRequests).toBe(50)
    expect(info?.remainingRequests).toBe(49)
    expect(millis(info?.resetRequests)).toBe(10_000)
    expect(info?.limitTokens).toBe(40_000)
    expect(info?.remainingTokens).toBe(39_000)
    expect(millis(info?.resetTokens)).toBe(60_500)
  })

  it("measures resets from the given now", () => {
    const headers = new Headers({ "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:10Z" })
    expect(millis(anthropicRateLimit(headers, NOW + 4_000)?.resetRequests)).toBe(6_000)
    expect(millis(anthropicRateLimit(headers, NOW + 60_000)?.resetRequests)).toBe(0)
  })

  it("falls back to the input-tokens family when the combined tokens family is absent", () => {
    const info = anthropicRateLimit(
      new Headers({
        "anthropic-ratelimit-input-tokens-limit": "20000",
        "anthropic-ratelimit-input-tokens-remaining": "19000",
        "anthropic-ratelimit-input-tokens-reset": "2025-01-01T00:00:30Z"
      }),
      NOW
    )
    expect(info?.limitTokens).toBe(20_000)
    expect(info?.remainingTokens).toBe(19_000)
    expect(millis(info?.resetTokens)).toBe(30_000)
  })

  it("prefers the combined tokens family over input tokens", () => {
    const info = anthropicRateLimit(
      new Headers({ "anthropic-ratelimit-tokens-remaining": "5", "anthropic-ratelimit-input-tokens-remaining": "7" }),
      NOW
    )
    expect(info).toEqual({ remainingTokens: 5 })
  })

  it("ignores malformed values without throwing", () => {
    const headers = new Headers({
      "anthropic-ratelimit-requests-limit": "fifty",
      "anthropic-ratelimit-requests-remaining": "-3",
      "anthropic-ratelimit-requests-reset": "not-a-date",
      "anthropic-ratelimit-tokens-limit": "100",
      "anthropic-ratelimit-tokens-reset": "2025-13-45T00:00:00Z"
    })
    expect(() => anthropicRateLimit(headers, NOW)).not.toThrow()
    expect(anthropicRateLimit(headers, NOW)).toEqual({ limitTokens: 100 })
  })

  // A reset given as a bare number (e.g. seconds) is not an RFC 3339 timestamp; Date.parse reads "60" as 1960.
  it("ignores a reset that is not an RFC 3339 timestamp even when Date.parse accepts it", () => {
    const info = anthropicRateLimit(
      new Headers({ "anthropic-ratelimit-requests-reset": "60", "anthropic-ratelimit-requests-limit": "50" }),
      NOW
    )
    expect(info).toEqual({ limitRequests: 50 })
  })

  it("no headers → undefined", () => {
    expect(anthropicRateLimit(new Headers(), NOW)).toBeUndefined()
    expect(anthropicRateLimit(new Headers({ "anthropic-ratelimit-requests-reset": "garbage" }), NOW))
      .toBeUndefined()
  })
})
