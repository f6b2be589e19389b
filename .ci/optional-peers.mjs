// The provider SDKs are optional peers: the built package (ESM and CJS) must import without either, build the
// providers whose SDK is there, refuse the others with a typed error naming the package, and classify the errors of
// a lazily loaded SDK (here: a refused connection) as it does with a static import. The same for `/testing` and aimock.
// `node .ci/optional-peers.mjs`, or with `HIDE=openai` / `HIDE=@anthropic-ai/sdk` and `--import ./.ci/hide-packages.mjs`.
import { Effect, Redacted } from "effect"
import { createRequire } from "node:module"

const hidden = (process.env.HIDE ?? "").split(",")
const closedPort = "http://127.0.0.1:9"
const request = { messages: [{ role: "user", content: "ping" }] }

const check = (format, lib) =>
  Effect.gen(function*() {
    const providers = [
      ["openai", lib.OpenAi.make({ apiKey: Redacted.make("sk-test"), model: "gpt-4.1-mini", baseURL: closedPort })],
      [
        "@anthropic-ai/sdk",
        lib.Anthropic.make({ apiKey: Redacted.make("sk-test"), model: "claude", baseURL: closedPort })
      ],
      ["openai", lib.OpenAiCompatible.make({ name: "local", model: "m", baseURL: closedPort })]
    ]
    for (const [pkg, make] of providers) {
      const built = yield* Effect.either(make)
      if (hidden.includes(pkg)) {
        const error = built._tag === "Left" ? built.left : undefined
        if (error?._tag !== "InvalidOptions" || !error.reason.includes(`"${pkg}"`)) {
          throw new Error(
            `${format}: without ${pkg}, expected InvalidOptions naming it, got ${String(error ?? "a provider")}`
          )
        }
        continue
      }
      if (built._tag === "Left") {
        throw new Error(`${format}: ${pkg} is installed but the provider failed: ${built.left}`)
      }
      // Exact with gpt-tokenizer, an estimate without it: either way a positive count.
      const tokens = yield* built.right.countTokens(request.messages)
      if (!(tokens > 0)) throw new Error(`${format}: ${pkg}: countTokens gave ${tokens}`)
      const failure = yield* Effect.flip(built.right.complete(request))
      if (failure._tag !== "HardFailure" || failure.reason !== "Connection") {
        throw new Error(`${format}: ${pkg}: a refused connection classified as ${failure._tag}/${failure.reason}`)
      }
    }
    return format
  })

// `/testing`: ScriptedProvider needs nothing more; ProviderEmulator loads aimock when it starts.
const checkTesting = (format, testing) =>
  Effect.gen(function*() {
    const scripted = yield* testing.ScriptedProvider.make({
      name: "scripted",
      model: "m",
      script: [testing.ScriptedProvider.success("pong")]
    })
    const answer = yield* scripted.complete(request)
    if (answer.content !== "pong") throw new Error(`${format}: ScriptedProvider answered ${answer.content}`)
    if (hidden.includes("@copilotkit/aimock")) {
      const error = yield* Effect.flip(testing.ProviderEmulator.make)
      if (error._tag !== "InvalidOptions" || !error.reason.includes(`"@copilotkit/aimock"`)) {
        throw new Error(`${format}: without aimock, expected InvalidOptions naming it, got ${String(error)}`)
      }
      return
    }
    const emulator = yield* testing.ProviderEmulator.make
    if (!emulator.openAiBaseUrl.startsWith("http://127.0.0.1:")) throw new Error(`${format}: emulator not started`)
  }).pipe(Effect.scoped)

const require = createRequire(import.meta.url)
const esm = await import("../dist/index.js")
const cjs = require("../dist/index.cjs")
for (const [format, lib] of [["esm", esm], ["cjs", cjs]]) await Effect.runPromise(check(format, lib))
const testingEsm = await import("../dist/testing/index.js")
const testingCjs = require("../dist/testing/index.cjs")
for (const [format, lib] of [["esm", testingEsm], ["cjs", testingCjs]]) {
  await Effect.runPromise(checkTesting(format, lib))
}
// `/prometheus`: a scrape with the OpenTelemetry packages, InvalidOptions naming them without.
const checkPrometheus = (format, prometheus) =>
  Effect.gen(function*() {
    const scraped = yield* Effect.either(Effect.flatMap(prometheus.makeScraper(), (scrape) => scrape))
    if (hidden.some((name) => prometheus.packages.includes(name))) {
      const error = scraped._tag === "Left" ? scraped.left : undefined
      if (
        error?._tag !== "InvalidOptions" || !prometheus.packages.every((name) => error.reason.includes(`"${name}"`))
      ) {
        throw new Error(`${format}: without the OpenTelemetry packages, expected InvalidOptions, got ${String(error)}`)
      }
    } else if (scraped._tag === "Left" || !scraped.right.includes("target_info")) {
      throw new Error(`${format}: the scrape failed: ${scraped._tag === "Left" ? scraped.left : scraped.right}`)
    }
  }).pipe(Effect.scoped)
for (
  const [format, lib] of [["esm", await import("../dist/prometheus.js")], ["cjs", require("../dist/prometheus.cjs")]]
) {
  await Effect.runPromise(checkPrometheus(format, lib))
}
// `/ai`: @effect/ai's LanguageModel over a chain, and a LanguageModel as a tier; without @effect/ai only this subpath
// fails to load (naming the package), and the rest of the library does not notice.
const checkAi = (format, ai, lib, testing) =>
  Effect.gen(function*() {
    const primary = yield* testing.ScriptedProvider.make({
      name: "primary",
      model: "m",
      script: [testing.ScriptedProvider.failure("Overloaded")]
    })
    const backup = yield* testing.ScriptedProvider.make({
      name: "backup",
      model: "m",
      script: [testing.ScriptedProvider.success("pong")]
    })
    const client = yield* lib.Resilient.make({ chain: [{ provider: primary, retry: false }, { provider: backup }] })
    const model = yield* ai.make(client)
    const response = yield* model.generateText({ prompt: "ping" })
    const served = ai.servedOf(response.content)
    if (response.text !== "pong" || served._tag !== "Some" || served.value.fallbackFrom !== "primary:m") {
      throw new Error(`${format}: /ai answered ${response.text} via ${JSON.stringify(served)}`)
    }
    const tier = ai.fromLanguageModel(model, { name: "effect-ai", model: "m" })
    const result = yield* tier.complete(request)
    if (result.content !== "pong") throw new Error(`${format}: /ai tier answered ${result.content}`)
  }).pipe(Effect.scoped)
for (const format of ["esm", "cjs"]) {
  const load = format === "esm" ? () => import("../dist/ai.js") : async () => require("../dist/ai.cjs")
  const loaded = await load().then((ai) => ({ ai }), (error) => ({ error }))
  if (hidden.includes("@effect/ai")) {
    if (!("error" in loaded) || !String(loaded.error).includes("@effect/ai")) {
      throw new Error(`${format}: without @effect/ai, /ai should fail to load naming it`)
    }
    continue
  }
  if ("error" in loaded) throw loaded.error
  const [lib, testing] = format === "esm" ? [esm, testingEsm] : [cjs, testingCjs]
  await Effect.runPromise(checkAi(format, loaded.ai, lib, testing))
}
process.stdout.write(`optional peers ok (ESM and CJS; hidden: ${process.env.HIDE || "none"})\n`)
