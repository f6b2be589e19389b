import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Fallback from "../src/Fallback.js"
import type { ChatMessage, CompletionRequest, CompletionResult } from "../src/Llm.js"
import { messageText } from "../src/Llm.js"
import { CircuitOpen, hardFailure, RateLimitExceeded, SoftFailure } from "../src/LlmError.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const request = { messages: [{ role: "user" as const, content: "question" }] }

const runForked = <A, E>(effect: Effect.Effect<A, E>, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(effect))
    yield* TestClock.adjust(advance)
    return yield* Fiber.join(fiber)
  })

describe("Fallback.orElse", () => {
  it.effect("falls back on a provider failure and keeps a caller fault", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "primary",
        script: [ScriptedProvider.failure("ServerError"), ScriptedProvider.failure("BadRequest")]
      })
      const backup = yield* ScriptedProvider.make({ name: "backup", script: [ScriptedProvider.success("backup")] })
      const call = primary.complete(request).pipe(Fallback.orElse(backup.complete(request)))
      expect((yield* call).provider).toBe("backup")
      const fault = yield* Effect.flip(call)
      expect(fault._tag === "HardFailure" && fault.reason).toBe("BadRequest")
      expect((yield* backup.calls).length).toBe(1)
    }))

  it.effect("`when` decides which failures move on", () =>
    Effect.gen(function*() {
      const failing = Effect.fail(hardFailure({ reason: "RateLimited", provider: "p", model: "m" }))
      const onlyServerErrors = (error: unknown) =>
        error instanceof Error && "reason" in error && error.reason === "ServerError"
      const error = yield* Effect.flip(Fallback.orElse(failing, Effect.succeed("x"), { when: onlyServerErrors }))
      expect(error._tag === "HardFailure" && error.reason).toBe("RateLimited")
    }))
})

describe("Fallback.chain", () => {
  it.effect("serves from the first tier that answers and reports the ones before it with their latency", () =>
    Effect.gen(function*() {
      const a = yield* ScriptedProvider.make({
        name: "a",
        script: [ScriptedProvider.failure("Overloaded", { latency: "2 seconds", status: 529 })]
      })
      const b = yield* ScriptedProvider.make({ name: "b", script: [ScriptedProvider.success("from b")] })
      const outcome = yield* runForked(
        Fallback.chain([{ label: "a:m", run: a.complete(request) }, { label: "b:m", run: b.complete(request) }])
      )
      expect(outcome._tag).toBe("Right")
      if (outcome._tag === "Right") {
        expect(outcome.right.value.content).toBe("from b")
        expect(outcome.right.tier).toBe(2)
        expect(outcome.right.label).toBe("b:m")
        expect(outcome.right.attempts).toEqual([
          {
            tier: 1,
            label: "a:m",
            error: "HardFailure",
            reason: "Overloaded",
            message: "Overloaded from a/scripted-model (HTTP 529)",
            skipped: false,
            latencyMs: 2000
          }
        ])
      }
    }))

  it.effect("an open breaker or a full limiter is skipped at once, and reported as skipped", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const open = Effect.fail(new CircuitOpen({ key: "a:m", remaining: Duration.seconds(30) }))
      const limited = Effect.fail(new RateLimitExceeded({ key: "b:m", retryAfter: Duration.seconds(1) }))
      const served = yield* Fallback.chain([
        { label: "a:m", run: open },
        { label: "b:m", run: limited },
        { label: "c:m", run: Effect.sync(() => calls.push("c")) }
      ])
      expect(served.tier).toBe(3)
      expect(served.attempts.map((attempt) => [attempt.error, attempt.skipped, attempt.latencyMs])).toEqual([
        ["CircuitOpen", true, 0],
        ["RateLimitExceeded", true, 0]
      ])
      expect(calls).toEqual(["c"])
    }))

  it.effect("FallbackExhausted lists every attempt, in order", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Fallback.chain([
        { label: "a", run: Effect.fail(hardFailure({ reason: "ServerError", provider: "a", model: "m" })) },
        {
          label: "b",
          run: Effect.fail(new SoftFailure({ reason: "SchemaMismatch", provider: "b", model: "m", retryable: true }))
        },
        { label: "c", run: Effect.fail(new CircuitOpen({ key: "c:m", remaining: Duration.seconds(5) })) }
      ]))
      expect(error._tag).toBe("FallbackExhausted")
      if (error._tag === "FallbackExhausted") {
        expect(error.attempts.map((attempt) => [attempt.tier, attempt.label, attempt.error, attempt.reason])).toEqual([
          [1, "a", "HardFailure", "ServerError"],
          [2, "b", "SoftFailure", "SchemaMismatch"],
          [3, "c", "CircuitOpen", undefined]
        ])
        expect(error.message).toContain("All 3 fallback tiers failed")
      }
    }))

  it.effect("each attempt says when it could be tried again; FallbackExhausted.retryAfter is the soonest", () =>
    Effect.gen(function*() {
      const overloaded = hardFailure({
        reason: "Overloaded",
        provider: "a",
        model: "m",
        retryAfter: Duration.seconds(30)
      })
      const open = new CircuitOpen({ key: "b:m", remaining: Duration.seconds(12) })
      const full = new RateLimitExceeded({ key: "c:m", retryAfter: Duration.seconds(20), limit: "requests" })
      const all = yield* Effect.flip(Fallback.chain([
        { label: "a", run: Effect.fail(overloaded) },
        { label: "b", run: Effect.fail(open) },
        { label: "c", run: Effect.fail(full) }
      ]))
      if (all._tag !== "FallbackExhausted") throw new Error(`expected FallbackExhausted, got ${all._tag}`)
      expect(all.attempts.map((attempt) => attempt.retryAfterMs)).toEqual([30_000, 12_000, 20_000])
      expect(all.retryAfter).toEqual(Duration.seconds(12))
      const unknown = yield* Effect.flip(Fallback.chain([
        { label: "b", run: Effect.fail(open) },
        { label: "d", run: Effect.fail(hardFailure({ reason: "ServerError", provider: "d", model: "m" })) }
      ]))
      expect(unknown._tag === "FallbackExhausted" && unknown.retryAfter).toBeUndefined()
    }))

  it.effect("a caller fault ends the chain with that failure, without trying the next tier", () =>
    Effect.gen(function*() {
      const next = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("x")] })
      const error = yield* Effect.flip(Fallback.chain([
        { label: "a", run: next.complete({ messages: [] }) },
        { label: "b", run: next.complete(request) }
      ]))
      expect(error._tag).toBe("InvalidRequest")
      expect((yield* next.calls).length).toBe(0)
    }))

  it.effect("messages of errors outside the taxonomy are not copied into the report", () =>
    Effect.gen(function*() {
      class Mine extends Error {
        readonly _tag = "Mine"
      }
      const error = yield* Effect.flip(Fallback.chain([{ label: "a", run: Effect.fail(new Mine("PRIVATE DETAIL")) }]))
      expect(error._tag === "FallbackExhausted" && error.attempts[0]?.message).toBe("Mine")
    }))
})

describe("relaxation", () => {
  // One token per word, plus one per message: easy to reason about.
  const count = (messages: ReadonlyArray<ChatMessage>) =>
    Effect.succeed(messages.reduce((sum, message) => sum + messageText(message).split(" ").length + 1, 0))
  const history: CompletionRequest = {
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "one two three four five" },
      { role: "assistant", content: "six seven eight nine ten" },
      { role: "user", content: "last question here" }
    ],
    maxTokens: 1000
  }
  const overflow = hardFailure({ reason: "ContextLengthExceeded", provider: "p", model: "m", status: 400 })

  it.effect("trimToFit drops the oldest non-system messages and keeps the system and last messages", () =>
    Effect.gen(function*() {
      const trimmed = yield* Fallback.trimToFit(history.messages, 13, count)
      expect(Option.getOrThrow(trimmed).map((message) => message.role)).toEqual(["system", "assistant", "user"])
      const tighter = yield* Fallback.trimToFit(history.messages, 7, count)
      expect(Option.getOrThrow(tighter).map((message) => message.role)).toEqual(["system", "user"])
      expect(Option.isNone(yield* Fallback.trimToFit(history.messages, 6, count))).toBe(true)
    }))

  it.effect("trimToFit drops a tool call with its results, never leaving a result without its call", () =>
    Effect.gen(function*() {
      const messages: ReadonlyArray<ChatMessage> = [
        { role: "system", content: "be brief" },
        { role: "user", content: "weather in Paris and Rome" },
        {
          role: "assistant",
          toolCalls: [
            { id: "c1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" },
            { id: "c2", name: "get_weather", arguments: "{\"city\":\"Rome\"}" }
          ]
        },
        { role: "tool", toolCallId: "c1", content: "sunny warm" },
        { role: "tool", toolCallId: "c2", content: "rainy cold" },
        { role: "assistant", content: "Paris sunny Rome rainy" },
        { role: "user", content: "and tomorrow" }
      ]
      // Every state of the trimmed history is one a provider accepts: each tool result follows its call.
      for (let budget = 30; budget >= 4; budget--) {
        const trimmed = yield* Fallback.trimToFit(messages, budget, count)
        if (Option.isNone(trimmed)) continue
        const calls = new Set<string>()
        for (const message of trimmed.value) {
          for (const call of message.toolCalls ?? []) calls.add(call.id)
          if (message.role === "tool") expect(calls.has(message.toolCallId!)).toBe(true)
        }
        expect(trimmed.value.at(-1)).toEqual(messages.at(-1))
      }
      const trimmed = Option.getOrThrow(yield* Fallback.trimToFit(messages, 14, count))
      expect(trimmed.map((message) => message.role)).toEqual(["system", "assistant", "user"])
    }))

  it.effect("trimToFit keeps the call a final tool result answers", () =>
    Effect.gen(function*() {
      const messages: ReadonlyArray<ChatMessage> = [
        { role: "user", content: "one two three four five six" },
        { role: "assistant", toolCalls: [{ id: "c1", name: "lookup", arguments: "{}" }] },
        { role: "tool", toolCallId: "c1", content: "found" }
      ]
      const trimmed = Option.getOrThrow(yield* Fallback.trimToFit(messages, 6, count))
      expect(trimmed.map((message) => message.role)).toEqual(["assistant", "tool"])
    }))

  it.effect("on ContextLengthExceeded: halves maxTokens and trims to the context window", () =>
    Effect.gen(function*() {
      // The prompt counts 19 tokens; maxTokens 1000 is halved to 500.
      const relax = (contextWindow: number) => Fallback.relax(history, overflow, { contextWindow, countTokens: count })
      const roomy = Option.getOrThrow(yield* relax(520))
      expect(roomy.maxTokens).toBe(500)
      expect(roomy.messages.length).toBe(4)
      const tight = Option.getOrThrow(yield* relax(507))
      expect(tight.maxTokens).toBe(500)
      expect(tight.messages.map((message) => message.role)).toEqual(["system", "user"])
      expect(Option.isNone(yield* relax(300))).toBe(true)
    }))

  it.effect("on a soft failure: lowers the temperature; otherwise nothing to relax", () =>
    Effect.gen(function*() {
      const soft = new SoftFailure({ reason: "FormatViolation", provider: "p", model: "m", retryable: true })
      const cooled = yield* Fallback.relax({ ...history, temperature: 0.9 }, soft, {
        contextWindow: 8000,
        countTokens: count
      })
      expect(Option.getOrThrow(cooled).temperature).toBe(0)
      const alreadyCold = yield* Fallback.relax({ ...history, temperature: 0 }, soft, {
        contextWindow: 8000,
        countTokens: count
      })
      expect(Option.isNone(alreadyCold)).toBe(true)
      const server = hardFailure({ reason: "ServerError", provider: "p", model: "m" })
      expect(Option.isNone(yield* Fallback.relax(history, server, { contextWindow: 8000, countTokens: count }))).toBe(
        true
      )
    }))
})

describe("graceful degradation", () => {
  const answer = (content: string): CompletionResult => ({
    content,
    usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
    model: "m",
    provider: "p",
    finishReason: "stop",
    latencyMs: 10
  })

  it.effect("the cache serves an equal normalized request within its TTL only", () =>
    Effect.gen(function*() {
      const cache = yield* Fallback.makeResponseCache({ ttl: "10 minutes", capacity: 10 })
      yield* cache.set({ messages: [{ role: "user", content: "What  is\nit?" }] }, answer("cached"))
      const hit = yield* cache.get({ messages: [{ role: "user", content: " What is it? " }], metadata: { t: "1" } })
      expect(Option.getOrThrow(hit).content).toBe("cached")
      const otherModel = yield* cache.get({ messages: [{ role: "user", content: "What is it?" }], model: "other" })
      expect(Option.isNone(otherModel)).toBe(true)
      yield* TestClock.adjust("10 minutes")
      expect(Option.isSome(yield* cache.get({ messages: [{ role: "user", content: "What is it?" }] }))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(Option.isNone(yield* cache.get({ messages: [{ role: "user", content: "What is it?" }] }))).toBe(true)
      expect(yield* cache.size).toBe(0)
    }))

  it.effect("the cache evicts the least recently used entry beyond its capacity", () =>
    Effect.gen(function*() {
      const cache = yield* Fallback.makeResponseCache({ ttl: "1 hour", capacity: 2 })
      const ask = (content: string) => ({ messages: [{ role: "user" as const, content }] })
      yield* cache.set(ask("a"), answer("A"))
      yield* cache.set(ask("b"), answer("B"))
      yield* cache.get(ask("a"))
      yield* cache.set(ask("c"), answer("C"))
      expect(Option.isSome(yield* cache.get(ask("a")))).toBe(true)
      expect(Option.isNone(yield* cache.get(ask("b")))).toBe(true)
      expect(yield* cache.size).toBe(2)
    }))

  it.effect("cache, then static answer, then the typed final error", () =>
    Effect.gen(function*() {
      const cache = yield* Fallback.makeResponseCache({ ttl: "1 hour", capacity: 10 })
      const down = Effect.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m" }))
      const fromCache = (input: typeof request) =>
        Effect.flatMap(cache.get(input), (hit) =>
          Option.match(hit, {
            onNone: () => Effect.fail(hardFailure({ reason: "Unknown", provider: "cache", model: "-" })),
            onSome: Effect.succeed
          }))
      const ladder = Fallback.chain([
        { label: "p:m", run: down },
        { label: "cache", run: fromCache(request) },
        { label: "static", run: Fallback.staticResponse("We are answering slowly right now.") }
      ])
      const first = yield* ladder
      expect(first.label).toBe("static")
      expect(first.value.provider).toBe("static")
      yield* cache.set(request, answer("last good answer"))
      const second = yield* ladder
      expect(second.label).toBe("cache")
      expect(second.value.content).toBe("last good answer")
    }))
})

describe("Fallback.makeHedger", () => {
  const slowAndFast = Effect.gen(function*() {
    let primaryInterrupted = false
    const primary = yield* ScriptedProvider.make({
      name: "primary",
      script: [ScriptedProvider.success("slow", { latency: "5 seconds" })]
    })
    const secondary = yield* ScriptedProvider.make({
      name: "secondary",
      script: [ScriptedProvider.success("fast", { latency: "1 second" })]
    })
    const primaryCall = primary.complete(request).pipe(
      Effect.onInterrupt(() => Effect.sync(() => (primaryInterrupted = true)))
    )
    return { primary, secondary, primaryCall, interrupted: () => primaryInterrupted }
  })

  it.effect("after the delay the hedge starts, the faster answer wins and the slower is interrupted", () =>
    Effect.gen(function*() {
      const { interrupted, primaryCall, secondary } = yield* slowAndFast
      const hedger = yield* Fallback.makeHedger({ delay: "2 seconds", maxFraction: 1 })
      const fiber = yield* Effect.fork(hedger.hedge(primaryCall, secondary.complete(request)))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.content).toBe("fast")
      expect((yield* secondary.calls)[0]?.at).toBe(2000)
      expect(interrupted()).toBe(true)
    }))

  it.effect("a primary that answers before the delay never starts the hedge", () =>
    Effect.gen(function*() {
      const secondary = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("unused")] })
      const hedger = yield* Fallback.makeHedger({ delay: "2 seconds", maxFraction: 1 })
      const fiber = yield* Effect.fork(
        hedger.hedge(Effect.delay(Effect.succeed("primary"), "1 second"), secondary.complete(request))
      )
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(fiber)).toBe("primary")
      expect((yield* secondary.calls).length).toBe(0)
    }))

  it.effect("a primary failure before the delay starts the secondary at once", () =>
    Effect.gen(function*() {
      const secondary = yield* ScriptedProvider.make({ script: [ScriptedProvider.success("backup")] })
      const hedger = yield* Fallback.makeHedger({ delay: "5 seconds" })
      const failing = Effect.delay(
        Effect.fail(hardFailure({ reason: "ServerError", provider: "p", model: "m" })),
        "1 second"
      )
      const fiber = yield* Effect.fork(hedger.hedge(failing, secondary.complete(request)))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber)).content).toBe("backup")
      expect((yield* secondary.calls)[0]?.at).toBe(1000)
    }))

  it.effect("with the budget spent, no hedge starts while the primary runs", () =>
    Effect.gen(function*() {
      const { primaryCall, secondary } = yield* slowAndFast
      const hedger = yield* Fallback.makeHedger({ delay: "2 seconds", maxFraction: 0 })
      const fiber = yield* Effect.fork(hedger.hedge(primaryCall, secondary.complete(request)))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber)).content).toBe("slow")
      expect((yield* secondary.calls).length).toBe(0)
    }))
})
