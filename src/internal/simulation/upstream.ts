/**
 * A simulated upstream: an `LlmProvider` whose answers follow the scenario — log-normal latency when healthy, an
 * optional background error rate, and 5xx / overload / hanging / slow / truncated answers during its incidents. It plays the provider's
 * servers, not library code: everything in front of it (retry, breakers, limits, fallback) is the real library.
 *
 * It plays the built-in SDK providers' side of the client too: a `Resilient` tier's attempt timeout is handed to its
 * call (`honouringDeadlines`), as the OpenAI and Anthropic providers take it into their SDK request, instead of the
 * forked fiber per call that a user's provider gets. An upstream knows when its answer will come, so the deadline
 * needs no timer of its own: a call that would outlast it sleeps until the deadline and fails with the attempt's
 * `Timeout`, which is what the SDK call's aborted request does.
 *
 * `ScriptedProvider` keeps every call in a list; a year of traffic needs counters instead.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { PCGRandom } from "effect/Utils"
import type { ChatMessage, CompletionResult } from "../../Llm.js"
import { makeUsage } from "../../Llm.js"
import { type HardFailure, hardFailure } from "../../LlmError.js"
import type { Service } from "../../LlmProvider.js"
import { type AttemptDeadline, honouringDeadlines } from "../providerTimeouts.js"
import type { Outage, OutageIndex, ProviderProfile, Scenario } from "./scenario.js"
import { sleptMillis } from "./virtualTime.js"

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

type Failing = Effect.Effect<never, HardFailure>

/**
 * The failures an upstream answers with, for one model. Errors and effects are values: built once (the error's
 * constructor validates its fields, which was a twentieth of a run when done per call) and shared by every call that
 * fails that way.
 */
interface Failures {
  readonly incident: Failing
  readonly overloaded: Failing
  readonly hung: Failing
  readonly server: Failing
  readonly rateLimited: Failing
}

const failuresOf = (provider: string, model: string): Failures => ({
  incident: Effect.fail(hardFailure({ reason: "ServerError", status: 503, provider, model })),
  overloaded: Effect.fail(
    hardFailure({ reason: "Overloaded", status: 529, retryAfter: Duration.seconds(30), provider, model })
  ),
  hung: Effect.fail(hardFailure({ reason: "Timeout", providerCode: "client_timeout", provider, model })),
  server: Effect.fail(hardFailure({ reason: "ServerError", status: 500, provider, model })),
  rateLimited: Effect.fail(
    hardFailure({ reason: "RateLimited", status: 429, retryAfter: Duration.seconds(2), provider, model })
  )
})

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
  const ownFailures = failuresOf(name, model)
  const failuresByModel = new Map<string, Failures>([[model, ownFailures]])
  const failuresFor = (requestModel: string): Failures => {
    if (requestModel === model) return ownFailures
    let failures = failuresByModel.get(requestModel)
    if (failures === undefined) {
      failures = failuresOf(name, requestModel)
      failuresByModel.set(requestModel, failures)
    }
    return failures
  }

  /** The call's outcome after `millis`, or the attempt's `Timeout` at its deadline if that comes first. */
  const settle = <A>(
    millis: number,
    outcome: Effect.Effect<A, HardFailure>,
    attempt: AttemptDeadline | undefined
  ): Effect.Effect<A, HardFailure> => {
    if (attempt !== undefined) {
      const deadline = Duration.toMillis(attempt.duration)
      // On a tie the answer wins, as it does when it is in before the deadline's interruption takes hold.
      if (sleptMillis(millis) > deadline) {
        return Effect.zipRight(Effect.sleep(attempt.duration), Effect.failSync(attempt.onTimeout))
      }
    }
    return Effect.zipRight(Effect.sleep(Duration.millis(millis)), outcome)
  }

  const complete = honouringDeadlines((input, attempt) =>
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
              return settle(150 + random.number() * 450, failuresFor(requestModel).incident, attempt)
            case "overloaded":
              return settle(100 + random.number() * 200, failuresFor(requestModel).overloaded, attempt)
            case "hang":
              return settle(HANG_MS, failuresFor(requestModel).hung, attempt)
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
        if (pick < 0) return settle(300, failuresFor(requestModel).server, attempt)
        pick -= background.mix["429"]
        if (pick < 0) return settle(50, failuresFor(requestModel).rateLimited, attempt)
        return settle(HANG_MS, failuresFor(requestModel).hung, attempt)
      }
      const latency = slow * profile.medianLatencyMs * Math.exp(LATENCY_SIGMA * gaussian(random))
      const answer: CompletionResult = {
        content: truncated ? TRUNCATED : ANSWER,
        usage,
        model: requestModel,
        provider: name,
        finishReason: truncated ? "length" : "stop",
        latencyMs: latency
      }
      return settle(latency, Effect.succeed(answer), attempt)
    })
  )

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
