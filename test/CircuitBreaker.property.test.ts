import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, FastCheck, Fiber, Runtime, TestClock, TestContext } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitOpen, hardFailure, SoftFailure } from "../src/LlmError.js"

const RUNS = 1000
const SHARDS = 25

// Small numbers so that random histories reach every state often.
const PERMITS = 2
const SUCCESS_THRESHOLD = 2
const CONSECUTIVE = 3
const WINDOW = 6
const MINIMUM_CALLS = 4
const SLOW_MS = 500
const BASELINE_MS = 100
const COOLDOWN_MS = 1000
const MAX_COOLDOWN_MS = 4000
const PROBE_TIMEOUT_MS = 3000
const RETRY_AFTER_MS = 2500

const options: CircuitBreaker.Options = {
  consecutiveFailures: CONSECUTIVE,
  failureRate: 50,
  window: WINDOW,
  minimumCalls: MINIMUM_CALLS,
  slowCalls: { threshold: SLOW_MS, rate: 50 },
  latency: { baseline: BASELINE_MS },
  cooldown: COOLDOWN_MS,
  cooldownGrowth: { factor: 2, max: MAX_COOLDOWN_MS },
  probes: PERMITS,
  successThreshold: SUCCESS_THRESHOLD,
  probeTimeout: PROBE_TIMEOUT_MS,
  // Hang detection has its own tests; the reference model plays the window policies.
  hangs: false
}

type Outcome = "success" | "hard" | "soft" | "degraded" | "ignored" | "fatal" | "retryAfter"

const weightOf: Record<Outcome, number> = {
  success: 0,
  hard: 1,
  soft: 0.5,
  degraded: 0.5,
  ignored: 0,
  fatal: 1,
  retryAfter: 1
}

const base = { provider: "p", model: "m" }

// Built once: constructing a schema-validated error with a stack trace costs more than a breaker call.
const effects: Record<Outcome, Effect.Effect<string, unknown>> = {
  success: Effect.succeed("ok"),
  hard: Effect.fail(hardFailure({ ...base, reason: "ServerError" })),
  soft: Effect.fail(new SoftFailure({ ...base, reason: "FormatViolation", retryable: false })),
  degraded: Effect.fail({ _tag: "DegradedResponse" }),
  ignored: Effect.fail(hardFailure({ ...base, reason: "BadRequest" })),
  fatal: Effect.fail(hardFailure({ ...base, reason: "Unauthorized" })),
  retryAfter: Effect.fail(hardFailure({ ...base, reason: "RateLimited", retryAfter: Duration.millis(RETRY_AFTER_MS) }))
}

const effectOf = (outcome: Outcome) => effects[outcome]

type Force = "Closed" | "ForcedOpen" | "Disabled" | "MetricsOnly"

interface Ticket {
  readonly generation: number
  readonly probe: boolean
}

/**
 * The policy, written the plain way (arrays, recomputed sums) to check the O(1) implementation against. Time-driven
 * transitions are applied lazily, as of the moment they became due.
 */
class Model {
  state: CircuitBreaker.State = "Closed"
  generation = 0
  window: Array<{ readonly weight: number; readonly latency: number }> = []
  streak = 0
  openUntil = 0
  reopens = 0
  probes = 0
  successes = 0
  deadline = Infinity
  admitted = 0

  private enter(state: Model["state"]) {
    this.state = state
    this.generation++
    this.probes = 0
    this.successes = 0
    this.deadline = Infinity
  }

  private open(at: number, retryAfter: boolean) {
    this.reopens = this.state === "HalfOpen" ? this.reopens + 1 : 0
    let cooldown = Math.min(MAX_COOLDOWN_MS, COOLDOWN_MS * 2 ** this.reopens)
    if (retryAfter) cooldown = Math.max(cooldown, RETRY_AFTER_MS)
    this.enter("Open")
    this.openUntil = at + cooldown
  }

  private close() {
    this.enter("Closed")
    this.window = []
    this.streak = 0
    this.reopens = 0
  }

  settle(now: number) {
    for (;;) {
      if (this.state === "Open" && now >= this.openUntil) this.enter("HalfOpen")
      else if (this.state === "HalfOpen" && this.probes > 0 && now >= this.deadline) this.open(this.deadline, false)
      else return
    }
  }

  admit(now: number): Ticket | { readonly remaining: number } {
    if (this.state === "ForcedOpen") return { remaining: Infinity }
    if (this.state === "Disabled") {
      this.admitted++
      return { generation: -1, probe: false }
    }
    this.settle(now)
    if (
      this.state === "Closed" || this.state === "MetricsOnly" || (this.state === "HalfOpen" && this.probes < PERMITS)
    ) {
      const probe = this.state === "HalfOpen"
      if (probe) {
        this.probes++
        this.deadline = now + PROBE_TIMEOUT_MS
      }
      this.admitted++
      return { generation: this.generation, probe }
    }
    return { remaining: this.state === "Open" ? this.openUntil - now : this.deadline - now }
  }

  finish(ticket: Ticket, outcome: Outcome, latency: number, now: number) {
    if (ticket.generation !== this.generation) return
    const failed = outcome !== "success" && outcome !== "ignored"
    if (this.state === "HalfOpen") {
      this.probes--
      if (outcome === "ignored") {
        if (this.probes === 0) this.deadline = Infinity
      } else if (failed) {
        this.open(now, outcome === "retryAfter")
      } else if (++this.successes >= SUCCESS_THRESHOLD) {
        this.close()
      } else if (this.probes === 0) {
        this.deadline = Infinity
      }
      return
    }
    if (outcome === "ignored") return
    const weight = weightOf[outcome]
    this.window.push({ weight, latency })
    if (this.window.length > WINDOW) this.window.shift()
    this.streak = weight === 0 ? 0 : this.streak + weight
    const n = this.window.length
    const rate = this.window.reduce((sum, call) => sum + call.weight, 0) / n
    const slowRate = this.window.filter((call) => call.latency > SLOW_MS).length / n
    // P95 the textbook way, by sorting: the implementation counts instead.
    const sorted = this.window.map((call) => call.latency).sort((a, b) => a - b)
    const p95 = sorted[Math.ceil(0.95 * n) - 1]!
    if (this.state === "MetricsOnly") return
    if (
      outcome === "fatal" || this.streak >= CONSECUTIVE
      || (n >= MINIMUM_CALLS && (rate >= 0.5 || slowRate >= 0.5 || p95 > 3 * BASELINE_MS))
    ) {
      this.open(now, outcome === "retryAfter")
    }
  }

  force(to: Force) {
    if (this.state === to) return
    if (to === "Closed") return this.close()
    this.enter(to)
    if (to === "MetricsOnly") {
      this.window = []
      this.streak = 0
      this.reopens = 0
    }
  }
}

type Op =
  | { readonly _tag: "Call"; readonly outcome: Outcome }
  | { readonly _tag: "Start" }
  | { readonly _tag: "Finish"; readonly index: number; readonly outcome: Outcome }
  | { readonly _tag: "Interrupt"; readonly index: number }
  | { readonly _tag: "Advance"; readonly ms: number }
  | { readonly _tag: "Force"; readonly to: Force }

const outcome = FastCheck.constantFrom<Outcome>(
  "success",
  "hard",
  "soft",
  "degraded",
  "ignored",
  "fatal",
  "retryAfter"
)

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { weight: 5, arbitrary: outcome.map((outcome) => ({ _tag: "Call" as const, outcome })) },
  { weight: 4, arbitrary: FastCheck.constant({ _tag: "Start" as const }) },
  {
    weight: 3,
    arbitrary: FastCheck.record({ index: FastCheck.nat(7), outcome }).map((r) => ({ _tag: "Finish" as const, ...r }))
  },
  { weight: 1, arbitrary: FastCheck.nat(7).map((index) => ({ _tag: "Interrupt" as const, index })) },
  {
    weight: 3,
    arbitrary: FastCheck.oneof(
      FastCheck.constantFrom(1, 299, 301, 499, 501, 999, 1000, 2500, 3000),
      FastCheck.integer({ min: 0, max: 5000 })
    ).map((ms) => ({ _tag: "Advance" as const, ms }))
  },
  {
    weight: 1,
    // Back to Closed most often: Disabled and MetricsOnly never leave on their own.
    arbitrary: FastCheck.oneof(
      { weight: 3, arbitrary: FastCheck.constant<Force>("Closed") },
      FastCheck.constantFrom<Force>("ForcedOpen", "Disabled", "MetricsOnly")
    ).map((to) => ({ _tag: "Force" as const, to }))
  }
)

/** A plain assertion: `expect` costs more per call than the breaker does, and this loop makes ~100,000 of them. */
const check = (ok: boolean, what: string, details: () => unknown) => {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(details())}`)
}

interface Pending {
  readonly fiber: Fiber.RuntimeFiber<string, unknown>
  readonly gate: Deferred.Deferred<Outcome>
  readonly ticket: Ticket
  readonly startedAt: number
}

/** Plays one history against a fresh breaker and the model, checking the invariants after every step. */
const play = (ops: ReadonlyArray<Op>, visited: Set<string>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make(options)
    const model = new Model()
    const pending: Array<Pending> = []
    const probesInFlight = new Map<number, number>()
    let providerCalls = 0

    // What the provider sees: it counts itself and the probes of each half-open period while they run.
    const provider = (gate: Deferred.Deferred<Outcome>, entered: Deferred.Deferred<boolean>) =>
      Effect.acquireUseRelease(
        Effect.map(breaker.snapshot, (snapshot) => {
          providerCalls++
          check(snapshot.state !== "Open" && snapshot.state !== "ForcedOpen", "the provider ran while open", () => ops)
          if (snapshot.state !== "HalfOpen") return undefined
          const inFlight = (probesInFlight.get(snapshot.generation) ?? 0) + 1
          check(inFlight <= PERMITS, "more probes in flight than permitted", () => ops)
          probesInFlight.set(snapshot.generation, inFlight)
          return snapshot.generation
        }),
        () => Effect.zipRight(Deferred.succeed(entered, true), Effect.flatMap(Deferred.await(gate), effectOf)),
        (generation) =>
          Effect.sync(() => {
            if (generation !== undefined) probesInFlight.set(generation, probesInFlight.get(generation)! - 1)
          })
      )

    const start = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const expected = model.admit(now)
      const gate = yield* Deferred.make<Outcome>()
      const entered = yield* Deferred.make<boolean>()
      const fiber = yield* breaker.execute(provider(gate, entered)).pipe(
        Effect.onExit(() => Deferred.succeed(entered, false)),
        Effect.fork
      )
      const admitted = yield* Deferred.await(entered)
      if ("remaining" in expected) {
        check(!admitted, "admitted a call the policy rejects", () => ops)
        const exit = yield* Fiber.await(fiber)
        const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
        check(
          error instanceof CircuitOpen && Duration.toMillis(error.remaining) === expected.remaining,
          "rejected with the wrong error or remaining time",
          () => ({ ops, error: String(error), expected: expected.remaining })
        )
        return undefined
      }
      check(admitted, "rejected a call the policy admits", () => ops)
      return { fiber, gate, ticket: expected, startedAt: now }
    })

    const finish = (call: Pending, outcome: Outcome) =>
      Effect.gen(function*() {
        yield* Deferred.succeed(call.gate, outcome)
        yield* Fiber.await(call.fiber)
        const now = yield* Clock.currentTimeMillis
        model.finish(call.ticket, outcome, now - call.startedAt, now)
      })

    for (const step of ops) {
      switch (step._tag) {
        case "Call": {
          const call = yield* start
          if (call !== undefined) yield* finish(call, step.outcome)
          break
        }
        case "Start": {
          const call = yield* start
          if (call !== undefined) pending.push(call)
          break
        }
        case "Finish":
        case "Interrupt": {
          if (pending.length === 0) break
          const [call] = pending.splice(step.index % pending.length, 1)
          if (step._tag === "Finish") {
            yield* finish(call!, step.outcome)
          } else {
            yield* Fiber.interrupt(call!.fiber)
            const now = yield* Clock.currentTimeMillis
            model.finish(call!.ticket, "ignored", now - call!.startedAt, now)
          }
          break
        }
        case "Advance": {
          yield* TestClock.adjust(Duration.millis(step.ms))
          break
        }
        case "Force": {
          yield* {
            Closed: breaker.forceClose,
            ForcedOpen: breaker.forceOpen,
            Disabled: breaker.disable,
            MetricsOnly: breaker.metricsOnly
          }[step.to]
          model.force(step.to)
          break
        }
      }
      model.settle(yield* Clock.currentTimeMillis)
      const state = yield* breaker.state
      check(state === model.state, "state differs from the model", () => ({ ops, state, model: model.state }))
      visited.add(model.state)
      check(providerCalls === model.admitted, "provider calls differ from admissions", () => ops)
    }
    yield* Effect.forEach(pending, (call) => Fiber.interrupt(call.fiber), { discard: true })
  })

describe("CircuitBreaker (property)", () => {
  it.effect(
    "matches the reference model over random histories of outcomes, interrupts and clock moves",
    () =>
      Effect.gen(function*() {
        const visited = new Set<string>()
        // TestClock.adjust waits a few real timer ticks for fibers to suspend. Shards, each with its own TestClock, wait
        // out those ticks side by side; the runs of one shard share its clock, which only ever moves forward.
        yield* Effect.forEach(
          Array.from({ length: SHARDS }, (_, shard) => shard),
          () =>
            Effect.flatMap(Effect.runtime<never>(), (runtime) =>
              Effect.promise(() =>
                FastCheck.assert(
                  FastCheck.asyncProperty(
                    FastCheck.array(op, { minLength: 1, maxLength: 40, size: "medium" }),
                    (ops) => Runtime.runPromise(runtime)(play(ops, visited))
                  ),
                  { numRuns: RUNS / SHARDS }
                )
              )).pipe(Effect.provide(TestContext.TestContext)),
          { concurrency: "unbounded", discard: true }
        )
        // The histories are not all trivial: every state was reached.
        expect([...visited].sort()).toEqual(["Closed", "Disabled", "ForcedOpen", "HalfOpen", "MetricsOnly", "Open"])
      }),
    { timeout: 60_000 }
  )
})
