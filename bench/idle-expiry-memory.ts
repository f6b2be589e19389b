/**
 * Heap bytes per idle key of a breaker registry and of a limiter, before and after idle expiry, and per dropped
 * `Resilient` client.
 *
 *   npx tsx --expose-gc bench/idle-expiry-memory.ts
 *
 * Keys are built before each baseline (an application holds them anyway). Time is the TestClock's: "idle for two
 * hours" is two `TestClock.adjust`s, each followed by one call on another key (sweeps run at admissions).
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const N = 5_000
const CLIENTS = 2_000

const gc = (): void => {
  const collect = globalThis.gc
  if (collect === undefined) throw new Error("run with --expose-gc: npx tsx --expose-gc bench/idle-expiry-memory.ts")
  for (let i = 0; i < 3; i++) collect()
}

/**
 * Collected heap, measured in a later task: a `WeakRef` keeps its target alive until the current job ends, so the
 * expired breakers a registry holds weakly can only be collected once the fiber has yielded to the event loop.
 */
const heap = Effect.promise(() =>
  new Promise<number>((resolve) =>
    setTimeout(() => {
      gc()
      resolve(process.memoryUsage().heapUsed)
    }, 0)
  )
)

const row = (label: string, bytes: number, per: number) =>
  console.log(`${label.padEnd(64)} ${(bytes / per).toFixed(0).padStart(7)} bytes`)

const keys = Array.from({ length: N }, (_, i) => `provider-${i}:model-${i % 7}`)

/** Two idle intervals pass; a call on another key after each lets the sweep run. */
const idleTwoHours = <E>(touch: Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 3; i++) {
      yield* TestClock.adjust("61 minutes")
      yield* touch
      // Expired breakers are held weakly until collected; the next sweep forgets them.
      yield* heap
    }
  })

const registry = Effect.gen(function*() {
  const base = yield* heap
  const registry = yield* CircuitBreaker.makeRegistry({ idleExpiry: "1 hour" })
  for (const key of keys) yield* registry.execute(key, Effect.void)
  row("breaker registry, per key, one call each, before expiry", (yield* heap) - base, N)
  yield* idleTwoHours(registry.execute("busy", Effect.void))
  row("breaker registry, per key, after two idle hours (expired)", (yield* heap) - base, N)
  return registry
})

const limiter = Effect.gen(function*() {
  const base = yield* heap
  const limiter = yield* RateLimit.make({ idleExpiry: "1 hour" })
  for (const key of keys) yield* limiter.limit(key)(Effect.void)
  row("limiter (no limits), per key, one call each, before expiry", (yield* heap) - base, N)
  yield* idleTwoHours(limiter.limit("busy")(Effect.void))
  row("limiter, per key, after two idle hours (expired)", (yield* heap) - base, N)
  return limiter
})

const clients = Effect.gen(function*() {
  const primary = yield* ScriptedProvider.make({ name: "openai", model: "a", script: [ScriptedProvider.success("ok")] })
  const secondary = yield* ScriptedProvider.make({
    name: "anthropic",
    model: "b",
    script: [ScriptedProvider.success("ok")]
  })
  const buildAndDrop = Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Scope.extend(Resilient.make({ chain: [{ provider: primary }, { provider: secondary }] }), scope)
    yield* Scope.close(scope, Exit.void)
  })
  // As many clients first: module-level caches (metrics per provider:model) are not the clients' cost, and neither
  // is the machine code V8 compiles while the first thousands run (measured after a single warm-up client, that
  // code alone made ≈ 1.1 KB per client appear; a heap snapshot diff shows no object of the clients left).
  for (let i = 0; i < CLIENTS; i++) yield* buildAndDrop
  const base = yield* heap
  for (let i = 0; i < CLIENTS; i++) yield* buildAndDrop
  row("Resilient client (2 tiers), built and its scope closed, per client", (yield* heap) - base, CLIENTS)
})

const program = Effect.gen(function*() {
  console.log(`node ${process.version}, ${N.toLocaleString("en")} keys, ${CLIENTS.toLocaleString("en")} clients`)
  const kept = [yield* registry, yield* limiter]
  yield* clients
  return kept
})

Effect.runPromise(Effect.provide(program, Layer.merge(TestContext.TestContext, Logger.remove(Logger.defaultLogger))))
  .then((kept) => {
    // Keeps the registry and the limiter alive until after the measurements.
    void kept
  })
