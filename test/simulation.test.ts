import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { formatReport, simulate } from "../src/cli/simulate.js"
import { renderHtml } from "../src/internal/simulation/chart.js"
import { autoSampling, configurations, runConfiguration } from "../src/internal/simulation/run.js"
import {
  DAY,
  defaultProfiles,
  HOUR,
  incidentMinutes,
  incidentWindows,
  makeScenario,
  MINUTE,
  type Scenario,
  YEAR
} from "../src/internal/simulation/scenario.js"
import { VirtualTime } from "../src/internal/simulation/virtualTime.js"

const configuration = (name: string) => {
  const found = configurations.find((candidate) => candidate.name === name)
  if (found === undefined) throw new Error(name)
  return found
}

describe("VirtualTime", () => {
  it("fires timers in time order, then in the order they were set, and jumps over idle time", async () => {
    const time = new VirtualTime()
    const order: Array<string> = []
    const program = Effect.gen(function*() {
      const at = (label: string, millis: number) =>
        Effect.fork(Effect.zipRight(Effect.sleep(millis), Effect.sync(() => order.push(`${label}@${time.now}`))))
      const fibers = [yield* at("c", 300), yield* at("a", 100), yield* at("b", 100), yield* at("year", YEAR)]
      yield* Fiber.joinAll(fibers)
      return time.now
    })
    const started = performance.now()
    const exit = await time.run(program)
    expect(exit).toEqual(Exit.succeed(YEAR))
    expect(order).toEqual(["a@100", "b@100", "c@300", `year@${YEAR}`])
    // A year of virtual time is not slept: generous bound for a loaded machine.
    expect(performance.now() - started).toBeLessThan(5_000)
  })

  it("drops the timer of an interrupted sleep and runs Effect.timeout on the virtual clock", async () => {
    const time = new VirtualTime()
    let fired = false
    const program = Effect.gen(function*() {
      const sleeper = yield* Effect.fork(Effect.zipRight(Effect.sleep(1_000), Effect.sync(() => (fired = true))))
      yield* Effect.sleep(500)
      yield* Fiber.interrupt(sleeper)
      const timedOut = yield* Effect.timeout(Effect.never, 2_000).pipe(Effect.option)
      yield* Effect.sleep(10_000)
      return { timedOut: timedOut._tag, now: time.now }
    })
    const exit = await time.run(program)
    expect(exit).toEqual(Exit.succeed({ timedOut: "None", now: 12_500 }))
    expect(fired).toBe(false)
  })
})

describe("scenario", () => {
  it("is a function of its seed, with each provider's incident count in its published range", () => {
    const a = makeScenario({ seed: 7 })
    expect(makeScenario({ seed: 7 })).toEqual(a)
    expect(makeScenario({ seed: 8 }).outages).not.toEqual(a.outages)
    for (const profile of defaultProfiles) {
      const own = a.outages.filter((outage) => outage.provider === profile.name)
      const [range] = profile.incidents
      expect(own.length).toBeGreaterThanOrEqual(range!.perYear[0])
      expect(own.length).toBeLessThanOrEqual(range!.perYear[1])
      for (const outage of own) {
        expect(outage.end).toBeGreaterThan(outage.start)
        expect(outage.end).toBeLessThanOrEqual(YEAR)
      }
    }
  })

  it("merges overlapping incident windows", () => {
    const scenario: Scenario = {
      ...makeScenario({ seed: 1, durationMs: DAY }),
      outages: [
        { provider: "openai", start: 2 * HOUR, end: 3 * HOUR, kind: "errors", share: 1 },
        { provider: "gemini-openai-compatible", start: 3 * HOUR + 10 * MINUTE, end: 4 * HOUR, kind: "hang", share: 1 },
        { provider: "anthropic", start: 10 * HOUR, end: 11 * HOUR, kind: "overloaded", share: 1 }
      ]
    }
    expect(incidentWindows(scenario, 15 * MINUTE)).toEqual([
      { start: 2 * HOUR - 15 * MINUTE, end: 4 * HOUR + 15 * MINUTE },
      { start: 10 * HOUR - 15 * MINUTE, end: 11 * HOUR + 15 * MINUTE }
    ])
  })
})

describe("runConfiguration", () => {
  // One day, the primary down with 503s for an hour, every request simulated.
  const scenario: Scenario = {
    ...makeScenario({ seed: 3, durationMs: DAY }),
    outages: [{ provider: "openai", start: 6 * HOUR, end: 7 * HOUR, kind: "errors", share: 1 }]
  }
  // Quiet hours are sampled; the incident window (±20 minutes) is simulated request by request.
  const run = (name: string, quietSampling = 20) =>
    runConfiguration({ scenario, configuration: configuration(name), requestsPerMinute: 4, quietSampling })

  it("drives the real library: a single provider fails through the outage, the full stack serves it", async () => {
    const single = await run("single")
    const full = await run("full")
    const fallback = await run("fallback")
    // ~240 requests arrive in the hour; the single provider fails each of them and serves everything else.
    expect(single.duringPrimaryOutage.requests).toBeGreaterThan(150)
    expect(single.failed).toBe(single.duringPrimaryOutage.requests)
    expect(single.served + single.failed).toBe(single.requests)
    expect(full.failed).toBe(0)
    expect(full.duringPrimaryOutage.served).toBe(full.duringPrimaryOutage.requests)
    expect(full.servedBy["anthropic:claude-haiku-4-5"]).toBeGreaterThan(150)
    // Without breakers every request first knocks on the down provider; with them, only probes do.
    expect(fallback.wastedCalls).toBeGreaterThan(full.duringPrimaryOutage.requests)
    expect(full.wastedCalls).toBeLessThan(fallback.wastedCalls / 4)
    // The primary's breaker opened during the outage and closed after it.
    const primary = full.breakerChanges.filter((change) => change.key === "openai:gpt-4.1-mini")
    expect(primary[0]?.to).toBe("Open")
    expect(primary[0]?.at).toBeGreaterThanOrEqual(6 * HOUR)
    expect(primary[0]?.at).toBeLessThan(6 * HOUR + 5 * MINUTE)
    expect(primary[primary.length - 1]?.to).toBe("Closed")
    expect(primary[primary.length - 1]?.at).toBeGreaterThanOrEqual(7 * HOUR)
    // Falling back costs latency only inside the outage, and the cost of Anthropic's answers shows.
    expect(full.addedLatencyInIncidentsMs.p50).toBeLessThan(fallback.addedLatencyInIncidentsMs.p50)
    // Every failure is the incident's: background errors are off.
    expect(single.failedInIncidents).toBe(single.failed)
    expect(single.failedBackground).toBe(0)
    expect(full.incidents[0]?.detectMs).toBeLessThan(5 * MINUTE)
    expect(full.incidents[0]?.recoverMs).not.toBeNull()
    expect(full.costUsd).toBeGreaterThan(single.costUsd)
  })

  it("charts the incident with a time axis, and the non-primary share on its own scale", async () => {
    const single = await run("single")
    const full = await run("full")
    const html = renderHtml(scenario, [single, full])
    // The zoom of the 60-minute incident (±20 minutes) has ticks from its start.
    for (const tick of [">start<", ">−20 min<", ">+10 min<", ">+60 min<", ">+80 min<"]) expect(html).toContain(tick)
    // At day scale the full stack's fallback share (an hour of 24 fell back: ~4 %) gets a scale that fits it.
    const scale = /scale: 0 to ([\d.]+) %/.exec(html)
    expect(Number(scale?.[1])).toBeGreaterThan(1)
    expect(Number(scale?.[1])).toBeLessThan(10)
    // Latency rows show the tail: p99 / p99.9 / max.
    expect(html).toContain("added latency in incidents p99 / p99.9 / max")
  })

  it("replays a fixed seed exactly: the figures pinned before the driver was optimised (issue 18)", async () => {
    // A change to how the simulator drives the client (arrivals, fibers, clock) must not change what it simulates.
    const pinned = {
      single: { served: 6452, failed: 238, degraded: 0, wastedCalls: 238, calls: 6690, p99: 2111.9801094159484 },
      retry: { served: 6452, failed: 238, degraded: 0, wastedCalls: 714, calls: 7166, p99: 2247.9979010671377 },
      fallback: { served: 6690, failed: 0, degraded: 0, wastedCalls: 714, calls: 7166, p99: 5560.943336691707 },
      full: { served: 6690, failed: 0, degraded: 0, wastedCalls: 13, calls: 6438, p99: 2147.4149146676064 }
    }
    for (const [name, expected] of Object.entries(pinned)) {
      const report = await run(name)
      expect(report.requests).toBe(6690)
      expect({
        served: report.served,
        failed: report.failed,
        degraded: report.degraded,
        wastedCalls: report.wastedCalls,
        calls: report.providerCalls["openai:gpt-4.1-mini"]?.calls,
        p99: report.latencyMs.p99
      }).toEqual(expected)
    }
    const full = await run("full")
    expect(full.breakerChanges).toHaveLength(19)
    expect(full.breakerChanges.at(-1)).toEqual({ at: 25627479.66282497, key: "openai:gpt-4.1-mini", to: "Closed" })
    expect(full.addedLatencyInIncidentsMs.p999).toBe(4306.838144376468)
    expect(full.costUsd).toBeCloseTo(3.7385, 9)
  })

  it("weights sampled quiet traffic back up to the full rate", async () => {
    const sampled = await run("single", 50)
    const exact = await run("single", 1)
    expect(sampled.simulatedRequests).toBeLessThan(exact.simulatedRequests / 4)
    expect(Math.abs(sampled.requests - exact.requests) / exact.requests).toBeLessThan(0.1)
    // Every request of the incident window is simulated, so the outage's failures are counted exactly.
    expect(sampled.failed).toBe(sampled.duringPrimaryOutage.requests)
  })
})

describe("the simulator against arithmetic", () => {
  it(
    "with background errors off, a single provider's availability is 1 − incident minutes ÷ minutes simulated",
    async () => {
      for (const seed of [1, 2, 3]) {
        // 60 days of the paper preset, full outages that fail every call (errors, overload, hangs), 10 requests a minute.
        const scenario = makeScenario({ seed, durationMs: 60 * DAY, kinds: { errors: 1, overloaded: 1, hang: 1 } })
        const rate = 10
        const sampling = autoSampling(scenario, rate)
        const report = await runConfiguration({
          scenario,
          configuration: configuration("single"),
          requestsPerMinute: rate,
          quietSampling: sampling
        })
        const expected = 1 - incidentMinutes(scenario, "openai") / (scenario.durationMs / MINUTE)
        // The sampling interval, widened by the Poisson noise of the arrivals inside incidents (simulated exactly, but
        // random): three standard deviations of the incident failures.
        const arrivals = (3 * Math.sqrt(Math.max(1, report.failed))) / report.requests
        const [low, high] = report.availabilityInterval ?? [report.availability, report.availability]
        expect(report.failedBackground).toBe(0)
        expect(expected).toBeGreaterThanOrEqual(low - arrivals)
        expect(expected).toBeLessThanOrEqual(high + arrivals)
        expect(report.sampling.sampled).toBeGreaterThanOrEqual(10_000)
      }
    },
    120_000
  )
})

describe("one incident on demand", () => {
  it(
    "a 45-minute hang at 10 requests a second: the default breaker sends at most 60 calls to it and fails nothing",
    async () => {
      // Two healthy minutes (the breaker learns the median latency), the outage, two minutes after: every request.
      const scenario = makeScenario({
        seed: 1,
        durationMs: 49 * MINUTE,
        outage: { provider: "openai", start: 2 * MINUTE, minutes: 45, kind: "hang" }
      })
      const full = await runConfiguration({ scenario, configuration: configuration("full"), requestsPerMinute: 600 })
      const [incident] = full.incidents
      expect(full.failed).toBe(0)
      expect(incident!.failed).toBe(0)
      expect(incident!.requests).toBeGreaterThan(25_000)
      expect(incident!.callsToProvider).toBeLessThanOrEqual(60)
      // Detected by hang detection within seconds, not after attempt timeouts pile up.
      expect(incident!.detectMs).toBeLessThan(10_000)
      expect(full.breakerChanges.find((change) => change.to === "Open")).toBeDefined()
    },
    300_000
  )
})

describe("simulate", () => {
  it("gives the same reports in worker threads as in this thread", async () => {
    const options = {
      days: 3,
      requestsPerMinute: 2,
      seed: 11,
      quietSampling: 10,
      configurations: ["single", "full"] as const
    }
    const inThread = await simulate({ ...options, parallel: 1 })
    const inWorkers = await simulate({ ...options, parallel: 2 })
    const strip = (reports: typeof inThread.reports) => reports.map(({ real: _real, ...rest }) => rest)
    expect(strip(inWorkers.reports)).toEqual(strip(inThread.reports))
    expect(inThread.reports.map((report) => report.name)).toEqual(["single", "full"])
  }, 60_000)

  it("prints simulated requests per second of the simulation proper, worker threads' start left out", async () => {
    const options = { days: 2, requestsPerMinute: 2, seed: 5, quietSampling: 1, configurations: ["single"] as const }
    for (const parallel of [1, 2]) {
      const simulation = await simulate({ ...options, parallel })
      expect(simulation.workers).toBe(parallel === 1 ? 0 : 1)
      // In this thread the run is all there is; a worker thread's start (loading the modules) is left out.
      expect(simulation.simulationSeconds).toBeGreaterThan(0)
      expect(simulation.simulationSeconds).toBeLessThanOrEqual(simulation.realSeconds)
      expect(simulation.simulationSeconds).toBeGreaterThanOrEqual(simulation.reports[0]!.real.seconds * 0.99)
      const simulated = simulation.reports[0]!.simulatedRequests
      const rate = Math.round(simulated / simulation.simulationSeconds).toLocaleString("en-US")
      expect(formatReport(simulation)).toContain(
        `Real time ${simulation.simulationSeconds.toFixed(1)} s simulating (${
          parallel === 1 ? "in this thread" : "1 at a time in worker threads;"
        }`
      )
      expect(formatReport(simulation)).toContain(
        `for ${simulated.toLocaleString("en-US")} simulated requests: ${rate} requests/s`
      )
    }
  }, 60_000)
})
