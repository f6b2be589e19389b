import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as ResilienceConfig from "../../src/Config.js"
import * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const ask = { messages: [{ role: "user" as const, content: "question" }] }

/** A primary `openai:big` that always fails with `failure`, and a backup `anthropic:m` that answers `answer`. */
const primaryAndBackup = (failure: ScriptedProvider.Outcome, answer: string) =>
  Effect.all({
    primary: ScriptedProvider.make({ name: "openai", model: "big", script: [failure] }),
    backup: ScriptedProvider.make({ name: "anthropic", model: "m", script: [ScriptedProvider.success(answer)] })
  })

/**
 * The scenario of docs/fallback.md: a primary with one downgrade answers 503 to everything, a backup answers. Returns
 * how long after the first 503 the backup was called, and how many calls the primary's models took.
 */
const firstAnswer = (preset: Resilient.PresetName | undefined) =>
  Effect.gen(function*() {
    const { backup, primary } = yield* primaryAndBackup(ScriptedProvider.failure("ServerError"), "from the backup")
    const client = yield* Resilient.make({
      chain: [{ provider: primary, downgrades: ["small"] }, { provider: backup }],
      relaxation: false,
      ...(preset === undefined ? {} : { preset })
    })
    const fiber = yield* Effect.fork(client.complete(ask))
    for (let step = 0; step < 600 && fiber.unsafePoll() === null; step++) yield* TestClock.adjust("1 second")
    const result = yield* Fiber.join(fiber)
    const primaryCalls = yield* primary.calls
    const backupCalls = yield* backup.calls
    return {
      servedBy: result.servedBy,
      toAnswerMs: backupCalls[0]!.at - primaryCalls[0]!.at,
      primaryCalls: primaryCalls.length
    }
  })

describe("Resilient presets", () => {
  it.scoped("time from a first 503 to the backup's answer: interactive < defaults < batch", () =>
    Effect.gen(function*() {
      const defaults = yield* firstAnswer(undefined)
      const interactive = yield* firstAnswer("interactive")
      const batch = yield* firstAnswer("batch")
      for (const run of [defaults, interactive, batch]) expect(run.servedBy).toBe("anthropic:m")
      // Defaults: 3 calls per model, 1 s then 2 s apart (±20 % jitter): ~6 s.
      expect(defaults.primaryCalls).toBe(6)
      expect(defaults.toAnswerMs).toBeGreaterThanOrEqual(4_800)
      expect(defaults.toAnswerMs).toBeLessThanOrEqual(7_200)
      // Interactive: 2 calls per model, 250 ms apart: well under a second.
      expect(interactive.primaryCalls).toBe(4)
      expect(interactive.toAnswerMs).toBeLessThanOrEqual(1_000)
      // Batch: 6 calls per model, from 2 s doubling: about two minutes before the backup.
      expect(batch.primaryCalls).toBe(12)
      expect(batch.toAnswerMs).toBeGreaterThan(60_000)
    }))

  it.scoped("a preset never overrides what the config says, and a misspelt one is a typed error", () =>
    Effect.gen(function*() {
      const { backup, primary } = yield* primaryAndBackup(ScriptedProvider.failure("ServerError"), "ok")
      const client = yield* Resilient.make({
        chain: [{ provider: primary, retry: false }, { provider: backup }],
        preset: "batch"
      })
      const result = yield* client.complete(ask)
      expect(result.servedBy).toBe("anthropic:m")
      expect((yield* primary.calls).length).toBe(1)
      const loose: unknown = "interative"
      const error = yield* Effect.flip(
        Resilient.make({ chain: [{ provider: primary }], preset: loose as Resilient.PresetName })
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.field).toBe("preset")
    }))

  it.scoped("interactive: a Retry-After above 2 s fails over at once; a breaker opens after 3 failures", () =>
    Effect.gen(function*() {
      const { backup, primary } = yield* primaryAndBackup(
        ScriptedProvider.failure("RateLimited", { retryAfter: "10 seconds" }),
        "ok"
      )
      const client = yield* Resilient.make({
        chain: [{ provider: primary }, { provider: backup }],
        preset: "interactive"
      })
      // At time 0 throughout: no retry waits out the 10 s, and the paused key refuses at once instead of queueing.
      for (let request = 0; request < 3; request++) {
        const result = yield* client.complete(ask)
        expect(result.servedBy).toBe("anthropic:m")
      }
      // The first 429 pauses the key for its Retry-After: the next requests skip it without a call.
      expect((yield* primary.calls).length).toBe(1)

      // 503s: two calls per request, and the breaker opens at the third consecutive failure.
      const failing = yield* ScriptedProvider.make({
        name: "openai",
        model: "big",
        script: [ScriptedProvider.failure("ServerError")]
      })
      const second = yield* Resilient.make({
        chain: [{ provider: failing }, { provider: backup }],
        preset: "interactive"
      })
      const fiber = yield* Effect.fork(Effect.all([second.complete(ask), second.complete(ask)]))
      yield* TestClock.adjust("5 seconds")
      const results = yield* Fiber.join(fiber)
      expect(results.map((result) => result.servedBy)).toEqual(["anthropic:m", "anthropic:m"])
      expect((yield* failing.calls).length).toBe(3)
      expect((yield* second.breakers.get("openai:big")!.snapshot).state).toBe("Open")
    }))

  it.effect("a config file's preset: fills the retry and breaker the file leaves out, LLM_PRESET over it", () =>
    Effect.gen(function*() {
      const body = "models: [{ id: a, provider: openai, model: a }]\nchain: [a]\n"
      const settings = yield* ResilienceConfig.settingsFromString(`preset: interactive\n${body}`, "yaml").pipe(
        withEnv({})
      )
      expect(settings.preset).toBe("interactive")
      expect(settings.chain[0].retry).toMatchObject({ maxAttempts: 2, retryAfterCeiling: "2 seconds" })
      expect(settings.chain[0].breaker).toMatchObject({ consecutiveFailures: 3 })
      const own = yield* ResilienceConfig.settingsFromString(
        `preset: batch\nretry: { max_attempts: 1 }\n${body}`,
        "yaml"
      ).pipe(withEnv({ LLM_PRESET: "interactive" }))
      expect(own.preset).toBe("interactive")
      expect(own.chain[0].retry).toMatchObject({ maxAttempts: 1 })
      expect(own.chain[0].breaker).toMatchObject({ consecutiveFailures: 3 })
      const config = yield* ResilienceConfig.toResilientConfig(settings).pipe(withEnv({ OPENAI_API_KEY: "sk-test" }))
      expect(config.preset).toBe("interactive")
      const bad = yield* Effect.flip(
        ResilienceConfig.settingsFromString(`preset: interative\n${body}`, "yaml").pipe(withEnv({}))
      )
      expect(bad.issues.map((issue) => issue.path)).toContain("preset")
    }))
})
