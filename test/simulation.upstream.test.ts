/**
 * The simulated upstream takes a `Resilient` tier's attempt deadline into its call, as the SDK providers do: no fiber
 * per call. Differential test: the same calls through the forking `timeoutFail` (a wrapper around `complete`, which
 * the library does not hand the deadline to) end the same way at the same virtual time.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { PCGRandom } from "effect/Utils"
import { completeWithin } from "../src/internal/providerTimeouts.js"
import { HOUR, type IncidentKind, makeScenario, MINUTE, OutageIndex } from "../src/internal/simulation/scenario.js"
import { makeUpstream } from "../src/internal/simulation/upstream.js"
import { VirtualTime } from "../src/internal/simulation/virtualTime.js"
import { hardFailure } from "../src/LlmError.js"
import type { Service } from "../src/LlmProvider.js"
import { Forks } from "./support/forks.js"

const request = { messages: [{ role: "user" as const, content: "Simulated question 1" }], maxTokens: 256 }

/** Calls at `at` (ms), each with a 10 s attempt deadline: exits, end times and fibers forked. */
const callsThrough = async (kind: IncidentKind, forking: boolean, at: ReadonlyArray<number>) => {
  const scenario = makeScenario({ seed: 4, outage: { provider: "openai", start: HOUR, minutes: 30, kind } })
  const time = new VirtualTime()
  const upstream = makeUpstream(
    scenario.profiles[0]!,
    scenario,
    new OutageIndex(scenario.outages),
    new PCGRandom(9),
    () => time.now,
    () => 1
  )
  const provider: Service = forking
    ? { ...upstream.provider, complete: (input) => upstream.provider.complete(input) }
    : upstream.provider
  const attempt = {
    duration: Duration.seconds(10),
    onTimeout: () => hardFailure({ reason: "Timeout", provider: "openai", model: "m", providerCode: "attempt_timeout" })
  }
  const forks = new Forks()
  const program = Effect.forEach(at, (millis) =>
    Effect.gen(function*() {
      yield* Effect.sleep(millis - time.now)
      const exit = yield* Effect.exit(
        completeWithin(provider, request, attempt).pipe(
          Effect.supervised(forks)
        )
      )
      return { exit, end: time.now - millis }
    }))
  const exit = await time.run(program)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return { results: exit.value, forks: forks.count, calls: upstream.counters.calls }
}

describe("simulated upstream", () => {
  const at = [10 * MINUTE, HOUR + MINUTE, HOUR + 2 * MINUTE, 2 * HOUR]
  for (const kind of ["hang", "errors", "slow"] as const) {
    it(`${kind}: the deadline in the call ends each call as the forking timeout does`, async () => {
      const inCall = await callsThrough(kind, false, at)
      const forked = await callsThrough(kind, true, at)
      expect(inCall.results).toEqual(forked.results)
      expect(inCall.calls).toBe(at.length)
      // The forking path starts a fiber per call (and the shared deadline timer); the upstream's own, none.
      expect(inCall.forks).toBe(0)
      expect(forked.forks).toBeGreaterThanOrEqual(at.length)
      if (kind === "hang") {
        // Hung calls end at the attempt's deadline with its Timeout, not after the upstream's two minutes.
        expect(inCall.results[1]!.end).toBe(10_000)
        expect(Exit.isFailure(inCall.results[1]!.exit)).toBe(true)
        expect(String(Exit.isFailure(inCall.results[1]!.exit) && inCall.results[1]!.exit.cause)).toContain(
          "attempt_timeout"
        )
      }
      // Healthy calls answer before the deadline with the same value either way.
      expect(Exit.isSuccess(inCall.results[0]!.exit)).toBe(true)
    })
  }
})
