/**
 * One log format: under `layerJsonLogger` every line the library logs — request events, retries, breaker
 * transitions — and the application's own lines are single JSON lines; a failed request's event says why it failed,
 * down to a connection failure's system code and host; numbers are rounded.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { createServer } from "node:net"
import { vi } from "vitest"
import * as Observability from "../src/Observability.js"
import * as OpenAi from "../src/providers/OpenAi.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const ask = { messages: [{ role: "user" as const, content: "question" }] }

/** Runs `effect` under `layerJsonLogger` and returns what it printed on the console, one entry per call. */
const printed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const lines: Array<string> = []
      const capture = (...args: ReadonlyArray<unknown>) => void lines.push(args.map(String).join(" "))
      return { lines, spies: [vi.spyOn(console, "log").mockImplementation(capture), vi.spyOn(console, "error")] }
    }),
    ({ lines }) => Effect.as(Effect.exit(Effect.provide(effect, Observability.layerJsonLogger)), lines),
    ({ spies }) => Effect.sync(() => spies.forEach((spy) => spy.mockRestore()))
  )

const parsed = (lines: ReadonlyArray<string>): ReadonlyArray<Record<string, unknown>> =>
  lines.map((line) => {
    expect(line).not.toContain("\n")
    return JSON.parse(line) as Record<string, unknown>
  })

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

describe("one log format", () => {
  it.scoped("retries, breaker transitions, the request event and the app's own lines are all JSON lines", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "logfmt-a",
        model: "a",
        script: [ScriptedProvider.failure("Overloaded", { status: 503 })]
      })
      const backup = yield* ScriptedProvider.make({
        name: "logfmt-b",
        model: "b",
        script: [ScriptedProvider.success("ok")]
      })
      const client = yield* Resilient.make({
        chain: [{ provider: primary, breaker: { consecutiveFailures: 2 } }, { provider: backup }]
      })
      const lines = yield* printed(
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(client.complete(ask))
          yield* TestClock.adjust("1 minute")
          yield* Fiber.join(fiber)
          yield* Effect.logInfo("served").pipe(Effect.annotateLogs({ route: "/chat" }))
        }).pipe(Effect.withRandom(Random.fixed([0.3])))
      )
      const events = parsed(lines)
      const retries = events.filter((line) => line.event === "llm.retry")
      expect(retries.length).toBeGreaterThan(0)
      for (const retry of retries) {
        expect(retry).toMatchObject({ level: "info", provider: "logfmt-a", model: "a", reason: "Overloaded" })
        expect(Number.isInteger(retry.delay_ms)).toBe(true)
        expect(typeof retry.ts).toBe("string")
      }
      expect(events.filter((line) => line.event === "llm.circuit_breaker")).toContainEqual(
        expect.objectContaining({ level: "warn", key: "logfmt-a:a", from: "Closed", to: "Open" })
      )
      const request = events.find((line) => line.event === "llm.request")
      expect(request).toMatchObject({ level: "warn", provider: "logfmt-b", error: null, reason: null })
      expect(request?.attempts).toEqual([
        expect.objectContaining({ label: "logfmt-a:a", error: "HardFailure", reason: "Overloaded", skipped: false })
      ])
      expect(events.at(-1)).toMatchObject({ message: "served", level: "info", route: "/chat" })
    }))

  it.scopedLive("a failed request's event carries its class, reason, and each attempt's code and host", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const provider = yield* OpenAi.make({
        name: "refused",
        model: "gpt-x",
        apiKey: Redacted.make("sk-secret-LOGMARK"),
        baseURL: `http://127.0.0.1:${port}/v1`
      })
      const client = yield* Resilient.make({ chain: [{ provider, retry: false, breaker: false }] })
      const lines = yield* printed(client.complete(ask))
      const [event] = parsed(lines).filter((line) => line.event === "llm.request")
      expect(event).toMatchObject({
        level: "error",
        error: "FallbackExhausted",
        reason: "Connection",
        attempts: [{
          tier: 1,
          label: "refused:gpt-x",
          error: "HardFailure",
          reason: "Connection",
          code: "ECONNREFUSED",
          host: `127.0.0.1:${port}`,
          skipped: false
        }]
      })
      expect(Number.isInteger(event?.duration_ms)).toBe(true)
      expect(lines.join("\n")).not.toContain("LOGMARK")
    }))

  it.scoped("a fallback attempt keeps the provider's error code", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "facts",
        model: "m",
        script: [ScriptedProvider.failure("Overloaded", { status: 529, providerCode: "overloaded_error" })]
      })
      const client = yield* Resilient.make({ chain: [{ provider, retry: false }] })
      const error = yield* Effect.flip(client.complete(ask))
      expect(error._tag).toBe("FallbackExhausted")
      if (error._tag === "FallbackExhausted") {
        expect(error.attempts[0]).toMatchObject({ reason: "Overloaded", code: "overloaded_error" })
      }
    }))

  it.scoped("under Effect's default logger a failed request's event is still one line", () =>
    Effect.gen(function*() {
      const provider = yield* ScriptedProvider.make({
        name: "oneline",
        model: "m",
        script: [ScriptedProvider.failure("Overloaded", { status: 503 })]
      })
      const client = yield* Resilient.make({ chain: [{ provider, retry: false }] })
      const lines: Array<string> = []
      const spy = vi.spyOn(console, "log").mockImplementation((...args) => void lines.push(args.map(String).join(" ")))
      yield* Effect.either(client.complete(ask)).pipe(
        Effect.provide(Logger.add(Logger.defaultLogger)),
        Effect.ensuring(Effect.sync(() => spy.mockRestore()))
      )
      const event = lines.find((line) => line.includes("message=llm.request"))
      expect(event).toBeDefined()
      expect(event).not.toContain("\n")
      expect(event).toContain("error=FallbackExhausted")
    }))
})
