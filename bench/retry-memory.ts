/**
 * Heap bytes a `Retrier` keeps per provider:model target it has retried for.
 *
 *   npx tsx --expose-gc bench/retry-memory.ts
 *
 * Each target makes one call that fails once and succeeds on the retry (so its schedule is resolved and its retry
 * budget exists). Target strings are built before the baseline: an application holds them anyway.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { hardFailure } from "../src/LlmError.js"
import * as Retry from "../src/Retry.js"

const N = 5_000

const gc = (): void => {
  const collect = globalThis.gc
  if (collect === undefined) throw new Error("run with --expose-gc: npx tsx --expose-gc bench/retry-memory.ts")
  for (let i = 0; i < 3; i++) collect()
}

const targets = Array.from({ length: N }, (_, i) => ({ name: "openai", model: `model-${i}` }))

const program = Effect.gen(function*() {
  const retrier = yield* Retry.make({})
  gc()
  const before = process.memoryUsage().heapUsed
  for (const target of targets) {
    let failed = false
    const call = Effect.suspend(() => {
      if (failed) return Effect.succeed("ok")
      failed = true
      return Effect.fail(
        hardFailure({ reason: "ServerError", provider: target.name, model: target.model, status: 500 })
      )
    })
    const fiber = yield* Effect.fork(retrier.retry(call, target))
    yield* TestClock.adjust("1 minute")
    yield* fiber.await
  }
  gc()
  const after = process.memoryUsage().heapUsed
  console.log(`Retrier, ${N} targets: ${((after - before) / N).toFixed(0)} bytes per target`)
  return retrier
})

Effect.runPromise(Effect.provide(program, Layer.merge(TestContext.TestContext, Logger.remove(Logger.defaultLogger))))
  .then((retrier) => {
    // Keeps the retrier alive until after the measurement.
    void retrier
  })
