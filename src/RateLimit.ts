/**
 * Rate limiting for LLM calls, per key (`provider:model` by default): a concurrency bulkhead, requests per minute and
 * tokens per minute.
 *
 * - Each call is charged its token estimate before it starts (`countTokens` of the prompt plus `maxTokens`, or the
 *   configured output estimate) and the charge is reconciled with the real usage afterwards (refund or extra charge).
 * - `wait` mode queues callers in FIFO order up to `maxWait`; `fail-fast` refuses at once. Both fail with
 *   `RateLimitExceeded { key, retryAfter, limit }`, which breakers ignore and a fallback chain treats as "try the next
 *   tier".
 * - The provider's own rate-limit headers (`result.rateLimit`) tighten the local budget, and a 429 with Retry-After
 *   pauses the key until then. Malformed values are ignored.
 * - Interruption, waiting or running, returns every permit and token charge.
 *
 * Windows are exact sliding windows of one minute: no 60 s span ever admits more than the limit. Every timing
 * decision reads the Effect `Clock`, so `TestClock` drives all of it. See docs/rate-limiting.md.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/rateLimit.js"
import type { CompletionRequestInput, CompletionResult, RateLimitInfo, StreamChunk } from "./Llm.js"
import type { HardFailure, InvalidOptions, InvalidRequest, RateLimitExceeded } from "./LlmError.js"
import type { Service as LlmProviderService } from "./LlmProvider.js"

/**
 * Limits for one key. Each is optional; leaving one out (or giving `Infinity`) means no limit of that kind.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Limits {
  /** Calls running at the same time. */
  readonly concurrency?: number | undefined
  /** Requests started in any 60-second span. */
  readonly rpm?: number | undefined
  /** Tokens (prompt + completion) charged in any 60-second span. */
  readonly tpm?: number | undefined
}

/**
 * `wait`: queue in FIFO order until the call may start, at most `maxWait`. `fail-fast`: refuse at once.
 *
 * @since 0.1.0
 * @category Models
 */
export type Mode = "wait" | "fail-fast"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Limits for every key. */
  readonly limits?: Limits | undefined
  /**
   * Overrides keyed by provider name (`openai`) or by `provider:model` (`openai:gpt-4.1`), merged field by field over
   * `limits`; the more specific one wins.
   */
  readonly perKey?: Readonly<Record<string, Limits>> | undefined
  /** Default `wait`. */
  readonly mode?: Mode | undefined
  /**
   * In `wait` mode, the longest a call waits for its turn; beyond it the call fails with `RateLimitExceeded`. A call
   * whose wait is known to exceed it fails at once. `"infinity"` (or `Duration.infinity`) waits for ever. Default
   * 30 seconds.
   */
  readonly maxWait?: Duration.DurationInput | "infinity" | undefined
  /** Output tokens charged up front when a request has no `maxTokens`. Default 512. */
  readonly outputTokenEstimate?: number | undefined
  /** Follow the provider's rate-limit headers and 429 Retry-After. Default `true`. */
  readonly adaptive?: boolean | undefined
  /**
   * A key that holds nothing (no call running or waiting, no pause, no provider budget before its reset) and was not
   * used for this long is dropped, with its metric series; it goes between one and two `idleExpiry` after its last
   * call. `false` keeps every key. Default 1 hour.
   */
  readonly idleExpiry?: Duration.DurationInput | false | undefined
}

/**
 * What a limited call is about: a provider service fits (`name`, `model`); its key is `name:model`. A plain string is
 * used as the key as it is.
 *
 * @since 0.1.0
 * @category Models
 */
export type Target = { readonly name: string; readonly model: string } | string

/**
 * @since 0.1.0
 * @category Models
 */
export interface LimitOptions {
  /**
   * The token estimate charged before the call (default 0). If the effect's result carries `usage.totalTokens` (a
   * `CompletionResult` does) the charge is reconciled with it afterwards.
   */
  readonly tokens?: number | undefined
}

/**
 * The state of one key, for tests and dashboards. Times are `Clock` milliseconds.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Snapshot {
  readonly key: string
  /** The configured limits; `Infinity` where none. */
  readonly limits: { readonly concurrency: number; readonly rpm: number; readonly tpm: number }
  readonly inFlight: number
  readonly waiting: number
  /** Requests and tokens charged in the last 60 s; counted only for keys with an `rpm` or `tpm` limit. */
  readonly requestsInWindow: number
  readonly tokensInWindow: number
  /** Set while a 429 Retry-After (or `pause`) holds the key. */
  readonly pausedUntil: number | undefined
  /** What the provider's latest headers still allow, while their reset lies ahead. */
  readonly provider: {
    readonly remainingRequests: number | undefined
    readonly requestsResetAt: number | undefined
    readonly remainingTokens: number | undefined
    readonly tokensResetAt: number | undefined
  }
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Limiter {
  /**
   * Runs `effect` once the key admits it, holding a concurrency permit while it runs. A success carrying `usage`
   * reconciles the token charge and one carrying `rateLimit` adapts the key; a `HardFailure` `RateLimited` with
   * `retryAfter` pauses the key.
   */
  readonly limit: (
    target: Target,
    options?: LimitOptions
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimitExceeded, R>
  /**
   * Validates the request, charges its estimate (`countTokens` + `maxTokens` or `outputTokenEstimate`) against
   * `provider.name:(request.model ?? provider.model)`, and runs `run` (default `provider.complete`) under the limit.
   */
  readonly call: <E = never, R = never>(
    provider: LlmProviderService,
    request: CompletionRequestInput,
    run?: (request: CompletionRequestInput) => Effect.Effect<CompletionResult, E, R>
  ) => Effect.Effect<CompletionResult, E | HardFailure | InvalidRequest | RateLimitExceeded, R>
  /**
   * `provider.stream` (or `run`, e.g. the provider's stream under a breaker) under the limit: the permit is held until
   * the stream ends, and the charge is reconciled from its `StreamEnd`.
   */
  readonly stream: <E = never>(
    provider: LlmProviderService,
    request: CompletionRequestInput,
    run?: (request: CompletionRequestInput) => Stream.Stream<StreamChunk, E>
  ) => Stream.Stream<StreamChunk, E | HardFailure | InvalidRequest | RateLimitExceeded>
  /** The tokens `call` charges up front for this request. */
  readonly estimate: (provider: LlmProviderService, request: CompletionRequestInput) => Effect.Effect<number>
  /** Adapts the key to rate-limit headers seen elsewhere (the limiter reads them from results by itself). */
  readonly observe: (target: Target, info: RateLimitInfo) => Effect.Effect<void>
  /** No call for the key starts before `duration` has passed. */
  readonly pause: (target: Target, duration: Duration.DurationInput) => Effect.Effect<void>
  readonly snapshot: (target: Target) => Effect.Effect<Snapshot>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export class RateLimiter extends Context.Tag("effect-llm-resilience/RateLimiter")<RateLimiter, Limiter>() {}

/**
 * The key a target is limited under: `name:model`, or the string itself.
 *
 * @since 0.1.0
 * @category Utils
 */
export const keyOf: (target: Target) => string = internal.keyOf

/**
 * Validates the options (failing with `InvalidOptions` naming the field) and builds a limiter.
 *
 * @example
 * ```ts
 * const limiter = yield* RateLimit.make({ limits: { concurrency: 16, rpm: 500, tpm: 200_000 } })
 * const result = yield* limiter.call(openai, { messages: [{ role: "user", content: "hi" }] })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<Limiter, InvalidOptions> = internal.make

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options?: Options): Layer.Layer<RateLimiter, InvalidOptions> =>
  Layer.effect(RateLimiter, make(options))

/**
 * Runs `effect` under the `RateLimiter` from the context.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const limit: {
  (target: Target, options?: LimitOptions): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimitExceeded, R | RateLimiter>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target,
    options?: LimitOptions
  ): Effect.Effect<A, E | RateLimitExceeded, R | RateLimiter>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(effect: Effect.Effect<A, E, R>, target: Target, options?: LimitOptions) =>
    Effect.flatMap(RateLimiter, (limiter) => limiter.limit(target, options)(effect))
)

/**
 * `provider.complete(request)` under the `RateLimiter` from the context (see {@link Limiter.call}).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const call = (
  provider: LlmProviderService,
  request: CompletionRequestInput
): Effect.Effect<CompletionResult, HardFailure | InvalidRequest | RateLimitExceeded, RateLimiter> =>
  Effect.flatMap(RateLimiter, (limiter) => limiter.call(provider, request))
