/**
 * Every option of a `Resilient` chain, checked before anything is built or called. Each error names the path the user
 * wrote (`chain[0].limits.rpm`, `hedging.delay`), never an internal one, and never echoes a value that could be a
 * secret. The building blocks check their own options again when used alone; this is the chain's view of them.
 * @internal
 */
import * as Effect from "effect/Effect"
import { DegradedReason, InvalidOptions, InvalidRequest } from "../../LlmError.js"
import type { Service as LlmProvider } from "../../LlmProvider.js"
import type { Balance, CallOptions, Config, Price, Strategy, Tier } from "../../Resilient.js"
import * as validate from "../options.js"
import * as rateLimit from "../rateLimitOptions.js"
import { checkDeadline } from "./deadline.js"

const strategies: ReadonlyArray<Strategy> = ["ordered", "cost-first", "latency-first", "quality-first"]

/** @internal */
export const isStrategy = (value: unknown): value is Strategy => strategies.some((known) => known === value)

const invalid = (field: string, reason: string) => Effect.fail(new InvalidOptions({ field, reason }))

const isObject = (value: unknown): value is object => typeof value === "object" && value !== null

// A policy is an options object, `false` (off) or absent. A preset's name (`"strict"`) is a common slip: it would be
// spread into an object of its characters and silently mean the defaults.
const policy = (field: string, value: unknown) =>
  value === undefined || value === false || (isObject(value) && !Array.isArray(value))
    ? Effect.void
    : invalid(field, `must be an options object or false, got ${typeof value}`)

const price = (field: string, value: Price | undefined) =>
  isObject(value)
    ? Effect.zipRight(
      validate.nonNegativeNumber(`${field}.inputPer1k`, value.inputPer1k),
      validate.nonNegativeNumber(`${field}.outputPer1k`, value.outputPer1k)
    )
    : invalid(field, "must be { inputPer1k, outputPer1k }")

const prices = (field: string, value: Tier["price"]) => {
  if (value === undefined) return Effect.void
  if (!isObject(value)) return invalid(field, "must be a price or a record of prices by model")
  if ("inputPer1k" in value || "outputPer1k" in value) return price(field, value as Price)
  return Effect.forEach(Object.entries(value), ([model, each]) => price(`${field}.${model}`, each), {
    discard: true
  })
}

const balances: ReadonlyArray<Balance> = ["weighted-round-robin", "least-in-flight", "usage", "latency"]

/** A tier's deployments and how they are balanced: names unique, weights positive, the ejection cap a percentage. */
const deployments = (path: string, tier: Tier) =>
  Effect.gen(function*() {
    const list: unknown = tier.deployments
    if (!Array.isArray(list) || list.length === 0) {
      return yield* invalid(`${path}.deployments`, "must be a non-empty list of { name, provider, weight? }")
    }
    if (tier.provider !== undefined) {
      return yield* invalid(`${path}.provider`, "must not be set with deployments: each deployment has its provider")
    }
    const names = new Map<string, number>()
    for (const [position, deployment] of tier.deployments!.entries()) {
      const field = `${path}.deployments[${position}]`
      if (!isObject(deployment)) return yield* invalid(field, "must be { name, provider, weight? }")
      if (typeof deployment.name !== "string") return yield* invalid(`${field}.name`, "must be a name")
      yield* validate.nonBlank(`${field}.name`, deployment.name)
      const earlier = names.get(deployment.name)
      if (earlier !== undefined) {
        return yield* invalid(
          `${field}.name`,
          `repeats the name of deployments[${earlier}]: names key breakers and limits`
        )
      }
      names.set(deployment.name, position)
      if (deployment.provider === undefined || deployment.provider === null) {
        return yield* invalid(`${field}.provider`, "is required")
      }
      const weight: unknown = deployment.weight
      if (weight !== undefined && !(typeof weight === "number" && Number.isFinite(weight) && weight > 0)) {
        return yield* invalid(`${field}.weight`, `must be a finite number above 0, got ${String(weight)}`)
      }
      yield* policy(`${field}.limits`, deployment.limits)
      if (deployment.limits !== undefined && deployment.limits !== false) {
        const problem = rateLimit.checkLimits(`${field}.limits`, deployment.limits)
        if (problem !== undefined) return yield* problem
      }
    }
    if (tier.balance !== undefined && !balances.some((known) => known === tier.balance)) {
      return yield* invalid(`${path}.balance`, `must be one of ${balances.join(", ")}`)
    }
    const percent: unknown = tier.maxEjectionPercent
    if (percent !== undefined && !(typeof percent === "number" && percent >= 0 && percent <= 100)) {
      return yield* invalid(`${path}.maxEjectionPercent`, `must be between 0 and 100, got ${String(percent)}`)
    }
    if (tier.panic !== undefined && tier.panic !== "oldest" && tier.panic !== "skip") {
      return yield* invalid(`${path}.panic`, `must be "oldest" or "skip"`)
    }
  })

const tier = (tier: Tier, index: number) =>
  Effect.gen(function*() {
    const path = `chain[${index}]`
    if (!isObject(tier)) return yield* invalid(path, "must be a tier object")
    if (tier.deployments !== undefined) yield* deployments(path, tier)
    else if (tier.provider === undefined || tier.provider === null) {
      return yield* invalid(`${path}.provider`, "is required (or deployments)")
    }
    yield* validate.duration(`${path}.timeout`, tier.timeout)
    yield* validate.positiveInteger(`${path}.contextWindow`, tier.contextWindow)
    yield* validate.positiveInteger(`${path}.maxOutputTokens`, tier.maxOutputTokens)
    yield* validate.duration(`${path}.connectTimeout`, tier.connectTimeout)
    yield* validate.duration(`${path}.firstChunkTimeout`, tier.firstChunkTimeout)
    yield* validate.duration(`${path}.stallTimeout`, tier.stallTimeout)
    const buffer: unknown = tier.buffer
    if (buffer !== undefined && typeof buffer !== "boolean") {
      return yield* invalid(`${path}.buffer`, "must be true or false")
    }
    if (
      tier.qualityRank !== undefined && !(typeof tier.qualityRank === "number" && Number.isFinite(tier.qualityRank))
    ) {
      return yield* invalid(`${path}.qualityRank`, `must be a finite number, got ${String(tier.qualityRank)}`)
    }
    yield* prices(`${path}.price`, tier.price)
    yield* policy(`${path}.retry`, tier.retry)
    yield* policy(`${path}.breaker`, tier.breaker)
    yield* policy(`${path}.limits`, tier.limits)
    if (tier.limits !== undefined && tier.limits !== false) {
      const problem = rateLimit.checkLimits(`${path}.limits`, tier.limits)
      if (problem !== undefined) return yield* problem
    }
    if (tier.downgrades !== undefined && !Array.isArray(tier.downgrades)) {
      return yield* invalid(`${path}.downgrades`, "must be a list of model names")
    }
    for (const [position, model] of (tier.downgrades ?? []).entries()) {
      if (typeof model !== "string") return yield* invalid(`${path}.downgrades[${position}]`, "must be a model name")
      yield* validate.nonBlank(`${path}.downgrades[${position}]`, model)
    }
  })

/**
 * The whole configuration of a chain, in the order the user reads it.
 * @internal
 */
export const validateConfig = (config: Config): Effect.Effect<void, InvalidOptions> =>
  Effect.gen(function*() {
    if (!isObject(config)) return yield* invalid("config", "must be an object")
    if (!Array.isArray(config.chain) || config.chain.length === 0) {
      return yield* invalid("chain", "must hold at least one tier")
    }
    for (const [index, each] of config.chain.entries()) yield* tier(each, index)
    const preset: unknown = config.preset
    if (preset !== undefined && preset !== "interactive" && preset !== "batch") {
      return yield* invalid("preset", "must be \"interactive\" or \"batch\"")
    }
    if (config.strategy !== undefined && !isStrategy(config.strategy)) {
      return yield* invalid("strategy", `must be one of ${strategies.join(", ")}`)
    }
    yield* validate.duration("deadline", config.deadline)
    if (config.whenAllRefused !== undefined) {
      if (!isObject(config.whenAllRefused)) return yield* invalid("whenAllRefused", "must be { wait }")
      if (config.whenAllRefused.wait === undefined) return yield* invalid("whenAllRefused.wait", "is required")
      yield* validate.duration("whenAllRefused.wait", config.whenAllRefused.wait)
    }
    if (config.relaxation !== undefined && typeof config.relaxation !== "boolean") {
      return yield* invalid("relaxation", "must be true or false")
    }
    const continuation: unknown = config.continuation
    if (continuation !== undefined && typeof continuation !== "boolean") {
      return yield* invalid("continuation", "must be true or false")
    }
    const degraded: unknown = config.degraded
    if (
      degraded !== undefined && degraded !== "fallback" && degraded !== "accept"
      && !(Array.isArray(degraded) && degraded.every((reason) => DegradedReason.literals.some((r) => r === reason)))
    ) {
      return yield* invalid(
        "degraded",
        `must be "fallback", "accept" or a list of ${DegradedReason.literals.join(", ")}`
      )
    }
    if (config.degrade !== undefined) {
      const { cache, staticResponse } = config.degrade
      if (cache !== undefined) {
        if (!isObject(cache)) return yield* invalid("degrade.cache", "must be { ttl, capacity }")
        yield* validate.duration("degrade.cache.ttl", cache.ttl)
        if (cache.ttl === undefined) return yield* invalid("degrade.cache.ttl", "is required")
        if (cache.capacity === undefined) return yield* invalid("degrade.cache.capacity", "is required")
        yield* validate.positiveInteger("degrade.cache.capacity", cache.capacity)
      }
      if (staticResponse !== undefined && typeof staticResponse !== "string") {
        return yield* invalid("degrade.staticResponse", "must be a string")
      }
    }
    if (config.hedging !== undefined) {
      if (!isObject(config.hedging)) return yield* invalid("hedging", "must be { delay, maxFraction }")
      if (config.hedging.delay !== "p95") {
        if (config.hedging.delay === undefined) return yield* invalid("hedging.delay", "is required")
        yield* validate.duration("hedging.delay", config.hedging.delay, { allowZero: true })
      }
      yield* validate.fraction("hedging.maxFraction", config.hedging.maxFraction)
    }
    if (config.rateLimit !== undefined) {
      const checked = rateLimit.validate(config.rateLimit)
      if (checked instanceof InvalidOptions) {
        return yield* invalid(`rateLimit.${checked.field}`, checked.reason)
      }
    }
  })

/**
 * Two steps on one `provider:model` would share one breaker and one limiter key without saying so: a trip caused by
 * one tier's traffic would stop the other. Refused, naming the second place.
 * @internal
 */
export const uniqueSteps = (
  tiers: ReadonlyArray<{ readonly provider: LlmProvider; readonly downgrades?: ReadonlyArray<string> | undefined }>
): Effect.Effect<void, InvalidOptions> => {
  const seen = new Map<string, string>()
  for (const [index, { downgrades, provider }] of tiers.entries()) {
    const models = [provider.model, ...(downgrades ?? [])]
    for (const [position, model] of models.entries()) {
      const key = `${provider.name}:${model}`
      const here = position === 0 ? `chain[${index}].provider` : `chain[${index}].downgrades[${position - 1}]`
      const first = seen.get(key)
      if (first !== undefined) {
        return invalid(
          here,
          `repeats ${key} of ${first}: one provider:model has one breaker and one limiter key; give the provider `
            + `another name to keep them apart`
        )
      }
      seen.set(key, here)
    }
  }
  return Effect.void
}

const refuse = (field: string, message: string) => new InvalidRequest({ field, issues: [{ field, message }] })

/** A per-call strategy, buffer or deadline that cannot work is the caller's mistake, refused before any step. @internal */
export const checkCallOptions = (options: CallOptions | undefined): InvalidRequest | undefined => {
  if (options === undefined) return undefined
  if (options.strategy !== undefined && !isStrategy(options.strategy)) {
    return refuse("strategy", `must be one of ${strategies.join(", ")}`)
  }
  const buffer: unknown = options.buffer
  if (buffer !== undefined && typeof buffer !== "boolean") return refuse("buffer", "must be true or false")
  return checkDeadline(options)
}
