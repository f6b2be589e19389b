/**
 * `Settings` → `Resilient.Config`: reads each tier's API key with `Config.redacted` and builds the providers.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { InvalidOptions } from "../../LlmError.js"
import type { Service as LlmProvider } from "../../LlmProvider.js"
import * as Anthropic from "../../providers/Anthropic.js"
import * as OpenAi from "../../providers/OpenAi.js"
import * as OpenAiCompatible from "../../providers/OpenAiCompatible.js"
import type * as Resilient from "../../Resilient.js"
import { InvalidConfig, isNonEmpty, type Issue } from "./error.js"
import { clientSettingsOf, compact, type ProviderSettings, type Settings, tierPoliciesOf } from "./settings.js"

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
        ...tierPoliciesOf(tier)
      }))
    }
    if (isNonEmpty(issues)) return yield* InvalidConfig.of(source, issues)
    return compact<Resilient.Config>({
      chain: tiers as unknown as Resilient.Config["chain"],
      ...clientSettingsOf(settings)
    })
  })

/** Maps a late `InvalidOptions` (from a provider or `Resilient.make`) into the same error. @internal */
export const fromInvalidOptions = (source: string) => (error: InvalidOptions): InvalidConfig =>
  InvalidConfig.of(source, [{ path: error.field, reason: error.reason }])
