/**
 * The cost per chunk of `Resilient.stream` (the ladder up to the commit point, the stream guard, breaker, limiter,
 * the end's result and request event) next to a bare `Stream.fromAsyncIterable` over the same events.
 *
 *   npx tsx bench/stream-overhead.ts
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { makeUsage, type StreamChunk } from "../src/Llm.js"
import type { Service as LlmProvider } from "../src/LlmProvider.js"
import * as Resilient from "../src/Resilient.js"

const CHUNKS = 1_000
const STREAMS = 40

async function* events(): AsyncGenerator<StreamChunk> {
  for (let i = 0; i < CHUNKS; i++) yield { _tag: "ContentDelta", text: "token " }
  yield {
    _tag: "StreamEnd",
    finishReason: "stop",
    usage: makeUsage(10, CHUNKS),
    model: "m",
    provider: "bench",
    latencyMs: 1
  }
}

const bare = Stream.suspend(() => Stream.fromAsyncIterable(events(), (error) => error))

const provider: LlmProvider = {
  name: "bench",
  model: "m",
  key: "bench:m",
  complete: () => Effect.dieMessage("not used"),
  stream: () => Stream.suspend(() => Stream.orDie(Stream.fromAsyncIterable(events(), (error) => error))),
  countTokens: () => Effect.succeed(10)
}

const measure = async (label: string, run: () => Effect.Effect<unknown, unknown>) => {
  const loop = Effect.gen(function*() {
    for (let i = 0; i < STREAMS; i++) yield* run()
  }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  await Effect.runPromise(loop) // warm up
  const samples: Array<number> = []
  for (let round = 0; round < 5; round++) {
    const start = performance.now()
    await Effect.runPromise(loop)
    samples.push(((performance.now() - start) * 1000) / (STREAMS * CHUNKS))
  }
  samples.sort((a, b) => a - b)
  console.log(`${label.padEnd(52)} ${samples[2]?.toFixed(3)} µs/chunk (median of 5 × ${STREAMS} × ${CHUNKS})`)
  return samples[2] ?? 0
}

const main = async () => {
  const scope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(Scope.extend(Resilient.make({ chain: [{ provider }] }), scope))
  const guarded = await Effect.runPromise(
    Scope.extend(
      Resilient.make({ chain: [{ provider, firstChunkTimeout: "30 seconds", stallTimeout: "30 seconds" }] }),
      scope
    )
  )
  const ask = { messages: [{ role: "user" as const, content: "hi" }] }
  const floor = await measure("Stream.fromAsyncIterable (bare)", () => Stream.runDrain(bare))
  const resilient = await measure("Resilient.stream", () => Stream.runDrain(client.stream(ask)))
  const timed = await measure(
    "Resilient.stream + first-chunk and stall timeouts",
    () => Stream.runDrain(guarded.stream(ask))
  )
  console.log(
    `\nResilient.stream adds ${(resilient - floor).toFixed(3)} µs per chunk (${
      (resilient / floor).toFixed(2)
    }× the bare stream); with timeouts ${(timed - floor).toFixed(3)} µs (${(timed / floor).toFixed(2)}×).`
  )
}

void main()
