import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const script = join(import.meta.dirname, "..", "scripts", "pretest.sh")
const dirs: Array<string> = []
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })))

/** Runs `npm test`'s pretest with a PATH holding only bash, id and the given fake commands; installing is off. */
const pretest = (commands: ReadonlyArray<string>) => {
  const bin = mkdtempSync(join(tmpdir(), "llm-pretest-"))
  dirs.push(bin)
  for (const tool of ["bash", "id"]) {
    symlinkSync(spawnSync("which", [tool], { encoding: "utf8" }).stdout.trim(), join(bin, tool))
  }
  for (const command of commands) {
    writeFileSync(join(bin, command), "#!/bin/sh\n")
    chmodSync(join(bin, command), 0o755)
  }
  return spawnSync(join(bin, "bash"), [script], {
    encoding: "utf8",
    env: { PATH: bin, LLM_TEST_NO_INSTALL: "1" }
  })
}

describe("npm test's pretest (scripts/pretest.sh)", () => {
  it("stops with the one command to run when redis-server and prometheus are missing and it cannot install", () => {
    const run = pretest([])
    expect(run.status).toBe(1)
    expect(run.stderr).toContain("sudo apt-get install -y --no-install-recommends redis-server prometheus")
  })

  it("names only what is missing (promtool comes with prometheus)", () => {
    const run = pretest(["redis-server", "prometheus"])
    expect(run.status).toBe(1)
    expect(run.stderr).toContain("--no-install-recommends prometheus\n")
  })

  it("passes when everything is there", () => {
    expect(pretest(["redis-server", "prometheus", "promtool"]).status).toBe(0)
  })
})
