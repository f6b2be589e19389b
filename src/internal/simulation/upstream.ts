/**
 * A simulated upstream: an `LlmProvider` whose answers follow the scenario — log-normal latency when healthy, an
 * optional background error rate, and 5xx / overload / hanging / slow / truncated answers during its incidents. It plays the provider's
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
import type { Outage, OutageIndex, ProviderProfile, Scenario } from "./scenario.js"

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
const TRUNCATED = "A simulated"
/** A "slow" incident: healthy answers, this many times slower. */
const SLOW_FACTOR = 10

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
): {
  readonly provider: Service
  readonly counters: UpstreamCounters
  /** Calls received during each of its incidents. */
  readonly byOutage: Map<Outage, number>
} => {
  const counters: UpstreamCounters = { calls: 0, callsDuringOutage: 0 }
  const byOutage = new Map<Outage, number>()
  const { name, model } = profile
  const usage = makeUsage(INPUT_TOKENS, OUTPUT_TOKENS)
  const { background } = scenario
  const backgroundTotal = background.mix["500"] + background.mix["429"] + background.mix.timeout

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
      let slow = 1
      let truncated = false
      if (outage !== undefined) {
        counters.callsDuringOutage += weight()
        byOutage.set(outage, (byOutage.get(outage) ?? 0) + weight())
        if (outage.share >= 1 || random.number() < outage.share) {
          switch (outage.kind) {
            case "errors":
              return failAfter(150 + random.number() * 450, { reason: "ServerError", status: 503 }, requestModel)
            case "overloaded":
              return failAfter(
                100 + random.number() * 200,
                { reason: "Overloaded", status: 529, retryAfter: Duration.seconds(30) },
                requestModel
              )
            case "hang":
              return failAfter(HANG_MS, { reason: "Timeout", providerCode: "client_timeout" }, requestModel)
            case "slow":
              slow = SLOW_FACTOR
              break
            case "degraded":
              truncated = true
              break
          }
        }
      } else if (background.rate > 0 && random.number() < background.rate) {
        let pick = random.number() * backgroundTotal
        pick -= background.mix["500"]
        if (pick < 0) return failAfter(300, { reason: "ServerError", status: 500 }, requestModel)
        pick -= background.mix["429"]
        if (pick < 0) {
          return failAfter(50, { reason: "RateLimited", status: 429, retryAfter: Duration.seconds(2) }, requestModel)
        }
        return failAfter(HANG_MS, { reason: "Timeout", providerCode: "client_timeout" }, requestModel)
      }
      const latency = slow * profile.medianLatencyMs * Math.exp(LATENCY_SIGMA * gaussian(random))
      return Effect.as(
        Effect.sleep(Duration.millis(latency)),
        {
          content: truncated ? TRUNCATED : ANSWER,
          usage,
          model: requestModel,
          provider: name,
          finishReason: truncated ? "length" : "stop",
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
  return { provider, counters, byOutage }
}
