/**
 * Idle expiry of breaker-registry entries and limiter keys, under the TestClock: an idle key is dropped with its
 * metric series; an open breaker, a paused limiter key and a breaker a client still holds are not lost.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { breakerTransition, forLabel, update } from "../src/internal/metrics.js"
import { hardFailure } from "../src/LlmError.js"
import * as RateLimit from "../src/RateLimit.js"

const fail = hardFailure({ reason: "ServerError", provider: "p", model: "m", status: 500 })

/** The series of metric `name` carrying label `label` = `value`. */
const series = (name: string, label: string, value: string) =>
  Effect.map(
    Metric.snapshot,
    (pairs) =>
      pairs.filter((pair) =>
        pair.metricKey.name === name && pair.metricKey.tags.some((tag) => tag.key === label && tag.value === value)
      ).length
  )

describe("breaker registry idle expiry", () => {
  it.effect("drops a closed idle breaker and its metric series; keeps an open one and a held one", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1, idleExpiry: "1 hour" })
      yield* registry.execute("idle:model-a", Effect.succeed("ok"))
      yield* Effect.exit(registry.execute("down:model-b", Effect.fail(fail)))
      const held = yield* registry.get("held:model-c")
      expect(yield* (yield* registry.get("down:model-b")).state).toBe("Open")
      // The series a client's breaker follower would have written for the idle key.
      breakerTransition("idle:model-a", "Closed", "Open", "failure-rate")
      expect(yield* series("llm.circuit_breaker.state", "gen_ai.system", "idle")).toBe(1)

      // Used at minute 0; sweeps run at admissions, one interval apart. After one interval nothing is old enough.
      yield* TestClock.adjust("61 minutes")
      yield* registry.execute("busy:model-d", Effect.succeed("ok"))
      expect([...(yield* registry.keys)].sort()).toEqual([
        "busy:model-d",
        "down:model-b",
        "held:model-c",
        "idle:model-a"
      ])

      yield* TestClock.adjust("61 minutes")
      yield* registry.execute("busy:model-d", Effect.succeed("ok"))
      // Idle for two hours: the closed ones go; the open breaker stays (never evicted while open).
      expect([...(yield* registry.keys)].sort()).toEqual(["busy:model-d", "down:model-b"])
      expect(yield* series("llm.circuit_breaker.state", "gen_ai.system", "idle")).toBe(0)
      expect(yield* series("llm.circuit_breaker.transitions", "gen_ai.system", "idle")).toBe(0)
      const down = yield* registry.get("down:model-b")
      expect((yield* down.snapshot).openedAt).toBe(0)

      // A breaker someone held is the same object when its key comes back: never two breakers for one key.
      yield* held.execute(Effect.succeed("ok"))
      expect(yield* registry.get("held:model-c")).toBe(held)
      expect([...(yield* registry.keys)].sort()).toEqual(["busy:model-d", "down:model-b", "held:model-c"])
    }))

  it.effect("idleExpiry: false keeps every key; a bad value is a typed InvalidOptions", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({ idleExpiry: false })
      yield* registry.execute("a", Effect.succeed(1))
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("2 hours")
        yield* registry.execute("b", Effect.succeed(1))
      }
      expect([...(yield* registry.keys)].sort()).toEqual(["a", "b"])
      const bad = yield* Effect.exit(CircuitBreaker.makeRegistry({ idleExpiry: "-5 minutes" }))
      expect(Exit.isFailure(bad) && bad.cause._tag === "Fail" ? bad.cause.error.field : undefined).toBe("idleExpiry")
    }))
})

describe("limiter idle expiry", () => {
  it.effect("drops an idle key's series; keeps a paused key", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limits: { rpm: 1 }, mode: "fail-fast", idleExpiry: "1 hour" })
      yield* limiter.limit("idle-key")(Effect.succeed(1))
      yield* Effect.exit(limiter.limit("idle-key")(Effect.succeed(1)))
      update(forLabel("idle-key").rateLimitWait, 5)
      expect(yield* series("llm.rate_limit.rejections", "key", "idle-key")).toBe(1)
      expect(yield* series("llm.rate_limit.wait_ms", "gen_ai.system", "idle-key")).toBe(1)
      yield* limiter.pause("paused-key", "5 hours")

      for (let i = 0; i < 2; i++) {
        yield* TestClock.adjust("61 minutes")
        yield* limiter.limit("busy-key")(Effect.succeed(1))
      }
      expect(yield* series("llm.rate_limit.rejections", "key", "idle-key")).toBe(0)
      expect(yield* series("llm.rate_limit.wait_ms", "gen_ai.system", "idle-key")).toBe(0)
      // The paused key kept its pause (4 h 58 min to go).
      expect((yield* limiter.snapshot("paused-key")).pausedUntil).toBe(5 * 3_600_000)
      const refused = yield* Effect.flip(limiter.limit("paused-key")(Effect.succeed(1)))
      expect(refused._tag === "RateLimitExceeded" ? refused.limit : undefined).toBe("paused")
    }))
})
