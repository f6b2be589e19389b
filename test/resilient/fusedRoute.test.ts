/**
 * Which route a request takes (src/internal/resilient/complete.ts, fastPath.ts) — a test of internal structure: an
 * eligible tier's first attempt is admitted by the limiter's synchronous admission (the fused route), or — behind a
 * full key — waits in the limiter's queue and runs fused from its admission, never through `limiter.call`; a retrier
 * that wraps the call (its attempt timeout) or a tier the fast path cannot take send it through `limiter.call`. The
 * differential test (fastPath.test.ts) checks that the routes record the same; this one checks that the fused one
 * is taken where it can be.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { vi } from "vitest"
import { fusedOf } from "../../src/internal/rateLimit.js"
import { build } from "../../src/internal/resilient/make.js"
import * as Quality from "../../src/Quality.js"
import * as RateLimit from "../../src/RateLimit.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const REQUEST = { messages: [{ role: "user" as const, content: "ping" }] }

/** Three requests through a one-tier client over `tier`; how often each admission path ran. */
const routes = (tier: Partial<Resilient.Tier>, limits?: RateLimit.Options) =>
  Effect.gen(function*() {
    const provider = yield* ScriptedProvider.make({
      name: "route",
      model: "m",
      script: () => ({ _tag: "Success", content: "pong", latency: "10 millis" })
    })
    const limiter = yield* RateLimit.make(limits)
    const fused = fusedOf(limiter)
    expect(fused).toBeDefined()
    const admitNow = vi.spyOn(fused!, "admitNow")
    const call = vi.spyOn(limiter, "call")
    const client = yield* Resilient.make({ chain: [{ provider, ...tier }], limiter })
    for (let i = 0; i < 3; i++) {
      const fiber = yield* Effect.fork(client.complete(REQUEST))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber)).content).toBe("pong")
    }
    return {
      fused: admitNow.mock.results.filter((result) => result.value !== undefined).length,
      call: call.mock.calls.length
    }
  })

describe("Resilient.complete routes", () => {
  it.scoped("a healthy tier with defaults: every first attempt fused", () =>
    Effect.gen(function*() {
      expect(yield* routes({})).toEqual({ fused: 3, call: 0 })
    }))

  it.scoped("a tier timeout is taken into the fused attempt", () =>
    Effect.gen(function*() {
      expect(yield* routes({ timeout: "5 seconds" })).toEqual({ fused: 3, call: 0 })
    }))

  it.scoped("a retrier's attempt timeout wraps the call: through limiter.call", () =>
    Effect.gen(function*() {
      expect(yield* routes({ retry: { attemptTimeout: "5 seconds" } })).toEqual({ fused: 0, call: 3 })
    }))

  it.scoped("behind a full key: the requests wait in the limiter's queue and run fused; an interrupted wait leaves nothing", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "queued",
        model: "m",
        script: () => ({ _tag: "Success", content: "pong", latency: "10 seconds" })
      })
      const limiter = yield* RateLimit.make({ limits: { concurrency: 1 } })
      const admit = vi.spyOn(fusedOf(limiter)!, "admit")
      const call = vi.spyOn(limiter, "call")
      const client = yield* Resilient.make({ chain: [{ provider }], limiter })
      const holder = yield* Effect.fork(client.complete(REQUEST))
      const waiters = [
        yield* Effect.fork(client.complete(REQUEST)),
        yield* Effect.fork(client.complete(REQUEST)),
        yield* Effect.fork(client.complete(REQUEST))
      ]
      yield* TestClock.adjust("1 second")
      const target = { name: "queued", model: "m" }
      expect((yield* limiter.snapshot(target)).waiting).toBe(3)
      // The second waiter gives up its place: the queue closes over it.
      yield* Fiber.interrupt(waiters[1]!)
      expect((yield* limiter.snapshot(target)).waiting).toBe(2)
      for (let i = 0; i < 4; i++) yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(holder)).content).toBe("pong")
      expect((yield* Fiber.join(waiters[0]!)).content).toBe("pong")
      expect((yield* Fiber.join(waiters[2]!)).content).toBe("pong")
      expect(yield* provider.calls).toHaveLength(3)
      expect(yield* limiter.snapshot(target)).toMatchObject({ inFlight: 0, waiting: 0 })
      expect({ parked: admit.mock.calls.length, call: call.mock.calls.length }).toEqual({ parked: 3, call: 0 })
    }))

  it.scoped("a breaker that opens while a request waits in the queue: the same outcome as the ladder's", () =>
    Effect.gen(function*() {
      // The first call fails (and opens the primary's breaker) after 5 s; the second waits for the one permit
      // meanwhile, is admitted when the first ends, and meets an open breaker: the backup serves it.
      const run = (fastPath: boolean) =>
        Effect.gen(function*() {
          const tag = fastPath ? "fused" : "ladder"
          const start = yield* Clock.currentTimeMillis
          const primary = yield* ScriptedProvider.make({
            name: `park-${tag}`,
            model: "m",
            script: () => ScriptedProvider.failure("ServerError", { status: 503, latency: "5 seconds" })
          })
          const backup = yield* ScriptedProvider.make({
            name: `backup-${tag}`,
            model: "m",
            script: () => ({ _tag: "Success", content: "from backup", latency: "10 millis" })
          })
          const { service } = yield* build({
            chain: [
              { provider: primary, limits: { concurrency: 1 }, retry: false, breaker: { consecutiveFailures: 1 } },
              { provider: backup }
            ]
          }, { fastPath })
          const first = yield* Effect.fork(Effect.either(service.complete(REQUEST)))
          const second = yield* Effect.fork(Effect.either(service.complete(REQUEST)))
          for (let i = 0; i < 3; i++) yield* TestClock.adjust("5 seconds")
          const outcome = (result: unknown) =>
            JSON.stringify(result, (key, value) => key === "latencyMs" || key === "requestId" ? undefined : value)
          return {
            results: [outcome(yield* Fiber.join(first)), outcome(yield* Fiber.join(second))]
              .map((text) => text.replaceAll(tag, "")),
            primaryCalls: (yield* primary.calls).map((call) => call.at - start),
            backupCalls: (yield* backup.calls).map((call) => call.at - start),
            breaker: (yield* service.breakers.get(`park-${tag}:m`)!.snapshot).state
          }
        })
      const fused = yield* run(true)
      expect(fused.primaryCalls).toEqual([0])
      expect(fused.breaker).toBe("Open")
      expect(fused.results[1]).toContain("from backup")
      expect(fused).toEqual(yield* run(false))
    }))

  it.scoped("a tier with a quality check is not on the fast path: through limiter.call", () =>
    Effect.gen(function*() {
      expect(yield* routes({ quality: Quality.truncated })).toEqual({ fused: 0, call: 3 })
    }))
})
