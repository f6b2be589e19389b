/**
 * A small agent loop with two tools on a two-provider chain — OpenAI, then Anthropic — run against the embedded
 * provider emulator: real SDKs over real HTTP on 127.0.0.1, no keys, no network.
 *
 * OpenAI answers the first turn with a tool call, then goes down (503). The conversation, with OpenAI's tool call and
 * its result in the history, fails over to Anthropic, which calls the second tool and answers. The program checks
 * that this happened (it exits 1 otherwise).
 *
 *   npm run build && npx tsx examples/tool-agent.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Redacted, Schema } from "effect"
import { Anthropic, Llm, OpenAi, Quality, Resilient } from "effect-llm-resilience"
import { ProviderEmulator } from "effect-llm-resilience/testing"

// ── The tools: schemas for the model (JSON Schema) and for checking its arguments (Effect Schema). ─────────────────

const Weather = Schema.Struct({ city: Schema.String })
const Time = Schema.Struct({ zone: Schema.String })
const schemas = { get_weather: Weather, get_time: Time }
const tools = [
  Llm.tool("get_weather", { description: "Current weather of a city", parameters: Weather }),
  Llm.tool("get_time", { description: "Current time in a time zone", parameters: Time })
]

const run = (call: Quality.DecodedToolCall<typeof schemas>): string =>
  call.name === "get_weather"
    ? JSON.stringify({ city: call.value.city, celsius: 21 })
    : JSON.stringify({ zone: call.value.zone, time: "10:00" })

// ── The agent loop: ask, run the tools the model calls, send the results back, until it answers. ───────────────────

type Message = Llm.CompletionRequestInput["messages"][number]

const agent = (question: string) =>
  Effect.gen(function*() {
    const messages: Array<Message> = [{ role: "user", content: question }]
    const servedBy: Array<string> = []
    for (let turn = 0; turn < 5; turn++) {
      const answer = yield* Resilient.complete({ messages, tools })
      servedBy.push(answer.servedBy)
      yield* Console.log(
        `  turn ${turn + 1} → ${answer.servedBy}${answer.fallbackFrom ? ` (after ${answer.fallbackFrom} failed)` : ""}`
      )
      if (answer.finishReason !== "tool_calls") return { content: answer.content, servedBy }
      messages.push({ role: "assistant", toolCalls: answer.toolCalls ?? [] })
      for (const call of yield* Quality.decodeToolCalls(schemas)(answer)) {
        yield* Console.log(`    ${call.name}(${JSON.stringify(call.value)}) [id ${call.id}]`)
        messages.push({ role: "tool", toolCallId: call.id, content: run(call) })
      }
    }
    return yield* Effect.dieMessage("the agent did not finish in 5 turns")
  })

// ── The demo: an emulator where OpenAI goes down after its first answer. ──────────────────────────────────────────

const program = Effect.gen(function*() {
  const emulator = yield* ProviderEmulator.make
  // The emulator's fixtures play the model: call get_weather, then get_time, then answer.
  const script = (toolResults: number) =>
    toolResults === 0
      ? { toolCalls: [{ name: "get_weather", arguments: JSON.stringify({ city: "Paris" }) }] }
      : toolResults === 1
      ? { toolCalls: [{ name: "get_time", arguments: JSON.stringify({ zone: "CET" }) }] }
      : { content: "In Paris it is 21 °C and 10:00." }
  const toolResults = (request: { readonly messages: ReadonlyArray<{ readonly role: string }> }) =>
    request.messages.filter((message) => message.role === "tool").length
  let openAiCalls = 0
  emulator.mock.on({ model: "gpt-4.1" }, (request) =>
    ++openAiCalls > 1
      ? { status: 503, error: { message: "The server is overloaded", type: "server_error" } }
      : script(toolResults(request)))
  emulator.mock.on({ model: "claude-sonnet-4-6" }, (request) => script(toolResults(request)))

  const apiKey = Redacted.make("emulator-accepts-any-key")
  const checked = Quality.toolArguments(schemas)
  const ResilientLive = Resilient.layer({
    chain: [
      {
        provider: OpenAi.make({ model: "gpt-4.1", apiKey, baseURL: emulator.openAiBaseUrl }),
        quality: checked,
        retry: false
      },
      {
        provider: Anthropic.make({ model: "claude-sonnet-4-6", apiKey, baseURL: emulator.anthropicBaseUrl }),
        quality: checked
      }
    ]
  })

  yield* Console.log("What is the weather and the time in Paris?")
  const { content, servedBy } = yield* agent("What is the weather and the time in Paris?").pipe(
    Effect.provide(ResilientLive)
  )
  yield* Console.log(`  answer: ${content}`)

  const expected = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-6", "anthropic:claude-sonnet-4-6"]
  if (servedBy.join() !== expected.join()) {
    return yield* Effect.dieMessage(`unexpected servers: ${servedBy.join(", ")}`)
  }
  yield* Console.log("\nThe agent finished on Anthropic with OpenAI's tool call in its history.")
})

program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error), NodeRuntime.runMain)
