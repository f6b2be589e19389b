/**
 * The demo, in process and compressed to 8 seconds (every phase and policy duration scales with the run), against
 * the embedded emulator: real SDKs, real HTTP, injected 429s, 503s and 529s. The assertions are about what must
 * happen and in which order, with wide margins, never about exact timings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Demo from "../src/cli/demo.js"

const PRIMARY = "openai:gpt-4.1-mini"
const BACKUP = "anthropic:claude-haiku-4-5"
const LOCAL = "local:llama3.1"

describe("demo", () => {
  it.live("fails over through the chain during the scripted outage and recovers", () =>
    Effect.gen(function*() {
      const output: Array<string> = []
      const summary = yield* Demo.run({
        durationMs: 8_000,
        // Half the default load: the test shares two cores with the rest of the suite.
        intervalMs: 100,
        concurrency: 2,
        output: "lines",
        write: (text) => output.push(text)
      })
      const text = output.join("")

      // The demo's own verdict, which is also its exit code. On failure, its output says what happened.
      const failed = summary.checks.filter((check) => !check.ok)
      expect(failed, text).toEqual([])
      expect(summary.ok).toBe(true)

      // Every request is accounted for exactly once: by who answered it, and by the segment it completed in.
      expect(summary.failed).toBe(0)
      expect(summary.unfinished).toBe(0)
      expect(summary.sent).toBeGreaterThan(50)
      expect(summary.answered).toBe(summary.sent)
      expect(summary.servedBy.reduce((sum, row) => sum + row.count, 0)).toBe(summary.answered)
      expect(summary.segments.reduce((sum, segment) => sum + segment.answered + segment.failed, 0)).toBe(summary.sent)
      expect(summary.segments.map((segment) => segment.name)).toEqual([
        "healthy",
        "429 storm",
        "503 outage",
        "spillover",
        "503 outage",
        "recovery"
      ])

      // All three tiers answered something.
      const served = (label: string) => summary.servedBy.find((row) => row.label === label)?.count ?? 0
      expect(served(PRIMARY)).toBeGreaterThan(0)
      expect(served(BACKUP)).toBeGreaterThan(0)
      expect(served(LOCAL)).toBeGreaterThan(0)
      expect(summary.fallbackRate).toBeGreaterThan(0)
      expect(summary.fallbackRate).toBeLessThan(1)

      // The primary's breaker: closed while healthy, opened during the outage, closed at the end.
      const primaryChanges = summary.transitions.filter((change) => change.key === PRIMARY)
      const segment = (index: number): Pick<Demo.SegmentSummary, "startMs" | "servedBy"> =>
        summary.segments[index] ?? { startMs: NaN, servedBy: {} }
      const stormStart = summary.startedAt + segment(1).startMs
      const recoveryStart = summary.startedAt + segment(5).startMs
      const firstOpen = primaryChanges.find((change) => change.to === "Open")?.at ?? NaN
      expect(firstOpen).toBeGreaterThanOrEqual(stormStart)
      expect(firstOpen).toBeLessThan(recoveryStart)
      expect(primaryChanges.at(-1)?.to).toBe("Closed")
      expect(summary.finalStates[PRIMARY]).toBe("Closed")

      // While the primary was down and the backup healthy, the backup did the work; in recovery the primary did.
      const down = [segment(2), segment(4)]
      const downServed = (label: string) => down.reduce((sum, segment) => sum + (segment.servedBy[label] ?? 0), 0)
      expect(downServed(BACKUP)).toBeGreaterThan(downServed(PRIMARY))
      const recovery = segment(5)
      expect(recovery.servedBy[PRIMARY] ?? 0).toBeGreaterThan(recovery.servedBy[BACKUP] ?? 0)
      expect(segment(0).servedBy[PRIMARY] ?? 0).toBeGreaterThan(0)

      // A fallback costs more here (the backup's list price is higher, the local model is free), and is measured.
      expect(summary.costUsd).toBeGreaterThan(0)
      expect(summary.healthyP50Ms).toBeDefined()

      // Line mode is for CI logs: no escape codes, one line per phase, the summary and the checks.
      expect(text).not.toContain("\u001b")
      expect(text).toContain("── 429 storm")
      expect(text).toContain("── recovery")
      expect(text).toContain(`breaker ${PRIMARY}: Closed → Open`)
      expect(text).toContain("Summary")
      expect(text).not.toContain("FAIL")
    }), 40_000)

  it.effect("refuses options it cannot run with", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Demo.run({ durationMs: 1_000, output: "quiet" }))
      expect(error._tag).toBe("DemoSetupError")
      expect(error.message).toContain("--duration")
    }))

  it.effect("--live without keys fails with a clear message and sends nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Demo.run({ live: true, output: "quiet" })).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", "sk-test"]])))
      )
      expect(error._tag).toBe("DemoSetupError")
      expect(error.message).toContain("missing: ANTHROPIC_API_KEY")
      expect(error.message).not.toContain("sk-test")
    }))
})
