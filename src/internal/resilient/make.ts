/**
 * Building a client: each tier's provider, retrier, breakers (one per `provider:model`) and limits, the shared
 * limiter, the cache and the hedgers — once, validated, with the breaker-state followers tied to the caller's scope.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import * as Fallback from "../../Fallback.js"
import { type DegradedReason, InvalidOptions } from "../../LlmError.js"
import * as RateLimit from "../../RateLimit.js"
import type { Config, Service } from "../../Resilient.js"
import * as Retry from "../../Retry.js"
import { logLine } from "../logLine.js"
import * as metrics from "../metrics.js"
import { nonBlank, positiveDuration, positiveInteger } from "../options.js"
import { observedQuantile } from "./balance.js"
import type { Client } from "./client.js"
import { makeComplete } from "./complete.js"
import { buildDeployments, deploymentKey } from "./deployments.js"
import { eligible, lanesOf } from "./fastPath.js"
import { uniqueSteps, validateConfig } from "./options.js"
import { type BuiltTier, Latencies, order } from "./plan.js"
import { withPreset } from "./presets.js"
import { makeStream } from "./stream.js"

const DEFAULT_CONTEXT_WINDOW = 128_000

// Option errors from a building block name its own field; inside a chain the tier's path comes first.
const within = (prefix: string) => (error: InvalidOptions) =>
  new InvalidOptions({ field: `${prefix}${error.field}`, reason: error.reason })

/**
 * Breaker state → `llm.circuit_breaker.state` / `.transitions`: one fiber per breaker follows its `events`, in
 * `scope`, so a client whose scope closed leaves nothing behind. Returns once every follower is suspended on its
 * subscription, so no transition of the first request is missed.
 */
const followBreakers = (
  breakers: ReadonlyMap<string, CircuitBreaker.CircuitBreaker>
): Effect.Effect<ReadonlyArray<Fiber.RuntimeFiber<void>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const followers: Array<Fiber.RuntimeFiber<void>> = []
    for (const [key, breaker] of breakers) {
      metrics.update(metrics.forLabel(key).breakerState, metrics.stateValue(yield* breaker.state))
      followers.push(
        yield* Effect.forkScoped(
          Stream.runForEach(breaker.events, (change) =>
            Effect.sync(() => metrics.breakerTransition(change.key, change.from, change.to, change.reason)))
        )
      )
    }
    for (const follower of followers) {
      for (let turn = 0; turn < 1_000 && (yield* Fiber.status(follower))._tag !== "Suspended"; turn++) {
        yield* Effect.yieldNow()
      }
    }
    return followers
  })

/** The client and its breaker followers (for tests that watch them end with the scope). @internal */
export const build = (
  input: Config,
  options: { readonly fastPath?: boolean } = {}
): Effect.Effect<
  { readonly service: Service; readonly followers: ReadonlyArray<Fiber.RuntimeFiber<void>> },
  InvalidOptions,
  Scope.Scope
> =>
  Effect.gen(function*() {
    yield* validateConfig(input)
    const config = withPreset(input)
    const tiers: Array<BuiltTier> = []
    const breakers = new Map<string, CircuitBreaker.CircuitBreaker>()
    const perKey: Record<string, RateLimit.Limits> = {}
    // Settings a shared registry or limiter makes moot: said once, at construction, rather than dropped silently.
    const ignored: Array<string> = []
    for (const [index, tier] of config.chain.entries()) {
      const path = `chain[${index}].`
      // Several deployments: the first stands for the tier (./deployments.ts).
      const deployed = yield* buildDeployments(tier, path)
      const provider = deployed !== undefined
        ? deployed.first
        : tier.provider === undefined
        ? yield* Effect.fail(new InvalidOptions({ field: `${path}provider`, reason: "is required" }))
        : Effect.isEffect(tier.provider)
        ? yield* Effect.mapError(tier.provider, within(path))
        : tier.provider
      const timeout = yield* Effect.mapError(positiveDuration("timeout", tier.timeout), within(path))
      const firstChunkTimeout = yield* Effect.mapError(
        positiveDuration("firstChunkTimeout", tier.firstChunkTimeout),
        within(path)
      )
      const stallTimeout = yield* Effect.mapError(positiveDuration("stallTimeout", tier.stallTimeout), within(path))
      yield* Effect.mapError(positiveInteger("contextWindow", tier.contextWindow), within(path))
      const retrier = tier.retry === false
        ? undefined
        : yield* Effect.mapError(Retry.make(tier.retry ?? {}), within(`${path}retry.`))
      for (const [position, model] of (tier.downgrades ?? []).entries()) {
        yield* Effect.mapError(nonBlank(`downgrades[${position}]`, model), within(path))
      }
      const models = [provider.model, ...(tier.downgrades ?? [])]
      for (const model of models) {
        // One breaker and one limiter key per `provider:model`, or per `provider:model@deployment`.
        const keys = deployed === undefined
          ? [{ key: `${provider.name}:${model}`, limits: tier.limits }]
          : deployed.deployments.members.map((member) => ({
            key: deploymentKey(`${provider.name}:${model}`, member.name),
            limits: member.limits ?? tier.limits
          }))
        for (const { key, limits } of keys) {
          if (tier.breaker !== false && !breakers.has(key)) {
            const breaker = config.breakers !== undefined
              ? yield* config.breakers.get(key)
              : yield* Effect.mapError(CircuitBreaker.make({ ...tier.breaker, key }), within(`${path}breaker.`))
            breakers.set(key, breaker)
          }
          if (limits !== undefined && limits !== false) perKey[key] = limits
        }
      }
      if (config.breakers !== undefined && tier.breaker !== undefined && tier.breaker !== false) {
        ignored.push(`${path}breaker`)
      }
      if (config.limiter !== undefined && tier.limits !== undefined && tier.limits !== false) {
        ignored.push(`${path}limits`)
      }
      tiers.push({
        index,
        config: tier,
        provider,
        models,
        retrier,
        timeout,
        firstChunkTimeout: firstChunkTimeout ?? timeout,
        stallTimeout,
        contextWindow: tier.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
        qualityRank: tier.qualityRank ?? index,
        ...(deployed !== undefined ? { deployments: deployed.deployments } : {})
      })
    }
    yield* uniqueSteps(tiers.map((tier) => ({ provider: tier.provider, downgrades: tier.config.downgrades })))
    if (config.limiter !== undefined && config.rateLimit !== undefined) ignored.push("rateLimit")
    if (ignored.length > 0) {
      // A shared breaker registry or rate limiter decides these.
      yield* logLine("warn", "llm.settings_ignored", { fields: ignored.join(", ") })
    }
    // Not `??`: the CJS build turns its right side into an arrow function, where `yield*` cannot stand.
    const limiter = config.limiter !== undefined
      ? config.limiter
      : yield* Effect.mapError(RateLimit.make({ ...config.rateLimit, perKey }), within("rateLimit."))
    const followers = yield* followBreakers(breakers)
    const cache = config.degrade?.cache === undefined
      ? undefined
      : yield* Fallback.makeResponseCache(config.degrade.cache)
    const latency = new Latencies()
    const ttft = new Latencies()
    // The hedge delay `p95`: the observed P95 of the first step of the ordered plan — its latency for a
    // completion, its time to first token for a stream.
    // (For a tier of deployments, its fastest observed deployment's: ./balance.ts.)
    const p95 = (windows: Latencies) => () =>
      Duration.millis(observedQuantile(order(tiers, "ordered", windows)[0] ?? tiers[0]!, windows, 0.95) ?? 2_000)
    const hedging = config.hedging
    const hedgerFor = (windows: Latencies) =>
      hedging === undefined ? Effect.succeed(undefined) : Fallback.makeHedger({
        maxFraction: hedging.maxFraction,
        delay: hedging.delay === "p95" ? p95(windows) : hedging.delay
      })
    const completionHedger = yield* hedgerFor(latency)
    const streamHedger = yield* hedgerFor(ttft)
    const acceptReasons: ReadonlyArray<DegradedReason> | undefined = config.degraded === "accept"
      ? ["Truncated", "Repetitive", "Slow"]
      : Array.isArray(config.degraded)
      ? config.degraded
      : undefined
    const client: Client = {
      config,
      tiers,
      breakers,
      limiter,
      limited: config.limiter !== undefined || config.rateLimit !== undefined || Object.keys(perKey).length > 0,
      checked: tiers.some((tier) => tier.config.quality !== undefined),
      cache,
      latency,
      ttft,
      hedgers: completionHedger === undefined || streamHedger === undefined
        ? undefined
        : { completion: completionHedger, stream: streamHedger },
      acceptReasons,
      plans: new Map(),
      fast: new Map()
    }
    // The differential test (test/resilient/fastPath.test.ts) builds with `fastPath: false` to run the ladder alone.
    if (options.fastPath !== false) {
      for (const tier of tiers) if (eligible(client, tier)) client.fast.set(tier, lanesOf(client, tier))
    }
    const service: Service = {
      complete: makeComplete(client),
      stream: makeStream(client),
      breakers,
      limiter,
      providers: tiers.map((tier) => tier.provider)
    }
    return { service, followers }
  })

/** @internal */
export const make = (config: Config): Effect.Effect<Service, InvalidOptions, Scope.Scope> =>
  Effect.map(build(config), ({ service }) => service)

/**
 * `make`, with the breaker registry and the limiter taken from the context when the config names none.
 * @internal
 */
export const makeFromContext = (config: Config): Effect.Effect<Service, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* Effect.serviceOption(CircuitBreaker.CircuitBreakerRegistry)
    const limiter = yield* Effect.serviceOption(RateLimit.RateLimiter)
    return yield* make({
      ...config,
      breakers: config.breakers ?? Option.getOrUndefined(registry),
      limiter: config.limiter ?? Option.getOrUndefined(limiter)
    })
  })
