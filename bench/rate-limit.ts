/**
 * The rate limiter against `Effect.makeSemaphore` + `withPermits`, the piece DESIGN.md §4 measured:
 *
 * 1. Per-call overhead, uncontended (sequential calls of a no-op effect).
 * 2. Throughput with 1,000 concurrent fibers through a bulkhead of 10 (each call yields once, like a tiny async
 *    call): the semaphore wakes every waiter on each release; the limiter hands the permit to exactly one.
 *
 *   npx tsx bench/rate-limit.ts
 */
import * as Effect from "effect/Effect"
import * as Scheduler from "effect/Scheduler"
import * as RateLimit from "../src/RateLimit.js"

const KEY = "openai:gpt-4.1"
const call = Effect.succeed(1)

const median = (samples: Array<number>) => {
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)] ?? 0
}

const time = async (program: Effect.Effect<unknown, unknown>, rounds: number): Promise<number> => {
  await Effect.runPromise(program) // warm up
  const samples: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    const start = performance.now()
    await Effect.runPromise(program)
    samples.push(performance.now() - start)
  }
  return median(samples)
}

const sequential = async (label: string, wrap: (effect: Effect.Effect<number>) => Effect.Effect<unknown, unknown>) => {
  const N = 200_000
  const loop = Effect.gen(function*() {
    for (let i = 0; i < N; i++) yield* wrap(call)
  })
  const micros = ((await time(loop, 5)) * 1000) / N
  console.log(`${label.padEnd(52)} ${micros.toFixed(3)} µs/call (median of 5 × ${N})`)
  return micros
}

const FIBERS = 1_000
const cpuOnly = new Scheduler.MixedScheduler(Number.MAX_SAFE_INTEGER)
const PERMITS = 10

/**
 * `burst`: 1,000 fibers arrive at once and make one call each (repeated `rounds` times): up to 990 waiters.
 * `loop`: 1,000 fibers make `calls` calls each, back to back. A semaphore lets a fiber that just released take the
 * permit again before the waiters it woke can run (barging), so this favours it at the waiters' expense.
 */
const contended = async (
  label: string,
  shape: { readonly rounds: number; readonly calls: number },
  make: () => Effect.Effect<(effect: Effect.Effect<void>) => Effect.Effect<unknown, unknown>, unknown>
) => {
  const work = Effect.yieldNow()
  // The default scheduler gives the event loop a turn (setTimeout) every 2,048 microtask rounds, so a run with many
  // yielding fibers is mostly idle time. A scheduler that never does that measures CPU work only.
  const program = Effect.withScheduler(
    Effect.gen(function*() {
      const wrap = yield* make()
      for (let round = 0; round < shape.rounds; round++) {
        yield* Effect.forEach(
          Array.from({ length: FIBERS }, (_, i) => i),
          () =>
            Effect.gen(function*() {
              for (let i = 0; i < shape.calls; i++) yield* wrap(work)
            }),
          { concurrency: "unbounded", discard: true }
        )
      }
    }),
    cpuOnly
  )
  const total = FIBERS * shape.rounds * shape.calls
  const millis = await time(program, 5)
  console.log(
    `${label.padEnd(52)} ${((millis * 1000) / total).toFixed(2)} µs/call, ${
      Math.round(total / (millis / 1000)).toLocaleString("en")
    } calls/s (median of 5 × ${total.toLocaleString("en")})`
  )
  return millis
}

const contenders = {
  none: () => Effect.succeed((effect: Effect.Effect<void>) => effect),
  semaphore: () =>
    Effect.map(Effect.makeSemaphore(PERMITS), (s) => (effect: Effect.Effect<void>) => s.withPermits(1)(effect)),
  limiter: () =>
    Effect.map(
      RateLimit.make({ limits: { concurrency: PERMITS } }),
      (l) => (effect: Effect.Effect<void>) => l.limit(KEY)(effect)
    ),
  limiterFull: () =>
    Effect.map(
      RateLimit.make({ limits: { concurrency: PERMITS, rpm: 1e9, tpm: 1e12 } }),
      (l) => (effect: Effect.Effect<void>) => l.limit(KEY, { tokens: 100 })(effect)
    )
}

const compare = async (title: string, shape: { readonly rounds: number; readonly calls: number }) => {
  console.log(`\n${title}`)
  await contended("no limit (the cost of the fibers themselves)", shape, contenders.none)
  const sem = await contended(`Effect.makeSemaphore(${PERMITS}) + withPermits(1)`, shape, contenders.semaphore)
  const lim = await contended(`RateLimit { concurrency: ${PERMITS} }`, shape, contenders.limiter)
  const full = await contended(`RateLimit { concurrency: ${PERMITS}, rpm, tpm }`, shape, contenders.limiterFull)
  console.log(`semaphore time / limiter time: ${(sem / lim).toFixed(2)} (${(sem / full).toFixed(2)} with rpm and tpm)`)
}

const main = async () => {
  console.log(`Node ${process.version}\n\nUncontended, per call:`)
  const bare = await sequential("bare effect", (effect) => effect)
  const semaphore = await Effect.runPromise(Effect.makeSemaphore(1_000_000))
  const withPermits = await sequential(
    "Effect.makeSemaphore + withPermits(1)",
    (effect) => semaphore.withPermits(1)(effect)
  )
  const bulkhead = await Effect.runPromise(RateLimit.make({ limits: { concurrency: 1_000_000 } }))
  const limiterConcurrency = await sequential("RateLimit, concurrency only", (effect) => bulkhead.limit(KEY)(effect))
  const full = await Effect.runPromise(
    RateLimit.make({ limits: { concurrency: 1_000_000, rpm: 1e9, tpm: 1e12 } })
  )
  const limiterFull = await sequential(
    "RateLimit, concurrency + rpm + tpm (100 tokens)",
    (effect) => full.limit(KEY, { tokens: 100 })(effect)
  )
  console.log(
    `\nOverhead over the bare effect: withPermits ${(withPermits - bare).toFixed(3)} µs, limiter ${
      (limiterConcurrency - bare).toFixed(3)
    } µs (concurrency only), ${(limiterFull - bare).toFixed(3)} µs (all three limits)`
  )

  await compare(`Burst: ${FIBERS} fibers, one call each, through ${PERMITS} permits (20 rounds):`, {
    rounds: 20,
    calls: 1
  })
  await compare(`Closed loop: ${FIBERS} fibers × 20 calls back to back through ${PERMITS} permits:`, {
    rounds: 1,
    calls: 20
  })
}

void main()
