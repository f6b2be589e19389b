import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Resilient from "../src/Resilient.js"
import * as Retry from "../src/Retry.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const ask = { messages: [{ role: "user" as const, content: "question" }] }

/** Options as a user might write them in plain JavaScript or from an untyped source. */
const loose = <A>(value: unknown): A => value as A

const refused = (config: Resilient.Config) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(Resilient.make(config))
    expect(error._tag).toBe("InvalidOptions")
    return error
  })

describe("Resilient options: every bad option is a typed InvalidOptions naming the user's field", () => {
  const cases: ReadonlyArray<readonly [string, (provider: ScriptedProvider.ScriptedProvider) => Resilient.Config]> = [
    ["strategy", (provider) => ({ chain: [{ provider }], strategy: loose("bogus") })],
    ["hedging.delay", (provider) => ({ chain: [{ provider }, { provider }], hedging: { delay: loose("5 parsecs") } })],
    ["hedging.delay", (provider) => ({ chain: [{ provider }], hedging: { delay: "-1 seconds" } })],
    ["hedging.maxFraction", (provider) => ({ chain: [{ provider }], hedging: { delay: "1 second", maxFraction: 5 } })],
    [
      "degrade.cache.ttl",
      (provider) => ({ chain: [{ provider }], degrade: { cache: { ttl: loose("5 parsecs"), capacity: 10 } } })
    ],
    [
      "degrade.cache.capacity",
      (provider) => ({ chain: [{ provider }], degrade: { cache: { ttl: "1 minute", capacity: -1 } } })
    ],
    ["chain[0].price.inputPer1k", (provider) => ({ chain: [{ provider, price: { inputPer1k: -1, outputPer1k: 1 } }] })],
    [
      "chain[0].price.outputPer1k",
      (provider) => ({ chain: [{ provider, price: { inputPer1k: 1, outputPer1k: NaN } }] })
    ],
    ["chain[0].qualityRank", (provider) => ({ chain: [{ provider, qualityRank: NaN }] })],
    ["degraded", (provider) => ({ chain: [{ provider }], degraded: loose("sometimes") })],
    ["chain[0].breaker", (provider) => ({ chain: [{ provider, breaker: loose("strict") }] })],
    ["rateLimit.maxWait", (provider) => ({ chain: [{ provider }], rateLimit: { maxWait: "-5 seconds" } })],
    ["chain[0].timeout", (provider) => ({ chain: [{ provider, timeout: "30 days" }] })],
    ["chain[0].limits.rpm", (provider) => ({ chain: [{ provider, limits: { rpm: -3 } }] })],
    ["chain[0].retry.policies.RateLimited.maxDelay", (provider) => ({
      chain: [{ provider, retry: { policies: { RateLimited: { maxDelay: 2 ** 31 } } } }]
    })],
    ["chain[0].breaker.cooldown", (provider) => ({ chain: [{ provider, breaker: { cooldown: "99999999 days" } }] })]
  ]
  for (const [field, build] of cases) {
    it.scoped(`${field} (${JSON.stringify(build(loose({})), (_, v) => typeof v === "number" && !Number.isFinite(v) ? String(v) : v).slice(0, 90)})`, () =>
      Effect.gen(function*() {
        const provider = yield* ScriptedProvider.make({
          name: "openai",
          model: "gpt-4.1",
          script: [ScriptedProvider.success("hi")]
        })
        const error = yield* refused(build(provider))
        expect(error.field).toBe(field)
        expect((yield* provider.calls).length).toBe(0)
      }))
  }

  it.scoped("two tiers on the same provider:model are refused: they would silently share one breaker and limiter", () =>
    Effect.gen(function*() {
      const a = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("hi")]
      })
      const b = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("hi")]
      })
      const error = yield* refused({ chain: [{ provider: a }, { provider: b }] })
      expect(error.field).toBe("chain[1].provider")
      expect(error.reason).toContain("chain[0].provider")
      const c = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1-mini",
        script: [ScriptedProvider.success("hi")]
      })
      const downgrade = yield* refused({ chain: [{ provider: a, downgrades: ["gpt-4.1-mini"] }, { provider: c }] })
      expect(downgrade.field).toBe("chain[1].provider")
    }))

  it.scoped("a per-call strategy nobody knows is InvalidRequest strategy, for complete and stream, with no call", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.success("hi")]
      })
      const client = yield* Resilient.make({ chain: [{ provider }] })
      const error = yield* Effect.flip(client.complete(ask, { strategy: loose("bogus") }))
      expect(error._tag).toBe("InvalidRequest")
      if (error._tag === "InvalidRequest") expect(error.field).toBe("strategy")
      const streamed = yield* Effect.flip(Stream.runDrain(client.stream(ask, { strategy: loose("bogus") })))
      expect(streamed._tag).toBe("InvalidRequest")
      expect((yield* provider.calls).length).toBe(0)
    }))
})

describe("durations too long for a timer are refused by every building block", () => {
  it.effect("Retry, CircuitBreaker, RateLimit, Fallback's hedger and cache", () =>
    Effect.gen(function*() {
      const tooLong = 2 ** 31
      expect((yield* Effect.flip(Retry.make({ attemptTimeout: tooLong }))).field).toBe("attemptTimeout")
      expect((yield* Effect.flip(CircuitBreaker.make({ cooldown: "25 days" }))).field).toBe("cooldown")
      expect((yield* Effect.flip(RateLimit.make({ maxWait: tooLong }))).field).toBe("maxWait")
      expect((yield* Effect.flip(Fallback.makeHedger({ delay: tooLong }))).field).toBe("delay")
      expect((yield* Effect.flip(Fallback.makeResponseCache({ ttl: loose("5 parsecs"), capacity: 1 }))).field).toBe(
        "ttl"
      )
      expect((yield* Effect.flip(Fallback.makeResponseCache({ ttl: "1 minute", capacity: -1 }))).field).toBe(
        "capacity"
      )
      // The longest a timer can wait is still accepted.
      yield* Retry.make({ attemptTimeout: 2 ** 31 - 1 })
    }))
})
