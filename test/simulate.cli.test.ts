/**
 * The simulator's command line as a user runs it (`tsx src/cli/main.ts simulate …`), output piped: help with its
 * defaults and without ANSI codes, bad paths refused before the run, and a configuration file run through a scenario.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdtemp, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "simulate", ...args],
      { env: { ...process.env, ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })
    )
  })

const ANSI = /\u001b\[/

const yaml = `
timeout: 10 seconds
models:
  - id: primary
    provider: openai
    model: gpt-4.1-mini
    api_key_env: SIMULATOR_TEST_NEVER_READ
  - id: backup
    provider: anthropic
    model: claude-haiku-4-5
    api_key_env: SIMULATOR_TEST_NEVER_READ_EITHER
chain: [primary, backup]
`

describe("simulate, the command line", () => {
  it("--help shows the defaults and no ANSI codes into a pipe, with or without NO_COLOR", async () => {
    for (const env of [{}, { NO_COLOR: "1" }]) {
      const help = await cli(["--help"], env)
      expect(help.code).toBe(0)
      expect(help.stdout).toContain("(default 365)")
      expect(help.stdout).toContain("--config")
      expect(ANSI.test(help.stdout + help.stderr)).toBe(false)
    }
  }, 120_000)

  it("a chart or JSON path that cannot be written, or a missing config file, fails before the run", async () => {
    const chart = await cli(["--days", "1", "--chart", "/missing/dir/x.html"])
    expect(chart.code).not.toBe(0)
    expect(chart.stdout + chart.stderr).toContain("--chart: cannot write /missing/dir/x.html")
    expect(chart.stdout).not.toContain("Simulating")
    const json = await cli(["--days", "1", "--chart", "", "--json", "/missing/dir/x.json"])
    expect(json.stdout + json.stderr).toContain("--json: cannot write /missing/dir/x.json")
    expect(json.stdout).not.toContain("Simulating")
    const config = await cli(["--days", "1", "--chart", "", "--config", "/missing/resilience.yaml"])
    expect(config.code).not.toBe(0)
    expect(config.stdout + config.stderr).toContain("--config: cannot read /missing/resilience.yaml")
    expect(ANSI.test(config.stdout + config.stderr)).toBe(false)
  }, 120_000)

  it("--config runs the user's file next to the single provider, and names its mistakes before the run", async () => {
    const dir = await mkdtemp(join(tmpdir(), "simulate-cli-"))
    const good = join(dir, "resilience.yaml")
    const bad = join(dir, "broken.yaml")
    const report = join(dir, "report.json")
    await writeFile(good, yaml)
    await writeFile(bad, yaml.replace("timeout: 10 seconds", "timeout: 10 parsecs"))

    const refused = await cli(["--days", "1", "--chart", "", "--config", bad])
    expect(refused.code).not.toBe(0)
    expect(refused.stdout + refused.stderr).toContain("timeout")
    expect(refused.stdout).not.toContain("Simulating")

    const run = await cli([
      "--days",
      "2",
      "--chart",
      "",
      "--parallel",
      "1",
      "--config",
      good,
      "--outage",
      "openai:30m:errors",
      "--json",
      report
    ])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("your config")
    const written: unknown = JSON.parse(await readFile(report, "utf8"))
    const reports = (written as { reports: ReadonlyArray<{ name: string; failed: number; requests: number }> }).reports
    expect(reports.map((entry) => entry.name)).toEqual(["single", "config"])
    // The single provider fails through the 30-minute outage; the file's two-tier chain falls back and does not.
    expect(reports[0]!.failed).toBeGreaterThan(100)
    expect(reports[1]!.failed).toBe(0)
  }, 180_000)
})
