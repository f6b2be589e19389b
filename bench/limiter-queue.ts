/**
 * Issue 18's narrow case, alone: 1,000 callers through 100 permits, each calling a no-op `Effect.promise` back to
 * back (900 waiting at any time). CPU µs per call for
 *
 * - cockatiel's `bulkhead(100, Infinity)` (async functions): the reference;
 * - 1,000 fibers calling `Effect.promise` with no limit: the fiber runtime's own floor;
 * - 1,000 fibers calling `Effect.promise` after one more suspension each, resumed from a microtask (no queue): the
 *   price of one `Effect.async` suspension and resumption;
 * - the smallest FIFO permit queues an Effect program can have (./fiberQueue.ts: a counter, an array of
 *   `Effect.async` resumes): with no region at all (`bare`), with `ensuring` around the call (`minimal`; neither is
 *   interrupt-safe), and interrupt-safe (`safe`: the wait and the call in one interruptible region and one handler,
 *   the shape of `RateLimit`'s queued call) — the floors of any limiter that parks its waiters as fibers;
 * - `RateLimit` with `concurrency: 100` (`limit(key)`), and with `rpm` and `tpm` too (`limit(key, { tokens })`).
 *
 * Run it from a bundle (tsx's keepNames wrappers cost ≈ 1.6×):
 *
 *   npx tsup --no-config bench/limiter-queue.ts --format esm --target node20 --out-dir .tmp-bench --silent \
 *     --external cockatiel && node .tmp-bench/limiter-queue.js
 *
 * Each contender runs `--rounds` times (default 5) × `--calls` calls, interleaved with the others in a rotating
 * order; figures are the median and minimum CPU time per call, and the median of per-round ratios to cockatiel.
 * `--only=cockatiel,limiter` picks contenders. With `node --expose-gc --max-semi-space-size=256` it also prints the
 * heap allocated per call.
 *
 * With hundreds of parked waiters, the figures depend on V8's young-generation sizing (each waiter lives about one
 * scavenge cycle): they vary between runs and processes more than the per-call benches do.
 */
import * as cockatiel from "cockatiel"
import * as Effect from "effect/Effect"
import * as os from "node:os"
import * as RateLimit from "../src/RateLimit.js"
import { bareQueue, safeQueue, smallestQueue } from "./fiberQueue.js"
import { call, effectCall, KEY } from "./noop.js"

const CALLERS = 1_000
const PERMITS = 100
const CALLS = Number(process.argv.find((arg) => arg.startsWith("--calls="))?.slice("--calls=".length) ?? 200_000)
const ROUNDS = Number(process.argv.find((arg) => arg.startsWith("--rounds="))?.slice("--rounds=".length) ?? 5)
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length).split(",")

/** Calls left in the current round, shared by the callers of one contender. */
let left = 0

const fibers = (body: () => Effect.Effect<unknown, unknown>) => (): Promise<void> =>
  Effect.runPromise(
    Effect.forEach(
      Array.from({ length: CALLERS }),
      () =>
        Effect.suspend(() => {
          const loop: Effect.Effect<void, unknown> = Effect.suspend(() =>
            left-- > 0 ? Effect.flatMap(body(), () => loop) : Effect.void
          )
          return loop
        }),
      { concurrency: "unbounded", discard: true }
    )
  )

const promises = (body: () => Promise<unknown>) => async (): Promise<void> => {
  const caller = async () => {
    while (left-- > 0) await body()
  }
  await Promise.all(Array.from({ length: CALLERS }, caller))
}

const main = async () => {
  const limiter = await Effect.runPromise(RateLimit.make({ limits: { concurrency: PERMITS } }))
  const limiterFull = await Effect.runPromise(
    RateLimit.make({ limits: { concurrency: PERMITS, rpm: 1e9, tpm: 1e12 } })
  )
  const bulkhead = cockatiel.bulkhead(PERMITS, Infinity)
  const queue = smallestQueue(PERMITS)
  const bare = bareQueue(PERMITS)
  const safe = safeQueue(PERMITS)
  const hop = Effect.async<void>((resume) => queueMicrotask(() => resume(Effect.void)))
  const all: ReadonlyArray<{ readonly id: string; readonly label: string; readonly run: () => Promise<void> }> = [
    { id: "cockatiel", label: `cockatiel bulkhead(${PERMITS}, Infinity)`, run: promises(() => bulkhead.execute(call)) },
    { id: "floor", label: "Effect.promise, no limit", run: fibers(effectCall) },
    {
      id: "hop",
      label: "Effect.promise after one Effect.async hop",
      run: fibers(() => Effect.zipRight(hop, effectCall()))
    },
    { id: "bare", label: `bare Effect.async FIFO, ${PERMITS} permits`, run: fibers(() => bare(effectCall())) },
    { id: "minimal", label: `minimal Effect.async FIFO, ${PERMITS} permits`, run: fibers(() => queue(effectCall())) },
    {
      id: "safe",
      label: `interrupt-safe Effect.async FIFO, ${PERMITS} permits`,
      run: fibers(() => safe(effectCall()))
    },
    { id: "limiter", label: `RateLimit concurrency ${PERMITS}`, run: fibers(() => limiter.limit(KEY)(effectCall())) },
    {
      id: "limiter-full",
      label: `RateLimit concurrency ${PERMITS} + rpm + tpm`,
      run: fibers(() => limiterFull.limit(KEY, { tokens: 100 })(effectCall()))
    }
  ]
  const contenders = only === undefined ? all : all.filter((c) => only.includes(c.id))
  const samples = new Map(contenders.map((c) => [c.id, new Array<number>()]))
  const round = async (run: () => Promise<void>, calls: number): Promise<number> => {
    left = calls
    const before = process.cpuUsage()
    await run()
    const cpu = process.cpuUsage(before)
    return (cpu.user + cpu.system) / calls
  }
  for (const c of contenders) await round(c.run, CALLS / 2) // warm-up
  // Heap allocated per call over a stretch with no garbage collection in it (run with a large young generation:
  // node --max-semi-space-size=256; otherwise a scavenge runs in the stretch and the figure is left out).
  const allocated = new Map<string, string>()
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect !== undefined) {
    for (const c of contenders) {
      collect()
      const before = process.memoryUsage().heapUsed
      await round(c.run, 5_000)
      const bytes = process.memoryUsage().heapUsed - before
      allocated.set(c.id, bytes > 0 ? `${(bytes / 5_000 / 1024).toFixed(2)} KB/call` : "(a GC ran)")
    }
  }
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ")
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(r + k) % contenders.length]
      if (c !== undefined) samples.get(c.id)?.push(await round(c.run, CALLS))
    }
  }
  const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? Number.NaN
  const reference = samples.get("cockatiel") ?? []
  console.log(
    `Node ${process.version}; ${CALLERS} callers, ${PERMITS} permits, ${CALLS} calls × ${ROUNDS} rounds; load ${load} before, ${
      os.loadavg().map((l) => l.toFixed(2)).join(" ")
    } after`
  )
  console.log(`${"".padEnd(47)}  median     min  × cockatiel (median of per-round ratios)`)
  for (const c of contenders) {
    const own = samples.get(c.id) ?? []
    const ratio = median(own.map((us, i) => us / (reference[i] ?? Number.NaN)))
    console.log(
      `${c.label.padEnd(47)} ${median(own).toFixed(2).padStart(6)} ${Math.min(...own).toFixed(2).padStart(7)} µs  ${
        ratio.toFixed(2).padStart(5)
      }×  ${allocated.get(c.id) ?? ""}`
    )
  }
}

void main()
