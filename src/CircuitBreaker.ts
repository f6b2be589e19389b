/**
 * A circuit breaker for Effect: stops calling a dependency that is failing, probes it after a cooldown, and lets
 * traffic back once it answers again.
 *
 * - States: Closed, Open, HalfOpen, plus Disabled (pass-through), ForcedOpen and MetricsOnly (records, never blocks).
 * - Trip policies, combinable: consecutive failures, a weighted failure rate over a sliding window of calls, P95
 *   latency against a learned P50 baseline, a slow-call rate; 401/403 open at once. Caller faults never count.
 * - HalfOpen done right: a fixed number of probe permits, callers without one fail fast, an interrupted probe gives
 *   its permit back, a watchdog re-opens a breaker whose probe never finishes, and a generation counter fences
 *   late results out of newer periods.
 * - A keyed registry (`CircuitBreakerRegistry`) for one breaker per provider:model, tenant or any string key.
 *
 * Every timing decision reads the Effect `Clock`, so `TestClock` drives all of it. See docs/circuit-breaker.md.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type { Pipeable } from "effect/Pipeable"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as internal from "./internal/circuitBreaker.js"
import * as internalOptions from "./internal/circuitBreakerOptions.js"
import * as registry from "./internal/circuitBreakerRegistry.js"
import type { CircuitOpen, InvalidOptions } from "./LlmError.js"

/**
 * @since 0.1.0
 * @category Symbols
 */
export const TypeId: TypeId = internal.TypeId

/**
 * @since 0.1.0
 * @category Symbols
 */
export type TypeId = "~effect-llm-resilience/CircuitBreaker"

/**
 * @since 0.1.0
 * @category Schemas
 */
export const State = Schema.Literal("Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly")

/**
 * - `Closed`: calls pass and are recorded.
 * - `Open`: calls fail at once with `CircuitOpen`; after the cooldown the next call moves it to `HalfOpen`.
 * - `HalfOpen`: a fixed number of probes pass; everyone else fails fast.
 * - `Disabled`: calls pass and nothing is recorded. `ForcedOpen`: every call fails until released by hand.
 * - `MetricsOnly`: calls pass and are recorded (snapshots stay live) but the breaker never opens.
 *
 * @since 0.1.0
 * @category Models
 */
export type State = typeof State.Type

/**
 * Why a transition happened.
 *
 * @since 0.1.0
 * @category Models
 */
export type Reason =
  | "ConsecutiveFailures"
  | "FailureRate"
  | "LatencyP95"
  | "SlowCallRate"
  | "Hanging"
  | "FatalFailure"
  | "ProbeFailed"
  | "ProbeTimeout"
  | "CooldownElapsed"
  | "ProbesSucceeded"
  | "Manual"

/**
 * One transition. `at` is `Clock` time in milliseconds: the moment the transition became due (for a cooldown or a
 * probe timeout, when it elapsed, even if the breaker noticed on a later call).
 *
 * @since 0.1.0
 * @category Models
 */
export interface StateChange {
  readonly key: string
  readonly from: State
  readonly to: State
  readonly reason: Reason
  readonly at: number
}

/**
 * What a failed call counts as.
 *
 * - `hard`, `soft`, `degraded`: a failure with that class's weight (see {@link Options.weights}).
 * - `fatal`: open at once (credentials revoked, account suspended: no point in probing traffic).
 * - `ignored`: not the dependency's fault; not recorded, and a half-open probe gives its permit back.
 * - `success`: the error is an expected answer (for example "not found" in a lookup).
 *
 * `retryAfter`, when the dependency said how long to stay away, may lengthen the cooldown if this failure opens the
 * breaker (see {@link Options.retryAfter}).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Classification {
  readonly kind: "hard" | "soft" | "degraded" | "fatal" | "ignored" | "success"
  readonly retryAfter?: Duration.Duration | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Weighted failures in a row that open the breaker (a success resets the count); `false` disables. Default 5. */
  readonly consecutiveFailures?: number | false | undefined
  /** Weighted failure rate in percent, over the window, that opens the breaker; `false` disables. Default 50. */
  readonly failureRate?: number | false | undefined
  /** Calls in the sliding window (count-based). Default 20. */
  readonly window?: number | undefined
  /** Calls the window must hold before rate and latency policies may open the breaker. Default 10. */
  readonly minimumCalls?: number | undefined
  /** Failure weights in [0, 1]. Defaults: hard 1, soft 0.5, degraded 0.5. */
  readonly weights?: {
    readonly hard?: number | undefined
    readonly soft?: number | undefined
    readonly degraded?: number | undefined
  } | undefined
  /**
   * Opens when the window's P95 latency exceeds `multiplier` (default 3) times the P50 baseline. The baseline is
   * learned from successful calls (a streaming median) unless given. Off by default: LLM latency follows output
   * length, so enable it where the requests are alike.
   */
  readonly latency?: boolean | {
    readonly multiplier?: number | undefined
    readonly baseline?: Duration.DurationInput | undefined
  } | undefined
  /** Opens when at least `rate` percent (default 50) of the window took longer than `threshold`. Off by default. */
  readonly slowCalls?: false | {
    readonly threshold: Duration.DurationInput
    readonly rate?: number | undefined
  } | undefined
  /**
   * Hang detection: opens when the provider has gone silent — at least `calls` (default 5) calls are running, none has
   * finished since the first of them started, and that one has run longer than `after` (default 3 seconds) or
   * `multiplier` (default 3) times the learned median latency, whichever is longer. A provider that starts hanging
   * trips within about `after`, instead of after your attempt timeout has failed `consecutiveFailures` calls. Only
   * `execute` calls count (a stream runs as long as its answer). `false` turns it off. On by default.
   */
  readonly hangs?: false | {
    readonly after?: Duration.DurationInput | undefined
    readonly calls?: number | undefined
    readonly multiplier?: number | undefined
  } | undefined
  /** How long the breaker stays open before it lets a probe through. Default 60 seconds. */
  readonly cooldown?: Duration.DurationInput | undefined
  /**
   * Grows the cooldown each time a probe fails and the breaker re-opens: `cooldown × factor^n`, capped at `max`.
   * On by default (`true`: factor 2, max 10 minutes); `false` keeps the cooldown fixed. Closing resets it.
   */
  readonly cooldownGrowth?: boolean | {
    readonly factor?: number | undefined
    readonly max?: Duration.DurationInput | undefined
  } | undefined
  /**
   * What a `retryAfter` on the failure that opens the breaker does to the cooldown: `longer` (default) keeps the
   * longer of the two, `override` uses it as is, `ignore` disregards it.
   */
  readonly retryAfter?: "longer" | "override" | "ignore" | undefined
  /** Probe permits in HalfOpen. Default 1. */
  readonly probes?: number | undefined
  /** Successful probes that close the breaker. Default 1. */
  readonly successThreshold?: number | undefined
  /**
   * A probe that has not finished this long after the last permit was taken is given up on: the breaker re-opens
   * and its late result is ignored. Set it a little above your request timeout. Default 2 minutes.
   */
  readonly probeTimeout?: Duration.DurationInput | undefined
  /** Errors that never count against the dependency. Default: {@link defaultIgnore}. */
  readonly ignore?: ((error: unknown) => boolean) | undefined
  /** How a failure that is not ignored counts. Default: {@link defaultClassify}. */
  readonly classify?: ((error: unknown) => Classification) | undefined
}

/**
 * A breaker's state, for dashboards and for saving and restoring (it is plain JSON). Rates are in percent; times are
 * `Clock` milliseconds: `since` is the last transition, `at` the moment of the snapshot. `remainingMs` is the time
 * until a probe is admitted (`null`: forced open until released). `generation` counts transitions.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Snapshot = Schema.Struct({
  key: Schema.String,
  state: State,
  since: Schema.Number,
  at: Schema.Number,
  generation: Schema.Number,
  calls: Schema.Number,
  failureRate: Schema.Number,
  slowCallRate: Schema.Number,
  consecutiveFailures: Schema.Number,
  remainingMs: Schema.NullOr(Schema.Number),
  openedAt: Schema.Number,
  openUntil: Schema.Number,
  reopens: Schema.Number,
  probesInFlight: Schema.Number,
  probeSuccesses: Schema.Number,
  baselineMs: Schema.Number,
  baselineSamples: Schema.Number
})

/**
 * @since 0.1.0
 * @category Models
 */
export type Snapshot = typeof Snapshot.Type

/**
 * Where breaker state is persisted and shared. The live state of each breaker is a `Ref` in this process; a store
 * seeds a new breaker (`load`) and hears every transition (`save`), never a single call, so a remote store stays off
 * the hot path.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Store {
  readonly load: (key: string) => Effect.Effect<Option.Option<Snapshot>>
  /** Hears a transition this process made; `reason` says why. It must not fail, and should return quickly. */
  readonly save: (snapshot: Snapshot, reason?: Reason) => Effect.Effect<void>
  /**
   * Fleet-wide half-open admission, for a store shared by several processes: called when the local breaker has
   * handed out a probe permit. See {@link ProbeAdmission}. A store without it leaves probes to each process.
   */
  readonly acquireProbe?: (
    key: string,
    now: number,
    permits: number,
    probeTimeoutMs: number
  ) => Effect.Effect<ProbeAdmission>
  /** Returns a fleet-wide probe permit when its call ends, whatever the verdict (a transition clears them all). */
  readonly releaseProbe?: (key: string, probe: string) => Effect.Effect<void>
  /**
   * Called once by a registry built in a scope: the store reports transitions made elsewhere to `follower.adopt`
   * (never this process's own), and may read `follower.local` to resynchronize after an outage.
   */
  readonly watch?: (follower: Follower) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * The store's answer to a probe request: `granted` (with an id to release it by), `denied` (the fleet's permits are
 * taken), `adopt` (the shared state is not half-open: follow `remote` instead), or `local` (the store cannot say,
 * for example while it is unreachable: the local breaker decides alone).
 *
 * @since 0.1.0
 * @category Models
 */
export type ProbeAdmission =
  | { readonly _tag: "granted"; readonly probe: string }
  | { readonly _tag: "denied" }
  | { readonly _tag: "adopt"; readonly remote: Snapshot; readonly reason: Reason }
  | { readonly _tag: "local" }

/**
 * What a registry gives a shared store to follow the fleet with.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Follower {
  /** Moves the local breaker for `snapshot.key` (if this process has one) to the remote state. */
  readonly adopt: (snapshot: Snapshot, reason: Reason) => Effect.Effect<void>
  /** Every local breaker's state. */
  readonly local: Effect.Effect<ReadonlyArray<Snapshot>>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface CircuitBreaker extends Pipeable {
  readonly [TypeId]: TypeId
  readonly key: string
  /** Runs `effect` through the breaker; fails with `CircuitOpen` without running it when the breaker is open. */
  readonly execute: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  /**
   * Runs a stream through the breaker: admitted when it starts, recorded when it ends (completed, failed, or
   * interrupted by its consumer, which is ignored). Its latency is the whole stream's duration.
   */
  readonly executeStream: <A, E, R>(stream: Stream.Stream<A, E, R>) => Stream.Stream<A, E | CircuitOpen, R>
  readonly state: Effect.Effect<State>
  readonly snapshot: Effect.Effect<Snapshot>
  /** Rejects every call until `forceClose`, `reset` or another manual transition. */
  readonly forceOpen: Effect.Effect<void>
  /** Closes with a fresh window. */
  readonly forceClose: Effect.Effect<void>
  /** Closes with a fresh window and forgets the cooldown growth and the learned latency baseline. */
  readonly reset: Effect.Effect<void>
  /** Passes every call through and records nothing. */
  readonly disable: Effect.Effect<void>
  /** Passes every call through and records it, without ever opening. */
  readonly metricsOnly: Effect.Effect<void>
  /** This breaker's transitions from the moment the stream starts. */
  readonly events: Stream.Stream<StateChange>
}

/**
 * @since 0.1.0
 */
export declare namespace make {
  /**
   * @since 0.1.0
   * @category Models
   */
  export interface Options {
    /** Names the breaker in `CircuitOpen`, events and logs. Default `"default"`. */
    readonly key?: string | undefined
    /** State to start from, e.g. a snapshot saved before a restart. A state in `store` takes precedence. */
    readonly initialState?: Snapshot | undefined
    readonly store?: Store | undefined
  }
}

/**
 * @since 0.1.0
 */
export declare namespace makeRegistry {
  /**
   * @since 0.1.0
   * @category Models
   */
  export interface Options {
    readonly store?: Store | undefined
    /**
     * A breaker that is Closed, has no call running and was not used for this long is dropped, with its metric
     * series (it goes between one and two `idleExpiry` after its last call); Open, HalfOpen and forced breakers are
     * kept whatever their age. `false` keeps every key. Default 1 hour.
     */
    readonly idleExpiry?: Duration.DurationInput | false | undefined
  }
}

/**
 * Builds a breaker. Invalid options fail with `InvalidOptions` naming the field.
 *
 * @example
 * ```ts
 * const breaker = yield* CircuitBreaker.make({ key: "openai:gpt-4.1", ...CircuitBreaker.presets.balanced })
 * const result = yield* breaker.execute(provider.complete(request))
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options & make.Options) => Effect.Effect<CircuitBreaker, InvalidOptions> = internal.make

/**
 * Runs an effect through a breaker.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const execute: {
  (breaker: CircuitBreaker): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: CircuitBreaker): Effect.Effect<A, E | CircuitOpen, R>
} = internal.executeDual

/**
 * Runs a stream through a breaker (see {@link CircuitBreaker.executeStream}).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const executeStream: {
  (breaker: CircuitBreaker): <A, E, R>(stream: Stream.Stream<A, E, R>) => Stream.Stream<A, E | CircuitOpen, R>
  <A, E, R>(stream: Stream.Stream<A, E, R>, breaker: CircuitBreaker): Stream.Stream<A, E | CircuitOpen, R>
} = internal.executeStreamDual

/**
 * @since 0.1.0
 * @category Guards
 */
export const isCircuitBreaker: (u: unknown) => u is CircuitBreaker = internal.isCircuitBreaker

/**
 * Caller faults and local rejections, which never count against a dependency: `HardFailure` with reason
 * `BadRequest`, `ContextLengthExceeded` or `ContentFiltered`, and any error tagged `CircuitOpen`,
 * `RetryBudgetExhausted`, `InvalidRequest`, `InvalidOptions`, `RateLimitExceeded`, `RateLimiterError` or
 * `BulkheadRejected`. Interruption is always ignored. Extend it rather than replace it:
 * `ignore: (e) => CircuitBreaker.defaultIgnore(e) || e instanceof MyError`.
 *
 * @since 0.1.0
 * @category Classification
 */
export const defaultIgnore: (error: unknown) => boolean = internalOptions.defaultIgnore

/**
 * The failure taxonomy: `HardFailure` counts as `hard` (with its `retryAfter`), except `Unauthorized` and
 * `Forbidden`, which are `fatal`; `SoftFailure` is `soft`; `DegradedResponse` is `degraded`; anything else is `hard`.
 *
 * @since 0.1.0
 * @category Classification
 */
export const defaultClassify: (error: unknown) => Classification = internalOptions.defaultClassify

/**
 * Starting points to spread into options: `{ ...CircuitBreaker.presets.strict, window: 50 }`.
 *
 * - `lenient`: 10 consecutive failures, 30 s cooldown — bursty, self-healing dependencies.
 * - `balanced`: 5, 60 s — the defaults.
 * - `strict`: 3, 120 s — expensive calls, or a good fallback to move to.
 *
 * @since 0.1.0
 * @category Presets
 */
export const presets: {
  readonly lenient: Options
  readonly balanced: Options
  readonly strict: Options
} = {
  lenient: { consecutiveFailures: 10, cooldown: "30 seconds" },
  balanced: { consecutiveFailures: 5, cooldown: "60 seconds" },
  strict: { consecutiveFailures: 3, cooldown: "120 seconds" }
}

/**
 * An in-memory {@link Store}: breakers built with the same store (say, the registries of two Layers) see each
 * other's last transition when they are created.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeMemoryStore: Effect.Effect<Store> = registry.makeMemoryStore

/**
 * One breaker per key, created on first use with the registry's options.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Registry {
  readonly get: (key: string) => Effect.Effect<CircuitBreaker>
  readonly execute: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  readonly executeStream: <A, E, R>(
    key: string,
    stream: Stream.Stream<A, E, R>
  ) => Stream.Stream<A, E | CircuitOpen, R>
  /** Every breaker's transitions, from the moment the stream starts. */
  readonly events: Stream.Stream<StateChange>
  /** A subscription to every breaker's transitions, taken now (unlike `events`, which subscribes when run). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<StateChange>, never, Scope.Scope>
  /** Every breaker's state, for dashboards. */
  readonly snapshot: Effect.Effect<ReadonlyArray<Snapshot>>
  readonly keys: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Whether the breaker refuses calls now: `Open` or `ForcedOpen` (a `HalfOpen` breaker still admits its probes). As
 * `Retry`'s `until`, it ends retries the moment a failure has opened the breaker.
 *
 * @since 0.1.0
 * @category Getters
 */
export const isOpen = (breaker: CircuitBreaker): Effect.Effect<boolean> =>
  Effect.map(breaker.state, (state) => state === "Open" || state === "ForcedOpen")

/**
 * @since 0.1.0
 * @category Tags
 */
export class CircuitBreakerRegistry
  extends Context.Tag("effect-llm-resilience/CircuitBreakerRegistry")<CircuitBreakerRegistry, Registry>()
{}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const makeRegistry: (options?: Options & makeRegistry.Options) => Effect.Effect<Registry, InvalidOptions> =
  registry.makeRegistry

/**
 * Like {@link makeRegistry}, and lets a shared store (`store.watch`) report other processes' transitions to the
 * registry's breakers for as long as the scope lasts.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeRegistryScoped: (
  options?: Options & makeRegistry.Options
) => Effect.Effect<Registry, InvalidOptions, Scope.Scope> = registry.makeRegistryScoped

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options & makeRegistry.Options = {}): Layer.Layer<
  CircuitBreakerRegistry,
  InvalidOptions
> => Layer.scoped(CircuitBreakerRegistry, makeRegistryScoped(options))

/**
 * Runs an effect through the registry's breaker for `key` (by convention `provider:model`, as in
 * `LlmProvider.key`).
 *
 * @example
 * ```ts
 * provider.complete(request).pipe(CircuitBreaker.withCircuitBreaker(provider.key))
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withCircuitBreaker: {
  (key: string): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CircuitOpen, R | CircuitBreakerRegistry>
  <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<A, E | CircuitOpen, R | CircuitBreakerRegistry>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, key: string) =>
    Effect.flatMap(CircuitBreakerRegistry, (registry) => registry.execute(key, effect))
)

/**
 * Runs a stream through the registry's breaker for `key`.
 *
 * @example
 * ```ts
 * provider.stream(request).pipe(CircuitBreaker.withCircuitBreakerStream(provider.key))
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withCircuitBreakerStream: {
  (key: string): <A, E, R>(
    stream: Stream.Stream<A, E, R>
  ) => Stream.Stream<A, E | CircuitOpen, R | CircuitBreakerRegistry>
  <A, E, R>(stream: Stream.Stream<A, E, R>, key: string): Stream.Stream<A, E | CircuitOpen, R | CircuitBreakerRegistry>
} = dual(
  2,
  <A, E, R>(stream: Stream.Stream<A, E, R>, key: string) =>
    Stream.unwrap(Effect.map(CircuitBreakerRegistry, (registry) => registry.executeStream(key, stream)))
)
