import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { build } from "../../src/internal/resilient/make.js"
import * as ScriptedProvider from "../../src/testing/ScriptedProvider.js"

describe("Resilient: a client lives as long as its scope", () => {
  it.effect("the breaker followers end when the client's scope closes", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedProvider.make({
        name: "openai",
        model: "a",
        script: [ScriptedProvider.success("ok")]
      })
      const scope = yield* Scope.make()
      const { followers, service } = yield* Scope.extend(
        build({ chain: [{ provider: primary, downgrades: ["b", "c"] }] }),
        scope
      )
      expect(followers.length).toBe(3)
      expect((yield* service.complete({ messages: [{ role: "user", content: "hi" }] })).content).toBe("ok")
      for (const follower of followers) expect((yield* Fiber.status(follower))._tag).toBe("Suspended")
      yield* Scope.close(scope, Exit.void)
      for (const follower of followers) {
        const exit = yield* Fiber.await(follower)
        expect(Exit.isInterrupted(exit)).toBe(true)
      }
    }))
})
