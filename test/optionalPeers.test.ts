/**
 * The optional peers, as if not installed: each feature that needs one fails with a typed `InvalidOptions` naming
 * what to install, and the token counter falls back to its estimate. (CI repeats this on the built package with
 * the packages hidden from Node's resolver: .ci/optional-peers.mjs.)
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { vi } from "vitest"
import { countTokens, estimateTokens } from "../src/internal/tokens.js"
import * as Prometheus from "../src/Prometheus.js"
import * as ProviderEmulator from "../src/testing/ProviderEmulator.js"

// vi.mock is hoisted above every declaration: each factory throws on its own.
vi.mock("@copilotkit/aimock", () => {
  throw new Error("Cannot find package '@copilotkit/aimock'")
})
vi.mock("@effect/opentelemetry/Metrics", () => {
  throw new Error("Cannot find package '@effect/opentelemetry'")
})
vi.mock("gpt-tokenizer/encoding/o200k_base", () => {
  throw new Error("Cannot find package 'gpt-tokenizer'")
})
vi.mock("gpt-tokenizer/encoding/cl100k_base", () => {
  throw new Error("Cannot find package 'gpt-tokenizer'")
})

describe("optional peers not installed", () => {
  it.scoped("ProviderEmulator.make: InvalidOptions naming @copilotkit/aimock", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ProviderEmulator.make)
      expect(error._tag).toBe("InvalidOptions")
      expect(error.field).toBe("ProviderEmulator")
      expect(error.reason).toContain(`"@copilotkit/aimock"`)
      expect(error.reason).toContain("npm install @copilotkit/aimock")
    }))

  it.scoped("Prometheus.layer and layerServer: InvalidOptions naming every package to install", () =>
    Effect.gen(function*() {
      const builds = [
        Effect.flip(Layer.build(Prometheus.layer())),
        Effect.flip(Layer.build(Prometheus.layerServer({ port: 0 })))
      ]
      for (const build of builds) {
        const error = yield* build
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag !== "InvalidOptions") continue
        expect(error.field).toBe("prometheus")
        for (const name of Prometheus.packages) expect(error.reason).toContain(`"${name}"`)
        expect(error.reason).toContain(`npm install ${Prometheus.packages.join(" ")}`)
      }
    }))

  it.effect("token counts fall back to the estimate", () =>
    Effect.gen(function*() {
      const messages = [{ role: "user" as const, content: "Explain exponential backoff, in plain English." }]
      expect(yield* countTokens("openai", "gpt-4o")(messages)).toBe(estimateTokens(messages[0]!.content) + 3 + 3)
    }))
})
