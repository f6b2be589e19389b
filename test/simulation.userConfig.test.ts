/**
 * `simulate --config`: the simulated client is the one the file builds. The simulator reads the file's tiers and
 * client settings through the same mapping as `build` (src/internal/config/settings.ts), so nothing the file sets is
 * left out of the simulation — a preset, a deadline, `when_all_refused`, a tier's connect timeout or capabilities.
 */
import { describe, expect, it } from "@effect/vitest"
import { configurationOf, settingsOf } from "../src/internal/simulation/userConfig.js"

const FILE = `
preset: interactive
deadline: 20 seconds
when_all_refused:
  wait: 5 seconds
strategy: cost-first
models:
  - id: fast
    provider: openai
    model: gpt-4o-mini
    api_key_env: SIM_TEST_KEY
    connect_timeout: 2 seconds
  - id: backup
    provider: anthropic
    model: claude-3-5-haiku-latest
    api_key_env: SIM_TEST_KEY
chain:
  - model: fast
    timeout: 10 seconds
  - model: backup
`

describe("simulate --config: the file's client", () => {
  it("carries every setting build would give Resilient.make", () => {
    const settings = settingsOf({ path: "resilient.yaml", text: FILE, format: "yaml" })
    const configuration = configurationOf(settings, "resilient.yaml")
    expect(configuration.client).toMatchObject({
      preset: "interactive",
      strategy: "cost-first",
      whenAllRefused: { wait: settings.whenAllRefused?.wait }
    })
    expect(configuration.client?.deadline).toEqual(settings.deadline)
    expect(configuration.client?.deadline).toBeDefined()
    expect(configuration.chain?.[0]).toMatchObject({
      timeout: settings.chain[0].timeout,
      connectTimeout: settings.chain[0].connectTimeout
    })
    expect(configuration.chain?.[0]?.connectTimeout).toBeDefined()
  })
})
