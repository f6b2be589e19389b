/**
 * The Redis connection shared by the Redis-backed breaker and limiter stores: a command client, a subscriber, and a
 * health flag that turns every store operation into a local no-op while Redis is away.
 *
 * - Every operation has a deadline (`operationTimeoutMs`). A failure or a timeout marks Redis unavailable (one warning
 *   log, then `llm.redis.fallbacks` counts each operation that fell back) and starts a recovery loop that pings
 *   until Redis answers in time again; then the stores resynchronize (`onRecover`).
 * - The command client has no offline queue: while disconnected, commands fail at once instead of piling up.
 * - The subscriber reconnects by itself (ioredis resubscribes); a reconnect also triggers a resynchronization, since
 *   messages published meanwhile are lost.
 *
 * This is the only place (with the other `redis*.ts` files) that imports `ioredis`, so users without Redis never
 * load it.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { connectionFacts } from "./classify.js"
import { logLine } from "./logLine.js"

/** @internal */
export interface ConnectionOptions {
  readonly url?: string | undefined
  /** A client to copy the connection settings from (it is duplicated, never used or closed here). */
  readonly client?: Redis | undefined
  readonly keyPrefix: string
  readonly operationTimeoutMs: number
  /** How often the recovery loop pings an unavailable Redis. */
  readonly recoveryIntervalMs: number
}

/** @internal */
export const fallbacksTotal = Metric.counter("llm.redis.fallbacks", {
  description: "Shared-store operations that fell back to local state because Redis was unavailable or slow",
  incremental: true
})

/** @internal */
export const recoveriesTotal = Metric.counter("llm.redis.recoveries", {
  description: "Times Redis came back after being unavailable and the local state was resynchronized",
  incremental: true
})

type Reason = "unavailable" | "timeout" | "error"

/** @internal */
export class Connection {
  healthy = false
  /** Set when the scope closes: nothing is logged or retried any more. */
  closed = false
  readonly id = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 10)}`
  private recovering = false
  private readonly handlers = new Map<string, (message: string) => void>()
  private readonly recoverHooks: Array<Effect.Effect<void>> = []

  constructor(
    readonly client: Redis,
    readonly subscriber: Redis,
    readonly options: ConnectionOptions,
    readonly runtime: Runtime.Runtime<never>
  ) {}

  key(...parts: ReadonlyArray<string>): string {
    return this.options.keyPrefix + parts.join(":")
  }

  fork(effect: Effect.Effect<void>): void {
    Runtime.runFork(this.runtime)(effect)
  }

  /**
   * Runs one Redis operation within the deadline. `None` means it fell back: Redis is unavailable, or the operation
   * failed or was too slow (which marks Redis unavailable until the recovery loop sees it answer again).
   */
  run<A>(operation: string, f: (client: Redis) => Promise<A>): Effect.Effect<Option.Option<A>> {
    return Effect.suspend(() => {
      if (!this.healthy) return Effect.as(this.count(operation, "unavailable"), Option.none())
      return Effect.tryPromise({ try: () => f(this.client), catch: (error) => error }).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(this.options.operationTimeoutMs),
          onTimeout: () => "timeout" as const
        }),
        Effect.map(Option.some),
        Effect.catchAll((error) =>
          Effect.as(this.down(operation, error === "timeout" ? "timeout" : "error", error), Option.none())
        )
      )
    })
  }

  private count(operation: string, reason: Reason): Effect.Effect<void> {
    return Metric.increment(Metric.taggedWithLabels(fallbacksTotal, [
      MetricLabel.make("operation", operation),
      MetricLabel.make("reason", reason)
    ]))
  }

  /** The command connection closed: fall back now rather than on the next operation. */
  lost(): void {
    if (this.healthy && !this.closed) this.fork(this.down("connection", "unavailable", new Error("connection closed")))
  }

  private down(operation: string, reason: Reason, error: unknown): Effect.Effect<void> {
    const counted = this.count(operation, reason)
    if (!this.healthy) return counted
    this.healthy = false
    // The error's code and host only: a Redis error's message can quote a command, and a URL its password.
    const facts = connectionFacts(error)
    return Effect.zipRight(
      counted,
      Effect.zipRight(
        logLine("warn", "llm.redis.unavailable", {
          operation,
          reason,
          ...(reason === "timeout" ? { timeout_ms: this.options.operationTimeoutMs } : {}),
          code: typeof facts.code === "string" ? facts.code : undefined,
          host: typeof facts.host === "string" ? facts.host : undefined
        }),
        Effect.sync(() => this.recover())
      )
    )
  }

  /** Pings until Redis answers within the deadline, then resynchronizes. */
  private recover(): void {
    if (this.recovering) return
    this.recovering = true
    const ping = Effect.tryPromise(() => this.client.ping()).pipe(
      Effect.timeout(Duration.millis(this.options.operationTimeoutMs)),
      Effect.isSuccess
    )
    const loop: Effect.Effect<void> = Effect.flatMap(
      Effect.zipRight(Effect.sleep(Duration.millis(this.options.recoveryIntervalMs)), ping),
      (ok) => this.closed ? Effect.void : ok ? this.up() : loop
    )
    this.fork(loop)
  }

  private up(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.recovering = false
      this.healthy = true
      return Effect.zipRight(
        logLine("info", "llm.redis.available", { resync: true }),
        this.resync
      )
    })
  }

  /** Runs every store's resynchronization (after an outage, or after the subscriber reconnected). */
  get resync(): Effect.Effect<void> {
    return Effect.zipRight(
      Metric.increment(recoveriesTotal),
      Effect.forEach(this.recoverHooks, (hook) => hook, { discard: true })
    )
  }

  onRecover(hook: Effect.Effect<void>): void {
    this.recoverHooks.push(hook)
  }

  /** Listens on a channel; the handler runs on the subscriber's callback (it must not throw). */
  subscribe(channel: string, handler: (message: string) => void): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.handlers.set(channel, handler)
      // Awaited for one operation timeout at most: while Redis is away the subscriber keeps the command queued and
      // sends it once connected (and re-subscribes by itself after every reconnect).
      const subscribed = this.subscriber.subscribe(channel)
      subscribed.catch(() => {})
      return Effect.tryPromise(() => subscribed).pipe(
        Effect.timeout(Duration.millis(this.options.operationTimeoutMs)),
        Effect.ignore
      )
    })
  }

  dispatch(channel: string, message: string): void {
    try {
      this.handlers.get(channel)?.(message)
    } catch {
      // A malformed message from another process must not take this one down.
    }
  }
}

/** @internal */
export const make = (options: ConnectionOptions): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const overrides = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1000, options.operationTimeoutMs),
      // Reconnect quickly after a restart; the recovery loop decides when the stores trust Redis again.
      retryStrategy: (times: number) => Math.min(times * 50, 500)
    }
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        options.client !== undefined
          ? options.client.duplicate(overrides)
          : options.url !== undefined
          ? new Redis(options.url, overrides)
          : new Redis(overrides)
      ),
      (client) => Effect.sync(() => client.disconnect())
    )
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null })),
      (subscriber) => Effect.sync(() => subscriber.disconnect())
    )
    const connection = new Connection(client, subscriber, options, runtime)
    // Runs before the clients are closed (finalizers run in reverse order).
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        connection.closed = true
      })
    )
    // ioredis reports connection errors as events; without a listener it prints them. Health is tracked per operation.
    client.on("error", () => {})
    client.on("close", () => connection.lost())
    subscriber.on("error", () => {})
    subscriber.on("message", (channel: string, message: string) => connection.dispatch(channel, message))
    let subscriberReady = 0
    subscriber.on("ready", () => {
      // The first `ready` is the initial connection; later ones follow a disconnect that may have lost messages.
      if (++subscriberReady > 1 && connection.healthy) connection.fork(connection.resync)
    })
    const connected = yield* Effect.tryPromise(() => client.connect()).pipe(
      Effect.zipRight(Effect.tryPromise(() => client.ping())),
      Effect.timeout(Duration.millis(overrides.connectTimeout)),
      Effect.isSuccess
    )
    yield* Effect.tryPromise(() => subscriber.connect()).pipe(
      Effect.timeout(Duration.millis(overrides.connectTimeout)),
      Effect.ignore
    )
    if (connected) {
      connection.healthy = true
    } else {
      yield* logLine("warn", "llm.redis.unavailable", { operation: "connect", reason: "unavailable" })
      connection.healthy = true
      yield* connection.run("connect", () => Promise.reject(new Error("not connected")))
    }
    return connection
  })
