/**
 * The fast path of `complete` (src/internal/resilient/fastPath.ts) against the ladder alone: the same scripted
 * requests, under `TestClock`, through a client built with the fast path and one built without it, must give the
 * same results, provider calls, breaker states, metrics and log events.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { build } from "../../src/internal/resilient/make.js"
import * as Quality from "../../src/Quality.js"
import type * as Resilient from "../../src/Resilient.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

const KINDS = [
  "ok",
  "okSlow",
  "rateLimitedRetryAfter",
  "rateLimited",
  "serverError",
  "timeout",
  "connection",
  "badRequest",
  "truncated",
  "badJson",
  "hang"
] as const
type Kind = (typeof KINDS)[number]

const outcomeOf = (kind: Kind): ScriptedProvider.Outcome => {
  switch (kind) {
    case "ok":
      return ScriptedProvider.success("{\"answer\":1}")
    case "okSlow":
      return ScriptedProvider.success("{\"answer\":2}", { latency: "3 seconds" })
    case "rateLimitedRetryAfter":
      return ScriptedProvider.failure("RateLimited", { status: 429, retryAfter: "2 seconds" })
    case "rateLimited":
      return ScriptedProvider.failure("RateLimited", { status: 429 })
    case "serverError":
      return ScriptedProvider.failure("ServerError", { status: 503, latency: "200 millis" })
    case "timeout":
      return ScriptedProvider.failure("Timeout", { latency: "5 seconds" })
    case "connection":
      return ScriptedProvider.failure("Connection")
    case "badRequest":
      return ScriptedProvider.failure("BadRequest", { status: 400 })
    case "truncated":
      return ScriptedProvider.success("{\"answer\":", { finishReason: "length" })
    case "badJson":
      return ScriptedProvider.success("not json")
    case "hang":
      return ScriptedProvider.hang
  }
}

interface Scenario {
  readonly primary: ReadonlyArray<Kind>
  readonly backup: ReadonlyArray<Kind>
  readonly requests: number
  readonly retry: false | {
    readonly maxAttempts: number
    readonly tightBudget?: boolean
    /** The retrier's own attempt timeout: the fast attempt runs under it as the retrier's first attempt would. */
    readonly attemptTimeout?: boolean
    /** The retrier's attempt timeout and deadline as given (against the tier's 4 s `timeout`). */
    readonly bounds?: { readonly attemptTimeout?: Duration.DurationInput; readonly deadline?: Duration.DurationInput }
  }
  readonly limits: undefined | { readonly rpm: number } | { readonly concurrency: number }
  readonly failFast: boolean
  readonly waitWhenRefused: boolean
  readonly acceptDegraded: boolean
  /** Checks on the primary (soft failures, degraded answers): the fast path does not take such a tier. */
  readonly primaryChecked: boolean
  /** A per-attempt timeout on the primary, shorter than its slowest failure. */
  readonly timeout?: boolean
  /**
   * Requests started this far apart (TestClock), all running at once, instead of one after the other three minutes
   * apart: they meet in the limiter (a last permit, a queue, a window's edge).
   */
  readonly spacing?: Duration.DurationInput
}

let runs = 0

// Effect's data types carry their hash, which differs with the provider names before they are normalized.
const withoutHashes = (key: string, value: unknown) => key === "_hash" ? undefined : value

/** Runs `scenario` on a fresh client and returns everything it left behind, with its provider names normalized. */
const observe = (scenario: Scenario, fastPath: boolean) => {
  const events: Array<unknown> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const fields = Object.fromEntries(
      HashMap.toEntries(annotations).filter(([key]) => key !== "request_id" && key !== "timestamp")
    )
    events.push({ level: logLevel.label, message, fields })
  })
  return Effect.gen(function*() {
    const run = ++runs
    const names = { primary: `fp${run}p`, backup: `fp${run}b` }
    const script = (kinds: ReadonlyArray<Kind>): ScriptedProvider.Script => (call) =>
      outcomeOf(kinds[call.index % kinds.length] ?? "ok")
    const primary = yield* ScriptedProvider.make({ name: names.primary, model: "m", script: script(scenario.primary) })
    const backup = yield* ScriptedProvider.make({ name: names.backup, model: "m", script: script(scenario.backup) })
    const scope = yield* Scope.make()
    const config: Resilient.Config = {
      chain: [
        {
          provider: primary,
          retry: scenario.retry === false ? false : {
            maxAttempts: scenario.retry.maxAttempts,
            // One retry per request in the budget's window: without its deposit a request could not retry.
            ...(scenario.retry.tightBudget === true ? { budget: { ratio: 1, minPerSecond: 0 } } : {}),
            ...(scenario.retry.attemptTimeout === true ? { attemptTimeout: "4 seconds" } : {}),
            ...scenario.retry.bounds
          },
          breaker: { consecutiveFailures: 2, cooldown: "30 seconds" },
          ...(scenario.limits !== undefined ? { limits: scenario.limits } : {}),
          ...(scenario.primaryChecked ? { quality: Quality.all(Quality.truncated, Quality.json) } : {}),
          price: { inputPer1k: 0.001, outputPer1k: 0.002 },
          ...(scenario.timeout === true ? { timeout: "4 seconds" } : {})
        },
        { provider: backup, quality: Quality.all(Quality.truncated, Quality.json) }
      ],
      ...(scenario.failFast ? { rateLimit: { mode: "fail-fast" as const } } : {}),
      ...(scenario.waitWhenRefused ? { whenAllRefused: { wait: "1 minute" } } : {}),
      ...(scenario.acceptDegraded ? { degraded: "accept" as const } : {})
    }
    const { service } = yield* Scope.extend(build(config, { fastPath }), scope)
    const results: Array<unknown> = []
    const request = (index: number) =>
      Effect.fork(
        Effect.either(
          Effect.timeout(service.complete({ messages: [{ role: "user", content: `q${index}` }] }), "2 minutes")
        )
      )
    if (scenario.spacing === undefined) {
      for (let index = 0; index < scenario.requests; index++) {
        const fiber = yield* request(index)
        yield* TestClock.adjust("3 minutes")
        results.push(yield* Fiber.join(fiber))
      }
    } else {
      const fibers = []
      for (let index = 0; index < scenario.requests; index++) {
        fibers.push(yield* request(index))
        yield* TestClock.adjust(scenario.spacing)
      }
      for (let index = 0; index < scenario.requests; index++) yield* TestClock.adjust("3 minutes")
      for (const fiber of fibers) results.push(yield* Fiber.join(fiber))
    }
    const breakers: Array<unknown> = []
    for (const [key, breaker] of service.breakers) breakers.push([key, yield* breaker.snapshot])
    const calls = {
      primary: (yield* primary.calls).map((call) => [call.at, call.model, call.request.maxTokens]),
      backup: (yield* backup.calls).map((call) => [call.at, call.model])
    }
    const metrics = (yield* Metric.snapshot)
      .map((pair) => JSON.stringify({ key: pair.metricKey, state: pair.metricState }, withoutHashes))
      .filter((line) => line.includes(names.primary) || line.includes(names.backup))
      .sort()
    yield* Scope.close(scope, Effect.void as never)
    const normalized = JSON.stringify({ results, breakers, calls, metrics, events }, withoutHashes)
      .replaceAll(names.primary, "PRIMARY")
      .replaceAll(names.backup, "BACKUP")
    return JSON.parse(normalized) as unknown
  }).pipe(
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Effect.withRandom(Random.fixed([0.5])),
    // Each run on a clock of its own, from 0.
    Effect.provide(TestContext.TestContext)
  )
}

const kinds = FastCheck.constantFrom(...KINDS)
const scenarios: FastCheck.Arbitrary<Scenario> = FastCheck.record({
  primary: FastCheck.array(kinds, { minLength: 1, maxLength: 8 }),
  backup: FastCheck.array(FastCheck.constantFrom<Kind>("ok", "badJson", "truncated", "serverError"), {
    minLength: 1,
    maxLength: 3
  }),
  requests: FastCheck.integer({ min: 1, max: 6 }),
  retry: FastCheck.oneof(
    FastCheck.constant(false as const),
    FastCheck.record({
      maxAttempts: FastCheck.integer({ min: 1, max: 3 }),
      tightBudget: FastCheck.boolean(),
      attemptTimeout: FastCheck.boolean()
    })
  ),
  limits: FastCheck.oneof(
    FastCheck.constant(undefined),
    FastCheck.record({ rpm: FastCheck.integer({ min: 1, max: 3 }) }),
    FastCheck.record({ concurrency: FastCheck.constant(1) })
  ),
  failFast: FastCheck.boolean(),
  waitWhenRefused: FastCheck.boolean(),
  acceptDegraded: FastCheck.boolean(),
  primaryChecked: FastCheck.boolean(),
  timeout: FastCheck.boolean()
})

const same = (scenario: Scenario) =>
  Effect.gen(function*() {
    const ladder = yield* observe(scenario, false)
    const fast = yield* observe(scenario, true)
    expect(fast).toEqual(ladder)
    return ladder
  })

describe("Resilient.complete fast path", () => {
  it.effect("a healthy primary: the same result, breaker, metrics and events as the ladder", () =>
    Effect.gen(function*() {
      const observed = yield* same({
        primary: ["ok"],
        backup: ["ok"],
        requests: 3,
        retry: { maxAttempts: 3 },
        limits: { rpm: 10 },
        failFast: false,
        waitWhenRefused: false,
        acceptDegraded: false,
        primaryChecked: false
      })
      // The comparison is not vacuous: three answers from the primary, counted in its metrics.
      const { calls, events, metrics, results } = observed as {
        results: Array<{ right: { servedBy: string } }>
        calls: { primary: Array<unknown>; backup: Array<unknown> }
        metrics: Array<string>
        events: Array<{ message: unknown }>
      }
      expect(results.map((result) => result.right.servedBy)).toEqual(Array(3).fill("PRIMARY:m"))
      expect(calls.primary).toHaveLength(3)
      expect(calls.backup).toHaveLength(0)
      expect(metrics.length).toBeGreaterThan(0)
      expect(events.filter((event) => JSON.stringify(event.message).includes("llm.request"))).toHaveLength(3)
    }))

  it.effect(
    "each failure kind of the first attempt: the ladder takes over as if it had made it",
    () =>
      Effect.gen(function*() {
        for (const kind of KINDS) {
          for (
            const retry of [
              false,
              { maxAttempts: 3 },
              { maxAttempts: 3, tightBudget: true },
              { maxAttempts: 2, attemptTimeout: true }
            ] as const
          ) {
            yield* same({
              timeout: kind === "timeout" || kind === "hang",
              primary: [kind, "ok"],
              backup: ["ok"],
              requests: 3,
              retry,
              limits: undefined,
              failFast: false,
              waitWhenRefused: false,
              acceptDegraded: false,
              primaryChecked: false
            })
          }
        }
      }),
    60_000
  )

  it.effect("an open breaker and a full limiter, with and without waiting for them", () =>
    Effect.gen(function*() {
      for (const waitWhenRefused of [false, true]) {
        yield* same({
          primary: ["serverError", "serverError", "ok"],
          backup: ["ok"],
          requests: 5,
          retry: false,
          limits: { rpm: 1 },
          failFast: true,
          waitWhenRefused,
          acceptDegraded: false,
          primaryChecked: false
        })
      }
    }))

  // The fused region (synchronous breaker and limiter admission, one exit handler) at its boundaries: where it must
  // step aside for the effectful path, and where it must settle exactly as that path does.
  const base: Scenario = {
    primary: ["ok"],
    backup: ["ok"],
    requests: 4,
    retry: false,
    limits: undefined,
    failFast: false,
    waitWhenRefused: false,
    acceptDegraded: false,
    primaryChecked: false
  }

  it.effect("a breaker that opens, half-opens and closes again under the fused region", () =>
    Effect.gen(function*() {
      for (const retry of [false, { maxAttempts: 2 }] as const) {
        const observed = yield* same({
          ...base,
          primary: ["serverError", "serverError", "ok", "ok", "serverError", "ok"],
          requests: 7,
          retry
        })
        // Not vacuous: the breaker opened and probed its way back.
        expect(JSON.stringify(observed)).toContain("HalfOpen")
      }
    }))

  it.effect(
    "the limiter's last permit: concurrent requests, queued or refused, and slow calls holding it",
    () =>
      Effect.gen(function*() {
        for (const failFast of [false, true]) {
          for (const primary of [["okSlow"], ["okSlow", "rateLimited", "ok"], ["rateLimitedRetryAfter", "okSlow"]]) {
            yield* same({
              ...base,
              primary: primary as ReadonlyArray<Kind>,
              requests: 5,
              retry: { maxAttempts: 2 },
              limits: { concurrency: 1 },
              failFast,
              spacing: "1 second"
            })
          }
        }
      }),
    30_000
  )

  it.effect("rpm windows: requests on either side of a window's edge", () =>
    Effect.gen(function*() {
      for (const spacing of ["29999 millis", "30 seconds", "30001 millis"] as const) {
        for (const failFast of [false, true]) {
          yield* same({ ...base, requests: 6, limits: { rpm: 2 }, failFast, spacing })
        }
      }
    }), 30_000)

  it.effect("an interrupt during the call: the permit and the breaker's ticket are settled, the next call runs", () =>
    Effect.gen(function*() {
      for (const limits of [undefined, { concurrency: 1 }, { rpm: 2 }] as const) {
        const observed = yield* same({
          ...base,
          primary: ["hang", "ok", "ok"],
          requests: 3,
          retry: { maxAttempts: 3 },
          limits
        })
        const { results } = observed as { results: Array<{ _tag: string }> }
        // The hanging request is cut by the caller's timeout; the two after it are served.
        expect(results.map((result) => result._tag)).toEqual(["Left", "Right", "Right"])
      }
    }))

  // A retrier's attempt timeout and deadline that cannot end a first attempt bounded by the tier's shorter timeout:
  // that attempt runs fused, unless it waits in the limiter's queue (the wait counts against them).
  it.effect(
    "a retrier's attempt timeout and deadline against the tier's timeout, with and without a queue",
    () =>
      Effect.gen(function*() {
        const boundsList = [
          { attemptTimeout: "8 seconds", deadline: "20 seconds" },
          { deadline: "5 seconds" },
          { deadline: "4 seconds" },
          { attemptTimeout: "3 seconds", deadline: "20 seconds" }
        ] as const
        for (const kind of KINDS) {
          for (const bounds of boundsList) {
            for (const limits of [undefined, { concurrency: 1 }] as const) {
              yield* same({
                ...base,
                primary: [kind, "ok"],
                requests: 3,
                retry: { maxAttempts: 3, bounds },
                timeout: true,
                limits,
                ...(limits === undefined ? {} : { spacing: "1 second" })
              })
            }
          }
        }
      }),
    120_000
  )

  it.effect("generated scripts and configurations", () =>
    Effect.gen(function*() {
      for (const scenario of FastCheck.sample(scenarios, { numRuns: 60, seed: 18 })) {
        yield* same(scenario)
      }
    }), 120_000)
})
