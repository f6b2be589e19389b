/**
 * Loopback servers and small helpers shared by the OpenAI and OpenAI-compatible provider tests.
 *
 * - aimock (`LLMock`) speaks the OpenAI chat API from fixtures and keeps a request journal.
 * - mockttp serves what aimock cannot: custom headers, broken bodies, resets, hanging requests, hand-written SSE.
 */
import { type JournalEntry, LLMock } from "@copilotkit/aimock"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { getLocal, type Mockttp } from "mockttp"
import { EventEmitter, once } from "node:events"
import { afterAll, beforeAll } from "vitest"
import type { CompletionRequestInput, StreamChunk } from "../../src/Llm.js"
import type { HardFailure, InvalidRequest } from "../../src/LlmError.js"

/** A distinctive key: any failure that printed it would be caught by a substring check. */
export const SECRET_KEY = "sk-test-SECRET-123"
export const apiKey = Redacted.make(SECRET_KEY)

export const startAimock = async (): Promise<LLMock> => {
  const mock = new LLMock({ port: 0, host: "127.0.0.1", logLevel: "silent" })
  await mock.start()
  return mock
}

/** A mockttp server whose `request` / `abort` events are re-emitted per path, so tests can await them. */
export interface HttpMock {
  readonly server: Mockttp
  readonly events: EventEmitter
  /** A fresh OpenAI base URL (ending in `/v1`) and the chat completions path under it, unique per test. */
  readonly route: (name: string) => { readonly baseURL: string; readonly path: string }
  /** Resolves when the server has received the whole request for `path`. */
  readonly requestSeen: (path: string) => Promise<unknown>
  /** Resolves when the client aborted the request for `path` before its response completed. */
  readonly requestAborted: (path: string) => Promise<unknown>
}

export const startMockttp = async (): Promise<HttpMock> => {
  const server = getLocal()
  await server.start()
  const events = new EventEmitter()
  await server.on("request", (request) => events.emit(`request:${request.path}`))
  await server.on("abort", (request) => events.emit(`abort:${request.path}`))
  return {
    server,
    events,
    route: (name) => ({
      baseURL: `http://127.0.0.1:${server.port}/${name}/v1`,
      path: `/${name}/v1/chat/completions`
    }),
    requestSeen: (path) => once(events, `request:${path}`),
    requestAborted: (path) => once(events, `abort:${path}`)
  }
}

/** A one-message request whose text is also the marker fixtures and journal lookups key on. */
export const ask = (marker: string, extra: Omit<CompletionRequestInput, "messages"> = {}): CompletionRequestInput => ({
  messages: [{ role: "user", content: marker }],
  ...extra
})

/** Matches exactly this user message (aimock's string match is a substring match). */
export const exactly = (marker: string): RegExp => new RegExp(`^${marker}$`)

export const bodyOf = (entry: JournalEntry): Record<string, unknown> => (entry.body ?? {}) as Record<string, unknown>

const lastUserText = (entry: JournalEntry): string | undefined => {
  const messages = bodyOf(entry)["messages"]
  if (!Array.isArray(messages)) return undefined
  const last: unknown = messages.filter((m: { role?: unknown }) => m.role === "user").at(-1)
  return typeof last === "object" && last !== null && "content" in last && typeof last.content === "string"
    ? last.content
    : undefined
}

/** The journal entries for requests whose last user message is `marker`. */
export const journalFor = (mock: LLMock, marker: string): Array<JournalEntry> =>
  mock.getRequests().filter((entry) => lastUserText(entry) === marker)

/** Narrows a provider failure to a HardFailure, failing the test otherwise. */
export const asHard = (error: HardFailure | InvalidRequest): HardFailure => {
  if (error._tag !== "HardFailure") throw new Error(`expected a HardFailure, got ${error._tag}: ${error.message}`)
  return error
}

/** Narrows a provider failure to an InvalidRequest, failing the test otherwise. */
export const asInvalid = (error: HardFailure | InvalidRequest): InvalidRequest => {
  if (error._tag !== "InvalidRequest") {
    throw new Error(`expected an InvalidRequest, got ${error._tag}: ${error.message}`)
  }
  return error
}

/** Runs a stream to its end, keeping every chunk the consumer saw before it ended or failed. */
export const collect = <E>(
  stream: Stream.Stream<StreamChunk, E>
): Effect.Effect<{ readonly received: ReadonlyArray<StreamChunk>; readonly result: Either.Either<void, E> }> =>
  Effect.suspend(() => {
    const received: Array<StreamChunk> = []
    return Stream.runForEach(stream, (chunk) => Effect.sync(() => received.push(chunk))).pipe(
      Effect.either,
      Effect.map((result) => ({ received, result }))
    )
  })

/** The text of the `ContentDelta` chunks, in order. */
export const deltaTexts = (chunks: ReadonlyArray<StreamChunk>): Array<string> =>
  chunks.flatMap((chunk) => chunk._tag === "ContentDelta" ? [chunk.text] : [])

/** An OpenAI `chat.completion` body. */
export const completionJson = (options: {
  readonly content: string
  readonly model?: string
  readonly finishReason?: string
  readonly usage?: { readonly prompt_tokens: number; readonly completion_tokens: number } | undefined
}): string =>
  JSON.stringify({
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 1_700_000_000,
    model: options.model ?? "gpt-4o-2024-08-06",
    choices: [{
      index: 0,
      message: { role: "assistant", content: options.content, refusal: null },
      logprobs: null,
      finish_reason: options.finishReason ?? "stop"
    }],
    ...(options.usage !== undefined
      ? {
        usage: {
          ...options.usage,
          total_tokens: options.usage.prompt_tokens + options.usage.completion_tokens
        }
      }
      : {})
  })

/** An OpenAI `chat.completion.chunk` event. */
export const chunkEvent = (options: {
  readonly content?: string
  readonly finishReason?: string
  readonly model?: string
}): Record<string, unknown> => ({
  id: "chatcmpl-test",
  object: "chat.completion.chunk",
  created: 1_700_000_000,
  model: options.model ?? "gpt-4o-2024-08-06",
  choices: [{
    index: 0,
    delta: options.content !== undefined ? { content: options.content } : {},
    logprobs: null,
    finish_reason: options.finishReason ?? null
  }]
})

/** Server-sent events: one `data:` line per event; strings are sent verbatim (e.g. `[DONE]`). */
export const sse = (events: ReadonlyArray<unknown>): string =>
  events.map((event) => `data: ${typeof event === "string" ? event : JSON.stringify(event)}\n\n`).join("")

export const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" } as const
export const JSON_HEADERS = { "content-type": "application/json" } as const

/** aimock and a plain mockttp server for a test file: started before its tests, stopped after them. */
export class LoopbackServers {
  aimock!: LLMock
  http!: Mockttp
}

export const useLoopbackServers = (): LoopbackServers => {
  const servers = new LoopbackServers()
  beforeAll(async () => {
    servers.aimock = await startAimock()
    servers.http = getLocal()
    await servers.http.start()
  })
  afterAll(async () => {
    await Promise.all([servers.aimock.stop(), servers.http.stop()])
  })
  return servers
}
