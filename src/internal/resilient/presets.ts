/**
 * Presets: defaults for what a chain leaves unset, chosen for how long its caller can wait. They fill each tier's
 * `retry` and `breaker` and the chain's `deadline`, `whenAllRefused` and `rateLimit` only where the config says
 * nothing, so a preset never overrides what the user wrote (`retry: false` stays off).
 * @internal
 */
import type { Config, Preset, PresetName } from "../../Resilient.js"

/** @internal */
export const presets: { readonly [N in PresetName]: Preset } = {
  // A person is waiting: one quick retry per model, then the next step. A Retry-After above 2 s fails over at once.
  // With one downgrade, a primary answering 503 reaches the backup in ~0.5 s (docs/fallback.md).
  interactive: {
    retry: {
      maxAttempts: 2,
      retryAfterCeiling: "2 seconds",
      policies: {
        RateLimited: { maxAttempts: 2, baseDelay: "250 millis", maxDelay: "1 second" },
        ServerError: { maxAttempts: 2, baseDelay: "250 millis", maxDelay: "1 second" },
        Overloaded: { maxAttempts: 2, baseDelay: "250 millis", maxDelay: "1 second" },
        Timeout: { maxAttempts: 1 },
        Connection: { maxAttempts: 2, baseDelay: "100 millis", maxDelay: "500 millis" }
      }
    },
    breaker: { consecutiveFailures: 3, cooldown: "30 seconds" },
    deadline: "60 seconds",
    // A key paused by a 429 or full for longer than this is skipped rather than waited for.
    rateLimit: { maxWait: "1 second" }
  },
  // Nobody is waiting: stay on the cheapest working model, wait out rate limits and short outages.
  batch: {
    retry: {
      maxAttempts: 8,
      retryAfterCeiling: "5 minutes",
      policies: {
        RateLimited: { maxAttempts: 8, baseDelay: "2 seconds", maxDelay: "2 minutes" },
        ServerError: { maxAttempts: 6, baseDelay: "2 seconds", maxDelay: "1 minute" },
        Overloaded: { maxAttempts: 6, baseDelay: "2 seconds", maxDelay: "1 minute" },
        Timeout: { maxAttempts: 3, baseDelay: "5 seconds", maxDelay: "30 seconds" },
        Connection: { maxAttempts: 4, baseDelay: "2 seconds", maxDelay: "30 seconds" }
      }
    },
    breaker: { consecutiveFailures: 10, cooldown: "30 seconds" },
    whenAllRefused: { wait: "5 minutes" },
    rateLimit: { maxWait: "5 minutes" }
  }
}

const definedOf = <A extends object>(value: A | undefined): Partial<A> =>
  value === undefined
    ? {}
    : Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<A>

/**
 * `config` with its preset's defaults filled in. A shared registry or limiter brings its own settings, so the preset's
 * breaker or rate-limit settings are left out with one (they would only be reported as ignored).
 * @internal
 */
export const withPreset = (config: Config): Config => {
  if (config.preset === undefined) return config
  const preset = presets[config.preset]
  const chain = config.chain.map((tier) => ({
    ...tier,
    retry: tier.retry ?? preset.retry,
    breaker: tier.breaker ?? (config.breakers === undefined ? preset.breaker : undefined)
  }))
  return {
    ...config,
    chain: chain as unknown as Config["chain"],
    deadline: config.deadline ?? preset.deadline,
    whenAllRefused: config.whenAllRefused ?? preset.whenAllRefused,
    // Field by field: a config file always brings a (possibly empty) rate_limit section.
    rateLimit: config.limiter === undefined && preset.rateLimit !== undefined
      ? { ...preset.rateLimit, ...definedOf(config.rateLimit) }
      : config.rateLimit
  }
}
