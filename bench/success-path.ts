/**
 * The success path of a one-tier `Resilient.complete` (the row "Resilient.complete, 1 tier" of compare.ts: no-op
 * provider, `limits: { concurrency: 1000 }`, log event filtered), with and without the fast path, next to the no-op
 * call alone (`Effect.promise`, the floor every row pays), in one run: CPU time per request, and heap allocated per
 * request over a stretch of calls with no garbage collection in it.
 *
 *   npx tsup --no-config bench/success-path.ts --format esm --target node20 --out-dir .tmp-bench --silent
 *   node --expose-gc --min-semi-space-size=256 --max-semi-space-size=256 .tmp-bench/success-path.js
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import { PerformanceObserver } from "node:perf_hooks"
import { build } from "../src/internal/resilient/make.js"
import { effectCall, provider, REQUEST } from "./noop.js"

const SAMPLE = 2_000
let collections = 0
new PerformanceObserver((list) => void (collections += list.getEntries().length)).observe({ entryTypes: ["gc"] })

const gc = (globalThis as { gc?: () => void }).gc

const main = async () => {
  const scope = Effect.runSync(Scope.make())
  const clients = {
    ladder: (await Effect.runPromise(
      Scope.extend(build({ chain: [{ provider, limits: { concurrency: 1000 } }] }, { fastPath: false }), scope)
    )).service,
    fast: (await Effect.runPromise(
      Scope.extend(build({ chain: [{ provider, limits: { concurrency: 1000 } }] }, { fastPath: true }), scope)
    )).service
  }
  const calls = {
    ladder: () => clients.ladder.complete(REQUEST),
    fast: () => clients.fast.complete(REQUEST),
    floor: effectCall
  }
  const loop = (which: keyof typeof calls, count: number) =>
    Effect.runPromise(Logger.withMinimumLogLevel(
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) yield* calls[which]()
      }),
      LogLevel.None
    ))
  for (const which of ["ladder", "fast", "floor", "ladder", "fast", "floor"] as const) await loop(which, 20_000)
  const rows: Array<Record<string, string>> = []
  for (let round = 0; round < 3; round++) {
    for (const which of ["ladder", "fast", "floor"] as const) {
      const count = 50_000
      const cpu = process.cpuUsage()
      await loop(which, count)
      const used = process.cpuUsage(cpu)
      gc?.()
      // GC entries reach the observer asynchronously: let the forced one arrive before counting.
      await new Promise((resolve) => setTimeout(resolve, 20))
      const before = process.memoryUsage().heapUsed
      const collectedBefore = collections
      await loop(which, SAMPLE)
      const allocated = process.memoryUsage().heapUsed - before
      await new Promise((resolve) => setTimeout(resolve, 20))
      rows.push({
        round: String(round + 1),
        path: which,
        "cpu µs/request": ((used.user + used.system) / count).toFixed(1),
        "heap KB/request": collections === collectedBefore ? (allocated / SAMPLE / 1024).toFixed(1) : "(a GC ran)"
      })
    }
  }
  console.table(rows)
  await Effect.runPromise(Scope.close(scope, Effect.void as never))
}

void main()
