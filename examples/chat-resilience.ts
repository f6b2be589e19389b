/**
 * The chat service's resilience policy, in one place. The program (chat-service.ts) builds it over the real SDKs
 * and the emulator; its test (breaker-timing.test.ts) builds the very same policy over scripted providers. Keeping
 * the policy a function of the providers is what makes it testable.
 */
import type { Layer } from "effect"
import { type LlmError, Resilient, type Retry } from "effect-llm-resilience"

/** A provider service, or the Effect that builds it (`OpenAi.make(…)`); the Layer builds it once. */
export interface ChatProviders {
  readonly primary: Resilient.Tier["provider"]
  readonly backup: Resilient.Tier["provider"]
  readonly local: Resilient.Tier["provider"]
}

// An interactive chat would rather fail over than wait: a 5xx moves on to the next provider at once (the backup
// answers sooner than a backoff would), and a 429 is retried once, only if its Retry-After is at most 5 seconds.
const interactiveRetry: Retry.Options = {
  policies: { ServerError: { maxAttempts: 1 }, Overloaded: { maxAttempts: 1 }, RateLimited: { maxAttempts: 2 } },
  retryAfterCeiling: "5 seconds"
}

// One breaker per provider:model. Three failures in a row open it; after 30 seconds one probe call is let through,
// and its success closes the breaker again. While it is open the provider gets no calls at all.
export const breakerPolicy = { consecutiveFailures: 3, cooldown: "30 seconds" } as const

export const ChatResilience = (
  providers: ChatProviders
): Layer.Layer<Resilient.Resilient, LlmError.InvalidOptions> =>
  Resilient.layer({
    chain: [
      { provider: providers.primary, retry: interactiveRetry, breaker: breakerPolicy, timeout: "20 seconds" },
      { provider: providers.backup, retry: interactiveRetry, breaker: breakerPolicy, timeout: "20 seconds" },
      // The local model is the last provider: no breaker (there is nothing left to fail over to) and more patience.
      { provider: providers.local, retry: false, breaker: false, timeout: "60 seconds" }
    ],
    // When every provider failed, the user still gets an answer, marked `degraded: "static"`.
    degrade: { staticResponse: "Sorry, I cannot answer right now. Please try again in a minute." }
  })
