import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const ask = { messages: [{ role: "user" as const, content: "question" }] }

/** Options as a user might write them in plain JavaScript or from an untyped source. */
const loose = <A>(value: unknown): A => value as A

const scripted = (name: string, script: ScriptedProvider.Script) => ScriptedProvider.make({ name, model: "m", script })

/** Runs `effect` in a fiber while the test clock moves on by `by`, and returns its exit. */
const within = <A, E>(effect: Effect.Effect<A, E>, by: Parameters<typeof TestClock.adjust>[0]) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

describe("Resilient: a request deadline across the ladder", () => {
  it.scoped("cuts a hanging call at the deadline, outside the breaker, and FallbackExhausted says it ran out", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.hang])
      const backup = yield* scripted("b", [ScriptedProvider.success("late")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }, { provider: backup, retry: false }]
      })
      const exit = yield* within(client.complete(ask, { deadline: "2 seconds" }), "2 seconds")
      expect(exit._tag).toBe("Failure")
      const error = exit._tag === "Failure" ? yield* Effect.flip(exit) : undefined
      expect(error?._tag).toBe("FallbackExhausted")
      if (error?._tag !== "FallbackExhausted") return
      expect(error.deadlineExceeded).toBe(true)
      expect(error.message).toContain("the request deadline ran out")
      expect(error.attempts.map((attempt) => [attempt.label, attempt.error, attempt.reason])).toEqual([
        ["a:m", "HardFailure", "Timeout"],
        ["b:m", "DeadlineExceeded", "Expired"]
      ])
      expect(error.attempts[0]?.latencyMs).toBe(2_000)
      expect(error.attempts[1]?.skipped).toBe(true)
      expect((yield* backup.calls).length).toBe(0)
      // Cut short by the caller's deadline: the provider is not blamed for it.
      const snapshot = yield* client.breakers.get("a:m")!.snapshot
      expect(snapshot.failureRate).toBe(0)
    }))

  it.scoped("the chain's deadline is the default, and a call's own deadline overrides it", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.success("slow", { latency: "3 seconds" })])
      const client = yield* Resilient.make({ chain: [{ provider: primary, retry: false }], deadline: "1 second" })
      const cut = yield* within(client.complete(ask), "1 second")
      expect(cut._tag).toBe("Failure")
      const served = yield* within(client.complete(ask, { deadline: "5 seconds" }), "3 seconds")
      expect(served._tag === "Success" ? served.value.content : undefined).toBe("slow")
    }))

  it.scoped("caps a retry's backoff: a Retry-After longer than what is left moves on at once", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.failure("RateLimited", { retryAfter: "20 seconds" })])
      const backup = yield* scripted("b", [ScriptedProvider.success("from b")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: { maxAttempts: 3 } }, { provider: backup, retry: false }]
      })
      const result = yield* client.complete(ask, { deadline: "5 seconds" })
      expect(result.servedBy).toBe("b:m")
      expect(yield* Clock.currentTimeMillis).toBe(0)
      expect((yield* primary.calls).length).toBe(1)
      // Without a deadline the same chain waits out the Retry-After and calls the primary again.
      const patient = yield* within(client.complete(ask), "5 minutes")
      expect(patient._tag).toBe("Success")
      const calls = yield* primary.calls
      expect(calls.length).toBeGreaterThan(1)
      expect(calls.at(-1)!.at).toBeGreaterThanOrEqual(20_000)
    }))

  it.scoped("caps each retry's attempt timeout: the retrier's attempt ends with the deadline", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.hang])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: { maxAttempts: 3, attemptTimeout: "10 seconds" } }]
      })
      const exit = yield* within(client.complete(ask, { deadline: "3 seconds" }), "3 seconds")
      const error = exit._tag === "Failure" ? yield* Effect.flip(exit) : undefined
      expect(error?._tag === "FallbackExhausted" && error.deadlineExceeded).toBe(true)
      expect((yield* primary.calls).length).toBe(1)
    }))

  it.scoped("skips a step whose observed median does not fit in what is left, with a typed attempt reason", () =>
    Effect.gen(function*() {
      const slow = yield* scripted("slow", [ScriptedProvider.success("slow", { latency: "4 seconds" })])
      const fast = yield* scripted("fast", [ScriptedProvider.success("fast", { latency: "100 millis" })])
      const client = yield* Resilient.make({
        chain: [{ provider: slow, retry: false }, { provider: fast, retry: false }]
      })
      // Observed: the slow tier's median is 4 s.
      for (let i = 0; i < 3; i++) expect((yield* within(client.complete(ask), "4 seconds"))._tag).toBe("Success")
      const exit = yield* within(client.complete(ask, { deadline: "2 seconds" }), "100 millis")
      expect(exit._tag).toBe("Success")
      if (exit._tag !== "Success") return
      expect(exit.value.servedBy).toBe("fast:m")
      expect(exit.value.attempts).toMatchObject([{
        label: "slow:m",
        error: "DeadlineExceeded",
        reason: "TooSlow",
        skipped: true,
        latencyMs: 0
      }])
      expect(exit.value.attempts[0]?.message).toBe(
        "slow:m skipped: 2000 ms left of the request deadline, its observed median is 4000 ms"
      )
      expect((yield* slow.calls).length).toBe(3)
    }))

  it.scoped("a stream: the deadline bounds the time to its first chunk, and a slow step is skipped on its TTFT", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.success("first", { latency: "3 seconds" })])
      const backup = yield* scripted("b", [ScriptedProvider.success("second", { latency: "100 millis" })])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }, { provider: backup, retry: false }]
      })
      const text = (options: Resilient.CallOptions) =>
        Stream.runFold(
          client.stream(ask, options),
          "",
          (acc, chunk) => chunk._tag === "ContentDelta" ? acc + chunk.text : acc
        )
      // Cut at 1 s: the primary is interrupted, the backup has no time left.
      const cut = yield* within(text({ deadline: "1 second" }), "1 second")
      const error = cut._tag === "Failure" ? yield* Effect.flip(cut) : undefined
      expect(error?._tag === "FallbackExhausted" && error.deadlineExceeded).toBe(true)
      // Observed: the primary's time to first token is 3 s.
      for (let i = 0; i < 2; i++) expect(yield* within(text({}), "3 seconds")).toMatchObject({ value: "first" })
      const skipped = yield* within(text({ deadline: "2 seconds" }), "100 millis")
      expect(skipped).toMatchObject({ _tag: "Success", value: "second" })
      expect((yield* primary.calls).length).toBe(3)
    }))

  it.scoped("a deadline that is not a positive duration is the caller's InvalidRequest, before any call", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("a", [ScriptedProvider.success("hi")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }] })
      for (const deadline of [0, "-1 seconds", "soon", Number.NaN]) {
        const error = yield* Effect.flip(client.complete(ask, { deadline: loose(deadline) }))
        expect(error).toMatchObject({ _tag: "InvalidRequest", field: "deadline" })
        const streamed = yield* Effect.flip(Stream.runDrain(client.stream(ask, { deadline: loose(deadline) })))
        expect(streamed).toMatchObject({ _tag: "InvalidRequest", field: "deadline" })
      }
      expect((yield* primary.calls).length).toBe(0)
    }))

  it.scoped("the chain's deadline and whenAllRefused.wait are checked when the client is built", () =>
    Effect.gen(function*() {
      const provider = yield* scripted("a", [ScriptedProvider.success("hi")])
      const cases: ReadonlyArray<readonly [string, Partial<Resilient.Config>]> = [
        ["deadline", { deadline: "0 seconds" }],
        ["deadline", { deadline: loose("whenever") }],
        ["whenAllRefused", { whenAllRefused: loose("30 seconds") }],
        ["whenAllRefused.wait", { whenAllRefused: loose({}) }],
        ["whenAllRefused.wait", { whenAllRefused: { wait: "-3 seconds" } }]
      ]
      for (const [field, config] of cases) {
        const error = yield* Effect.flip(Resilient.make({ chain: [{ provider }], ...config }))
        expect(error).toMatchObject({ _tag: "InvalidOptions", field })
      }
    }))
})

describe("Resilient: whenAllRefused waits for recovery instead of failing", () => {
  // One failure opens the breaker for 10 s.
  const trips = { consecutiveFailures: 1, cooldown: "10 seconds" } as const

  const opened = (wait: Duration.DurationInput | undefined, deadline?: Duration.DurationInput) =>
    Effect.gen(function*() {
      const provider = yield* scripted(
        "a",
        (call) => call.index === 0 ? ScriptedProvider.failure("ServerError") : ScriptedProvider.success("recovered")
      )
      const client = yield* Resilient.make({
        chain: [{ provider, retry: false, breaker: trips }],
        ...(wait !== undefined ? { whenAllRefused: { wait } } : {}),
        ...(deadline !== undefined ? { deadline } : {})
      })
      expect((yield* Effect.exit(client.complete(ask)))._tag).toBe("Failure")
      expect(yield* client.breakers.get("a:m")!.state).toBe("Open")
      return { client, provider }
    })

  it.scoped("every breaker open: waits for the soonest cooldown, then serves", () =>
    Effect.gen(function*() {
      const { client, provider } = yield* opened("30 seconds")
      yield* TestClock.adjust("4 seconds")
      const exit = yield* within(client.complete(ask), "6 seconds")
      expect(exit._tag).toBe("Success")
      if (exit._tag !== "Success") return
      expect(exit.value.content).toBe("recovered")
      expect(exit.value.attempts).toMatchObject([{ label: "a:m", error: "CircuitOpen", skipped: true }])
      expect(exit.value.attempts[0]?.retryAfterMs).toBe(6_000)
      const calls = yield* provider.calls
      expect(calls.map((call) => call.at)).toEqual([0, 10_000])
    }))

  it.scoped("without it, or when the wait is longer than allowed, the request fails at once", () =>
    Effect.gen(function*() {
      for (const wait of [undefined, "5 seconds"] as const) {
        const { client } = yield* opened(wait)
        const started = yield* Clock.currentTimeMillis
        const error = yield* Effect.flip(client.complete(ask))
        expect(error._tag).toBe("FallbackExhausted")
        expect((yield* Clock.currentTimeMillis) - started).toBe(0)
      }
    }))

  it.scoped("never waits past the deadline: the ladder fails at once, saying nothing of a deadline it did not reach", () =>
    Effect.gen(function*() {
      const { client } = yield* opened("1 minute", "3 seconds")
      const error = yield* Effect.flip(client.complete(ask))
      expect(error).toMatchObject({ _tag: "FallbackExhausted" })
      expect(error._tag === "FallbackExhausted" ? error.deadlineExceeded : "none").toBeUndefined()
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }))

  it.scoped("a full rate limiter: waits for its window, for a stream too", () =>
    Effect.gen(function*() {
      const provider = yield* scripted("a", [ScriptedProvider.success("ok")])
      const client = yield* Resilient.make({
        chain: [{ provider, retry: false, limits: { rpm: 1 } }],
        rateLimit: { mode: "fail-fast" },
        whenAllRefused: { wait: "2 minutes" }
      })
      expect((yield* client.complete(ask)).content).toBe("ok")
      const exit = yield* within(Stream.runCollect(client.stream(ask)), "1 minute")
      expect(exit._tag).toBe("Success")
      const calls = yield* provider.calls
      expect(calls.length).toBe(2)
      expect(calls[1]!.at).toBeGreaterThan(0)
      expect(calls[1]!.at).toBeLessThanOrEqual(60_000)
    }))

  it.scoped("a step refused for another reason (it cannot take the request) is not waited for", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "a",
        model: "m",
        script: [ScriptedProvider.success("ok")],
        capabilities: { tools: false, images: false, jsonSchema: false }
      })
      const client = yield* Resilient.make({ chain: [{ provider }], whenAllRefused: { wait: "1 minute" } })
      const error = yield* Effect.flip(client.complete({
        ...ask,
        tools: [{ name: "lookup", parameters: { type: "object" } }]
      }))
      expect(error).toMatchObject({ _tag: "FallbackExhausted" })
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }))
})
