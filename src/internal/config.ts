/**
 * The configuration file → `Resilient.Config` pipeline: read, parse (YAML or TOML), decode with Schema, overlay the
 * environment, check the cross references, read the secrets, build the providers. Every stage collects all of its
 * problems into one `InvalidConfig`.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { parse as parseToml, TomlError } from "smol-toml"
import * as YAML from "yaml"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type { DegradedReason, InvalidOptions } from "../LlmError.js"
import type { Capabilities, Service as LlmProvider } from "../LlmProvider.js"
import * as Anthropic from "../providers/Anthropic.js"
import * as OpenAi from "../providers/OpenAi.js"
import * as OpenAiCompatible from "../providers/OpenAiCompatible.js"
import type * as RateLimit from "../RateLimit.js"
import type * as Resilient from "../Resilient.js"
import type * as Retry from "../Retry.js"
import { attributeIssue, resolveEnvironment } from "./configEnvironment.js"
import { fromParseIssue, InvalidConfig, type Issue } from "./configError.js"
import * as S from "./configSchema.js"
import { presets } from "./resilient/presets.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/** The configuration file's format. Public as `ResilienceConfig.Format`. */
export type Format = "yaml" | "toml"

/** One model's provider, as the file describes it. Public as `ResilienceConfig.ProviderSettings`. */
export interface ProviderSettings {
  readonly type: "openai" | "anthropic" | "openai-compatible"
  readonly model: string
  /** Breakers and limiters are keyed `name:model`. */
  readonly name: string
  /** The environment variable holding the API key (never the key itself). */
  readonly apiKeyEnv?: string | undefined
  readonly baseURL?: string | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly defaultMaxTokens?: number | undefined
}

/** One deployment of a tier's model, resolved: the model's provider settings with its own key and URL. */
export interface DeploymentSettings {
  readonly name: string
  readonly provider: ProviderSettings
  readonly weight?: number | undefined
  readonly limits?: RateLimit.Limits | false | undefined
}

/** One step of the chain, resolved. Public as `ResilienceConfig.TierSettings`. */
export interface TierSettings {
  /** Several deployments of the model (`provider` is then the model's shared settings). */
  readonly deployments?: ReadonlyArray<DeploymentSettings> | undefined
  readonly balance?: Resilient.Balance | undefined
  readonly maxEjectionPercent?: number | undefined
  readonly panic?: "oldest" | "skip" | undefined
  /** The model id in the file. */
  readonly id: string
  readonly provider: ProviderSettings
  /** Model names (not ids) of the downgrades. */
  readonly downgrades: ReadonlyArray<string>
  readonly retry: Retry.Options | false
  readonly breaker: CircuitBreaker.Options | false
  readonly limits: RateLimit.Limits | false
  readonly timeout?: Duration.Duration | undefined
  readonly firstChunkTimeout?: Duration.Duration | undefined
  readonly stallTimeout?: Duration.Duration | undefined
  readonly connectTimeout?: Duration.Duration | undefined
  readonly contextWindow?: number | undefined
  readonly maxOutputTokens?: number | undefined
  /** What the model can take, over what its provider says (see `Tier.capabilities`). */
  readonly capabilities?: Partial<Capabilities> | undefined
  readonly price?: Resilient.Price | Readonly<Record<string, Resilient.Price>> | undefined
  readonly qualityRank?: number | undefined
}

/** The file and the environment, decoded and resolved. Public as `ResilienceConfig.Settings`. */
export interface Settings {
  /** What fills the retry and breaker settings the file leaves out, and the chain-wide ones `Resilient.make` fills. */
  readonly preset?: Resilient.PresetName | undefined
  readonly strategy: Resilient.Strategy
  readonly deadline?: Duration.Duration | undefined
  readonly whenAllRefused?: { readonly wait: Duration.Duration } | undefined
  readonly relaxation: boolean
  readonly continuation: boolean
  readonly degraded: "fallback" | "accept" | ReadonlyArray<DegradedReason>
  readonly rateLimit: Omit<RateLimit.Options, "limits" | "perKey">
  readonly chain: readonly [TierSettings, ...Array<TierSettings>]
  readonly degrade: {
    readonly cache?: { readonly ttl: Duration.Duration; readonly capacity: number } | undefined
    readonly staticResponse?: string | undefined
  }
  readonly hedging?:
    | { readonly delay: Duration.Duration | "p95"; readonly maxFraction?: number | undefined }
    | undefined
}

/** @internal */
export const overrideVariables: ReadonlyArray<string> = Object.keys(S.env)

/** @internal */
export const DEFAULT_CACHE_TTL = "10 minutes"
/** @internal */
export const DEFAULT_CACHE_CAPACITY = 1000

const DEFAULT_KEY_ENV = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" } as const

type Issues = readonly [Issue, ...Array<Issue>]

const isNonEmpty = (issues: ReadonlyArray<Issue>): issues is Issues => issues.length > 0

const mapNonEmpty = (issues: Issues, f: (issue: Issue) => Issue): Issues => [f(issues[0]), ...issues.slice(1).map(f)]

/** Drops the keys whose value is `undefined`, so that equal settings compare and print equal. */
const compact = <A extends object>(a: A): A =>
  Object.fromEntries(Object.entries(a).filter(([, value]) => value !== undefined)) as A

const duration = (s: string): Duration.Duration => S.decodeDuration(s)!

const capabilitiesOf = (section: S.Capabilities): Partial<Capabilities> => ({
  ...(section.tools !== undefined ? { tools: section.tools } : {}),
  ...(section.images !== undefined ? { images: section.images } : {}),
  ...(section.json_schema !== undefined ? { jsonSchema: section.json_schema } : {})
})

// -----------------------------------------------------------------------------
// reading and parsing
// -----------------------------------------------------------------------------

/** @internal */
export const formatOf = (path: string): Format | undefined => {
  const lower = path.toLowerCase()
  return lower.endsWith(".yaml") || lower.endsWith(".yml") ? "yaml" : lower.endsWith(".toml") ? "toml" : undefined
}

/** @internal */
export const parseText = (text: string, format: Format): Either.Either<unknown, Issues> => {
  if (format === "yaml") {
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true })
    const issues = doc.errors.map((error): Issue => {
      const at = error.linePos?.[0]
      const reason = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
      return {
        path: at === undefined ? "(document)" : `line ${at.line}, column ${at.col}`,
        reason: `malformed YAML: ${reason}`
      }
    })
    if (isNonEmpty(issues)) return Either.left(issues)
    try {
      return Either.right(doc.toJS({ maxAliasCount: 100 }) as unknown)
    } catch (error) {
      // e.g. an alias bomb: "Excessive alias count indicates a resource exhaustion attack"
      return Either.left([{ path: "(document)", reason: `malformed YAML: ${(error as Error).message}` }])
    }
  }
  try {
    return Either.right(parseToml(text) as unknown)
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "")
      return Either.left([{ path: `line ${error.line}, column ${error.column}`, reason: `malformed TOML: ${reason}` }])
    }
    return Either.left([{ path: "(document)", reason: `malformed TOML: ${String(error)}` }])
  }
}

const decodeDocument = Schema.decodeUnknownEither(S.Document, { errors: "all", onExcessProperty: "error" })

// -----------------------------------------------------------------------------
// environment
// -----------------------------------------------------------------------------

/** Reads every `LLM_*` override through the current `ConfigProvider`; blank values count as unset. @internal */
export const readEnv: Effect.Effect<Either.Either<S.EnvValues, Issues>> = Effect.gen(function*() {
  const values: Record<string, unknown> = {}
  const issues: Array<Issue> = []
  for (const name of Object.keys(S.env) as Array<S.EnvName>) {
    const raw = yield* Effect.either(Config.option(Config.string(name)))
    if (Either.isLeft(raw)) {
      issues.push({ path: name, reason: "cannot be read from the configuration provider" })
      continue
    }
    if (Option.isNone(raw.right) || raw.right.value.trim() === "") continue
    const schema = S.env[name] as Schema.Schema<unknown, string>
    const decoded = Schema.decodeUnknownEither(schema)(raw.right.value.trim())
    if (Either.isLeft(decoded)) {
      for (const issue of fromParseIssue(decoded.left.issue)) issues.push({ path: name, reason: issue.reason })
    } else {
      values[name] = decoded.right
    }
  }
  return isNonEmpty(issues) ? Either.left(issues) : Either.right(values as S.EnvValues)
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

// -----------------------------------------------------------------------------
// the pipeline
// -----------------------------------------------------------------------------

/** @internal */
export const settingsFromString = (
  text: string,
  format: Format,
  source: string
): Effect.Effect<Settings, InvalidConfig> =>
  Effect.gen(function*() {
    const env = yield* readEnv
    const raw = parseText(text, format)
    if (Either.isLeft(raw)) return yield* InvalidConfig.of(source, raw.left)
    const environment = yield* resolveEnvironment(raw.right)
    const decoded = decodeDocument(environment.document)
    // A key whose variable is missing is reported once, for the variable.
    const unresolved = new Set(environment.issues.map((issue) => issue.path))
    const docIssues = Either.isLeft(decoded)
      ? fromParseIssue(decoded.left.issue).filter((issue) => !unresolved.has(issue.path)).map(
        attributeIssue(environment)
      )
      : []
    const envIssues = Either.isLeft(env) ? env.left : []
    const all = [...environment.issues, ...docIssues, ...envIssues]
    if (isNonEmpty(all) || Either.isLeft(decoded) || Either.isLeft(env)) {
      return yield* InvalidConfig.of(source, isNonEmpty(all) ? all : [{ path: "(root)", reason: "is invalid" }])
    }
    const settings = resolve(decoded.right, env.right)
    if (Either.isLeft(settings)) {
      return yield* InvalidConfig.of(source, mapNonEmpty(settings.left, attributeIssue(environment)))
    }
    return settings.right
  })

/** @internal */
export const readSource = (
  path: string,
  format: Format | undefined
): Effect.Effect<{ readonly text: string; readonly format: Format }, InvalidConfig, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const resolved = format ?? formatOf(path)
    if (resolved === undefined) {
      return yield* InvalidConfig.of(path, [{
        path,
        reason: "cannot tell the format from the file name: use .yaml, .yml or .toml, or pass the format"
      }])
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* Effect.mapError(
      fs.readFileString(path),
      (error) =>
        InvalidConfig.of(path, [{
          path,
          reason: `cannot read the file (${error._tag === "SystemError" ? error.reason : error._tag}): ${error.message}`
        }])
    )
    return { text, format: resolved }
  })

/** @internal */
export const settingsFromFile = (
  path: string,
  format: Format | undefined
): Effect.Effect<Settings, InvalidConfig, FileSystem.FileSystem> =>
  Effect.flatMap(readSource(path, format), ({ format, text }) => settingsFromString(text, format, path))

// -----------------------------------------------------------------------------
// settings → Resilient.Config
// -----------------------------------------------------------------------------

const providerEffect = (
  settings: ProviderSettings,
  apiKey: Redacted.Redacted<string> | undefined
): Effect.Effect<LlmProvider, InvalidOptions> => {
  const common = compact({
    model: settings.model,
    name: settings.name,
    baseURL: settings.baseURL,
    defaultHeaders: settings.headers === undefined ? undefined : { ...settings.headers }
  })
  switch (settings.type) {
    case "openai":
      return OpenAi.make(compact({
        ...common,
        apiKey: apiKey ?? Redacted.make(""),
        organization: settings.organization,
        project: settings.project
      }))
    case "anthropic":
      return Anthropic.make(compact({
        ...common,
        apiKey: apiKey ?? Redacted.make(""),
        defaultMaxTokens: settings.defaultMaxTokens
      }))
    case "openai-compatible":
      return OpenAiCompatible.make(compact({ ...common, baseURL: settings.baseURL ?? "", apiKey }))
  }
}

/** Reads each tier's API key with `Config.redacted` and builds the `Resilient.Config`. @internal */
export const toResilientConfig = (
  settings: Settings,
  source: string
): Effect.Effect<Resilient.Config, InvalidConfig> =>
  Effect.gen(function*() {
    const issues: Array<Issue> = []
    const tiers: Array<Resilient.Tier> = []
    // Each API key read once per variable, with `Config.redacted`; a problem is reported under the variable.
    const keyOf = (variable: string | undefined, owner: string) =>
      Effect.gen(function*() {
        if (variable === undefined) return undefined
        const read = yield* Effect.either(Config.option(Config.redacted(variable)))
        const describe = `the API key of ${owner} (api_key_env)`
        if (Either.isLeft(read)) issues.push({ path: variable, reason: `cannot be read: ${describe}` })
        else if (Option.isNone(read.right)) issues.push({ path: variable, reason: `is not set; it holds ${describe}` })
        else if (Redacted.value(read.right.value).trim() === "") {
          issues.push({ path: variable, reason: `is empty; it holds ${describe}` })
        } else return read.right.value
        return undefined
      })
    for (const tier of settings.chain) {
      const deployments: Array<Resilient.Deployment> = []
      for (const deployment of tier.deployments ?? []) {
        const key = yield* keyOf(
          deployment.provider.apiKeyEnv,
          `deployment ${JSON.stringify(deployment.name)} of model ${JSON.stringify(tier.id)}`
        )
        deployments.push(compact<Resilient.Deployment>({
          name: deployment.name,
          provider: providerEffect(deployment.provider, key),
          weight: deployment.weight,
          limits: deployment.limits
        }))
      }
      const apiKey = deployments.length > 0
        ? undefined
        : yield* keyOf(tier.provider.apiKeyEnv, `model ${JSON.stringify(tier.id)}`)
      tiers.push(compact<Resilient.Tier>({
        ...(deployments.length > 0
          ? {
            deployments,
            balance: tier.balance,
            maxEjectionPercent: tier.maxEjectionPercent,
            panic: tier.panic
          }
          : { provider: providerEffect(tier.provider, apiKey) }),
        downgrades: tier.downgrades.length === 0 ? undefined : tier.downgrades,
        retry: tier.retry,
        breaker: tier.breaker,
        limits: tier.limits,
        timeout: tier.timeout,
        firstChunkTimeout: tier.firstChunkTimeout,
        stallTimeout: tier.stallTimeout,
        connectTimeout: tier.connectTimeout,
        contextWindow: tier.contextWindow,
        maxOutputTokens: tier.maxOutputTokens,
        capabilities: tier.capabilities,
        price: tier.price,
        qualityRank: tier.qualityRank
      }))
    }
    if (isNonEmpty(issues)) return yield* InvalidConfig.of(source, issues)
    return compact<Resilient.Config>({
      chain: tiers as unknown as Resilient.Config["chain"],
      preset: settings.preset,
      strategy: settings.strategy,
      deadline: settings.deadline,
      whenAllRefused: settings.whenAllRefused,
      relaxation: settings.relaxation,
      continuation: settings.continuation,
      degraded: settings.degraded,
      rateLimit: settings.rateLimit,
      degrade: settings.degrade,
      hedging: settings.hedging
    })
  })

/** Maps a late `InvalidOptions` (from a provider or `Resilient.make`) into the same error. @internal */
export const fromInvalidOptions = (source: string) => (error: InvalidOptions): InvalidConfig =>
  InvalidConfig.of(source, [{ path: error.field, reason: error.reason }])
