/**
 * What a configuration file and the environment resolve to: the settings the public `ResilienceConfig` module shows
 * under its own names.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import type * as CircuitBreaker from "../../CircuitBreaker.js"
import type { DegradedReason } from "../../LlmError.js"
import type { Capabilities } from "../../LlmProvider.js"
import type * as RateLimit from "../../RateLimit.js"
import type * as Resilient from "../../Resilient.js"
import type * as Retry from "../../Retry.js"
import * as S from "./schema.js"

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

/** Drops the keys whose value is `undefined`, so that equal settings compare and print equal. */
export const compact = <A extends object>(a: A): A =>
  Object.fromEntries(Object.entries(a).filter(([, value]) => value !== undefined)) as A

/**
 * A file's tier as a `Resilient.Tier`'s policies: everything but its provider (or deployments). Shared by `build`
 * and the simulator's run of a file (../simulation/userConfig.ts), so that it simulates the client the file builds.
 * @internal
 */
export const tierPoliciesOf = (tier: TierSettings) => ({
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
})

/** A file's client settings besides its chain, shared as {@link tierPoliciesOf} is. @internal */
export const clientSettingsOf = (settings: Settings) => ({
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
