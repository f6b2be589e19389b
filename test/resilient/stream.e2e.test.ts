/**
 * Resilient.stream through the real SDKs over real HTTP: mockttp plays the hanging, stalling or failing provider,
 * aimock the healthy one.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { PassThrough } from "node:stream"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as OpenAi from "../../src/providers/OpenAi.js"
import * as Resilient from "../../src/Resilient.js"
import { errorEvent, SSE_HEADERS, streamPrefix } from "../support/anthropic-servers.js"
import { chunkEvent, completionJson, JSON_HEADERS, sse, useLoopbackServers } from "../support/openai-servers.js"

const apiKey = Redacted.make("test-key")
const servers = useLoopbackServers()
/** A live test whose client lives in the test's scope. */
const liveScoped = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope>) =>
  it.live(name, () => Effect.scoped(body()))

const ask = (content: string) => ({ messages: [{ role: "user" as const, content }] })

const consume = <E>(stream: Stream.Stream<Resilient.ResilientStreamChunk, E>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const chunks = yield* Effect.either(Stream.runCollect(stream))
    const elapsed = Date.now() - started
    return Either.map(chunks, (collected) => {
      let text = ""
      let end: Resilient.ResilientStreamEnd | undefined
      for (const chunk of collected) {
        if (chunk._tag === "ContentDelta") text += chunk.text
        else if (chunk._tag === "StreamEnd") end = chunk
      }
      return { text, end, elapsed }
    })
  })

/** A response body that sends `head` and then nothing, until the test closes it. */
const stalled = (head: string) => {
  const body = new PassThrough()
  body.write(head)
  return body
}

const providers = {
  openai: (baseURL: string) => OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: `${baseURL}/v1` }),
  anthropic: (baseURL: string) => Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL })
}
const endpoint = { openai: "/v1/chat/completions", anthropic: "/v1/messages" }
const twoChunks = {
  openai: sse([chunkEvent({ content: "Hel" }), chunkEvent({ content: "lo" })]),
  anthropic: streamPrefix(["Hel", "lo"])
}

describe("Resilient.stream over real HTTP", () => {
  for (const [primaryName, backupName] of [["openai", "anthropic"], ["anthropic", "openai"]] as const) {
    liveScoped(
      `${primaryName} hangs before its first byte → ${backupName} serves within the first-chunk timeout`,
      () =>
        Effect.gen(function*() {
          const prefix = `/hang-${primaryName}`
          yield* Effect.promise(() => servers.http.forPost(`${prefix}${endpoint[primaryName]}`).thenTimeout())
          const marker = `hang-before-first-byte-${primaryName}`
          servers.aimock.onMessage(marker, { content: "The backup answers." })
          const client = yield* Resilient.make({
            chain: [
              {
                provider: providers[primaryName](`${servers.http.url}${prefix}`),
                retry: false,
                firstChunkTimeout: "300 millis"
              },
              { provider: providers[backupName](servers.aimock.url) }
            ]
          })
          const outcome = yield* consume(client.stream(ask(marker)))
          expect(Either.isRight(outcome)).toBe(true)
          if (Either.isLeft(outcome)) return
          expect(outcome.right.text).toBe("The backup answers.")
          expect(outcome.right.elapsed).toBeLessThan(300 + 2_000)
          expect(outcome.right.end?.result.servedBy.startsWith(backupName)).toBe(true)
          expect(outcome.right.end?.result.attempts.map((attempt) => attempt.reason)).toEqual(["Timeout"])
        })
    )

    liveScoped(
      `${primaryName} stalls after two chunks → typed Timeout with the text; the next call is admitted at once`,
      () =>
        Effect.gen(function*() {
          const prefix = `/stall-${primaryName}`
          const body = stalled(twoChunks[primaryName])
          yield* Effect.promise(() =>
            servers.http.forPost(`${prefix}${endpoint[primaryName]}`).once().thenStream(200, body, SSE_HEADERS)
          )
          yield* Effect.promise(() =>
            primaryName === "openai"
              ? servers.http.forPost(`${prefix}${endpoint.openai}`).thenReply(
                200,
                completionJson({ content: "admitted", usage: { prompt_tokens: 1, completion_tokens: 1 } }),
                JSON_HEADERS
              )
              : servers.http.forPost(`${prefix}${endpoint.anthropic}`).thenReply(
                200,
                JSON.stringify({
                  id: "msg_1",
                  type: "message",
                  role: "assistant",
                  model: "claude-sonnet-4-6",
                  content: [{ type: "text", text: "admitted" }],
                  stop_reason: "end_turn",
                  stop_sequence: null,
                  usage: { input_tokens: 1, output_tokens: 1 }
                }),
                JSON_HEADERS
              )
          )
          const client = yield* Resilient.make({
            chain: [{
              provider: providers[primaryName](`${servers.http.url}${prefix}`),
              retry: false,
              stallTimeout: "300 millis",
              limits: { concurrency: 1 }
            }],
            rateLimit: { mode: "fail-fast" }
          })
          const outcome = yield* consume(client.stream(ask(`stall-${primaryName}`)))
          body.end()
          expect(Either.isLeft(outcome) && outcome.left).toMatchObject({
            _tag: "HardFailure",
            reason: "Timeout",
            providerCode: "stream_stall",
            partialContent: "Hello"
          })
          // Fail-fast, concurrency 1: a permit still held would refuse this call.
          const next = yield* client.complete(ask(`after-stall-${primaryName}`))
          expect(next.content).toBe("admitted")
        })
    )
  }

  liveScoped(
    "an Anthropic overloaded_error after two chunks continues on OpenAI: the full text exactly once",
    () =>
      Effect.gen(function*() {
        yield* Effect.promise(() =>
          servers.http.forPost("/overloaded/v1/messages").thenReply(
            200,
            streamPrefix(["The breaker ", "opened "]) + errorEvent("overloaded_error", "Overloaded"),
            SSE_HEADERS
          )
        )
        servers.aimock.onMessage(/Continue exactly where/, {
          content: "The breaker opened and traffic moved to the backup."
        })
        const client = yield* Resilient.make({
          chain: [
            { provider: providers.anthropic(`${servers.http.url}/overloaded`), retry: false },
            { provider: providers.openai(servers.aimock.url) }
          ],
          continuation: true
        })
        const outcome = yield* consume(client.stream(ask("resilient-continuation-over-http")))
        expect(Either.isRight(outcome)).toBe(true)
        if (Either.isLeft(outcome)) return
        expect(outcome.right.text).toBe("The breaker opened and traffic moved to the backup.")
        expect(outcome.right.end?.result).toMatchObject({
          content: "The breaker opened and traffic moved to the backup.",
          servedBy: "openai:gpt-4.1",
          fallbackFrom: "anthropic:claude-sonnet-4-6"
        })
      })
  )
})
