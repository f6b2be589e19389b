import { configurations, runConfiguration } from "./src/internal/simulation/run.js"
import { DAY, HOUR, makeScenario, type Scenario } from "./src/internal/simulation/scenario.js"
const scenario: Scenario = { ...makeScenario({ seed: 3, durationMs: DAY }), outages: [{ provider: "openai", start: 6 * HOUR, end: 7 * HOUR, kind: "errors", share: 1 }] }
for (const c of configurations) {
  const r = await runConfiguration({ scenario, configuration: c, requestsPerMinute: 4, quietSampling: 20 })
  console.log(JSON.stringify({ name: r.name, requests: r.requests, served: r.served, failed: r.failed, degraded: r.degraded, wastedCalls: r.wastedCalls, providerCalls: r.providerCalls, latencyMs: r.latencyMs, added: r.addedLatencyInIncidentsMs, costUsd: r.costUsd, breakerChanges: r.breakerChanges.length, lastChange: r.breakerChanges.at(-1) ?? null }))
}
