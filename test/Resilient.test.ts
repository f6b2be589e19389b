import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Quality from "../src/Quality.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Resilient from "../src/Resilient.js"
import * as Streaming from "../src/Streaming.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const ask = (content = "question") => ({ messages: [{ role: "user" as const, content }] })

/** Forks the effect, moves the TestClock, and returns its outcome. */
const settle = <A, E>(effect: Effect.Effect<A, E>, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(effect))
    yield* TestClock.adjust(advance)
    return yield* Fiber.join(fiber)
  }).pipe(Effect.withRandom(Random.fixed([0.5])))

const scripted = (name: string, script: ScriptedProvider.Script, model = `${name}-model`) =>
  ScriptedProvider.make({ name, model, script })

describe("Resilient", () => {
  it.scoped("the primary answers: tier 1, no fallback, cost from the price table", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.success("hi", { usage: { inputTokens: 1000, outputTokens: 500, totalTokens: 1500 } })
      ])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, price: { inputPer1k: 0.002, outputPer1k: 0.008 } }]
      })
      const result = yield* client.complete(ask())
      expect(result.content).toBe("hi")
      expect(result.servedBy).toBe("openai:openai-model")
      expect(result.tier).toBe(1)
      expect(result.fallbackFrom).toBeUndefined()
      expect(result.attempts).toEqual([])
      expect(result.costUsd).toBeCloseTo(0.002 + 0.004, 10)
    }))

  it.scoped("a 503 storm: retries on the primary, then the backup serves, and the attempt is reported", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.failure("ServerError", { status: 503 })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("from backup")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }, { provider: backup }] })
      const outcome = yield* settle(client.complete(ask()))
      expect(outcome._tag).toBe("Right")
      if (outcome._tag === "Right") {
        expect(outcome.right.servedBy).toBe("anthropic:anthropic-model")
        expect(outcome.right.tier).toBe(2)
        expect(outcome.right.fallbackFrom).toBe("openai:openai-model")
        expect(outcome.right.attempts.map((attempt) => [attempt.label, attempt.reason])).toEqual([
          ["openai:openai-model", "ServerError"]
        ])
      }
      // Retry's default for server errors: 3 calls.
      expect((yield* primary.calls).length).toBe(3)
    }))

  it.scoped("once the primary's breaker is open, requests skip it with zero calls", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.failure("ServerError", { status: 503 })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [
          { provider: primary, retry: false, breaker: { consecutiveFailures: 3, cooldown: "60 seconds" } },
          { provider: backup }
        ]
      })
      for (let i = 0; i < 3; i++) yield* client.complete(ask())
      expect((yield* primary.calls).length).toBe(3)
      const skipped = yield* client.complete(ask())
      expect((yield* primary.calls).length).toBe(3)
      expect(skipped.attempts[0]?.error).toBe("CircuitOpen")
      expect(skipped.attempts[0]?.skipped).toBe(true)
      expect(yield* client.breakers.get("openai:openai-model")!.state).toBe("Open")
    }))

  it.scoped("a caller fault does not fail over", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.failure("BadRequest", { status: 400 })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("never")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }, { provider: backup }] })
      const error = yield* Effect.flip(client.complete(ask()))
      expect(error._tag === "HardFailure" && error.reason).toBe("BadRequest")
      expect((yield* backup.calls).length).toBe(0)
      const invalid = yield* Effect.flip(client.complete({ messages: [] }))
      expect(invalid._tag).toBe("InvalidRequest")
      expect((yield* primary.calls).length).toBe(1)
    }))

  it.scoped("relaxation: a prompt over the window is trimmed before any call (preflight), the same model answers", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("fits now")])
      const client = yield* Resilient.make({ chain: [{ provider: primary, contextWindow: 600 }] })
      const long = "word ".repeat(400)
      const result = yield* client.complete({
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: long },
          { role: "assistant", content: long },
          { role: "user", content: "and now?" }
        ],
        maxTokens: 800
      })
      expect(result.content).toBe("fits now")
      expect(result.tier).toBe(1)
      const calls = yield* primary.calls
      expect(calls.length).toBe(1)
      expect(calls[0]?.request.maxTokens).toBe(400)
      expect(calls[0]?.request.messages.map((message) => message.role)).toEqual(["system", "user"])
    }))

  it.scoped("relaxation: a provider's own ContextLengthExceeded retries the same model with fewer output tokens", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("ContextLengthExceeded", { status: 400 }),
        ScriptedProvider.success("fits now")
      ])
      const client = yield* Resilient.make({ chain: [{ provider: primary, contextWindow: 8_000 }] })
      const result = yield* client.complete({ messages: [{ role: "user", content: "short" }], maxTokens: 800 })
      expect(result.content).toBe("fits now")
      const second = (yield* primary.calls)[1]
      expect(second?.request.maxTokens).toBe(400)
    }))

  it.scoped("relaxation then model downgrade on soft failures; quality checks decide", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-big",
        script: (call) =>
          call.model === "gpt-small" ? ScriptedProvider.success("{\"ok\":true}") : ScriptedProvider.success("prose")
      })
      const client = yield* Resilient.make({
        chain: [{ provider: primary, downgrades: ["gpt-small"], quality: Quality.json }]
      })
      const result = yield* client.complete({ ...ask(), temperature: 0.9 })
      expect(result.servedBy).toBe("openai:gpt-small")
      const calls = yield* primary.calls
      expect(calls.map((call) => [call.model, call.request.temperature])).toEqual([
        ["gpt-big", 0.9],
        ["gpt-big", 0],
        ["gpt-small", 0.9]
      ])
    }))

  it.scoped("a degraded answer falls back, and is served (marked) when nothing better comes", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("half an", { finishReason: "length" })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.failure("Overloaded", { status: 529 })])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, quality: Quality.truncated }, { provider: backup, retry: false }]
      })
      const result = yield* client.complete(ask())
      expect(result.content).toBe("half an")
      expect(result.degraded).toBe("Truncated")
      expect(result.attempts.map((attempt) => attempt.error)).toEqual(["DegradedResponse", "HardFailure"])
      expect((yield* backup.calls).length).toBe(1)
      const accepting = yield* Resilient.make({
        chain: [{ provider: primary, quality: Quality.truncated }, { provider: backup }],
        degraded: "accept"
      })
      const accepted = yield* accepting.complete(ask())
      expect(accepted.degraded).toBe("Truncated")
      expect(accepted.tier).toBe(1)
      expect((yield* backup.calls).length).toBe(1)
    }))

  it.scoped("graceful degradation: cache within its TTL, then the static answer, then the typed final error", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.success("fresh answer"),
        ScriptedProvider.failure("ServerError", { status: 500 })
      ])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false, breaker: false }],
        degrade: { cache: { ttl: "10 minutes", capacity: 100 }, staticResponse: "Please try again later." }
      })
      expect((yield* client.complete(ask())).servedBy).toBe("openai:openai-model")
      const cached = yield* client.complete(ask())
      expect(cached.servedBy).toBe("cache")
      expect(cached.degraded).toBe("cache")
      expect(cached.content).toBe("fresh answer")
      expect(cached.attempts[0]?.reason).toBe("ServerError")
      yield* TestClock.adjust("11 minutes")
      const fixed = yield* client.complete(ask())
      expect(fixed.servedBy).toBe("static")
      expect(fixed.content).toBe("Please try again later.")
      const bare = yield* Resilient.make({ chain: [{ provider: primary, retry: false, breaker: false }] })
      const error = yield* Effect.flip(bare.complete(ask()))
      expect(error._tag).toBe("FallbackExhausted")
      expect(error._tag === "FallbackExhausted" && error.attempts.map((attempt) => attempt.label)).toEqual([
        "openai:openai-model"
      ])
    }))

  it.scoped("a failed request is never cached", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("ServerError"),
        ScriptedProvider.success("later")
      ])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false, breaker: false }],
        degrade: { cache: { ttl: "10 minutes", capacity: 100 } }
      })
      const first = yield* Effect.flip(client.complete(ask()))
      expect(first._tag).toBe("FallbackExhausted")
      expect((yield* client.complete(ask())).content).toBe("later")
    }))

  describe("ordering strategies", () => {
    const providers = Effect.gen(function*() {
      const cheap = yield* scripted("cheap", [ScriptedProvider.success("cheap", { latency: "3 seconds" })])
      const fast = yield* scripted("fast", [ScriptedProvider.success("fast", { latency: "100 millis" })])
      const best = yield* scripted("best", [ScriptedProvider.success("best", { latency: "1 second" })])
      return { cheap, fast, best }
    })

    it.scoped("cost-first, quality-first, ordered and latency-first (from observed latency)", () =>
      Effect.gen(function*() {
        const { best, cheap, fast } = yield* providers
        const client = yield* Resilient.make({
          chain: [
            { provider: best, price: { inputPer1k: 0.01, outputPer1k: 0.03 }, qualityRank: 0 },
            { provider: fast, price: { inputPer1k: 0.001, outputPer1k: 0.002 }, qualityRank: 1 },
            { provider: cheap, price: { inputPer1k: 0.0001, outputPer1k: 0.0002 }, qualityRank: 2 }
          ]
        })
        const servedBy = (strategy: Resilient.Strategy) =>
          Effect.map(
            settle(client.complete(ask(), { strategy })),
            (outcome) => outcome._tag === "Right" ? outcome.right.servedBy : "failed"
          )
        expect(yield* servedBy("ordered")).toBe("best:best-model")
        expect(yield* servedBy("cost-first")).toBe("cheap:cheap-model")
        expect(yield* servedBy("quality-first")).toBe("best:best-model")
        // Observed so far: best 1 s, cheap 3 s; fast never observed: it is tried first (it may be the fastest, and
        // would never be measured otherwise), then its observed median ranks it.
        expect(yield* servedBy("latency-first")).toBe("fast:fast-model")
        expect(yield* servedBy("latency-first")).toBe("fast:fast-model")
        const learning = yield* Resilient.make({
          chain: [
            { provider: best, price: { inputPer1k: 0.01, outputPer1k: 0.03 } },
            { provider: fast, price: { inputPer1k: 0.001, outputPer1k: 0.002 } }
          ]
        })
        const learned = (strategy: Resilient.Strategy) =>
          Effect.map(
            settle(learning.complete(ask(), { strategy })),
            (outcome) => outcome._tag === "Right" ? outcome.right.servedBy : "failed"
          )
        expect(yield* learned("ordered")).toBe("best:best-model") // observes best: 1 s
        expect(yield* learned("cost-first")).toBe("fast:fast-model") // observes fast: 100 ms
        expect(yield* learned("latency-first")).toBe("fast:fast-model")
      }))
  })

  it.scoped("hedging: the backup starts after the delay and the faster answer wins", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("slow", { latency: "10 seconds" })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("fast", { latency: "1 second" })])
      const client = yield* Resilient.make({
        chain: [{ provider: primary }, { provider: backup }],
        hedging: { delay: "2 seconds", maxFraction: 1 }
      })
      const fiber = yield* Effect.fork(client.complete(ask()))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.servedBy).toBe("anthropic:anthropic-model")
      expect((yield* backup.calls)[0]?.at).toBe(2000)
      // The interrupted primary is not a failure: its breaker stays closed.
      expect(yield* client.breakers.get("openai:openai-model")!.state).toBe("Closed")
    }))

  it.scoped("a tier whose rate limit is full is skipped without waiting", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("primary", { latency: "5 seconds" })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, limits: { concurrency: 1 } }, { provider: backup }],
        rateLimit: { mode: "fail-fast" }
      })
      const first = yield* Effect.fork(client.complete(ask()))
      yield* TestClock.adjust("1 second")
      const second = yield* client.complete(ask())
      expect(second.servedBy).toBe("anthropic:anthropic-model")
      expect(second.attempts[0]?.error).toBe("RateLimitExceeded")
      expect(second.attempts[0]?.skipped).toBe(true)
      yield* TestClock.adjust("5 seconds")
      expect((yield* Fiber.join(first)).servedBy).toBe("openai:openai-model")
    }))

  it.scoped("invalid configuration fails at construction naming the path", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("x")])
      const retry = yield* Effect.flip(Resilient.make({ chain: [{ provider: primary, retry: { maxAttempts: 0 } }] }))
      expect(retry.field).toBe("chain[0].retry.maxAttempts")
      const timeout = yield* Effect.flip(
        Resilient.make({ chain: [{ provider: primary }, { provider: primary, timeout: -5 }] })
      )
      expect(timeout.field).toBe("chain[1].timeout")
      const downgrade = yield* Effect.flip(
        Resilient.make({ chain: [{ provider: primary, downgrades: ["gpt-small", " "] }] })
      )
      expect(downgrade.field).toBe("chain[0].downgrades[1]")
    }))

  it.scoped("a tier's adaptMessages output is checked like a request: invalid is InvalidRequest, before any call", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("never")])
      const client = yield* Resilient.make({ chain: [{ provider: primary, adaptMessages: () => [] }] })
      const error = yield* Effect.flip(client.complete(ask()))
      expect(error._tag === "InvalidRequest" && error.field).toBe("messages")
      expect((yield* primary.calls).length).toBe(0)
    }))

  it.scoped("stream: a failure before the first chunk is retried by the tier's policy (Retry-After honoured)", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("RateLimited", { status: 429, retryAfter: "3 seconds" }),
        ScriptedProvider.success("after the wait", { chunks: ["after ", "the wait"] })
      ])
      const client = yield* Resilient.make({ chain: [{ provider: primary }] })
      const outcome = yield* settle(Streaming.collect(client.stream(ask())))
      expect(outcome._tag === "Right" && outcome.right.text).toBe("after the wait")
      expect((yield* primary.calls).map((call) => call.at)).toEqual([0, 3000])
    }))

  it.scoped("stream: a failure after the first chunk is not retried (the caller has that text)", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [
        ScriptedProvider.failure("ServerError", { status: 502, chunks: ["half "] }),
        ScriptedProvider.success("never")
      ])
      const client = yield* Resilient.make({ chain: [{ provider: primary }] })
      const outcome = yield* settle(Streaming.collect(client.stream(ask())))
      expect(outcome._tag === "Left" && outcome.left._tag).toBe("HardFailure")
      expect((yield* primary.calls).length).toBe(1)
    }))

  it.scoped("stream: skips a provider whose breaker is open and streams from the next", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("primary stream")])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup stream")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }, { provider: backup }] })
      yield* client.breakers.get("openai:openai-model")!.forceOpen
      const collected = yield* Streaming.collect(client.stream(ask()))
      expect(collected.text).toBe("backup stream")
      expect(Option.getOrThrow(collected.end).provider).toBe("anthropic")
      expect((yield* primary.calls).length).toBe(0)
    }))
})

describe("Resilient: a breaker that opens during a step", () => {
  const overloaded = ScriptedProvider.failure("Overloaded", { status: 529 })

  it.scoped("trips on a retried failure: no backoff is slept, and the step reports the real failure", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [overloaded])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, breaker: { consecutiveFailures: 2, cooldown: "60 seconds" } }, {
          provider: backup
        }]
      })
      const outcome = yield* settle(client.complete(ask()), "5 seconds")
      expect(outcome._tag).toBe("Right")
      if (outcome._tag !== "Right") return
      // Overloaded retries at 1 s then 2 s, but the second failure opened the breaker: the third call could only be
      // refused, so the step ends at once instead of sleeping 2 s first.
      expect((yield* primary.calls).map((call) => call.at)).toEqual([0, 1000])
      expect((yield* backup.calls).map((call) => call.at)).toEqual([1000])
      expect(outcome.right.attempts).toEqual([
        expect.objectContaining({
          label: "openai:openai-model",
          error: "HardFailure",
          reason: "Overloaded",
          skipped: false,
          latencyMs: 1000
        })
      ])
      expect(yield* client.breakers.get("openai:openai-model")!.state).toBe("Open")
    }))

  it.scoped("opened by other traffic during the backoff: the refused retry still reports the real failure", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [overloaded])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }, { provider: backup }] })
      const fiber = yield* Effect.fork(client.complete(ask()).pipe(Effect.withRandom(Random.fixed([0.5]))))
      yield* TestClock.adjust("500 millis")
      yield* client.breakers.get("openai:openai-model")!.forceOpen
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      expect((yield* primary.calls).length).toBe(1)
      expect(result.servedBy).toBe("anthropic:anthropic-model")
      expect(result.attempts.map((attempt) => [attempt.error, attempt.reason, attempt.skipped])).toEqual([
        ["HardFailure", "Overloaded", false]
      ])
    }))

  it.scoped("a retry refused by the rate limiter reports the call that was made, not a skip", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [overloaded])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, limits: { rpm: 1 } }, { provider: backup }],
        rateLimit: { mode: "fail-fast" }
      })
      const outcome = yield* settle(client.complete(ask()))
      expect(outcome._tag).toBe("Right")
      if (outcome._tag !== "Right") return
      expect((yield* primary.calls).length).toBe(1)
      expect(outcome.right.attempts.map((attempt) => [attempt.error, attempt.reason, attempt.skipped])).toEqual([
        ["HardFailure", "Overloaded", false]
      ])
    }))

  it.scoped("a step refused before any call is still reported as skipped", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [overloaded])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({ chain: [{ provider: primary }, { provider: backup }] })
      yield* client.breakers.get("openai:openai-model")!.forceOpen
      const result = yield* client.complete(ask())
      expect((yield* primary.calls).length).toBe(0)
      expect(result.attempts.map((attempt) => [attempt.error, attempt.skipped])).toEqual([["CircuitOpen", true]])
    }))
})

describe("Resilient: the tier timeout", () => {
  it.scoped("interrupts a hanging call at the deadline: HardFailure Timeout attempt_timeout, retried, then failover", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.hang])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const client = yield* Resilient.make({
        chain: [{ provider: primary, timeout: "5 seconds" }, { provider: backup }]
      })
      const fiber = yield* Effect.fork(client.complete(ask()).pipe(Effect.withRandom(Random.fixed([0.5]))))
      yield* TestClock.adjust("4999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 minute")
      const result = yield* Fiber.join(fiber)
      // Timeout policy: 2 calls, linear 2 s. Call 1 times out at 5 s, call 2 starts at 7 s and times out at 12 s.
      expect((yield* primary.calls).map((call) => call.at)).toEqual([0, 7000])
      expect((yield* backup.calls).map((call) => call.at)).toEqual([12000])
      expect(result.attempts).toEqual([
        expect.objectContaining({ error: "HardFailure", reason: "Timeout", skipped: false, latencyMs: 12000 })
      ])
    }))

  it.scoped("a call that answers in time is not affected", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("in time", { latency: "4 seconds" })])
      const client = yield* Resilient.make({ chain: [{ provider: primary, timeout: "5 seconds" }] })
      const outcome = yield* settle(client.complete(ask()))
      expect(outcome._tag === "Right" && outcome.right.content).toBe("in time")
    }))
})

describe("Resilient: shared breakers and limiter", () => {
  it.scoped("clients given one registry share each provider:model's breaker", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1 })
      const primary = yield* scripted("openai", [ScriptedProvider.failure("ServerError", { status: 502 })])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const chain = [{ provider: primary, retry: false as const }, { provider: backup }] as const
      const first = yield* Resilient.make({ chain, breakers: registry })
      const second = yield* Resilient.make({ chain, breakers: registry })
      expect((yield* first.complete(ask())).servedBy).toBe("anthropic:anthropic-model")
      expect(yield* (yield* registry.get("openai:openai-model")).state).toBe("Open")
      const other = yield* second.complete(ask())
      expect(other.servedBy).toBe("anthropic:anthropic-model")
      expect(other.attempts.map((attempt) => [attempt.error, attempt.skipped])).toEqual([["CircuitOpen", true]])
      expect((yield* primary.calls).length).toBe(1)
    }))

  it.scoped("Resilient.layer takes the registry and the limiter from its context", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("primary")])
      const backup = yield* scripted("anthropic", [ScriptedProvider.success("backup")])
      const shared = Layer.mergeAll(
        CircuitBreaker.layer({ consecutiveFailures: 1 }),
        RateLimit.layer({ limits: { rpm: 1 }, mode: "fail-fast" })
      )
      const client = Resilient.layer({ chain: [{ provider: primary }, { provider: backup }] })
      yield* Effect.gen(function*() {
        const registry = yield* CircuitBreaker.CircuitBreakerRegistry
        const limiter = yield* RateLimit.RateLimiter
        const service = yield* Resilient.Resilient
        expect(service.limiter).toBe(limiter)
        expect(service.breakers.get("openai:openai-model")).toBe(yield* registry.get("openai:openai-model"))
        // The shared limiter's one request a minute goes to the first call; the second is refused and fails over.
        expect((yield* service.complete(ask())).servedBy).toBe("openai:openai-model")
        const next = yield* service.complete(ask())
        expect(next.servedBy).toBe("anthropic:anthropic-model")
        expect(next.attempts.map((attempt) => attempt.error)).toEqual(["RateLimitExceeded"])
      }).pipe(Effect.provide(client.pipe(Layer.provideMerge(shared))))
    }))

  it.scoped("settings a shared registry or limiter makes moot are named in a warning", () =>
    Effect.gen(function*() {
      const primary = yield* scripted("openai", [ScriptedProvider.success("primary")])
      const warnings: Array<string> = []
      const logger = Logger.make(({ annotations, logLevel, message }) => {
        if (logLevel._tag === "Warning") {
          warnings.push(`${String(message)} | ${String(HashMap.unsafeGet(annotations, "fields"))}`)
        }
      })
      yield* Resilient.make({
        chain: [{ provider: primary, breaker: { consecutiveFailures: 9 }, limits: { rpm: 5 } }],
        breakers: yield* CircuitBreaker.makeRegistry(),
        limiter: yield* RateLimit.make()
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("chain[0].breaker, chain[0].limits")
    }))
})
