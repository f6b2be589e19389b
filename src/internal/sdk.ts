/**
 * The provider SDKs, loaded when the first provider over each is built.
 *
 * Both SDKs are optional peer dependencies: an application that installs only `openai` must be able to import this
 * package, and one that uses neither should not pay for parsing them (about 0.5 s together on a cold start). So no
 * module here imports an SDK at the top level, and a provider's `make` loads it, or fails with a typed error that
 * names the missing package.
 * @internal
 */
import type AnthropicClient from "@anthropic-ai/sdk"
import type * as Effect from "effect/Effect"
import type OpenAI from "openai"
import type { InvalidOptions } from "../LlmError.js"
import { loader as peerLoader } from "./optionalPeer.js"

const loader = <A>(name: string, load: () => Promise<A>): Effect.Effect<A, InvalidOptions> =>
  peerLoader("provider", [name], load)

/** @internal */
export const openAi: Effect.Effect<typeof OpenAI, InvalidOptions> = loader(
  "openai",
  () => import("openai").then((module) => module.default)
)

/** @internal */
export const anthropic: Effect.Effect<typeof AnthropicClient, InvalidOptions> = loader(
  "@anthropic-ai/sdk",
  () => import("@anthropic-ai/sdk").then((module) => module.default)
)
