/**
 * Success-path overhead of the circuit breaker per call, against the bare effect, in one running fiber (no
 * `runPromise` per call). Also the cost of a rejection while the breaker is open, which is the hot path of an outage.
 *
 *   npx tsx bench/circuit-breaker-overhead.ts
 */
import * as Effect from "effect/Effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"

const N = 100_000
const ROUNDS = 7
const call = Effect.succeed(1)
const promiseCall = Effect.promise(() => Promise.resolve(1))

const measure = async (label: string, loopBody: Effect.Effect<unknown, unknown>) => {
  const loop = Effect.gen(function*() {
    for (let i = 0; i < N; i++) yield* Effect.either(loopBody)
  })
  await Effect.runPromise(loop) // warm up
  const samples: Array<number> = []
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now()
    await Effect.runPromise(loop)
    samples.push(((performance.now() - start) * 1000) / N)
  }
  samples.sort((a, b) => a - b)
  const median = samples[ROUNDS >> 1] ?? 0
  console.log(
    `${label.padEnd(52)} ${median.toFixed(3)} µs/call (median of ${ROUNDS} × ${N}; best ${samples[0]?.toFixed(3)})`
  )
  return median
}

const main = async () => {
  console.log(`node ${process.version}`)
  const breaker = await Effect.runPromise(CircuitBreaker.make({ key: "openai:gpt-4.1" }))
  const latency = await Effect.runPromise(
    CircuitBreaker.make({ key: "openai:gpt-4.1", latency: true, slowCalls: { threshold: "10 seconds" } })
  )
  // Records every failure without ever opening, so the failed-call figure measures recording, not rejection.
  const recording = await Effect.runPromise(CircuitBreaker.make({ consecutiveFailures: false, failureRate: false }))
  const registry = await Effect.runPromise(CircuitBreaker.makeRegistry())
  const open = await Effect.runPromise(CircuitBreaker.make({ key: "down", consecutiveFailures: 1, cooldown: "1 hour" }))
  await Effect.runPromise(Effect.either(open.execute(Effect.fail("down"))))

  const bare = await measure("bare Effect.succeed", call)
  const wrapped = await measure("breaker.execute (Closed, default policies)", breaker.execute(call))
  const withLatency = await measure("breaker.execute (+ latency and slow-call policies)", latency.execute(call))
  const keyed = await measure("registry.execute(key, …)", registry.execute("openai:gpt-4.1", call))
  const bareFail = await measure("bare Effect.fail", Effect.fail("x"))
  const failing = await measure("breaker.execute on a failing call (recorded)", recording.execute(Effect.fail("x")))
  const rejected = await measure("breaker.execute while Open (CircuitOpen, no call)", open.execute(call))
  const barePromise = await measure("bare Effect.promise", promiseCall)
  const wrappedPromise = await measure("breaker.execute(Effect.promise)", breaker.execute(promiseCall))
  const snapshot = await Effect.runPromise(recording.snapshot)
  if (snapshot.calls === 0 || snapshot.state !== "Closed") throw new Error("the failing calls were not recorded")

  console.log(`
breaker overhead per successful call: ${(wrapped - bare).toFixed(3)} µs (with latency policies ${
    (withLatency - bare).toFixed(3)
  } µs, through the registry ${(keyed - bare).toFixed(3)} µs, around Effect.promise ${
    (wrappedPromise - barePromise).toFixed(3)
  } µs)
breaker overhead per failed call: ${(failing - bareFail).toFixed(3)} µs; rejection while open: ${
    rejected.toFixed(3)
  } µs`)
}

void main()
