import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import { pipeArguments } from "effect/Pipeable"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as Api from "../CircuitBreaker.js"
import { type CircuitOpen, type InvalidOptions } from "../LlmError.js"
import * as machine from "./circuitBreakerMachine.js"
import * as options from "./circuitBreakerOptions.js"
import { classifyExit, rejection } from "./circuitBreakerOutcome.js"
import { fromSnapshot, toSnapshot } from "./circuitBreakerSnapshot.js"
import { logLine } from "./logLine.js"

/** @internal */
export const TypeId: Api.TypeId = "~effect-llm-resilience/CircuitBreaker"

// Transition events are rare; a sliding hub never blocks the publisher (it publishes from a finalizer) and drops the
// oldest events for a subscriber that has fallen this far behind. A lone breaker's hub needs less than a registry's
// (./circuitBreakerRegistry.ts), and the hub's buffer is allocated up front.
const BREAKER_EVENT_CAPACITY = 16

/** A registry's idle expiry (./circuitBreakerRegistry.ts), told of every admission through one of its breakers. */
interface Expiry {
  used(breaker: BreakerImpl, now: number): void
}

/** What every breaker of one registry shares, so a breaker itself stays three fields. @internal */
export interface Shared extends options.Settings {
  readonly hub: PubSub.PubSub<Api.StateChange>
  readonly store: Api.Store | undefined
  /** The registry's idle expiry; `undefined` for a lone breaker or with expiry off. */
  readonly expiry: Expiry | undefined
}

const logTransition = (change: Api.StateChange): Effect.Effect<void> =>
  logLine(change.to === "Open" || change.to === "ForcedOpen" ? "warn" : "info", "llm.circuit_breaker", {
    key: change.key,
    from: change.from,
    to: change.to,
    reason: change.reason
  })

// Machine steps report transitions into one shared array. A step runs synchronously inside `Ref.modify`, so no other
// fiber can interleave between `begin` and `settled`, and the common step (no transition) allocates nothing.
const scratch: Array<machine.Change> = []

const begin = (): Array<machine.Change> => {
  // Setting an array's length is a runtime call in V8, even to the length it has: only when there is something.
  if (scratch.length !== 0) scratch.length = 0
  return scratch
}

/** The effects of a step's transitions that cannot run inside `Ref.modify`: logs, the store, a full hub. */
interface Announcement {
  readonly events: ReadonlyArray<Api.StateChange>
  readonly overflow: ReadonlyArray<Api.StateChange>
  readonly snapshot: Api.Snapshot | undefined
  readonly reason: Api.Reason
}

/**
 * Publishes the step's transitions while still inside `Ref.modify`, so subscribers see each breaker's transitions in
 * the order they happened even when fibers race. What must wait (logs, the store, an event the full hub refused and
 * that `PubSub.publish` will slide in) is returned.
 */
const settled = (
  self: BreakerImpl,
  m: machine.Machine,
  now: number,
  remote = false
): Announcement | undefined => {
  if (scratch.length === 0) return undefined
  const { hub } = self.shared
  // A transition adopted from the fleet came from the store: it is not saved back.
  const store = remote ? undefined : self.shared.store
  const events = scratch.map((change): Api.StateChange => ({ key: self.key, ...change }))
  scratch.length = 0
  return {
    events,
    overflow: events.filter((event) => !hub.unsafeOffer(event)),
    // Taken now: a snapshot taken later could already belong to a newer transition.
    snapshot: store === undefined ? undefined : toSnapshot(self.key, m, now),
    reason: events[events.length - 1]!.reason
  }
}

/** @internal */
export class BreakerImpl implements Api.CircuitBreaker {
  /** The idle-expiry epoch of the last use (registry breakers). */
  stamp = 0
  /** Dropped from its registry for idleness while someone may still hold it: the next use puts it back. */
  expired = false

  constructor(
    readonly key: string,
    readonly shared: Shared,
    readonly ref: Ref.Ref<machine.Machine>,
    /** The object `ref` holds (steps mutate it in place): read by the registry's sweep, which runs outside a fiber. */
    readonly machine: machine.Machine
  ) {}

  get [TypeId](): Api.TypeId {
    return TypeId
  }

  pipe() {
    // eslint-disable-next-line prefer-rest-params -- pipeArguments is written against `arguments`, as in Effect itself
    return pipeArguments(this, arguments)
  }

  toJSON() {
    return { _id: "CircuitBreaker", key: this.key }
  }

  // A getter, not a field: a bound closure per breaker would cost memory on every idle breaker of a large registry.
  get execute(): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R> {
    return (effect) => execute(this, effect)
  }

  get executeStream(): <A, E, R>(stream: Stream.Stream<A, E, R>) => Stream.Stream<A, E | CircuitOpen, R> {
    return (stream) => executeStream(this, stream)
  }

  /** Runs `f` on the machine and announces whatever transitions it made. */
  step<B>(f: (m: machine.Machine, now: number, changes: Array<machine.Change>) => B): Effect.Effect<B> {
    return Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      let announcement: Announcement | undefined
      return Effect.flatMap(
        Ref.modify(this.ref, (m): [B, machine.Machine] => {
          const result = f(m, now, begin())
          announcement = settled(this, m, now)
          return [result, m]
        }),
        (result) => announcement === undefined ? Effect.succeed(result) : Effect.as(this.announce(announcement), result)
      )
    })
  }

  announce(announcement: Announcement): Effect.Effect<void> {
    const { hub, store } = this.shared
    const { events, overflow, reason, snapshot } = announcement
    return Effect.zipRight(
      Effect.forEach(events, logTransition, { discard: true }),
      Effect.zipRight(
        overflow.length === 0 ? Effect.void : PubSub.publishAll(hub, overflow),
        store === undefined || snapshot === undefined ? Effect.void : store.save(snapshot, reason)
      )
    )
  }

  /** Follows a transition another instance made (reported by a shared store); never saved back. */
  adopt(remote: Api.Snapshot, reason: Api.Reason): Effect.Effect<void> {
    return Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      let announcement: Announcement | undefined
      return Effect.flatMap(
        Ref.modify(this.ref, (m): [void, machine.Machine] => {
          machine.adopt(m, remote, reason, now, begin())
          announcement = settled(this, m, now, true)
          return [undefined, m]
        }),
        () => announcement === undefined ? Effect.void : this.announce(announcement)
      )
    })
  }

  get state(): Effect.Effect<Api.State> {
    return this.step((m, now, changes) => {
      machine.poll(m, this.shared.config, now, changes)
      return m.state
    })
  }

  get snapshot(): Effect.Effect<Api.Snapshot> {
    return this.step((m, now, changes) => {
      machine.poll(m, this.shared.config, now, changes)
      return toSnapshot(this.key, m, now)
    })
  }

  force(to: "Closed" | "ForcedOpen" | "Disabled" | "MetricsOnly", forget: boolean): Effect.Effect<void> {
    return this.step((m, now, changes) => machine.force(m, to, now, changes, forget))
  }

  get forceOpen(): Effect.Effect<void> {
    return this.force("ForcedOpen", false)
  }

  get forceClose(): Effect.Effect<void> {
    return this.force("Closed", false)
  }

  get reset(): Effect.Effect<void> {
    return this.force("Closed", true)
  }

  get disable(): Effect.Effect<void> {
    return this.force("Disabled", false)
  }

  get metricsOnly(): Effect.Effect<void> {
    return this.force("MetricsOnly", false)
  }

  get events(): Stream.Stream<Api.StateChange> {
    return Stream.filter(Stream.fromPubSub(this.shared.hub), (change) => change.key === this.key)
  }
}

/** Records a finished call on the machine `m` (the object `self.ref` holds); returns what the step must announce. */
const recordOn = (
  self: BreakerImpl,
  m: machine.Machine,
  ticket: number,
  startedAt: number,
  watched: boolean,
  exit: Exit.Exit<unknown, unknown>,
  now: number
): Announcement | undefined => {
  const outcome = classifyExit(self.shared, exit)
  machine.record(
    m,
    self.shared.config,
    ticket,
    outcome.verdict,
    outcome.milli,
    now - startedAt,
    outcome.retryAfterMs,
    now,
    begin(),
    watched
  )
  return settled(self, m, now)
}

const settle = (
  self: BreakerImpl,
  clock: Clock.Clock,
  ticket: number,
  startedAt: number,
  probe: string | undefined,
  watched: boolean,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> => {
  const now = clock.unsafeCurrentTimeMillis()
  let announcement: Announcement | undefined
  return Effect.flatMap(
    Ref.modify(self.ref, (m): [void, machine.Machine] => {
      announcement = recordOn(self, m, ticket, startedAt, watched, exit, now)
      return [undefined, m]
    }),
    () => {
      const announced = announcement === undefined ? Effect.void : self.announce(announcement)
      const { store } = self.shared
      // A fleet-wide probe permit goes back whatever the verdict (a transition clears them all anyway).
      return probe === undefined || store?.releaseProbe === undefined
        ? announced
        : Effect.zipRight(announced, store.releaseProbe(self.key, probe))
    }
  )
}

/**
 * Whether {@link admitNow} can admit a call now: where `admit` would give a ticket (or bypass) with no transition and
 * no store to ask — Closed with no hang due, MetricsOnly, Disabled — on a breaker this module made. Changes nothing.
 * Elsewhere (Open, HalfOpen probing, ForcedOpen, a hang due) the caller goes through `execute`.
 * @internal
 */
export const admitsNow = (breaker: Api.CircuitBreaker, now: number): boolean => {
  if (!(breaker instanceof BreakerImpl)) return false
  const m = breaker.machine
  return m.state === "Closed"
    ? !machine.hanging(m, breaker.shared.config, now)
    : m.state === "MetricsOnly" || m.state === "Disabled"
}

/**
 * The breaker's state as `state` would read it, as a synchronous step: on a breaker this module made, when time alone
 * makes no transition due (which `state` would make and announce); else `undefined`, and the caller reads `state`.
 * @internal
 */
export const stateNow = (breaker: Api.CircuitBreaker, now: number): Api.State | undefined =>
  breaker instanceof BreakerImpl && !machine.due(breaker.machine, breaker.shared.config, now)
    ? breaker.machine.state
    : undefined

/**
 * `execute`'s admission as a synchronous step, for the fused fast path (./resilient/fastPath.ts): the ticket (or
 * {@link machine.BYPASS}) of a call {@link admitsNow} accepted in the same synchronous section. Settle it exactly
 * once with {@link settleNow}.
 *
 * The `Ref` holds one machine for ever (`ref` and `machine` are the same object: every step mutates it in place and
 * returns it from `Ref.modify`, which is itself one `sync` step), so stepping `machine` directly, inside one
 * synchronous section, is the same atomic step: no other fiber runs until it returns.
 * @internal
 */
export const admitNow = (breaker: Api.CircuitBreaker, now: number): number | undefined => {
  if (!(breaker instanceof BreakerImpl)) return undefined
  breaker.shared.expiry?.used(breaker, now)
  // Where `admitsNow` holds, `admit` makes no transition: there is nothing to announce.
  return machine.admit(breaker.machine, breaker.shared.config, now, begin(), true)
}

/**
 * Settles a ticket from {@link admitNow} as `execute`'s finalizer would; returns the transitions' announcement to
 * run, if any. @internal
 */
export const settleNow = (
  breaker: Api.CircuitBreaker,
  ticket: number,
  startedAt: number,
  exit: Exit.Exit<unknown, unknown>,
  now: number
): Effect.Effect<void> | undefined => {
  if (ticket === machine.BYPASS || !(breaker instanceof BreakerImpl)) return undefined
  const announcement = recordOn(breaker, breaker.machine, ticket, startedAt, true, exit, now)
  return announcement === undefined ? undefined : breaker.announce(announcement)
}

/** Gives back a local probe permit the fleet refused. */
const releaseLocal = (self: BreakerImpl, ticket: number): Effect.Effect<void> =>
  self.step((m, now, changes) =>
    machine.record(m, self.shared.config, ticket, machine.IGNORED, 0, 0, undefined, now, changes, false)
  )

/**
 * Admission: asks the machine for a ticket and hands it to `use`, or fails with `CircuitOpen` without calling it.
 * Callers run this where nothing can interrupt them, so a ticket always reaches the finalizer `use` installs.
 */
const admit = <A, E, R>(
  self: BreakerImpl,
  clock: Clock.Clock,
  use: (ticket: number, now: number, probe: string | undefined) => Effect.Effect<A, E, R>,
  watched: boolean,
  retried = false
): Effect.Effect<A, E | CircuitOpen, R> => {
  const now = clock.unsafeCurrentTimeMillis()
  self.shared.expiry?.used(self, now)
  let wait = 0
  let probing = false
  let announcement: Announcement | undefined
  return Effect.flatMap(
    Ref.modify(self.ref, (m): [number, machine.Machine] => {
      const ticket = machine.admit(m, self.shared.config, now, begin(), watched)
      announcement = settled(self, m, now)
      if (ticket === machine.REJECTED) wait = machine.remaining(m, now)
      else probing = m.state === "HalfOpen"
      return [ticket, m]
    }),
    (ticket): Effect.Effect<A, E | CircuitOpen, R> => {
      const acquireProbe = self.shared.store?.acquireProbe
      const run: Effect.Effect<A, E | CircuitOpen, R> = ticket === machine.REJECTED
        ? Effect.fail(rejection(self.key, wait))
        : !probing || acquireProbe === undefined
        ? use(ticket, now, undefined)
        : Effect.flatMap(
          acquireProbe(self.key, now, self.shared.config.permits, self.shared.config.probeTimeoutMs),
          (answer): Effect.Effect<A, E | CircuitOpen, R> => {
            switch (answer._tag) {
              case "granted":
                return use(ticket, now, answer.probe)
              case "local":
                return use(ticket, now, undefined)
              case "denied":
                return Effect.zipRight(
                  releaseLocal(self, ticket),
                  Effect.fail(rejection(self.key, self.shared.config.probeTimeoutMs))
                )
              case "adopt":
                // The fleet has moved on (closed, or re-opened): follow it, then ask again once.
                return Effect.zipRight(
                  Effect.zipRight(releaseLocal(self, ticket), self.adopt(answer.remote, answer.reason)),
                  retried ? Effect.fail(rejection(self.key, 0)) : admit(self, clock, use, watched, true)
                )
            }
          }
        )
      return announcement === undefined ? run : Effect.zipRight(self.announce(announcement), run)
    }
  )
}

/** @internal */
export const execute = <A, E, R>(
  self: BreakerImpl,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CircuitOpen, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.clockWith((clock) =>
      admit(self, clock, (ticket, now, probe) =>
        ticket === machine.BYPASS
          ? restore(effect)
          // Interrupted, failed or not, an admitted call is settled exactly once, by this one finalizer.
          : Effect.onExit(restore(effect), (exit) => settle(self, clock, ticket, now, probe, true, exit)), true)
    )
  )

/** @internal */
export const executeStream = <A, E, R>(
  self: BreakerImpl,
  stream: Stream.Stream<A, E, R>
): Stream.Stream<A, E | CircuitOpen, R> =>
  Stream.unwrapScoped(
    Effect.uninterruptible(Effect.clockWith((clock) =>
      admit(
        self,
        clock,
        (ticket, now, probe) =>
          ticket === machine.BYPASS
            ? Effect.succeed(stream)
            // The stream's scope closes with the stream's own exit: completed, failed, or interrupted by its consumer.
            : Effect.as(Effect.addFinalizer((exit) => settle(self, clock, ticket, now, probe, false, exit)), stream),
        false
      )
    ))
  )

/** @internal */
export const makeBreaker = (key: string, shared: Shared, initial: Option.Option<Api.Snapshot>): BreakerImpl => {
  const m = Option.isSome(initial) ? fromSnapshot(initial.value) : new machine.Machine()
  return new BreakerImpl(key, shared, Ref.unsafeMake(m), m)
}

/** @internal */
export const makeShared = (
  settings: options.Settings,
  store: Api.Store | undefined,
  capacity: number
): Effect.Effect<Shared> =>
  Effect.map(PubSub.sliding<Api.StateChange>(capacity), (hub) => ({ ...settings, hub, store, expiry: undefined }))

/** @internal */
export const make = (opts: Api.Options & Api.make.Options = {}): Effect.Effect<Api.CircuitBreaker, InvalidOptions> =>
  Effect.gen(function*() {
    const settings = yield* options.resolve(opts)
    const shared = yield* makeShared(settings, opts.store, BREAKER_EVENT_CAPACITY)
    const key = opts.key ?? "default"
    const stored = opts.store === undefined ? Option.none() : yield* opts.store.load(key)
    const initial = Option.isSome(stored)
      ? stored
      : opts.initialState === undefined
      ? Option.none()
      : Option.some(opts.initialState)
    return makeBreaker(key, shared, initial)
  })

/** @internal */
export const isCircuitBreaker = (u: unknown): u is Api.CircuitBreaker => u instanceof BreakerImpl

/** @internal */
export const executeDual: {
  (breaker: Api.CircuitBreaker): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: Api.CircuitBreaker): Effect.Effect<A, E | CircuitOpen, R>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: Api.CircuitBreaker): Effect.Effect<A, E | CircuitOpen, R> =>
    breaker.execute(effect)
)

/** @internal */
export const executeStreamDual: {
  (breaker: Api.CircuitBreaker): <A, E, R>(stream: Stream.Stream<A, E, R>) => Stream.Stream<A, E | CircuitOpen, R>
  <A, E, R>(stream: Stream.Stream<A, E, R>, breaker: Api.CircuitBreaker): Stream.Stream<A, E | CircuitOpen, R>
} = dual(
  2,
  <A, E, R>(stream: Stream.Stream<A, E, R>, breaker: Api.CircuitBreaker): Stream.Stream<A, E | CircuitOpen, R> =>
    breaker.executeStream(stream)
)
