/**
 * The composed client most applications provide as one Layer: a chain of providers, each wrapped — in DESIGN.md's
 * order — in breaker admission, retry, breaker record, rate limit, timeout, the call and its quality checks; then
 * parameter relaxation, model downgrades, provider failover, a local model, and graceful degradation (the best
 * degraded answer, the cache, a static answer) before the typed final error.
 *
 * Breakers, limiters, budgets and the cache are built once per Layer and shared by every request.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import * as internal from "./internal/resilient/make.js"
import * as internalPresets from "./internal/resilient/presets.js"
import type { CompletionRequestInput, CompletionResult, StreamChunk } from "./Llm.js"
import type {
  DegradedReason,
  FallbackAttempt,
  FallbackExhausted,
  HardFailure,
  InvalidOptions,
  InvalidRequest
} from "./LlmError.js"
import type { Capabilities, Service as LlmProvider } from "./LlmProvider.js"
import type * as Quality from "./Quality.js"
import type * as RateLimit from "./RateLimit.js"
import type * as Retry from "./Retry.js"

/**
 * Price per 1,000 tokens, in USD.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Price {
  readonly inputPer1k: number
  readonly outputPer1k: number
}

/**
 * One provider in the chain and its policies. Every policy is optional; `false` turns one off.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Tier {
  /**
   * A provider service, or the Effect that builds it (built once, with the Layer). Required unless `deployments` are
   * given (their first one then stands for the tier: its name, model, capabilities and token counting).
   */
  readonly provider?: LlmProvider | Effect.Effect<LlmProvider, InvalidOptions> | undefined
  /**
   * Several deployments of this tier's model — API keys, regions, Azure OpenAI endpoints (an OpenAI provider with the
   * endpoint's `baseURL`) — spread by `balance`. Each is a provider of the same name and model, with its own breaker
   * and limits, keyed `provider:model@deployment`. A request uses one deployment per step. See docs/routing.md.
   */
  readonly deployments?: ReadonlyArray<Deployment> | undefined
  /** How a step picks among `deployments`. Default `weighted-round-robin`. */
  readonly balance?: Balance | undefined
  /**
   * Outlier ejection: a deployment whose breaker is open is out of rotation, but at most this share of the tier's
   * deployments (0–100; at least one when above 0) at once; past it, those whose breakers opened longest ago stay in
   * rotation, their breakers bypassed. Default 100.
   */
  readonly maxEjectionPercent?: number | undefined
  /**
   * When every deployment would be out: `oldest` tries the one whose breaker opened longest ago (its breaker
   * bypassed); `skip` skips the step as `CircuitOpen`. Default `oldest`.
   */
  readonly panic?: "oldest" | "skip" | undefined
  /** Cheaper or older models of the same provider, tried in order after the main one (model downgrade). */
  readonly downgrades?: ReadonlyArray<string> | undefined
  /** Default: `Retry`'s defaults. */
  readonly retry?: Retry.Options | false | undefined
  /** Default: `CircuitBreaker`'s defaults (the balanced preset). One breaker per `provider:model`. */
  readonly breaker?: CircuitBreaker.Options | false | undefined
  /** Default: none. */
  readonly limits?: RateLimit.Limits | false | undefined
  /** Per-attempt timeout, inside the breaker so that a timeout counts against the provider. */
  readonly timeout?: Duration.DurationInput | undefined
  /** A stream's time to its first content chunk (a step that misses it fails over). Default: `timeout`, if set. */
  readonly firstChunkTimeout?: Duration.DurationInput | undefined
  /** The longest gap between two chunks of a stream. Default: none. */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /**
   * Hold a stream back until it ended and passed `quality`, so that a soft failure can still fall back (for answers
   * streamed only for transport, e.g. JSON). Default off; a call's `buffer` overrides it.
   */
  readonly buffer?: boolean | undefined
  /**
   * How long this tier's provider may take to accept the connection and send the response headers, apart from the
   * whole-response `timeout`: a refused or black-holed host then fails over in seconds. Sent with each request.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Checks every answer must pass (soft and degraded failures). */
  readonly quality?: Quality.Check | undefined
  /**
   * The model's context window in tokens. A prompt larger than it (by this tier's token count) is not sent: the step
   * is refused locally as `ContextLengthExceeded`, after relaxation trimmed it. Default 128,000.
   */
  readonly contextWindow?: number | undefined
  /**
   * The most output tokens the model can produce; a request asking for more is clamped to it. Default: known for
   * the model names the docs use (see docs/errors.md), otherwise unbounded.
   */
  readonly maxOutputTokens?: number | undefined
  /** Price of the main model and of each downgrade (by model name); used for cost and cost-first ordering. */
  readonly price?: Price | Readonly<Record<string, Price>> | undefined
  /** Rank for quality-first ordering: lower is better. Default: the position in the chain. */
  readonly qualityRank?: number | undefined
  /**
   * What this tier can take, over its provider's own capabilities (the built-in OpenAI and Anthropic providers take
   * everything; OpenAI-compatible ones take tools but no images or JSON-schema outputs unless told). A request that
   * needs what the tier lacks skips it: no call, no breaker count, an `UnsupportedRequest` in `attempts`.
   */
  readonly capabilities?: Partial<Capabilities> | undefined
  /** Rewrites the messages for this provider (prompt templates). */
  readonly adaptMessages?:
    | ((messages: CompletionRequestInput["messages"]) => CompletionRequestInput["messages"])
    | undefined
}

/**
 * One deployment of a tier's model: a provider of the tier's name and model built with its own API key (a `Redacted`
 * or a `Config`) and base URL.
 *
 * @since 0.2.0
 * @category Models
 */
export interface Deployment {
  /** Unique within the tier; the breaker and limiter key is `provider:model@name`. */
  readonly name: string
  readonly provider: LlmProvider | Effect.Effect<LlmProvider, InvalidOptions>
  /** Share of the traffic under `weighted-round-robin` (and the tie-break of the others). Default 1. */
  readonly weight?: number | undefined
  /** This deployment's rate limits. Default: the tier's `limits`. */
  readonly limits?: RateLimit.Limits | false | undefined
}

/**
 * How a step picks among its tier's deployments: in proportion to their weights (smooth weighted round-robin), the
 * one with the fewest calls in flight, the one with the most requests (then tokens) left by the provider's
 * rate-limit headers, or the lowest latency (an EWMA of a completion's latency or a stream's time to its first
 * chunk), with exploration so that an unobserved deployment gets traffic.
 *
 * @since 0.2.0
 * @category Models
 */
export type Balance = "weighted-round-robin" | "least-in-flight" | "usage" | "latency"

/**
 * How the providers are ordered for a call: as configured, cheapest first, fastest observed first, or best quality
 * rank first.
 *
 * @since 0.1.0
 * @category Models
 */
export type Strategy = "ordered" | "cost-first" | "latency-first" | "quality-first"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Config {
  readonly chain: readonly [Tier, ...Array<Tier>]
  /**
   * Defaults for what this config leaves unset (see {@link presets}): `interactive` fails over fast, `batch` is
   * patient. Default: none (the modules' own defaults).
   */
  readonly preset?: PresetName | undefined
  /** Default `ordered`. */
  readonly strategy?: Strategy | undefined
  /**
   * A default for every call's {@link CallOptions.deadline}: the most a request may take across the whole ladder.
   * Default: none.
   */
  readonly deadline?: Duration.DurationInput | undefined
  /**
   * When every step of a request is refused locally — open breakers, full rate limiters — so that no call was
   * possible, wait for the soonest of them to be ready again (the shortest `retryAfter`) and run the ladder once more,
   * for at most `wait` in all and within the request's deadline, instead of failing at once. Default: fail at once.
   */
  readonly whenAllRefused?: { readonly wait: Duration.DurationInput } | undefined
  /** Try a relaxed request (trimmed history, fewer output tokens, lower temperature) on the same model. Default on. */
  readonly relaxation?: boolean | undefined
  /**
   * A stream that fails after its first content chunk continues on the next step, from the text already sent (an
   * assistant prefill, or a continuation instruction); the caller never sees text twice. Default off: the stream
   * fails with the text so far as `partialContent`.
   */
  readonly continuation?: boolean | undefined
  /**
   * `fallback` (default): a degraded answer moves to the next tier, and is served only if no tier does better.
   * `accept`: a degraded answer (of the listed reasons, or any) is served at once, marked `degraded`.
   */
  readonly degraded?: "fallback" | "accept" | ReadonlyArray<DegradedReason> | undefined
  /** The last resorts, in this order, after every provider failed. */
  readonly degrade?: {
    readonly cache?: { readonly ttl: Duration.DurationInput; readonly capacity: number } | undefined
    readonly staticResponse?: string | undefined
  } | undefined
  /** Start the second provider if the first has not answered after `delay` (`"p95"`: its observed P95). Opt-in. */
  readonly hedging?: {
    readonly delay: Duration.DurationInput | "p95"
    /** Hedges add at most this share of calls. Default 0.1. */
    readonly maxFraction?: number | undefined
  } | undefined
  /** Shared by every tier: `limits` of each tier become per-key limits of this limiter. */
  readonly rateLimit?: Omit<RateLimit.Options, "limits" | "perKey"> | undefined
  /**
   * Take each `provider:model` breaker from this registry instead of building one: with a shared registry
   * (`effect-llm-resilience/redis`) a trip seen by one instance stops every instance. The registry's options apply;
   * a tier's `breaker: false` still turns its breakers off, and its other breaker settings are ignored (with a
   * warning). {@link layer} takes the `CircuitBreakerRegistry` from its context when this is not set.
   */
  readonly breakers?: CircuitBreaker.Registry | undefined
  /**
   * Send every call through this limiter instead of building one from `rateLimit` and the tiers' `limits`, which are
   * then ignored (with a warning). {@link layer} takes the `RateLimiter` from its context when this is not set.
   */
  readonly limiter?: RateLimit.Limiter | undefined
}

/**
 * @since 0.3.0
 * @category Presets
 */
export type PresetName = "interactive" | "batch"

/**
 * What a preset fills in: each tier's `retry` and `breaker`, and the chain's `deadline`, `whenAllRefused` and
 * `rateLimit`, wherever the config leaves them unset.
 *
 * @since 0.3.0
 * @category Presets
 */
export interface Preset {
  readonly retry: Retry.Options
  readonly breaker: CircuitBreaker.Options
  readonly deadline?: Duration.DurationInput | undefined
  readonly whenAllRefused?: { readonly wait: Duration.DurationInput } | undefined
  readonly rateLimit?: Omit<RateLimit.Options, "limits" | "perKey"> | undefined
}

/**
 * The presets, to read or to spread into a tier (`{ provider, retry: presets.batch.retry }`):
 *
 * - `interactive`: a person is waiting. Two calls per model (250 ms apart on a 5xx, 529 or 429; a timeout is not
 *   retried), a Retry-After above 2 s fails over at once, breakers open after 3 consecutive failures for 30 s, and a
 *   60 s request deadline.
 * - `batch`: nobody is waiting. Up to 6 calls on a 5xx or 529 and 8 on a 429 (from 2 s, doubling), Retry-After
 *   honoured up to 5 minutes, breakers open after 10 consecutive failures, a rate-limit wait of up to 5 minutes, and
 *   when every step is refused the request waits up to 5 minutes for one to come back.
 *
 * docs/fallback.md gives the time from a first 503 to an answer under each.
 *
 * @since 0.3.0
 * @category Presets
 */
export const presets: { readonly [N in PresetName]: Preset } = internalPresets.presets

/**
 * A served answer and how it was obtained.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResilientResult extends CompletionResult {
  /** `provider:model` that answered, or `cache` / `static`. */
  readonly servedBy: string
  /** 1-based step of the ladder that answered. */
  readonly tier: number
  /** The first step tried, when another one answered. */
  readonly fallbackFrom?: string | undefined
  /** The steps that failed or were skipped before. */
  readonly attempts: ReadonlyArray<FallbackAttempt>
  readonly costUsd: number
  /** Set when the answer is not a fresh, good one. */
  readonly degraded?: DegradedReason | "cache" | "static" | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface CallOptions {
  readonly strategy?: Strategy | undefined
  /** For a stream: hold it back until it passed the tier's checks (see {@link Tier.buffer}). */
  readonly buffer?: boolean | undefined
  /**
   * The most this request may take across the whole ladder (default: the chain's `deadline`). What is left caps each
   * attempt's timeout and each retry's backoff; a step whose observed median latency no longer fits is skipped
   * (`DeadlineExceeded` in `attempts`); when it runs out, `FallbackExhausted` says so (`deadlineExceeded`) unless a
   * last resort serves. For a stream it bounds the time to the first content chunk (the commit point); the
   * committed stream runs on under its tier's `stallTimeout`.
   */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * The end of a resilient stream: the serving step's `StreamEnd`, with the `ResilientResult` of the whole stream
 * (the assembled content, who served, after which attempts, at what cost, and whether it is degraded).
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResilientStreamEnd extends Extract<StreamChunk, { readonly _tag: "StreamEnd" }> {
  readonly result: ResilientResult
}

/**
 * What a resilient stream emits: the content chunks, then one {@link ResilientStreamEnd}.
 *
 * @since 0.1.0
 * @category Models
 */
export type ResilientStreamChunk = Exclude<StreamChunk, { readonly _tag: "StreamEnd" }> | ResilientStreamEnd

/**
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly complete: (
    request: CompletionRequestInput,
    options?: CallOptions
  ) => Effect.Effect<ResilientResult, FallbackExhausted | HardFailure | InvalidRequest>
  /**
   * Streams through the same ladder as `complete`. Until the first content chunk (the commit point) a failure is a
   * failed step — retried, relaxed, downgraded, failed over, hedged — and when every step fails the last resorts are
   * streamed (marked `degraded`) or the stream fails with `FallbackExhausted`. After it, a failure ends the stream
   * with the text so far as `partialContent`, unless `continuation` is on. The end carries the `ResilientResult`.
   */
  readonly stream: (
    request: CompletionRequestInput,
    options?: CallOptions
  ) => Stream.Stream<ResilientStreamChunk, FallbackExhausted | HardFailure | InvalidRequest>
  /** Every breaker, keyed `provider:model` (`provider:model@deployment` for a tier's deployments). */
  readonly breakers: ReadonlyMap<string, CircuitBreaker.CircuitBreaker>
  readonly limiter: RateLimit.Limiter
  /** The providers in configured order. */
  readonly providers: ReadonlyArray<LlmProvider>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export class Resilient extends Context.Tag("effect-llm-resilience/Resilient")<Resilient, Service>() {}

/**
 * Builds the providers, breakers, limiter, retriers and cache once. Invalid options fail with `InvalidOptions`.
 * The client lives as long as the `Scope` it is built in: each breaker has a fiber that follows its transitions into
 * the metrics, and those end when the scope closes (so a dropped client is garbage-collected).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (config: Config) => Effect.Effect<Service, InvalidOptions, Scope.Scope> = internal.make

/**
 * {@link make} as a Layer. A `CircuitBreakerRegistry` or a `RateLimiter` in the context (`CircuitBreaker.layer`,
 * `RateLimit.layer`, or their Redis-backed versions) supplies the breakers or the limiter, unless `config` names its
 * own: the client then shares them with everything else that uses them.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (config: Config): Layer.Layer<Resilient, InvalidOptions> =>
  Layer.scoped(Resilient, internal.makeFromContext(config))

/**
 * A tag of your own for a second, differently configured client: `Resilient` is the one most apps need, and each
 * further client gets its own tag (a class, as Effect's `Context.Tag`), built with {@link layerAs}.
 *
 * @example
 * ```ts
 * class Summaries extends Resilient.Tag("app/Summaries")<Summaries>() {}
 *
 * const Live = Layer.mergeAll(
 *   Resilient.layer({ chain: [{ provider: primary }, { provider: backup }] }),
 *   Resilient.layerAs(Summaries, { chain: [{ provider: cheap, retry: false }] })
 * )
 * const summary = Effect.flatMap(Summaries, (client) => client.complete(request))
 * ```
 *
 * @since 0.2.0
 * @category Tags
 */
export const Tag = <const Id extends string>(id: Id) => <Self>(): Context.TagClass<Self, Id, Service> =>
  Context.Tag(id)<Self, Service>()

/**
 * {@link layer} for a client under its own tag (see {@link Tag}): the same build, breakers and limiter of its own
 * unless the context supplies shared ones.
 *
 * @since 0.2.0
 * @category Layers
 */
export const layerAs = <Self>(tag: Context.Tag<Self, Service>, config: Config): Layer.Layer<Self, InvalidOptions> =>
  Layer.scoped(tag, internal.makeFromContext(config))

/**
 * @since 0.1.0
 * @category Accessors
 */
export const complete = (
  request: CompletionRequestInput,
  options?: CallOptions
): Effect.Effect<ResilientResult, FallbackExhausted | HardFailure | InvalidRequest, Resilient> =>
  Effect.flatMap(Resilient, (service) => service.complete(request, options))

/**
 * Streams `request` through the `Resilient` client in the context (see {@link Service.stream}).
 *
 * @since 0.1.0
 * @category Accessors
 */
export const stream = (
  request: CompletionRequestInput,
  options?: CallOptions
): Stream.Stream<ResilientStreamChunk, FallbackExhausted | HardFailure | InvalidRequest, Resilient> =>
  Stream.unwrap(Effect.map(Resilient, (service) => service.stream(request, options)))
