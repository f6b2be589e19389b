/**
 * Heap bytes per breaker in a keyed registry.
 *
 *   npx tsx --expose-gc bench/circuit-breaker-memory.ts
 *
 * Keys are built before the baseline is taken: an application holds its `provider:model` strings anyway. Everything
 * the registry adds is counted: its Map entry, the breaker, its Ref, its state and (once used) its ring buffer.
 */
import * as Effect from "effect/Effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"

const N = 10_000

const gc = (): void => {
  const collect = globalThis.gc
  if (collect === undefined) {
    throw new Error("run with --expose-gc: npx tsx --expose-gc bench/circuit-breaker-memory.ts")
  }
  for (let i = 0; i < 3; i++) collect()
}

const measure = async <A>(label: string, build: () => Promise<A>): Promise<A> => {
  gc()
  const before = process.memoryUsage().heapUsed
  const kept = await build()
  gc()
  const after = process.memoryUsage().heapUsed
  console.log(`${label.padEnd(58)} ${((after - before) / N).toFixed(0).padStart(6)} bytes per breaker`)
  return kept
}

const keys = Array.from({ length: N }, (_, i) => `provider-${i}:model-${i % 7}`)

const main = async () => {
  console.log(`node ${process.version}, ${N.toLocaleString("en")} breakers`)
  const retained: Array<unknown> = []

  retained.push(
    await measure("registry, created (get) and never called", () =>
      Effect.runPromise(Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry()
        for (const key of keys) yield* registry.get(key)
        return registry
      })))
  )

  retained.push(
    await measure(
      "registry, one successful call each (ring buffer allocated)",
      () =>
        Effect.runPromise(Effect.gen(function*() {
          const registry = yield* CircuitBreaker.makeRegistry()
          for (const key of keys) yield* registry.execute(key, Effect.void)
          return registry
        }))
    )
  )

  retained.push(
    await measure("registry, 20 calls each (window of 20 full)", () =>
      Effect.runPromise(Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry()
        for (const key of keys) {
          for (let i = 0; i < 20; i++) {
            yield* Effect.either(registry.execute(key, i % 4 === 0 ? Effect.fail("x") : Effect.void))
          }
        }
        return registry
      })))
  )

  retained.push(
    await measure(
      "standalone CircuitBreaker.make (own event hub), never called",
      () => Effect.runPromise(Effect.forEach(keys, (key) => CircuitBreaker.make({ key })))
    )
  )

  // Keep everything reachable until every measurement is taken.
  console.log(`(retained ${retained.length} structures)`)
}

main()
