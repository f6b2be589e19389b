/**
 * End to end: a YAML file on disk whose chain points at aimock (a real HTTP server) builds the Resilient Layer, and
 * `Resilient.complete` is served through the real SDKs — failing over when the first model's base URL points at a
 * closed port.
 */
import { LLMock } from "@copilotkit/aimock"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as ResilienceConfig from "../src/Config.js"
import * as Resilient from "../src/Resilient.js"

let aimock: LLMock
let dir: string
let closedPort: number

/** A port that was just free: bound, then released, so connecting to it is refused. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

beforeAll(async () => {
  aimock = new LLMock({ port: 0, host: "127.0.0.1", logLevel: "silent" })
  await aimock.start()
  closedPort = await freePort()
  dir = await mkdtemp(join(tmpdir(), "llm-config-"))
})

afterAll(async () => {
  await aimock.stop()
  await rm(dir, { recursive: true, force: true })
})

const env = {
  PRIMARY_KEY: "sk-primary-test",
  BACKUP_KEY: "sk-backup-test",
  ANTHROPIC_API_KEY: "sk-ant-test"
}

const provideConfigLayer = (path: string) =>
  Effect.provide(
    ResilienceConfig.layerFromFile(path).pipe(
      Layer.provide(NodeFileSystem.layer),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
    )
  )

describe("ResilienceConfig over real HTTP (aimock)", () => {
  it.live("a closed port for the first model → failover to the second, through the real SDKs", () =>
    Effect.gen(function*() {
      aimock.onMessage("config failover question", { content: "answered by the openai backup" })
      const path = join(dir, "failover.yaml")
      yield* Effect.promise(() =>
        writeFile(
          path,
          `
models:
  - id: primary
    provider: openai
    model: gpt-4.1
    api_key_env: PRIMARY_KEY
    base_url: http://127.0.0.1:${closedPort}/v1
    timeout: 5 seconds
  - id: backup
    provider: openai
    name: openai-backup
    model: gpt-4.1-mini
    api_key_env: BACKUP_KEY
    base_url: ${aimock.url}/v1
chain:
  - model: primary
    retry: false
    breaker: { threshold: 2, cooldown: 1 minute }
  - backup
`
        )
      )
      const result = yield* Resilient.complete({
        messages: [{ role: "user", content: "config failover question" }]
      }).pipe(provideConfigLayer(path))
      expect(result.content).toBe("answered by the openai backup")
      expect(result.servedBy).toBe("openai-backup:gpt-4.1-mini")
      expect(result.tier).toBe(2)
      expect(result.fallbackFrom).toBe("openai:gpt-4.1")
      expect(result.attempts[0]?.label).toBe("openai:gpt-4.1")
      expect(result.attempts[0]?.reason).toBe("Connection")
    }))

  it.live("breaker settings from the file govern the built client; an Anthropic model answers", () =>
    Effect.gen(function*() {
      aimock.onMessage("config anthropic question", { content: "answered by claude" })
      const path = join(dir, "anthropic.yaml")
      yield* Effect.promise(() =>
        writeFile(
          path,
          `
models:
  - id: dead
    provider: openai
    model: gpt-4.1
    api_key_env: PRIMARY_KEY
    base_url: http://127.0.0.1:${closedPort}/v1
  - id: claude
    provider: anthropic
    model: claude-sonnet-4-6
    base_url: ${aimock.url}
chain:
  - model: dead
    retry: false
    breaker: { threshold: 2, cooldown: 1 minute }
  - claude
`
        )
      )
      yield* Effect.gen(function*() {
        const client = yield* Resilient.Resilient
        const request = { messages: [{ role: "user" as const, content: "config anthropic question" }] }
        for (let i = 0; i < 2; i++) {
          const result = yield* client.complete(request)
          expect(result.servedBy).toBe("anthropic:claude-sonnet-4-6")
          expect(result.content).toBe("answered by claude")
          expect(result.attempts[0]?.reason).toBe("Connection")
        }
        expect(yield* client.breakers.get("openai:gpt-4.1")!.state).toBe("Open")
        const third = yield* client.complete(request)
        expect(third.servedBy).toBe("anthropic:claude-sonnet-4-6")
        expect(third.attempts[0]?.error).toBe("CircuitOpen")
      }).pipe(provideConfigLayer(path))
    }))
})
