/**
 * Two differently configured clients in one app: `Resilient` and a client under a tag of the app's own, each built
 * from its own configuration and serving from its own chain.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

class Summaries extends Resilient.Tag("test/Summaries")<Summaries>() {}

const ask = { messages: [{ role: "user" as const, content: "hi" }] }

describe("Resilient.Tag and layerAs", () => {
  it.scoped("two clients with different chains and settings side by side", () =>
    Effect.gen(function*() {
      const chat = yield* ScriptedProvider.make({
        name: "chat",
        model: "big",
        script: [ScriptedProvider.success("chat")]
      })
      const cheap = yield* ScriptedProvider.make({
        name: "cheap",
        model: "small",
        script: [ScriptedProvider.failure("Overloaded", { status: 503 }), ScriptedProvider.success("summary")]
      })
      const Live = Layer.mergeAll(
        Resilient.layer({ chain: [{ provider: chat }] }),
        Resilient.layerAs(Summaries, { chain: [{ provider: cheap, retry: false, breaker: false }] })
      )
      const [main, summary] = yield* Effect.all([
        Resilient.complete(ask),
        Effect.either(Effect.flatMap(Summaries, (client) => client.complete(ask)))
      ]).pipe(Effect.provide(Live))
      expect(main.servedBy).toBe("chat:big")
      // Its own settings: no retry, so the 503 ends the request.
      expect(summary._tag).toBe("Left")
      expect(Summaries.key).toBe("test/Summaries")
    }))

  it.effect("layerAs refuses an invalid configuration with InvalidOptions", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(Resilient.layerAs(Summaries, { chain: [] as unknown as Resilient.Config["chain"] })).pipe(
          Effect.scoped
        )
      )
      expect(error._tag).toBe("InvalidOptions")
    }))
})
