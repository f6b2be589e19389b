/**
 * A decoded document and the `LLM_*` overrides → `Settings`: presets, defaults, the models' cross references
 * (downgrades, deployments), durations and prices, with every problem collected.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type { Capabilities } from "../../LlmProvider.js"
import type * as Resilient from "../../Resilient.js"
import type * as Retry from "../../Retry.js"
import { presets } from "../resilient/presets.js"
import { isNonEmpty, type Issue, type Issues } from "./error.js"
import * as S from "./schema.js"
import {
  compact,
  DEFAULT_CACHE_CAPACITY,
  DEFAULT_CACHE_TTL,
  type DeploymentSettings,
  type ProviderSettings,
  type Settings,
  type TierSettings
} from "./settings.js"

const DEFAULT_KEY_ENV = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" } as const

const duration = (s: string): Duration.Duration => S.decodeDuration(s)!

const capabilitiesOf = (section: S.Capabilities): Partial<Capabilities> => ({
  ...(section.tools !== undefined ? { tools: section.tools } : {}),
  ...(section.images !== undefined ? { images: section.images } : {}),
  ...(section.json_schema !== undefined ? { jsonSchema: section.json_schema } : {})
})

// -----------------------------------------------------------------------------
// resolution: the document + the environment → settings
// -----------------------------------------------------------------------------

const retryOptions = (section: S.RetrySection): Retry.Options => {
  const policies = section.policies === undefined ? undefined : Object.fromEntries(
    Object.entries(section.policies).map(([reason, policy]: [string, S.RetryPolicy]) => [
      reason,
      compact({
        maxAttempts: policy.max_attempts,
        backoff: policy.backoff,
        baseDelay: policy.base_delay === undefined ? undefined : duration(policy.base_delay),
        maxDelay: policy.max_delay === undefined ? undefined : duration(policy.max_delay),
        jitter: policy.jitter,
        honorRetryAfter: policy.honor_retry_after
      })
    ])
  )
  const budget = section.budget
  return compact<Retry.Options>({
    maxAttempts: section.max_attempts,
    attemptTimeout: section.attempt_timeout === undefined ? undefined : duration(section.attempt_timeout),
    deadline: section.deadline === undefined ? undefined : duration(section.deadline),
    retryAfterCeiling: section.retry_after_ceiling === undefined ? undefined : duration(section.retry_after_ceiling),
    budget: budget === undefined || budget === false ? budget : compact({
      ratio: budget.ratio,
      minPerSecond: budget.min_per_second,
      window: budget.window === undefined ? undefined : duration(budget.window)
    }),
    policies
  })
}

const resolveRetry = (
  section: typeof S.Retry.Type | undefined,
  env: S.EnvValues,
  preset: Resilient.Preset | undefined
): Retry.Options | false => {
  let enabled = section !== false && section?.enabled !== false
  let options: Retry.Options = section === undefined || section === false ? preset?.retry ?? {} : retryOptions(section)
  if (env.LLM_RETRY_ENABLED !== undefined) enabled = S.parseBoolean(env.LLM_RETRY_ENABLED)
  const budget = env.LLM_RETRY_BUDGET_ENABLED === undefined
    ? options.budget
    : S.parseBoolean(env.LLM_RETRY_BUDGET_ENABLED)
    ? (options.budget === false ? {} : options.budget)
    : false
  options = compact<Retry.Options>({
    ...options,
    maxAttempts: env.LLM_RETRY_MAX_ATTEMPTS ?? options.maxAttempts,
    attemptTimeout: env.LLM_RETRY_ATTEMPT_TIMEOUT === undefined
      ? options.attemptTimeout
      : duration(env.LLM_RETRY_ATTEMPT_TIMEOUT),
    deadline: env.LLM_RETRY_DEADLINE === undefined ? options.deadline : duration(env.LLM_RETRY_DEADLINE),
    retryAfterCeiling: env.LLM_RETRY_RETRY_AFTER_CEILING === undefined
      ? options.retryAfterCeiling
      : duration(env.LLM_RETRY_RETRY_AFTER_CEILING),
    budget: env.LLM_RETRY_BUDGET_RATIO === undefined || budget === false
      ? budget
      : { ...budget, ratio: env.LLM_RETRY_BUDGET_RATIO }
  })
  return enabled ? options : false
}

const breakerOptions = (section: S.BreakerSection): CircuitBreaker.Options => {
  const growth = section.cooldown_growth
  const latency = section.latency
  const slow = section.slow_calls
  const hangs = section.hangs
  return compact<CircuitBreaker.Options>({
    ...CircuitBreaker.presets[section.preset ?? "balanced"],
    ...compact<CircuitBreaker.Options>({
      consecutiveFailures: section.consecutive_failures ?? section.threshold,
      failureRate: section.failure_rate,
      window: section.window,
      minimumCalls: section.minimum_calls,
      cooldown: section.cooldown === undefined ? undefined : duration(section.cooldown),
      cooldownGrowth: growth === undefined || typeof growth === "boolean" ? growth : compact({
        factor: growth.factor,
        max: growth.max === undefined ? undefined : duration(growth.max)
      }),
      retryAfter: section.retry_after,
      probes: section.probes,
      successThreshold: section.success_threshold,
      probeTimeout: section.probe_timeout === undefined ? undefined : duration(section.probe_timeout),
      weights: section.weights === undefined ? undefined : compact({ ...section.weights }),
      latency: latency === undefined || typeof latency === "boolean" ? latency : compact({
        multiplier: latency.multiplier,
        baseline: latency.baseline === undefined ? undefined : duration(latency.baseline)
      }),
      slowCalls: slow === undefined || slow === false
        ? slow
        : compact({ threshold: duration(slow.threshold), rate: slow.rate }),
      hangs: hangs === undefined || hangs === false ? hangs : compact({
        after: hangs.after === undefined ? undefined : duration(hangs.after),
        calls: hangs.calls,
        multiplier: hangs.multiplier
      })
    })
  })
}

const resolveBreaker = (
  section: typeof S.Breaker.Type | undefined,
  env: S.EnvValues,
  preset: Resilient.Preset | undefined
): CircuitBreaker.Options | false => {
  let enabled = section !== false && (typeof section !== "object" || section.enabled !== false)
  let options: CircuitBreaker.Options = section === undefined || section === false
    ? preset?.breaker ?? CircuitBreaker.presets.balanced
    : typeof section === "string"
    ? CircuitBreaker.presets[section]
    : breakerOptions(section)
  if (env.LLM_CIRCUIT_BREAKER_ENABLED !== undefined) enabled = S.parseBoolean(env.LLM_CIRCUIT_BREAKER_ENABLED)
  if (env.LLM_CIRCUIT_BREAKER_PRESET !== undefined) options = CircuitBreaker.presets[env.LLM_CIRCUIT_BREAKER_PRESET]
  options = compact<CircuitBreaker.Options>({
    ...options,
    consecutiveFailures: env.LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES ?? env.LLM_CIRCUIT_BREAKER_THRESHOLD
      ?? options.consecutiveFailures,
    failureRate: env.LLM_CIRCUIT_BREAKER_FAILURE_RATE ?? options.failureRate,
    cooldown: env.LLM_CIRCUIT_BREAKER_COOLDOWN === undefined
      ? options.cooldown
      : duration(env.LLM_CIRCUIT_BREAKER_COOLDOWN),
    probeTimeout: env.LLM_CIRCUIT_BREAKER_PROBE_TIMEOUT === undefined
      ? options.probeTimeout
      : duration(env.LLM_CIRCUIT_BREAKER_PROBE_TIMEOUT)
  })
  return enabled ? options : false
}

const toPrice = (price: NonNullable<S.Model["price"]>): Resilient.Price => ({
  inputPer1k: price.input_per_1k,
  outputPer1k: price.output_per_1k
})

const providerOf = (model: S.Model): ProviderSettings =>
  compact<ProviderSettings>({
    type: model.provider,
    model: model.model,
    name: model.name ?? (model.provider === "openai-compatible" ? model.id : model.provider),
    apiKeyEnv: model.api_key_env
      ?? (model.provider === "openai-compatible" ? undefined : DEFAULT_KEY_ENV[model.provider]),
    baseURL: model.base_url,
    organization: model.organization,
    project: model.project,
    headers: model.headers,
    defaultMaxTokens: model.default_max_tokens
  })

const sameProvider = (a: ProviderSettings, b: ProviderSettings): boolean =>
  a.type === b.type && a.name === b.name && a.baseURL === b.baseURL && a.apiKeyEnv === b.apiKeyEnv

/** @internal */
export const resolve = (doc: S.Document, env: S.EnvValues): Either.Either<Settings, Issues> => {
  const issues: Array<Issue> = []
  const byId = new Map<string, { readonly model: S.Model; readonly index: number }>()

  doc.models.forEach((model, index) => {
    const at = `models[${index}]`
    const first = byId.get(model.id)
    if (first !== undefined) {
      issues.push({
        path: `${at}.id`,
        reason: `duplicate model id ${JSON.stringify(model.id)} (first at models[${first.index}])`
      })
    } else {
      byId.set(model.id, { model, index })
    }
    if (model.provider === "openai-compatible" && model.base_url === undefined) {
      issues.push({ path: `${at}.base_url`, reason: "is required for provider \"openai-compatible\"" })
    }
    if (model.provider !== "openai") {
      for (const key of ["organization", "project"] as const) {
        if (model[key] !== undefined) {
          issues.push({ path: `${at}.${key}`, reason: "applies to provider \"openai\" only" })
        }
      }
    }
    if (model.provider !== "anthropic" && model.default_max_tokens !== undefined) {
      issues.push({ path: `${at}.default_max_tokens`, reason: "applies to provider \"anthropic\" only" })
    }
    const names = new Map<string, number>()
    model.deployments?.forEach((deployment, j) => {
      const earlier = names.get(deployment.name)
      if (earlier !== undefined) {
        issues.push({
          path: `${at}.deployments[${j}].name`,
          reason: `duplicate deployment name ${JSON.stringify(deployment.name)} (first at deployments[${earlier}])`
        })
      } else names.set(deployment.name, j)
    })
    if (model.deployments === undefined) {
      for (const key of ["balance", "max_ejection_percent", "panic"] as const) {
        if (model[key] !== undefined) {
          issues.push({ path: `${at}.${key}`, reason: "applies to a model with deployments only" })
        }
      }
    }
  })

  doc.models.forEach((model, index) => {
    model.downgrades?.forEach((id, j) => {
      const at = `models[${index}].downgrades[${j}]`
      const target = byId.get(id)
      if (target === undefined) issues.push({ path: at, reason: `unknown model id ${JSON.stringify(id)}` })
      else if (id === model.id) issues.push({ path: at, reason: "a model cannot be its own downgrade" })
      else if (!sameProvider(providerOf(model), providerOf(target.model))) {
        issues.push({
          path: at,
          reason: `model ${JSON.stringify(id)} must have the same provider, name, base_url and api_key_env as ${
            JSON.stringify(model.id)
          } to be its downgrade`
        })
      }
    })
  })

  const presetName = env.LLM_PRESET ?? doc.preset
  const preset = presetName === undefined ? undefined : presets[presetName]
  const seen = new Map<string, number>()
  const tiers: Array<TierSettings> = []
  doc.chain.forEach((entry, index) => {
    const id = typeof entry === "string" ? entry : entry.model
    const at = typeof entry === "string" ? `chain[${index}]` : `chain[${index}].model`
    const found = byId.get(id)
    if (found === undefined) {
      issues.push({ path: at, reason: `unknown model id ${JSON.stringify(id)}` })
      return
    }
    const previous = seen.get(id)
    if (previous !== undefined) {
      issues.push({ path: at, reason: `model ${JSON.stringify(id)} is already in the chain at chain[${previous}]` })
      return
    }
    seen.set(id, index)
    const model = found.model
    const options = typeof entry === "string" ? undefined : entry
    const downgradeModels = (model.downgrades ?? []).flatMap((d) => {
      const target = byId.get(d)?.model
      return target === undefined ? [] : [target]
    })
    const prices: Array<[string, Resilient.Price]> = [model, ...downgradeModels].flatMap((m) =>
      m.price === undefined ? [] : [[m.model, toPrice(m.price)] as [string, Resilient.Price]]
    )
    const timeout = env.LLM_TIMEOUT ?? options?.timeout ?? model.timeout ?? doc.timeout
    const firstChunkTimeout = env.LLM_FIRST_CHUNK_TIMEOUT ?? options?.first_chunk_timeout ?? model.first_chunk_timeout
    const stallTimeout = env.LLM_STALL_TIMEOUT ?? options?.stall_timeout ?? model.stall_timeout
    const shared = providerOf(model)
    tiers.push(compact<TierSettings>({
      id,
      provider: shared,
      deployments: model.deployments?.map((deployment) =>
        compact<DeploymentSettings>({
          name: deployment.name,
          provider: compact<ProviderSettings>({
            ...shared,
            apiKeyEnv: deployment.api_key_env ?? shared.apiKeyEnv,
            baseURL: deployment.base_url ?? shared.baseURL
          }),
          weight: deployment.weight,
          limits: deployment.limits === undefined || deployment.limits === false
            ? deployment.limits
            : compact({ ...deployment.limits })
        })
      ),
      balance: model.balance,
      maxEjectionPercent: model.max_ejection_percent,
      panic: model.panic,
      downgrades: downgradeModels.map((m) => m.model),
      retry: resolveRetry(options?.retry ?? doc.retry, env, preset),
      breaker: resolveBreaker(options?.breaker ?? doc.breaker, env, preset),
      limits: model.limits === undefined || model.limits === false ? false : compact({ ...model.limits }),
      timeout: timeout === undefined ? undefined : duration(timeout),
      firstChunkTimeout: firstChunkTimeout === undefined ? undefined : duration(firstChunkTimeout),
      stallTimeout: stallTimeout === undefined ? undefined : duration(stallTimeout),
      connectTimeout: model.connect_timeout === undefined ? undefined : duration(model.connect_timeout),
      contextWindow: model.context_window,
      maxOutputTokens: model.max_output_tokens,
      capabilities: model.capabilities === undefined ? undefined : capabilitiesOf(model.capabilities),
      price: prices.length === 0
        ? undefined
        : downgradeModels.length === 0 && model.price !== undefined
        ? toPrice(model.price)
        : Object.fromEntries(prices),
      qualityRank: options?.quality_rank ?? model.quality_rank
    }))
  })

  if (isNonEmpty(issues)) return Either.left(issues)

  const cacheSection = doc.degrade?.cache
  let cacheEnabled = cacheSection !== undefined && cacheSection !== false && cacheSection.enabled !== false
  if (env.LLM_CACHE_ENABLED !== undefined) cacheEnabled = S.parseBoolean(env.LLM_CACHE_ENABLED)
  else if (env.LLM_CACHE_TTL !== undefined || env.LLM_CACHE_CAPACITY !== undefined) {
    cacheEnabled ||= cacheSection !== false
  }
  const cacheFields = cacheSection === undefined || cacheSection === false ? {} : cacheSection
  const cache = cacheEnabled
    ? {
      ttl: duration(env.LLM_CACHE_TTL ?? cacheFields.ttl ?? DEFAULT_CACHE_TTL),
      capacity: env.LLM_CACHE_CAPACITY ?? cacheFields.capacity ?? DEFAULT_CACHE_CAPACITY
    }
    : undefined

  const hedgingSection = doc.hedging
  let hedgingEnabled = hedgingSection !== undefined && hedgingSection !== false && hedgingSection.enabled !== false
  if (env.LLM_HEDGING_ENABLED !== undefined) hedgingEnabled = S.parseBoolean(env.LLM_HEDGING_ENABLED)
  const hedgingFields = hedgingSection === undefined || hedgingSection === false ? {} : hedgingSection
  const delay = env.LLM_HEDGING_DELAY ?? hedgingFields.delay ?? "p95"
  const hedging = hedgingEnabled
    ? compact({
      delay: delay === "p95" ? "p95" as const : duration(delay),
      maxFraction: env.LLM_HEDGING_MAX_FRACTION ?? hedgingFields.max_fraction
    })
    : undefined

  const rateLimit = doc.rate_limit ?? {}
  const maxWait = env.LLM_RATE_LIMIT_MAX_WAIT ?? rateLimit.max_wait
  const adaptive = env.LLM_RATE_LIMIT_ADAPTIVE === undefined
    ? rateLimit.adaptive
    : S.parseBoolean(env.LLM_RATE_LIMIT_ADAPTIVE)

  const idleExpiry = env.LLM_RATE_LIMIT_IDLE_EXPIRY ?? rateLimit.idle_expiry
  const deadline = env.LLM_DEADLINE ?? doc.deadline
  const refusedWait = env.LLM_WHEN_ALL_REFUSED_WAIT ?? doc.when_all_refused?.wait
  return Either.right(compact<Settings>({
    preset: presetName,
    strategy: env.LLM_STRATEGY ?? doc.strategy ?? "ordered",
    deadline: deadline === undefined ? undefined : duration(deadline),
    whenAllRefused: refusedWait === undefined ? undefined : { wait: duration(refusedWait) },
    relaxation: env.LLM_RELAXATION === undefined ? doc.relaxation ?? true : S.parseBoolean(env.LLM_RELAXATION),
    continuation: env.LLM_CONTINUATION === undefined
      ? doc.continuation ?? false
      : S.parseBoolean(env.LLM_CONTINUATION),
    degraded: env.LLM_DEGRADED ?? doc.degraded ?? "fallback",
    rateLimit: compact<Settings["rateLimit"]>({
      mode: env.LLM_RATE_LIMIT_MODE ?? rateLimit.mode,
      maxWait: maxWait === undefined || maxWait === "infinity" ? maxWait : duration(maxWait),
      outputTokenEstimate: rateLimit.output_token_estimate,
      adaptive,
      // `false` in a file, `off` in the environment: keys are never dropped.
      idleExpiry: idleExpiry === false || idleExpiry === "off"
        ? false
        : idleExpiry === undefined
        ? undefined
        : duration(idleExpiry)
    }),
    chain: tiers as unknown as Settings["chain"],
    degrade: compact({ cache, staticResponse: env.LLM_STATIC_RESPONSE ?? doc.degrade?.static_response }),
    hedging
  }))
}
