/**
 * A declarative configuration file — YAML or TOML, in the spirit of LiteLLM's model list — for the composed
 * `Resilient` client: the models (provider, model, the environment variable holding the API key, base URL, limits,
 * prices, timeout, downgrades, context window), the chain and its strategy, retry, circuit breakers (presets or
 * explicit options), rate limiting, degradation (cache, static answer) and hedging.
 *
 * `LLM_*` environment variables, read through Effect's `Config` and the current `ConfigProvider`, override the
 * file; API keys are read with `Config.redacted` from the variable each model names. Every problem — unreadable
 * file, malformed YAML or TOML, wrong types, unknown keys, bad references, missing secrets, bad overrides — fails
 * the Layer build with one {@link InvalidConfig} that lists them all as `path: reason`.
 *
 * Exported from the package as `ResilienceConfig` (effect has its own `Config`). See docs/configuration.md.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as EffectConfig from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as configBuild from "./internal/config/build.js"
import { InvalidConfig } from "./internal/config/error.js"
import * as read from "./internal/config/read.js"
import type * as settings from "./internal/config/settings.js"
import { overrideVariables as variables } from "./internal/config/settings.js"
import * as internalResilient from "./internal/resilient/make.js"
import * as Resilient from "./Resilient.js"

export {
  /**
   * The configuration is unusable: every problem, as `path: reason`.
   *
   * @since 0.1.0
   * @category Errors
   */
  InvalidConfig,
  /**
   * One problem: where and why.
   *
   * @since 0.1.0
   * @category Models
   */
  Issue
} from "./internal/config/error.js"

/**
 * @since 0.1.0
 * @category Models
 */
export type Format = settings.Format

/**
 * The file and the environment, decoded and resolved — presets expanded, overrides applied, durations decoded,
 * downgrade ids turned into model names — but before any secret is read or provider built. Two equivalent files
 * give equal settings.
 *
 * @since 0.1.0
 * @category Models
 */
export type Settings = settings.Settings

/**
 * @since 0.1.0
 * @category Models
 */
export type TierSettings = settings.TierSettings

/**
 * @since 0.1.0
 * @category Models
 */
export type ProviderSettings = settings.ProviderSettings

/**
 * @since 0.2.0
 * @category Models
 */
export type DeploymentSettings = settings.DeploymentSettings

/**
 * @since 0.1.0
 * @category Models
 */
export interface LoadOptions {
  /** Default: from the extension (`.yaml`, `.yml`, `.toml`). */
  readonly format?: Format | undefined
}

/**
 * The environment variable `layer` reads the file path from.
 *
 * @since 0.1.0
 * @category Constants
 */
export const FILE_VARIABLE = "LLM_CONFIG_FILE"

/**
 * The environment variable `layer` reads the format from when the file name does not tell it.
 *
 * @since 0.1.0
 * @category Constants
 */
export const FORMAT_VARIABLE = "LLM_CONFIG_FORMAT"

/**
 * Every `LLM_*` variable that overrides the file.
 *
 * @since 0.1.0
 * @category Constants
 */
export const overrideVariables: ReadonlyArray<string> = variables

/**
 * Decodes a configuration text and applies the environment overrides.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const settingsFromString = (text: string, format: Format): Effect.Effect<Settings, InvalidConfig> =>
  read.settingsFromString(text, format, "<string>")

/**
 * Reads and decodes a configuration file and applies the environment overrides.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const settingsFromFile = (
  path: string,
  options?: LoadOptions
): Effect.Effect<Settings, InvalidConfig, FileSystem.FileSystem> => read.settingsFromFile(path, options?.format)

/**
 * Reads each tier's API key (`Config.redacted(api_key_env)`) and builds the `Resilient.Config`. Use it to add what a
 * file cannot hold (quality checks, message adapters) before `Resilient.layer`.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const toResilientConfig = (settings: Settings): Effect.Effect<Resilient.Config, InvalidConfig> =>
  configBuild.toResilientConfig(settings, "<settings>")

/**
 * @since 0.1.0
 * @category Decoding
 */
export const fromString = (text: string, format: Format): Effect.Effect<Resilient.Config, InvalidConfig> =>
  Effect.flatMap(
    read.settingsFromString(text, format, "<string>"),
    (settings) => configBuild.toResilientConfig(settings, "<string>")
  )

/**
 * @since 0.1.0
 * @category Decoding
 */
export const fromFile = (
  path: string,
  options?: LoadOptions
): Effect.Effect<Resilient.Config, InvalidConfig, FileSystem.FileSystem> =>
  Effect.flatMap(
    read.settingsFromFile(path, options?.format),
    (settings) => configBuild.toResilientConfig(settings, path)
  )

const build =
  (source: string) => (config: Resilient.Config): Effect.Effect<Resilient.Service, InvalidConfig, Scope.Scope> =>
    Effect.mapError(internalResilient.makeFromContext(config), configBuild.fromInvalidOptions(source))

/**
 * The `Resilient` client described by a configuration text.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromString = (text: string, format: Format): Layer.Layer<Resilient.Resilient, InvalidConfig> =>
  Layer.scoped(Resilient.Resilient, Effect.flatMap(fromString(text, format), build("<string>")))

/**
 * The `Resilient` client described by a configuration file. Provide a `FileSystem` (e.g. `NodeContext.layer`).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromFile = (
  path: string,
  options?: LoadOptions
): Layer.Layer<Resilient.Resilient, InvalidConfig, FileSystem.FileSystem> =>
  Layer.scoped(Resilient.Resilient, Effect.flatMap(fromFile(path, options), build(path)))

/**
 * The file path (and, optionally, its format) from the environment: `LLM_CONFIG_FILE`, `LLM_CONFIG_FORMAT`.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const fileFromEnv: Effect.Effect<
  { readonly path: string; readonly format?: Format | undefined },
  InvalidConfig
> = Effect.gen(function*() {
  const read = yield* Effect.either(
    EffectConfig.all({
      path: EffectConfig.option(EffectConfig.string(FILE_VARIABLE)),
      format: EffectConfig.option(EffectConfig.string(FORMAT_VARIABLE))
    })
  )
  if (Either.isLeft(read)) {
    return yield* InvalidConfig.of("environment", [{ path: FILE_VARIABLE, reason: "cannot be read" }])
  }
  const { format, path } = read.right
  if (Option.isNone(path) || path.value.trim() === "") {
    return yield* InvalidConfig.of("environment", [{
      path: FILE_VARIABLE,
      reason: "is not set; it must name the configuration file"
    }])
  }
  if (Option.isNone(format) || format.value.trim() === "") return { path: path.value }
  const value = format.value.trim().toLowerCase()
  if (value !== "yaml" && value !== "toml") {
    return yield* InvalidConfig.of("environment", [{
      path: FORMAT_VARIABLE,
      reason: `expected "yaml" or "toml", got ${JSON.stringify(format.value)}`
    }])
  }
  return { path: path.value, format: value }
})

/**
 * The `Resilient` client described by the file that `LLM_CONFIG_FILE` names.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer: Layer.Layer<Resilient.Resilient, InvalidConfig, FileSystem.FileSystem> = Layer.scoped(
  Resilient.Resilient,
  Effect.flatMap(
    fileFromEnv,
    ({ format, path }) => Effect.flatMap(fromFile(path, { format }), build(path))
  )
)
