import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { makeUsage } from "../src/Llm.js"
import type { Service } from "../src/LlmProvider.js"
import * as Resilient from "../src/Resilient.js"
import { honouringDeadlines } from "../src/internal/providerTimeouts.js"
import { promiseWithin } from "../src/internal/timeout.js"
const RESULT = { content: "ok", usage: makeUsage(1, 1), model: "noop", provider: "bench", finishReason: "stop" as const, latencyMs: 0 }
const call = () => Promise.resolve(RESULT)
const provider: Service = { name: "bench", model: "noop", key: "bench:noop", complete: () => Effect.promise(call), stream: () => Stream.empty, countTokens: () => Effect.succeed(10) }
const honouring: Service = { ...provider, complete: honouringDeadlines((_r, a) => a === undefined ? Effect.promise(call) : promiseWithin(call, Effect.die, a.duration, a.onTimeout)) }
class Forks extends Supervisor.AbstractSupervisor<number> {
  count = 0
  get value() { return Effect.sync(() => this.count) }
  override onStart() { this.count++ }
}
const REQUEST = { messages: [{ role: "user" as const, content: "ping" }] }
const main = Effect.gen(function*() {
  const scope = yield* Scope.make()
  for (const [name, p, timeout] of [["none", provider, undefined], ["fork", provider, "30 seconds"], ["in-call", honouring, "30 seconds"]] as const) {
    const client = yield* Scope.extend(Resilient.make({ chain: [{ provider: p, limits: { concurrency: 1000 }, ...(timeout ? { timeout } : {}) }] }), scope)
    for (let i = 0; i < 3000; i++) yield* client.complete(REQUEST)
    const forks = new Forks()
    const t = process.cpuUsage()
    yield* Effect.supervised(Effect.gen(function*() { for (let i = 0; i < 5000; i++) yield* client.complete(REQUEST) }), forks)
    const u = process.cpuUsage(t)
    console.log(name, "forks per call", forks.count / 5000, "µs/call", ((u.user + u.system) / 5000).toFixed(1))
  }
})
Effect.runPromise(Logger.withMinimumLogLevel(main, LogLevel.None))
