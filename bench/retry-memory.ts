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

const targetsOf = (prefix: string) => Array.from({ length: N }, (_, i) => ({ name: "openai", model: `${prefix}-${i}` }))
const targets = targetsOf("model")
// Another retrier's targets run first: the machine code V8 compiles during the first thousands of retries is not a
// target's cost (measured without this warm-up it added ≈ 400–800 bytes per target).
const warmUp = targetsOf("warm")

const failingOnce = (target: { readonly name: string; readonly model: string }) => {
  let failed = false
  return Effect.suspend(() => {
    if (failed) return Effect.succeed("ok")
    failed = true
    return Effect.fail(hardFailure({ reason: "ServerError", provider: target.name, model: target.model, status: 500 }))
  })
}

/** Every target's request at once, so that all their budgets are within one window when measured. */
const retryEach = (retrier: Retry.Retrier, targets: ReadonlyArray<{ readonly name: string; readonly model: string }>) =>
  Effect.gen(function*() {
    const fibers = []
    for (const target of targets) fibers.push(yield* Effect.fork(retrier.retry(failingOnce(target), target)))
    yield* TestClock.adjust("1 minute")
    for (const fiber of fibers) yield* fiber.await
  })

const heapUsed = () => {
  gc()
  return process.memoryUsage().heapUsed
}

const program = Effect.gen(function*() {
  yield* retryEach(yield* Retry.make({}), warmUp)
  const retrier = yield* Retry.make({})
  const before = heapUsed()
  yield* retryEach(retrier, targets)
  const live = heapUsed()
  // A request on another target after the budgets' window lets the retrier forget the idle ones.
  yield* TestClock.adjust("11 seconds")
  yield* retrier.retry(Effect.succeed("ok"), { name: "openai", model: "another" })
  const idle = heapUsed()
  const perTarget = (bytes: number) => `${(bytes / N).toFixed(0).padStart(5)} bytes per target`
  console.log(`Retrier, ${N} targets, budgets within their window:   ${perTarget(live - before)}`)
  console.log(`Retrier, ${N} targets, after a window idle:           ${perTarget(idle - before)}`)
  return retrier
})

Effect.runPromise(Effect.provide(program, Layer.merge(TestContext.TestContext, Logger.remove(Logger.defaultLogger))))
  .then((retrier) => {
    // Keeps the retrier alive until after the measurement.
    void retrier
  })
