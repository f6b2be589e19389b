/**
 * Distributed state in Redis: circuit breakers and rate limits shared by every instance of a fleet, so N
 * instances calling one provider behave like one client. Falls back to each instance's local state while Redis is
 * unavailable or slow, and resynchronizes when it returns: a Redis problem never blocks or fails an LLM call.
 *
 * - Breakers: the state (Closed / Open / HalfOpen / forced), the open-until deadline and the half-open probe
 *   permits are shared; a breaker tripped anywhere opens everywhere (pub/sub, about a millisecond on a LAN), and
 *   half-open admits the configured number of probes fleet-wide. Window counts stay per instance.
 * - Rate limits: RPM and TPM are global (quota is leased in small batches, so each check stays synchronous), and a
 *   429 Retry-After pauses the key on every instance. Concurrency stays per instance.
 *
 * This module is the only one that loads `ioredis` (an optional peer dependency): import it from
 * `effect-llm-resilience/redis`. See docs/distributed.md.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Redis as IORedis } from "ioredis"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as validate from "./internal/options.js"
import * as internalRateLimit from "./internal/rateLimit.js"
import * as internalBreaker from "./internal/redisCircuitBreaker.js"
import * as internal from "./internal/redisConnection.js"
import * as internalLimiter from "./internal/redisRateLimit.js"
import { InvalidOptions } from "./LlmError.js"
import * as RateLimit from "./RateLimit.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface ConnectionOptions {
  /** `redis://[user:password@]host:port[/db]`. Default: ioredis's default (`127.0.0.1:6379`). */
  readonly url?: string | undefined
  /** A client to take the connection settings from; it is duplicated, never used or closed. */
  readonly client?: IORedis | undefined
  /** Prefixes every key and channel, so many applications can share one Redis. Default `"llm-resilience:"`. */
  readonly keyPrefix?: string | undefined
  /**
   * The longest any Redis operation may take before the instance gives up on it, falls back to local state and
   * treats Redis as unavailable until it answers again. Default 100 ms.
   */
  readonly operationTimeout?: Duration.DurationInput | undefined
  /** How often an unavailable Redis is pinged. Default 250 ms. */
  readonly recoveryInterval?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Connection {
  /** This instance's id in messages and lease names. */
  readonly id: string
  readonly keyPrefix: string
  /** `false` while the instance runs on local state. */
  readonly available: Effect.Effect<boolean>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export class RedisConnection
  extends Context.Tag("effect-llm-resilience/RedisConnection")<RedisConnection, Connection>()
{}

const connections = new WeakMap<Connection, internal.Connection>()

const internalOf = (connection: Connection): Effect.Effect<internal.Connection, InvalidOptions> => {
  const found = connections.get(connection)
  return found === undefined
    ? Effect.fail(new InvalidOptions({ field: "RedisConnection", reason: "must come from Redis.layer" }))
    : Effect.succeed(found)
}

const millis = (
  field: string,
  value: Duration.DurationInput | undefined,
  fallback: number
): Effect.Effect<number, InvalidOptions> =>
  Effect.map(
    validate.duration(field, value),
    (checked) => checked === undefined ? fallback : Duration.toMillis(checked)
  )

// ioredis reads anything as a URL, falls back to localhost on what it cannot parse, and so never fails: a typo would
// silently mean "local state only". A `redis://user:password@` URL is usual for Redis, so it is allowed, but never
// echoed.
const redisUrl = (value: string | undefined): Effect.Effect<void, InvalidOptions> => {
  if (value === undefined) return Effect.void
  let protocol: string | undefined
  try {
    protocol = new URL(value).protocol
  } catch {
    protocol = undefined
  }
  return protocol === "redis:" || protocol === "rediss:"
    ? Effect.void
    : Effect.fail(new InvalidOptions({ field: "url", reason: "must be a redis:// or rediss:// URL (value hidden)" }))
}

/**
 * Opens the connection (a command client and a subscriber) for the scope's lifetime. It never fails because Redis
 * is down: the instance then starts on local state, logs a warning and keeps pinging.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const connect = (options: ConnectionOptions = {}): Effect.Effect<Connection, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    yield* redisUrl(options.url)
    const operationTimeoutMs = yield* millis("operationTimeout", options.operationTimeout, 100)
    const recoveryIntervalMs = yield* millis("recoveryInterval", options.recoveryInterval, 250)
    const keyPrefix = options.keyPrefix ?? "llm-resilience:"
    const connection = yield* internal.make({
      url: options.url,
      client: options.client,
      keyPrefix,
      operationTimeoutMs,
      recoveryIntervalMs
    })
    const service: Connection = {
      id: connection.id,
      keyPrefix,
      available: Effect.sync(() => connection.healthy)
    }
    connections.set(service, connection)
    return service
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: ConnectionOptions = {}): Layer.Layer<RedisConnection, InvalidOptions> =>
  Layer.scoped(RedisConnection, connect(options))

/**
 * The connection from configuration: `LLM_REDIS_URL` (required), `LLM_REDIS_KEY_PREFIX` and
 * `LLM_REDIS_OPERATION_TIMEOUT` (a duration, e.g. `100 millis`), overriding `options`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: ConnectionOptions = {}
): Layer.Layer<RedisConnection, InvalidOptions | ConfigError.ConfigError> =>
  Layer.scoped(
    RedisConnection,
    Effect.gen(function*() {
      const url = yield* Config.string("LLM_REDIS_URL")
      const keyPrefix = yield* Config.option(Config.string("LLM_REDIS_KEY_PREFIX"))
      const timeout = yield* Config.option(Config.duration("LLM_REDIS_OPERATION_TIMEOUT"))
      return yield* connect({
        ...options,
        url,
        ...(Option.isSome(keyPrefix) ? { keyPrefix: keyPrefix.value } : {}),
        ...(Option.isSome(timeout) ? { operationTimeout: timeout.value } : {})
      })
    })
  )

/**
 * @since 0.1.0
 * @category Models
 */
export interface StoreOptions {
  /** How long shared state outlives its last change. Default 1 day. */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface CircuitBreakerStoreOptions extends StoreOptions {
  /**
   * How often each breaker that is not Closed in this instance is compared with the shared state, so a transition
   * lost in a reconnect heals. Default 1 second.
   */
  readonly syncInterval?: Duration.DurationInput | undefined
}

/**
 * A `CircuitBreaker.Store` in Redis, for `CircuitBreaker.makeRegistryScoped` / `CircuitBreaker.layer({ store })`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeCircuitBreakerStore = (
  options: CircuitBreakerStoreOptions = {}
): Effect.Effect<CircuitBreaker.Store, InvalidOptions, RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* Effect.flatMap(RedisConnection, internalOf)
    const ttlMs = yield* millis("ttl", options.ttl, 86_400_000)
    const syncIntervalMs = yield* millis("syncInterval", options.syncInterval, 1_000)
    return yield* internalBreaker.makeStore(connection, { ttlMs, syncIntervalMs })
  })

/**
 * The breaker registry with its state in Redis: `CircuitBreaker.layer` next to it keeps state in memory.
 *
 * @example
 * ```ts
 * const BreakersLive = Redis.layerCircuitBreaker(CircuitBreaker.presets.balanced).pipe(
 *   Layer.provide(Redis.layerConfig())
 * )
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerCircuitBreaker = (
  options: CircuitBreaker.Options & CircuitBreakerStoreOptions = {}
): Layer.Layer<CircuitBreaker.CircuitBreakerRegistry, InvalidOptions, RedisConnection> =>
  Layer.scoped(
    CircuitBreaker.CircuitBreakerRegistry,
    Effect.flatMap(
      makeCircuitBreakerStore(options),
      (store) => CircuitBreaker.makeRegistryScoped({ ...options, store })
    )
  )

/**
 * @since 0.1.0
 * @category Models
 */
export interface RateLimitOptions extends RateLimit.Options, StoreOptions {
  /**
   * What the limiter does while Redis is unavailable: `local` (default) applies the full limits in each instance
   * (the fleet may briefly admit up to N times the limit), `open` drops RPM / TPM limits (concurrency still holds),
   * `closed` starts no call until Redis answers (callers wait up to `maxWait`, or fail fast).
   */
  readonly onUnavailable?: "local" | "open" | "closed" | undefined
  /** The sliding window. Default 1 minute (what RPM and TPM mean); shorter windows are for tests. */
  readonly window?: Duration.DurationInput | undefined
  /** Requests leased from Redis at a time. Default 1/20 of the RPM limit (at least 1). */
  readonly leaseRequests?: number | undefined
  /** How long a lease may be used; the fleet loses this much of each window. Default 1/20 of the window, ≤ 1 s. */
  readonly lease?: Duration.DurationInput | undefined
}

/**
 * A limiter whose RPM / TPM windows and pauses are shared through Redis.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeRateLimiter = (
  options: RateLimitOptions = {}
): Effect.Effect<RateLimit.Limiter, InvalidOptions, RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const problem = internalRateLimit.validateOptions(options)
    if (problem !== undefined) return yield* Effect.fail(problem)
    const onUnavailable = options.onUnavailable ?? "local"
    if (onUnavailable !== "local" && onUnavailable !== "open" && onUnavailable !== "closed") {
      return yield* Effect.fail(new InvalidOptions({ field: "onUnavailable", reason: "must be local, open or closed" }))
    }
    if (
      options.leaseRequests !== undefined && !(Number.isSafeInteger(options.leaseRequests) && options.leaseRequests > 0)
    ) {
      return yield* Effect.fail(new InvalidOptions({ field: "leaseRequests", reason: "must be a positive integer" }))
    }
    const windowMillis = yield* millis("window", options.window, 60_000)
    const leaseMs = options.lease === undefined ? undefined : yield* millis("lease", options.lease, 0)
    if (leaseMs !== undefined && leaseMs >= windowMillis) {
      return yield* Effect.fail(new InvalidOptions({ field: "lease", reason: "must be shorter than the window" }))
    }
    const ttlMs = yield* millis("ttl", options.ttl, 86_400_000)
    const connection = yield* Effect.flatMap(RedisConnection, internalOf)
    const store = yield* internalLimiter.makeStore(connection, {
      onUnavailable,
      leaseRequests: options.leaseRequests,
      leaseMs,
      ttlMs
    })
    return yield* internalRateLimit.makeWithStore(options, store, windowMillis)
  })

/**
 * The `RateLimiter` with global limits in Redis: `RateLimit.layer` next to it keeps them per instance.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRateLimiter = (
  options: RateLimitOptions = {}
): Layer.Layer<RateLimit.RateLimiter, InvalidOptions, RedisConnection> =>
  Layer.scoped(RateLimit.RateLimiter, makeRateLimiter(options))

/**
 * Counts shared-store operations that fell back to local state, by `operation` (e.g. `breaker.save`,
 * `limiter.lease`) and `reason` (`unavailable`, `timeout`, `error`).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const fallbacks: Metric.Metric.Counter<number> = internal.fallbacksTotal

/**
 * Counts resynchronizations after Redis came back (or the subscriber reconnected).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const recoveries: Metric.Metric.Counter<number> = internal.recoveriesTotal
