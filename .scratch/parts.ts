import * as Effect from "effect/Effect"
const RESULT = { a: 1 }
const call = (_s?: AbortSignal) => Promise.resolve(RESULT)
const N = 20000
const asyncOnly = () => Effect.async<unknown>((resume) => { call().then((v) => resume(Effect.succeed(v))) })
const asyncSignal = () => Effect.async<unknown>((resume) => { const c = new AbortController(); call(c.signal).then((v) => resume(Effect.succeed(v))) })
const masked = () => Effect.uninterruptibleMask((restore) => restore(asyncOnly()))
const maskedOnInt = () => Effect.uninterruptibleMask((restore) => Effect.onInterrupt(restore(asyncOnly()), () => Effect.void))
const maskedMatch = () => Effect.uninterruptibleMask((restore) => Effect.matchCauseEffect(restore(asyncOnly()), { onFailure: Effect.failCause, onSuccess: Effect.succeed }))
const fiberRt = () => Effect.withFiberRuntime(() => asyncOnly())
const suspended = () => Effect.async<unknown>((resume) => { call().then((v) => resume(Effect.suspend(() => Effect.succeed(v)))) })
const variants: Record<string, () => Effect.Effect<unknown, unknown>> = { asyncOnly, asyncSignal, masked, maskedOnInt, maskedMatch, fiberRt, suspended }
const loop = (f: () => Effect.Effect<unknown, unknown>) => Effect.gen(function*() { for (let i = 0; i < N; i++) yield* f() })
const main = async () => {
  for (let round = 0; round < 6; round++) {
    const line: Array<string> = []
    for (const [name, f] of Object.entries(variants)) {
      const t = process.cpuUsage()
      await Effect.runPromise(loop(f))
      const u = process.cpuUsage(t)
      line.push(`${name}=${(((u.user + u.system) * 1000) / N / 1000).toFixed(2)}`)
    }
    if (round >= 2) console.log(line.join(" "))
  }
}
main()
