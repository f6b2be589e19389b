import * as Effect from "effect/Effect"
import * as Duration from "effect/Duration"
import { promiseWithin, timeoutFail } from "../src/internal/timeout.js"
const RESULT = { a: 1 }
const call = () => Promise.resolve(RESULT)
const N = 20000
const d = Duration.seconds(30)
const sdkCall = (signal: AbortSignal) => { void signal.aborted; return Promise.resolve(RESULT) }
const variants: Record<string, () => Effect.Effect<unknown, unknown>> = {
  sdkNoTimeout: () => Effect.tryPromise({ try: sdkCall, catch: (e) => e }),
  sdkOld: () => timeoutFail(Effect.tryPromise({ try: sdkCall, catch: (e) => e }), d, () => "t"),
  sdkNew: () => promiseWithin(sdkCall, (e) => Effect.die(e), d, () => "t"),
  promise: () => Effect.promise(call),
  tryPromise: () => Effect.tryPromise({ try: call, catch: (e) => e }),
  promiseWithin: () => promiseWithin(call, (e) => Effect.die(e), d, () => "t"),
  timeoutFail: () => timeoutFail(Effect.promise(call), d, () => "t"),
}
const loop = (f: () => Effect.Effect<unknown, unknown>) => Effect.gen(function*() { for (let i = 0; i < N; i++) yield* f() })
const main = async () => {
  for (let round = 0; round < 6; round++) {
    const line: Array<string> = []
    for (const [name, f] of Object.entries(variants)) {
      const t = process.cpuUsage()
      await Effect.runPromise(loop(f))
      const u = process.cpuUsage(t)
      line.push(`${name}=${(((u.user + u.system) * 1000) / N / 1000).toFixed(2)}µs`)
    }
    if (round >= 2) console.log(line.join(" "))
  }
}
main()
