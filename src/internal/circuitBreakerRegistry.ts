/**
 * Circuit breakers by key (`CircuitBreaker.makeRegistry`), with their idle expiry and the fleet store's watch, and
 * the in-memory store. The breakers themselves are ./circuitBreaker.ts's.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Api from "../CircuitBreaker.js"
import { type CircuitOpen, InvalidOptions } from "../LlmError.js"
import { type BreakerImpl, execute, executeStream, makeBreaker, makeShared, type Shared } from "./circuitBreaker.js"
import * as options from "./circuitBreakerOptions.js"
import { type IdleExpiry, resolveIdleExpiry } from "./idleExpiry.js"
import { dropBreakerSeries } from "./metrics.js"

// A registry's hub serves every key (see ./circuitBreaker.ts on the hubs).
const REGISTRY_EVENT_CAPACITY = 1024

/**
 * Breakers by key. With idle expiry, a sweep (see ./idleExpiry.ts) drops the breakers that are Closed, have no call
 * running and were not used for an `idleExpiry`, with their metric series; Open, HalfOpen and forced states are kept
 * whatever their age. A dropped breaker someone still holds (a client took it with `get`) stays reachable through a
 * weak reference, and its next use puts it back: a key never has two breakers.
 */
class RegistryImpl implements Api.Registry {
  readonly breakers = new Map<string, BreakerImpl>()
  /** Expired breakers, until the garbage collector takes them. */
  readonly expired = new Map<string, WeakRef<BreakerImpl>>()
  readonly shared: Shared

  constructor(shared: Shared, readonly idle: IdleExpiry | undefined) {
    this.shared = idle === undefined ? shared : { ...shared, expiry: this }
  }

  get(key: string): Effect.Effect<Api.CircuitBreaker> {
    return this.lookup(key)
  }

  /** The live breaker of `key`, an expired one still held, or none. */
  find(key: string): BreakerImpl | undefined {
    const live = this.breakers.get(key)
    if (live !== undefined || this.expired.size === 0) return live
    const held = this.expired.get(key)?.deref()
    if (held !== undefined) this.revive(held)
    return held
  }

  lookup(key: string): Effect.Effect<BreakerImpl> {
    return Effect.suspend(() => {
      const existing = this.find(key)
      if (existing !== undefined) {
        if (this.idle !== undefined) existing.stamp = this.idle.epoch
        return Effect.succeed(existing)
      }
      const { store } = this.shared
      if (store === undefined) return Effect.sync(() => this.insert(key, Option.none()))
      // Another fiber may have created the breaker while the store answered: the first one in wins.
      return Effect.map(store.load(key), (initial) => this.find(key) ?? this.insert(key, initial))
    })
  }

  insert(key: string, initial: Option.Option<Api.Snapshot>): BreakerImpl {
    const breaker = makeBreaker(key, this.shared, initial)
    if (this.idle !== undefined) breaker.stamp = this.idle.epoch
    this.breakers.set(key, breaker)
    return breaker
  }

  /** An admission through one of this registry's breakers: stamps it, and sweeps when a sweep is due. */
  used(breaker: BreakerImpl, now: number): void {
    const idle = this.idle
    if (idle === undefined) return
    breaker.stamp = idle.epoch
    if (breaker.expired) this.revive(breaker)
    if (idle.due(now)) this.sweep(idle)
  }

  revive(breaker: BreakerImpl): void {
    breaker.expired = false
    this.expired.delete(breaker.key)
    this.breakers.set(breaker.key, breaker)
  }

  sweep(idle: IdleExpiry): void {
    const dropped: Array<string> = []
    for (const [key, breaker] of this.breakers) {
      const m = breaker.machine
      if (!idle.idle(breaker.stamp) || m.state !== "Closed" || m.waiting > 0) continue
      this.breakers.delete(key)
      breaker.expired = true
      this.expired.set(key, new WeakRef(breaker))
      dropped.push(key)
    }
    for (const [key, held] of this.expired) {
      if (held.deref() === undefined) this.expired.delete(key)
    }
    dropBreakerSeries(dropped)
  }

  execute<A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R> {
    return Effect.flatMap(this.lookup(key), (breaker) => execute(breaker, effect))
  }

  executeStream<A, E, R>(key: string, stream: Stream.Stream<A, E, R>): Stream.Stream<A, E | CircuitOpen, R> {
    return Stream.unwrap(Effect.map(this.lookup(key), (breaker) => executeStream(breaker, stream)))
  }

  get events(): Stream.Stream<Api.StateChange> {
    return Stream.fromPubSub(this.shared.hub)
  }

  get subscribe(): Effect.Effect<Queue.Dequeue<Api.StateChange>, never, Scope.Scope> {
    return PubSub.subscribe(this.shared.hub)
  }

  get snapshot(): Effect.Effect<ReadonlyArray<Api.Snapshot>> {
    return Effect.suspend(() => Effect.forEach(this.breakers.values(), (breaker) => breaker.snapshot))
  }

  get keys(): Effect.Effect<ReadonlyArray<string>> {
    return Effect.sync(() => Array.from(this.breakers.keys()))
  }
}

/** @internal */
export const makeRegistry = (opts: Api.Options & Api.makeRegistry.Options = {}): Effect.Effect<
  Api.Registry,
  InvalidOptions
> =>
  Effect.gen(function*() {
    const settings = yield* options.resolve(opts)
    const idle = yield* idleExpiryOf(opts)
    const shared = yield* makeShared(settings, opts.store, REGISTRY_EVENT_CAPACITY)
    return new RegistryImpl(shared, idle)
  })

const idleExpiryOf = (opts: Api.makeRegistry.Options): Effect.Effect<IdleExpiry | undefined, InvalidOptions> =>
  Effect.suspend(() => {
    const resolved = resolveIdleExpiry("idleExpiry", opts.idleExpiry)
    return resolved instanceof InvalidOptions ? Effect.fail(resolved) : Effect.succeed(resolved)
  })

/** @internal */
export const makeRegistryScoped = (opts: Api.Options & Api.makeRegistry.Options = {}): Effect.Effect<
  Api.Registry,
  InvalidOptions,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const settings = yield* options.resolve(opts)
    const idle = yield* idleExpiryOf(opts)
    const shared = yield* makeShared(settings, opts.store, REGISTRY_EVENT_CAPACITY)
    const registry = new RegistryImpl(shared, idle)
    if (opts.store?.watch !== undefined) {
      yield* opts.store.watch({
        adopt: (snapshot, reason) =>
          Effect.suspend(() => {
            // Only breakers this process has: a key nobody here uses is loaded from the store on first use.
            const breaker = registry.find(snapshot.key)
            return breaker === undefined ? Effect.void : breaker.adopt(snapshot, reason)
          }),
        local: registry.snapshot
      })
    }
    return registry
  })

/** @internal */
export const makeMemoryStore: Effect.Effect<Api.Store> = Effect.sync(() => {
  const snapshots = new Map<string, Api.Snapshot>()
  return {
    load: (key) => Effect.sync(() => Option.fromNullable(snapshots.get(key))),
    save: (snapshot) =>
      Effect.sync(() => {
        // Saves can arrive out of order when fibers race; a transition never yields to an older one.
        const current = snapshots.get(snapshot.key)
        if (current === undefined || current.generation <= snapshot.generation) snapshots.set(snapshot.key, snapshot)
      })
  }
})
