/**
 * A simulated upstream: an `LlmProvider` whose answers follow the scenario — log-normal latency when healthy, a
 * small background error rate, and 5xx / overload / hanging calls during its incidents. It plays the provider's
 * servers, not library code: everything in front of it (retry, breakers, limits, fallback) is the real library.
 *
 * `ScriptedProvider` keeps every call in a list; a year of traffic needs counters instead.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { PCGRandom } from "effect/Utils"
import type { ChatMessage, CompletionResult } from "../../Llm.js"
import { makeUsage } from "../../Llm.js"
import { hardFailure } from "../../LlmError.js"
import type { Service } from "../../LlmProvider.js"
import type { OutageIndex, ProviderProfile, Scenario } from "./scenario.js"

/** Weighted like the requests that made the calls (see `quietSampling`). */
export interface UpstreamCounters {
  calls: number
  /** Calls that arrived while this provider was in an incident: the calls a breaker exists to save. */
  callsDuringOutage: number
}

/** The prompt and answer sizes of the simulated traffic: a short chat turn. */
const INPUT_TOKENS = 500
const OUTPUT_TOKENS = 200
/** A hung connection ends when the HTTP client gives up, unless the caller's attempt timeout ends it first. */
const HANG_MS = 120_000
const LATENCY_SIGMA = 0.35

const ANSWER = "A simulated answer."

/** A standard normal deviate (Box–Muller), for log-normal latencies. */
const gaussian = (random: PCGRandom): number =>
  Math.sqrt(-2 * Math.log(1 - random.number())) * Math.cos(2 * Math.PI * random.number())

export const makeUpstream = (
  profile: ProviderProfile,
  scenario: Scenario,
  outages: OutageIndex,
  random: PCGRandom,
  now: () => number,
  weight: () => number
): { readonly provider: Service; readonly counters: UpstreamCounters } => {
  const counters: UpstreamCounters = { calls: 0, callsDuringOutage: 0 }
  const { name, model } = profile
  const usage = makeUsage(INPUT_TOKENS, OUTPUT_TOKENS)

  const failAfter = (
    millis: number,
    props: Omit<Parameters<typeof hardFailure>[0], "provider" | "model">,
    requestModel: string
  ) => {
    return Effect.zipRight(
      Effect.sleep(Duration.millis(millis)),
      Effect.fail(hardFailure({ ...props, provider: name, model: requestModel }))
    )
  }

  const complete: Service["complete"] = (input) =>
    Effect.suspend(() => {
      const requestModel = input.model ?? model
      const started = now()
      counters.calls += weight()
      const outage = outages.at(name, started)
      if (outage !== undefined) {
        counters.callsDuringOutage += weight()
        switch (outage.kind) {
          case "errors":
            return failAfter(150 + random.number() * 450, { reason: "ServerError", status: 503 }, requestModel)
          case "overloaded":
            return failAfter(
              100 + random.number() * 200,
              { reason: "Overloaded", status: 529, retryAfter: Duration.seconds(30) },
              requestModel
            )
          case "timeouts":
            return failAfter(HANG_MS, { reason: "Timeout", providerCode: "client_timeout" }, requestModel)
        }
      }
      if (random.number() < scenario.backgroundErrorRate) {
        return random.number() < 0.5
          ? failAfter(300, { reason: "ServerError", status: 500 }, requestModel)
          : failAfter(50, { reason: "RateLimited", status: 429, retryAfter: Duration.seconds(2) }, requestModel)
      }
      const latency = profile.medianLatencyMs * Math.exp(LATENCY_SIGMA * gaussian(random))
      return Effect.as(
        Effect.sleep(Duration.millis(latency)),
        {
          content: ANSWER,
          usage,
          model: requestModel,
          provider: name,
          finishReason: "stop",
          latencyMs: latency
        } satisfies CompletionResult
      )
    })

  const provider: Service = {
    name,
    model,
    key: `${name}:${model}`,
    complete,
    stream: () => Stream.dieMessage("the simulator sends completions only"),
    countTokens: (messages: ReadonlyArray<ChatMessage>) => Effect.succeed(messages.length * 4 + INPUT_TOKENS)
  }
  return { provider, counters }
}
