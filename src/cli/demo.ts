/**
 * `npm start`: one completion and one stream through each provider against an embedded emulator.
 * No API keys, no network: the real SDKs talk to aimock on 127.0.0.1.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { Usage } from "../Llm.js"
import type { Service } from "../LlmProvider.js"
import * as Anthropic from "../providers/Anthropic.js"
import * as OpenAi from "../providers/OpenAi.js"
import * as OpenAiCompatible from "../providers/OpenAiCompatible.js"
import * as ProviderEmulator from "../testing/ProviderEmulator.js"

const question = "In one sentence, why do LLM applications need fallbacks?"

const formatUsage = (usage: Usage) => `${usage.inputTokens} in / ${usage.outputTokens} out tokens`

const showProvider = (provider: Service) =>
  Effect.gen(function*() {
    yield* Console.log(`\n── ${provider.key}`)
    const result = yield* provider.complete({
      messages: [
        { role: "system", content: "You are concise." },
        { role: "user", content: question }
      ],
      maxTokens: 200
    })
    yield* Console.log(`complete  ${JSON.stringify(result.content)}`)
    yield* Console.log(
      `          ${formatUsage(result.usage)}, finish ${result.finishReason}, ${result.latencyMs} ms`
        + (result.requestId !== undefined ? `, request ${result.requestId}` : "")
    )
    let chunks = 0
    const end = yield* provider.stream({ messages: [{ role: "user", content: "Stream me a short greeting." }] }).pipe(
      Stream.tap((chunk) => chunk._tag === "ContentDelta" ? Effect.sync(() => chunks++) : Effect.void),
      Stream.runFold(
        { text: "", usage: undefined as Usage | undefined, ttft: undefined as number | undefined },
        (acc, chunk) =>
          chunk._tag === "ContentDelta"
            ? { ...acc, text: acc.text + chunk.text }
            : { ...acc, usage: chunk.usage, ttft: chunk.ttftMs }
      )
    )
    yield* Console.log(`stream    ${JSON.stringify(end.text)}`)
    yield* Console.log(
      `          ${chunks} chunks` + (end.usage !== undefined ? `, ${formatUsage(end.usage)}` : "")
        + (end.ttft !== undefined ? `, first token after ${end.ttft} ms` : "")
    )
  })

const program = Effect.gen(function*() {
  const emulator = yield* ProviderEmulator.make
  emulator.mock.onMessage(question, {
    content: "Because providers fail: rate limits, outages and slow or malformed answers are routine, not rare.",
    usage: { prompt_tokens: 24, completion_tokens: 19, input_tokens: 24, output_tokens: 19 }
  })
  emulator.mock.onMessage("greeting", {
    content: "Hello from a resilient stream, one token at a time!",
    usage: { prompt_tokens: 14, completion_tokens: 12, input_tokens: 14, output_tokens: 12 }
  })
  yield* Console.log(`Provider emulator (aimock) listening on ${emulator.anthropicBaseUrl}`)

  // The emulator accepts any key; the Redacted wrapper is what real keys travel in.
  const demoKey = Redacted.make("demo-key-not-a-secret")
  const providers = [
    yield* OpenAi.make({ model: "gpt-4.1-mini", apiKey: demoKey, baseURL: emulator.openAiBaseUrl }),
    yield* Anthropic.make({ model: "claude-sonnet-4-6", apiKey: demoKey, baseURL: emulator.anthropicBaseUrl }),
    yield* OpenAiCompatible.make({ name: "local", model: "llama3.1", baseURL: emulator.openAiBaseUrl })
  ]
  for (const provider of providers) yield* showProvider(provider)
  yield* Console.log("\nAll three providers answered through their official SDKs, with SDK retries off.")
})

Effect.runPromiseExit(Effect.scoped(program)).then((exit) => {
  if (Exit.isFailure(exit)) {
    console.error("Demo failed:", exit.cause)
    process.exitCode = 1
  }
})
