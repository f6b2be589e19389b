import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { Balancer, EXPLORE_EVERY } from "../../src/internal/resilient/balance.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const ask = { messages: [{ role: "user" as const, content: "question" }] }

/** Options as a user might write them in plain JavaScript or from an untyped source. */
const loose = <A>(value: unknown): A => value as A

/** A deployment of `openai:gpt` answering with its own name. */
const deployment = (name: string, script?: ScriptedProvider.Script) =>
  Effect.map(
    ScriptedProvider.make({ name: "openai", model: "gpt", script: script ?? [ScriptedProvider.success(name)] }),
    (provider) => ({ name, provider })
  )

const counts = (labels: ReadonlyArray<string>) => {
  const found: Record<string, number> = {}
  for (const label of labels) found[label] = (found[label] ?? 0) + 1
  return found
}

describe("Resilient: several deployments per model", () => {
  it.scoped("weighted round-robin: 10,000 calls follow the weights within 2 %", () =>
    Effect.gen(function*() {
      const east = yield* deployment("east")
      const west = yield* deployment("west")
      const eu = yield* deployment("eu")
      const client = yield* Resilient.make({
        chain: [{
          deployments: [{ ...east, weight: 5 }, { ...west, weight: 3 }, { ...eu, weight: 2 }],
          retry: false
        }]
      })
      const served: Array<string> = []
      for (let i = 0; i < 10_000; i++) served.push((yield* client.complete(ask)).servedBy)
      const seen = counts(served)
      expect(Math.abs(seen["openai:gpt@east"]! / 10_000 - 0.5)).toBeLessThanOrEqual(0.02)
      expect(Math.abs(seen["openai:gpt@west"]! / 10_000 - 0.3)).toBeLessThanOrEqual(0.02)
      expect(Math.abs(seen["openai:gpt@eu"]! / 10_000 - 0.2)).toBeLessThanOrEqual(0.02)
      // Each deployment has its own breaker, keyed provider:model@deployment.
      expect([...client.breakers.keys()].sort()).toEqual(["openai:gpt@east", "openai:gpt@eu", "openai:gpt@west"])
    }), 60_000)

  it.scoped("least-in-flight: while one deployment is busy, calls go to the idle one", () =>
    Effect.gen(function*() {
      const slow = yield* deployment("slow", [ScriptedProvider.success("slow", { latency: "10 seconds" })])
      const quick = yield* deployment("quick")
      const client = yield* Resilient.make({
        chain: [{ deployments: [slow, quick], balance: "least-in-flight", retry: false }]
      })
      const busy = yield* Effect.fork(client.complete(ask))
      yield* TestClock.adjust("1 millis")
      const served: Array<string> = []
      for (let i = 0; i < 6; i++) served.push((yield* client.complete(ask)).servedBy)
      expect(served).toEqual(Array.from({ length: 6 }, () => "openai:gpt@quick"))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(busy)).servedBy).toBe("openai:gpt@slow")
      expect((yield* quick.provider.calls).length).toBe(6)
    }))

  it.scoped("ejection: a deployment whose breaker opened is out of rotation until its cooldown ends", () =>
    Effect.gen(function*() {
      const bad = yield* deployment("bad", [ScriptedProvider.failure("ServerError")])
      const good = yield* deployment("good")
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude",
        script: [ScriptedProvider.success("b")]
      })
      const client = yield* Resilient.make({
        chain: [
          { deployments: [bad, good], retry: false, breaker: { consecutiveFailures: 1, cooldown: "30 seconds" } },
          { provider: backup, retry: false }
        ]
      })
      const first = yield* client.complete(ask)
      expect(first.servedBy).toBe("anthropic:claude")
      expect(first.attempts).toMatchObject([{ label: "openai:gpt", error: "HardFailure" }])
      expect(yield* client.breakers.get("openai:gpt@bad")!.state).toBe("Open")
      const served: Array<string> = []
      for (let i = 0; i < 5; i++) served.push((yield* client.complete(ask)).servedBy)
      expect(served).toEqual(Array.from({ length: 5 }, () => "openai:gpt@good"))
      expect((yield* bad.provider.calls).length).toBe(1)
    }))

  it.scoped("maxEjectionPercent: past the cap, the deployment whose breaker opened longest ago stays in rotation", () =>
    Effect.gen(function*() {
      const a = yield* deployment(
        "a",
        (call) => call.index === 0 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("a")
      )
      const b = yield* deployment(
        "b",
        (call) => call.index === 0 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("b")
      )
      const c = yield* deployment("c", [ScriptedProvider.failure("ServerError")])
      const client = yield* Resilient.make({
        chain: [{
          deployments: [a, b, c],
          maxEjectionPercent: 34, // one of three
          retry: false,
          breaker: { consecutiveFailures: 1, cooldown: "1 minute" }
        }]
      })
      // Round-robin: a fails at 0 s, b at 1 s; both breakers open, a's older.
      expect((yield* Effect.exit(client.complete(ask)))._tag).toBe("Failure")
      yield* TestClock.adjust("1 second")
      expect((yield* Effect.exit(client.complete(ask)))._tag).toBe("Failure")
      expect(yield* client.breakers.get("openai:gpt@a")!.state).toBe("Open")
      expect(yield* client.breakers.get("openai:gpt@b")!.state).toBe("Open")
      // Only b (most cooldown left) is ejected: a stays in rotation, its breaker bypassed, next to c.
      const served = counts(
        yield* Effect.forEach(
          Array.from({ length: 4 }),
          () =>
            Effect.map(
              Effect.either(client.complete(ask)),
              (either) => either._tag === "Right" ? either.right.servedBy : "failed"
            )
        )
      )
      expect(served["openai:gpt@a"]).toBeGreaterThanOrEqual(1)
      expect(served["openai:gpt@b"]).toBeUndefined()
      expect((yield* b.provider.calls).length).toBe(1)
      // A bypassed breaker is neither asked nor told: it stays open.
      expect(yield* client.breakers.get("openai:gpt@a")!.state).toBe("Open")
    }))

  const allOpen = (panic: "oldest" | "skip") =>
    Effect.gen(function*() {
      const a = yield* deployment("a", (call) =>
        call.index === 0 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("a"))
      const b = yield* deployment("b", (call) =>
        call.index === 0 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("b"))
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude",
        script: [ScriptedProvider.success("z")]
      })
      const client = yield* Resilient.make({
        chain: [
          { deployments: [a, b], panic, retry: false, breaker: { consecutiveFailures: 1, cooldown: "1 minute" } },
          { provider: backup, retry: false }
        ]
      })
      yield* client.complete(ask)
      yield* TestClock.adjust("1 second")
      yield* client.complete(ask)
      expect(yield* client.breakers.get("openai:gpt@a")!.state).toBe("Open")
      expect(yield* client.breakers.get("openai:gpt@b")!.state).toBe("Open")
      return { a, b, client }
    })

  it.scoped("panic \"oldest\": every deployment out, the one whose breaker opened longest ago is tried", () =>
    Effect.gen(function*() {
      const { a, b, client } = yield* allOpen("oldest")
      const result = yield* client.complete(ask)
      expect(result.servedBy).toBe("openai:gpt@a")
      expect((yield* a.provider.calls).length).toBe(2)
      expect((yield* b.provider.calls).length).toBe(1)
    }))

  it.scoped("panic \"skip\": every deployment out, the step is skipped as CircuitOpen and the next tier serves", () =>
    Effect.gen(function*() {
      const { client } = yield* allOpen("skip")
      const result = yield* client.complete(ask)
      expect(result.servedBy).toBe("anthropic:claude")
      expect(result.attempts).toMatchObject([{ label: "openai:gpt", error: "CircuitOpen", skipped: true }])
      expect(result.attempts[0]?.retryAfterMs).toBe(59_000)
    }))

  it.scoped("usage: a deployment that answered 429 gets no traffic until its Retry-After passes", () =>
    Effect.gen(function*() {
      const limited = yield* deployment(
        "limited",
        (call) =>
          call.index === 0
            ? ScriptedProvider.failure("RateLimited", { retryAfter: "30 seconds" })
            : ScriptedProvider.success("limited")
      )
      const spare = yield* deployment("spare")
      const client = yield* Resilient.make({
        chain: [{ deployments: [limited, spare], balance: "usage", retry: false, breaker: false }]
      })
      expect((yield* Effect.exit(client.complete(ask)))._tag).toBe("Failure")
      const served: Array<string> = []
      for (let i = 0; i < 4; i++) served.push((yield* client.complete(ask)).servedBy)
      expect(served).toEqual(Array.from({ length: 4 }, () => "openai:gpt@spare"))
      yield* TestClock.adjust("30 seconds")
      const later = counts(
        yield* Effect.forEach(Array.from({ length: 4 }), () => Effect.map(client.complete(ask), (r) => r.servedBy))
      )
      expect(later["openai:gpt@limited"]).toBeGreaterThanOrEqual(1)
    }))

  it.scoped("latency: the fastest deployment takes the traffic, an unobserved one is tried, the slow one re-measured", () =>
    Effect.gen(function*() {
      const slow = yield* deployment("slow", [ScriptedProvider.success("slow", { latency: "2 seconds" })])
      const fast = yield* deployment("fast", [ScriptedProvider.success("fast", { latency: "100 millis" })])
      const client = yield* Resilient.make({ chain: [{ deployments: [slow, fast], balance: "latency", retry: false }] })
      const served: Array<string> = []
      for (let i = 0; i < 2 * EXPLORE_EVERY; i++) {
        const fiber = yield* Effect.fork(client.complete(ask))
        yield* TestClock.adjust("2 seconds")
        served.push((yield* Fiber.join(fiber)).servedBy)
      }
      // Both tried first (unobserved), then fast; slow again once per EXPLORE_EVERY picks.
      expect(served.slice(0, 2).sort()).toEqual(["openai:gpt@fast", "openai:gpt@slow"])
      const seen = counts(served)
      expect(seen["openai:gpt@slow"]).toBe(3)
      expect(seen["openai:gpt@fast"]).toBe(2 * EXPLORE_EVERY - 3)
    }))

  it.scoped("hedging at p95 learns a tier of deployments from its deployments' latencies", () =>
    Effect.gen(function*() {
      const east = yield* deployment(
        "east",
        (call) => ScriptedProvider.success("east", { latency: call.index < 3 ? "1 second" : "5 seconds" })
      )
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude",
        script: [ScriptedProvider.success("backup", { latency: "100 millis" })]
      })
      const client = yield* Resilient.make({
        chain: [{ deployments: [east], retry: false }, { provider: backup, retry: false }],
        hedging: { delay: "p95", maxFraction: 1 }
      })
      for (let i = 0; i < 3; i++) {
        const fiber = yield* Effect.fork(client.complete(ask))
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(fiber)).servedBy).toBe("openai:gpt@east")
      }
      // East now takes 5 s: the backup starts at east's observed P95 (1 s), not at the 2 s default.
      const fiber = yield* Effect.fork(client.complete(ask))
      yield* TestClock.adjust("1100 millis")
      const result = yield* Fiber.join(fiber)
      expect(result.servedBy).toBe("anthropic:claude")
    }))

  it.scoped("bad deployments are typed InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const east = yield* deployment("east")
      const west = yield* deployment("west")
      const other = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-mini",
        script: [ScriptedProvider.success("x")]
      })
      const cases: ReadonlyArray<readonly [string, Resilient.Tier]> = [
        ["chain[0].deployments[1].name", { deployments: [east, { ...west, name: "east" }] }],
        ["chain[0].deployments[0].weight", { deployments: [{ ...east, weight: 0 }, west] }],
        ["chain[0].deployments[1].weight", { deployments: [east, { ...west, weight: Number.POSITIVE_INFINITY }] }],
        ["chain[0].deployments[1].weight", { deployments: [east, { ...west, weight: -2 }] }],
        ["chain[0].maxEjectionPercent", { deployments: [east, west], maxEjectionPercent: 101 }],
        ["chain[0].maxEjectionPercent", { deployments: [east, west], maxEjectionPercent: -1 }],
        ["chain[0].balance", { deployments: [east, west], balance: loose("random") }],
        ["chain[0].panic", { deployments: [east, west], panic: loose("wait") }],
        ["chain[0].deployments", { deployments: [] }],
        ["chain[0].provider", { provider: east.provider, deployments: [east, west] }],
        ["chain[0].provider", {}],
        ["chain[0].deployments[1].provider", { deployments: [east, { name: "mini", provider: other }] }],
        ["chain[0].deployments[0].name", { deployments: [{ ...east, name: " " }] }]
      ]
      for (const [field, tier] of cases) {
        const error = yield* Effect.flip(Resilient.make({ chain: [tier] }))
        expect(error).toMatchObject({ _tag: "InvalidOptions", field })
      }
      expect((yield* east.provider.calls).length).toBe(0)
    }))
})

describe("Balancer", () => {
  it("smooth weighted round-robin interleaves: 5:1:1 gives a a b a c a a", () => {
    const balancer = new Balancer("weighted-round-robin", [5, 1, 1])
    const picks = Array.from({ length: 7 }, () => "abc"[balancer.pick([0, 1, 2], 0)])
    expect(picks.join(" ")).toBe("a a b a c a a")
  })

  it("an ejected member's share goes to the others in proportion", () => {
    const balancer = new Balancer("weighted-round-robin", [2, 1, 1])
    const picks = counts(Array.from({ length: 3_000 }, () => String(balancer.pick([1, 2], 0))))
    expect(picks).toEqual({ 1: 1_500, 2: 1_500 })
  })
})
