/**
 * Success-path overhead of `Retry` per call, against the bare effect and against `Effect.retry` with the same
 * Schedule (which builds a schedule driver on every call, even when the first attempt succeeds).
 *
 *   npx tsx bench/retry-overhead.ts
 */
import * as Effect from "effect/Effect"
import * as Retry from "../src/Retry.js"

const N = 200_000
const target = { name: "openai", model: "gpt-4.1" }
const call = Effect.succeed(1)

const measure = async (label: string, wrap: (effect: Effect.Effect<number>) => Effect.Effect<unknown, unknown>) => {
  const loop = Effect.gen(function*() {
    for (let i = 0; i < N; i++) yield* wrap(call)
  })
  await Effect.runPromise(loop) // warm up
  const samples: Array<number> = []
  for (let round = 0; round < 5; round++) {
    const start = performance.now()
    await Effect.runPromise(loop)
    samples.push(((performance.now() - start) * 1000) / N)
  }
  samples.sort((a, b) => a - b)
  console.log(`${label.padEnd(44)} ${samples[2]?.toFixed(3)} µs/call (median of 5 × ${N})`)
  return samples[2] ?? 0
}

const main = async () => {
  const retrier = await Effect.runPromise(Retry.make())
  const retrierNoBudget = await Effect.runPromise(Retry.make({ budget: false }))
  const schedule = Retry.schedule(Retry.defaultPolicies.ServerError)
  const bare = await measure("bare effect", (effect) => effect)
  const withRetry = await measure("Retry (budget on)", (effect) => retrier.retry(effect, target))
  await measure("Retry (budget off)", (effect) => retrierNoBudget.retry(effect, target))
  const effectRetry = await measure("Effect.retry(same Schedule)", (effect) => Effect.retry(effect, schedule))
  console.log(
    `\nRetry adds ${(withRetry - bare).toFixed(3)} µs per successful call; Effect.retry adds ${
      (effectRetry - bare).toFixed(3)
    } µs`
  )
}

void main()
