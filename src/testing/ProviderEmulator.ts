/**
 * A loopback HTTP server that speaks the OpenAI and Anthropic APIs (aimock), scoped: it stops when the scope
 * closes. Point real SDK clients at it to test without keys or network.
 *
 * @since 0.1.0
 */
import type { LLMock } from "@copilotkit/aimock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { loader } from "../internal/optionalPeer.js"
import type { InvalidOptions } from "../LlmError.js"

// aimock is an optional peer, loaded when an emulator starts: tests using only `ScriptedProvider` need not install it.
const loadAimock = loader("ProviderEmulator", ["@copilotkit/aimock"], () => import("@copilotkit/aimock"))

/**
 * @since 0.1.0
 * @category Models
 */
export interface ProviderEmulator {
  /** The aimock instance: add fixtures, inject errors, read the request journal. */
  readonly mock: LLMock
  /** Base URL for the `openai` SDK (ends in `/v1`). */
  readonly openAiBaseUrl: string
  /** Base URL for `@anthropic-ai/sdk`. */
  readonly anthropicBaseUrl: string
}

/**
 * Starts the emulator on 127.0.0.1 with an ephemeral port. Without `@copilotkit/aimock` installed it fails with an
 * `InvalidOptions` naming the package.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: Effect.Effect<ProviderEmulator, InvalidOptions, Scope.Scope> = Effect.flatMap(
  loadAimock,
  ({ LLMock }) =>
    Effect.acquireRelease(
      Effect.promise(async () => {
        const mock = new LLMock({ port: 0, host: "127.0.0.1" })
        await mock.start()
        return { mock, openAiBaseUrl: `${mock.url}/v1`, anthropicBaseUrl: mock.url }
      }),
      ({ mock }) => Effect.promise(() => mock.stop())
    )
)
