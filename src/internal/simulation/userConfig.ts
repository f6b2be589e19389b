/**
 * `simulate --config resilience.yaml`: the user's own configuration file run through a scenario. Each tier of the
 * file's chain keeps its name, model and policies (retry, breaker, limits, timeouts, price) and plays the scenario's
 * provider at the same position (tiers past the last one take the last one's statistics); the file's client settings
 * (strategy, degrade, hedging, rate limit) apply as written. No API key is read: the upstreams are simulated.
 *
 * The file travels to worker threads as its text (a decoded file holds `Duration`s, which do not survive a
 * structured clone), and each thread decodes it the same way.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Resilient from "../../Resilient.js"
import { formatOf, settingsFromString } from "../config/read.js"
import { clientSettingsOf, type Format, type Settings, tierPoliciesOf, type TierSettings } from "../config/settings.js"
import type { Configuration } from "./run.js"
import { type PresetName, presets, type ProviderProfile } from "./scenario.js"

/** The configuration file, as read by the command line. */
export interface UserConfigFile {
  readonly path: string
  readonly text: string
  readonly format: Format
}

/** The format from the file's extension (`.yaml`, `.yml`, `.toml`), or an error naming the flag. */
export const formatFor = (path: string): Format => {
  const format = formatOf(path)
  if (format === undefined) throw new Error(`--config: ${path} must end in .yaml, .yml or .toml`)
  return format
}

/** Decodes the file (with the `LLM_*` overrides of the environment), or throws the `InvalidConfig` message. */
export const settingsOf = (file: UserConfigFile): Settings => {
  const decoded = Effect.runSync(Effect.either(settingsFromString(file.text, file.format, file.path)))
  if (Either.isLeft(decoded)) throw new Error(`--config: ${decoded.left.message}`)
  return decoded.right
}

const isPrice = (price: TierSettings["price"]): price is Resilient.Price =>
  price !== undefined && typeof price.inputPer1k === "number" && typeof price.outputPer1k === "number"

/** The tier's price when it has one for every model (a per-model table prices the simulated model otherwise). */
const singlePrice = (tier: TierSettings): Resilient.Price | undefined => isPrice(tier.price) ? tier.price : undefined

/** The scenario's providers, named as the file's tiers. */
export const profilesOf = (settings: Settings, preset: PresetName): ReadonlyArray<ProviderProfile> => {
  const played = presets[preset]
  return settings.chain.map((tier, index) => {
    const like = played[Math.min(index, played.length - 1)]!
    return {
      ...like,
      name: tier.provider.name,
      model: tier.provider.model,
      api: `${tier.provider.type} (${like.name}'s incident statistics)`,
      price: singlePrice(tier) ?? like.price
    }
  })
}

/** The file's client as a simulated configuration. */
export const configurationOf = (settings: Settings, path: string): Configuration => ({
  name: "config",
  title: "your config",
  description: `the client of ${path}, tier by tier`,
  tiers: settings.chain.length,
  policies: {},
  chain: settings.chain.map(tierPoliciesOf),
  client: clientSettingsOf(settings)
})
