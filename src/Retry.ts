/**
 * Retry for LLM calls: one `Schedule` per failure reason, the provider's Retry-After honoured up to a ceiling, a
 * per-attempt timeout, an overall deadline, and a retry budget per provider key that stops retry storms.
 *
 * `maxAttempts` always counts **calls**, the first one included: `maxAttempts: 1` means no retry, `3` means up to
 * two retries.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Schedule from "effect/Schedule"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/retry.js"
import type { HardFailure, HardReason, InvalidOptions, RetryBudgetExhausted } from "./LlmError.js"

/**
 * What a policy is chosen by: a hard failure's reason, or `Soft` for every soft failure.
 *
 * @since 0.1.0
 * @category Models
 */
export type RetryReason = HardReason | "Soft"

/**
 * How one kind of failure is retried.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Policy {
  /** Calls in all, the first included: 1 = never retry. */
  readonly maxAttempts: number
  readonly backoff: "exponential" | "linear" | "constant"
  /** The first delay; exponential doubles it, linear adds it, constant repeats it. */
  readonly baseDelay: Duration.DurationInput
  /** Caps the backoff (after jitter). A larger Retry-After is still honoured, up to `retryAfterCeiling`. */
  readonly maxDelay: Duration.DurationInput
  /** Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]; 0 turns jitter off. */
  readonly jitter: number
  /** Wait at least the provider's Retry-After, when it sends one. */
  readonly honorRetryAfter: boolean
}

/**
 * The defaults of DESIGN.md's table: rate limits 5 calls (exponential from 1 s, Retry-After wins when larger);
 * server errors and overload 3 calls (1 s, 2 s, …); timeouts and connection failures 2 calls (linear 2 s); caller
 * faults, auth, quota, policy refusals and soft failures are not retried.
 *
 * @since 0.1.0
 * @category Defaults
 */
export const defaultPolicies: { readonly [R in RetryReason]: Policy } = internal.defaultPolicies

/**
 * Settings that can be given globally and again per provider or per `provider:model`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Settings {
  /** Per-reason overrides, merged over {@link defaultPolicies}. */
  readonly policies?: { readonly [R in RetryReason]?: Partial<Policy> } | undefined
  /** Calls in all across every reason (a 503, then a 429, then a timeout…). Default 6. */
  readonly maxAttempts?: number | undefined
  /** A Retry-After longer than this is not slept: the call fails at once so a fallback can move on. Default 60 s. */
  readonly retryAfterCeiling?: Duration.DurationInput | undefined
  /** Interrupts one attempt (aborting its HTTP request) and fails it with `HardFailure` `Timeout`. */
  readonly attemptTimeout?: Duration.DurationInput | undefined
  /** Bounds the whole call, retries and waits included. No retry starts that would end after it. */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * The retry budget: within `window`, retries may add at most `ratio` × requests + `minPerSecond` × window seconds.
 *
 * @since 0.1.0
 * @category Models
 */
export interface BudgetOptions {
  /** Default 0.2: retries may add 20 % to the request volume. */
  readonly ratio?: number | undefined
  /** A floor so that low traffic can still retry. Default 1 per second. */
  readonly minPerSecond?: number | undefined
  /** Default 10 seconds. */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options extends Settings {
  /** Keyed by provider name (`openai`) or by `provider:model` (`openai:gpt-4.1`); the more specific one wins. */
  readonly overrides?: Readonly<Record<string, Settings>> | undefined
  /** `false` turns the budget off. */
  readonly budget?: BudgetOptions | false | undefined
}

/**
 * What a retried call is about: a provider service fits (`name`, `model`). The budget is kept per `name:model`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Target {
  readonly name: string
  readonly model: string
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Retrier {
  /**
   * Runs `effect`, retrying its failures by policy. The success path does not enter a Schedule: the first failure
   * does. Failures that are not retried come out unchanged.
   */
  readonly retry: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target,
    options?: RetryCallOptions<E> | undefined
  ) => Effect.Effect<A, E | HardFailure | RetryBudgetExhausted, R>
  /**
   * Retries a stream that fails **before its first element**, by the same policies (an attempt timeout bounds the
   * wait for that element). Once an element has been emitted the stream is committed: a later failure comes out
   * as it is, since a retry would repeat what the caller already has.
   */
  readonly retryStream: <A, E, R>(
    stream: Stream.Stream<A, E, R>,
    target: Target,
    options?: RetryCallOptions<E> | undefined
  ) => Stream.Stream<A, E | HardFailure | RetryBudgetExhausted, R>
  /** Retries the budget for `name:model` still allows in the current window. */
  readonly remainingBudget: (target: Target) => Effect.Effect<number>
}

/**
 * Per call: `until` is asked after each failure, before any backoff or budget is spent; `true` ends the retries
 * with that failure. Composed by hand with a breaker, `until: () => CircuitBreaker.isOpen(breaker)` stops at
 * once when the failure opened the breaker, instead of sleeping a backoff only to be refused.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RetryCallOptions<E> {
  readonly until?: ((failure: E | HardFailure) => Effect.Effect<boolean>) | undefined
  /**
   * An end for this call (`Clock` milliseconds), e.g. a whole request's deadline: as the policy's own `deadline`, it
   * bounds each attempt and no retry starts that would end after it. The earlier of the two applies.
   */
  readonly deadlineAt?: number | undefined
}

/**
 * @since 0.1.0
 * @category Tags
 */
export class Retry extends Context.Tag("effect-llm-resilience/Retry")<Retry, Retrier>() {}

/**
 * Validates the options (failing with `InvalidOptions` naming the field) and builds a retrier with its budgets.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<Retrier, InvalidOptions> = internal.make

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options?: Options): Layer.Layer<Retry, InvalidOptions> => Layer.effect(Retry, make(options))

/**
 * Retries `effect` with the `Retry` service from the context.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const retry: {
  (target: Target): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | HardFailure | RetryBudgetExhausted, R | Retry>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target
  ): Effect.Effect<A, E | HardFailure | RetryBudgetExhausted, R | Retry>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, target: Target) =>
    Effect.flatMap(Retry, (retrier) => retrier.retry(effect, target))
)

/**
 * One policy as a plain `Schedule`, for use with `Effect.retry`: the backoff (jittered, capped), at least the
 * input's `retryAfter` when `honorRetryAfter` is set, stopping after `maxAttempts` calls or at a Retry-After above
 * `retryAfterCeiling` (default 60 s). Its output is the delay.
 *
 * @since 0.1.0
 * @category Schedules
 */
export const schedule = <In extends { readonly retryAfter?: Duration.Duration | undefined }>(
  policy: Policy,
  options?: { readonly retryAfterCeiling?: Duration.DurationInput | undefined }
): Schedule.Schedule<Duration.Duration, In> =>
  internal.policySchedule<In>(policy, Duration.decode(options?.retryAfterCeiling ?? "60 seconds"))
