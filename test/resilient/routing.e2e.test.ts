/**
 * Routing over the real SDKs and real HTTP: two deployments of one model on two loopback servers (mockttp), balanced
 * by the rate-limit headers they send; a 429 moves the traffic to the other, and when both are down the next tier
 * (Anthropic, played by aimock) serves. And a request deadline that aborts a hanging HTTP request.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { getLocal, type Mockttp } from "mockttp"
import { AzureOpenAI } from "openai"
import { afterAll, beforeAll } from "vitest"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Resilient from "../../src/Resilient.js"
import { completionJson, JSON_HEADERS, useLoopbackServers } from "../support/openai-servers.js"

const servers = useLoopbackServers()
let west: Mockttp
beforeAll(async () => {
  west = getLocal()
  await west.start()
})
afterAll(async () => {
  await west.stop()
})

const apiKey = Redacted.make("test-key")
const rateHeaders = (remaining: number) => ({
  ...JSON_HEADERS,
  "x-ratelimit-limit-requests": "100",
  "x-ratelimit-remaining-requests": String(remaining),
  "x-ratelimit-reset-requests": "60s"
})

describe("Resilient routing over real HTTP", () => {
  it.scoped("two deployments: a 429 with rate-limit headers moves the traffic; both down → the next tier serves", () =>
    Effect.gen(function*() {
      const path = "/deploy/v1/chat/completions"
      // East answers once, then is rate limited; west answers throughout, then goes down.
      const eastOk = yield* Effect.promise(() =>
        servers.http.forPost(path).once().thenReply(200, completionJson({ content: "east" }), rateHeaders(3))
      )
      const east429 = yield* Effect.promise(() =>
        servers.http.forPost(path).thenReply(
          429,
          JSON.stringify({ error: { message: "slow down", type: "rate_limit_error" } }),
          { ...rateHeaders(0), "retry-after": "60" }
        )
      )
      const westOk = yield* Effect.promise(() =>
        west.forPost(path).times(6).thenReply(200, completionJson({ content: "west" }), rateHeaders(50))
      )
      yield* Effect.promise(() =>
        west.forPost(path).thenReply(
          503,
          JSON.stringify({ error: { message: "down", type: "server_error" } }),
          JSON_HEADERS
        )
      )
      servers.aimock.onMessage("routed question", { content: "answered by the backup" })
      const deployment = (name: string, server: Mockttp) => ({
        name,
        provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${server.url}/deploy/v1` })
      })
      const client = yield* Resilient.make({
        chain: [
          {
            deployments: [deployment("east", servers.http), deployment("west", west)],
            balance: "usage",
            retry: false,
            breaker: { consecutiveFailures: 2, cooldown: "1 minute" }
          },
          {
            provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: servers.aimock.url }),
            retry: false
          }
        ]
      })
      const request = { messages: [{ role: "user" as const, content: "routed question" }] }
      const served: Array<string> = []
      for (let i = 0; i < 6; i++) served.push((yield* client.complete(request)).servedBy)
      // Unknown usage first (both tried), then the one with more requests left: west (50) over east (3).
      expect(served.slice(0, 2).sort()).toEqual(["openai:gpt-4.1@east", "openai:gpt-4.1@west"])
      expect(served.slice(2)).toEqual(Array.from({ length: 4 }, () => "openai:gpt-4.1@west"))
      expect((yield* Effect.promise(() => eastOk.getSeenRequests())).length).toBe(1)

      // West runs out of its 6 answers after one more; then a 503. East was last seen with 3 left: tried, 429.
      const moved: Array<string> = []
      for (let i = 0; i < 4; i++) {
        const result = yield* client.complete(request)
        moved.push(result.servedBy)
      }
      expect((yield* Effect.promise(() => westOk.getSeenRequests())).length).toBe(6)
      expect((yield* Effect.promise(() => east429.getSeenRequests())).length).toBeGreaterThanOrEqual(1)
      expect(moved.at(-1)).toBe("anthropic:claude-sonnet-4-6")
      const last = yield* client.complete(request)
      expect(last.servedBy).toBe("anthropic:claude-sonnet-4-6")
      expect(last.content).toBe("answered by the backup")
    }))

  it.scoped("an Azure OpenAI deployment (the SDK's Azure client) next to a plain OpenAI one, weighted", () =>
    Effect.gen(function*() {
      const azurePath = "/openai/deployments/gpt41/chat/completions"
      const azure = yield* Effect.promise(() =>
        west.forPost(azurePath).thenReply(200, completionJson({ content: "from azure" }), JSON_HEADERS)
      )
      const plainPath = "/plain/v1/chat/completions"
      const plain = yield* Effect.promise(() =>
        servers.http.forPost(plainPath).thenReply(200, completionJson({ content: "from openai" }), JSON_HEADERS)
      )
      const client = yield* Resilient.make({
        chain: [{
          deployments: [
            {
              name: "azure",
              weight: 3,
              provider: OpenAi.make({
                model: "gpt-4.1",
                client: new AzureOpenAI({
                  endpoint: west.url,
                  apiKey: "azure-key",
                  apiVersion: "2024-10-21",
                  deployment: "gpt41"
                })
              })
            },
            {
              name: "openai",
              provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}/plain/v1` })
            }
          ],
          retry: false
        }]
      })
      const contents: Array<string> = []
      for (let i = 0; i < 8; i++) {
        contents.push((yield* client.complete({ messages: [{ role: "user", content: "hi" }] })).content)
      }
      expect(contents.filter((content) => content === "from azure").length).toBe(6)
      expect(contents.filter((content) => content === "from openai").length).toBe(2)
      const seen = yield* Effect.promise(() => azure.getSeenRequests())
      expect(seen.length).toBe(6)
      expect(seen[0]!.headers["api-key"]).toBe("azure-key")
      expect(seen[0]!.url).toContain("api-version=2024-10-21")
      expect((yield* Effect.promise(() => plain.getSeenRequests())).length).toBe(2)
    }))

  it.scoped("a request deadline aborts a hanging HTTP request, and FallbackExhausted says the deadline ran out", () =>
    Effect.gen(function*() {
      const path = "/hang/v1/chat/completions"
      yield* Effect.promise(() => servers.http.forPost(path).thenTimeout())
      let arrived: () => void = () => {}
      const seen = new Promise<void>((resolve) => {
        arrived = resolve
      })
      let aborted: () => void = () => {}
      const abort = new Promise<void>((resolve) => {
        aborted = resolve
      })
      yield* Effect.promise(() => servers.http.on("request", (request) => request.path === path && arrived()))
      yield* Effect.promise(() => servers.http.on("abort", (request) => request.path === path && aborted()))
      const client = yield* Resilient.make({
        chain: [{
          provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${servers.http.url}/hang/v1` }),
          retry: false
        }]
      })
      const fiber = yield* Effect.fork(
        Effect.flip(client.complete({ messages: [{ role: "user", content: "hang" }] }, { deadline: "5 seconds" }))
      )
      // Wait (in real time) for the request to reach the server, then let the deadline pass on the test clock.
      yield* Effect.promise(() => seen)
      yield* TestClock.adjust("5 seconds")
      // The deadline interrupted the call: the SDK aborted its HTTP request.
      yield* Effect.promise(() => abort)
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("FallbackExhausted")
      if (error._tag !== "FallbackExhausted") return
      expect(error.deadlineExceeded).toBe(true)
      expect(error.attempts).toMatchObject([{ error: "HardFailure", reason: "Timeout" }])
    }))
})
