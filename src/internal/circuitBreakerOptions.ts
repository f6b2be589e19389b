import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Api from "../CircuitBreaker.js"
import { InvalidOptions } from "../LlmError.js"
import type * as machine from "./circuitBreakerMachine.js"
import { checkDuration } from "./options.js"

/** Everything a breaker needs besides its own state; one instance is shared by every breaker of a registry. */
export interface Settings {
  readonly config: machine.Config
  readonly ignore: (error: unknown) => boolean
  readonly classify: (error: unknown) => Api.Classification
}

/** @internal */
export const defaults = {
  consecutiveFailures: 5,
  failureRate: 50,
  window: 20,
  minimumCalls: 10,
  weights: { hard: 1, soft: 0.5, degraded: 0.5 },
  latencyMultiplier: 3,
  slowCallRate: 50,
  cooldown: Duration.seconds(60),
  growthFactor: 2,
  maxCooldown: Duration.minutes(10),
  probes: 1,
  successThreshold: 1,
  probeTimeout: Duration.minutes(2),
  hangAfter: Duration.seconds(3),
  hangCalls: 5,
  hangMultiplier: 3
} as const

// Errors that say the caller (or a local policy) refused the call: the provider never had a chance to fail.
const callerFaultTags: ReadonlySet<string> = new Set([
  "CircuitOpen",
  "RetryBudgetExhausted",
  "InvalidRequest",
  "InvalidOptions",
  "RateLimitExceeded",
  "RateLimiterError",
  "BulkheadRejected"
])

const callerFaultReasons: ReadonlySet<string> = new Set(["BadRequest", "ContextLengthExceeded", "ContentFiltered"])

// Fields are read structurally, not with `instanceof`, so errors from a second copy of this package (or a look-alike
// from another library) classify the same way.
const tagOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined

const reasonOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "reason" in error ? error.reason : undefined

const retryAfterOf = (error: unknown): Duration.Duration | undefined =>
  typeof error === "object" && error !== null && "retryAfter" in error && Duration.isDuration(error.retryAfter)
    ? error.retryAfter
    : undefined

/** @internal */
export const defaultIgnore = (error: unknown): boolean => {
  const tag = tagOf(error)
  if (tag === "HardFailure") {
    const reason = reasonOf(error)
    return typeof reason === "string" && callerFaultReasons.has(reason)
  }
  return typeof tag === "string" && callerFaultTags.has(tag)
}

const hard: Api.Classification = { kind: "hard" }
const soft: Api.Classification = { kind: "soft" }
const degraded: Api.Classification = { kind: "degraded" }
const fatal: Api.Classification = { kind: "fatal" }

/** @internal */
export const defaultClassify = (error: unknown): Api.Classification => {
  switch (tagOf(error)) {
    case "HardFailure": {
      const reason = reasonOf(error)
      if (reason === "Unauthorized" || reason === "Forbidden") return fatal
      const retryAfter = retryAfterOf(error)
      return retryAfter === undefined ? hard : { kind: "hard", retryAfter }
    }
    case "SoftFailure":
      return soft
    case "DegradedResponse":
      return degraded
    default:
      return hard
  }
}

const invalid = (field: string, reason: string) => Effect.fail(new InvalidOptions({ field, reason }))

const positiveInteger = (field: string, value: number): Effect.Effect<number, InvalidOptions> =>
  Number.isSafeInteger(value) && value > 0 ? Effect.succeed(value) : invalid(field, "must be a positive integer")

const percent = (field: string, value: number): Effect.Effect<number, InvalidOptions> =>
  Number.isFinite(value) && value > 0 && value <= 100
    ? Effect.succeed(value / 100)
    : invalid(field, "must be a percentage in (0, 100]")

const weight = (field: string, value: number): Effect.Effect<number, InvalidOptions> =>
  Number.isFinite(value) && value >= 0 && value <= 1
    ? Effect.succeed(Math.round(value * 1000))
    : invalid(field, "must be between 0 and 1")

// Checked by the rule every building block shares (./options.ts): not negative, finite, short enough for a timer.
const millis = (
  field: string,
  value: Duration.DurationInput,
  allowZero: boolean
): Effect.Effect<number, InvalidOptions> => {
  const checked = checkDuration(value, { allowZero })
  return "millis" in checked ? Effect.succeed(checked.millis) : invalid(field, checked.problem)
}

/**
 * Validates options and fills in defaults. Every rejection names the offending field.
 *
 * @internal
 */
export const resolve = (options: Api.Options): Effect.Effect<Settings, InvalidOptions> =>
  Effect.gen(function*() {
    const consecutive = options.consecutiveFailures ?? defaults.consecutiveFailures
    const streakMilli = consecutive === false
      ? Infinity
      : (yield* positiveInteger("consecutiveFailures", consecutive)) * 1000
    const rate = options.failureRate ?? defaults.failureRate
    const failureRate = rate === false ? undefined : yield* percent("failureRate", rate)
    const windowSize = yield* positiveInteger("window", options.window ?? defaults.window)
    const minimumCalls = yield* positiveInteger("minimumCalls", options.minimumCalls ?? defaults.minimumCalls)
    if (minimumCalls > windowSize) return yield* invalid("minimumCalls", "must not exceed window")
    const hardMilli = yield* weight("weights.hard", options.weights?.hard ?? defaults.weights.hard)
    const softMilli = yield* weight("weights.soft", options.weights?.soft ?? defaults.weights.soft)
    const degradedMilli = yield* weight("weights.degraded", options.weights?.degraded ?? defaults.weights.degraded)

    let latencyMultiplier: number | undefined
    let baselineMs: number | undefined
    if (options.latency !== undefined && options.latency !== false) {
      const latency = options.latency === true ? {} : options.latency
      latencyMultiplier = latency.multiplier ?? defaults.latencyMultiplier
      if (!(Number.isFinite(latencyMultiplier) && latencyMultiplier > 1)) {
        return yield* invalid("latency.multiplier", "must be a finite number above 1")
      }
      if (latency.baseline !== undefined) baselineMs = yield* millis("latency.baseline", latency.baseline, false)
    }
    let slowCallMs: number | undefined
    let slowCallRate = defaults.slowCallRate / 100
    if (options.slowCalls !== undefined && options.slowCalls !== false) {
      slowCallMs = yield* millis("slowCalls.threshold", options.slowCalls.threshold, false)
      slowCallRate = yield* percent("slowCalls.rate", options.slowCalls.rate ?? defaults.slowCallRate)
    }

    const cooldownMs = yield* millis("cooldown", options.cooldown ?? defaults.cooldown, true)
    let growthFactor = 1
    let maxCooldownMs = cooldownMs
    // On by default: a provider that is still down after a probe is probed less and less often (Envoy's outlier
    // ejection grows the same way), so a long outage costs a handful of probes, not one a minute.
    if (options.cooldownGrowth !== false) {
      const growth = options.cooldownGrowth === true || options.cooldownGrowth === undefined
        ? {}
        : options.cooldownGrowth
      growthFactor = growth.factor ?? defaults.growthFactor
      if (!(Number.isFinite(growthFactor) && growthFactor >= 1)) {
        return yield* invalid("cooldownGrowth.factor", "must be a finite number of at least 1")
      }
      maxCooldownMs = yield* millis("cooldownGrowth.max", growth.max ?? defaults.maxCooldown, false)
      if (maxCooldownMs < cooldownMs) return yield* invalid("cooldownGrowth.max", "must not be below cooldown")
    }
    const retryAfter = options.retryAfter ?? "longer"
    if (retryAfter !== "longer" && retryAfter !== "override" && retryAfter !== "ignore") {
      return yield* invalid("retryAfter", "must be longer, override or ignore")
    }
    const permits = yield* positiveInteger("probes", options.probes ?? defaults.probes)
    const successThreshold = yield* positiveInteger(
      "successThreshold",
      options.successThreshold ?? defaults.successThreshold
    )
    const probeTimeoutMs = yield* millis("probeTimeout", options.probeTimeout ?? defaults.probeTimeout, false)

    let hangAfterMs: number | undefined
    let hangCalls: number = defaults.hangCalls
    let hangMultiplier: number = defaults.hangMultiplier
    if (options.hangs !== false) {
      const hangs = options.hangs ?? {}
      hangAfterMs = yield* millis("hangs.after", hangs.after ?? defaults.hangAfter, false)
      hangCalls = yield* positiveInteger("hangs.calls", hangs.calls ?? defaults.hangCalls)
      hangMultiplier = hangs.multiplier ?? defaults.hangMultiplier
      if (!(Number.isFinite(hangMultiplier) && hangMultiplier >= 1)) {
        return yield* invalid("hangs.multiplier", "must be a finite number of at least 1")
      }
    }

    const classify = options.classify ?? defaultClassify
    const ignore = options.ignore ?? defaultIgnore
    return {
      config: {
        streakMilli,
        failureRate,
        windowSize,
        minimumCalls,
        hardMilli,
        softMilli,
        degradedMilli,
        latencyMultiplier,
        baselineMs,
        slowCallMs,
        slowCallRate,
        cooldownMs,
        growthFactor,
        maxCooldownMs,
        retryAfter,
        permits,
        successThreshold,
        probeTimeoutMs,
        hangAfterMs,
        hangMultiplier,
        hangCalls
      },
      ignore,
      classify
    }
  })
