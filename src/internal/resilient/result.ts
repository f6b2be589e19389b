/**
 * From an outcome to a `ResilientResult`: who served, at which step, after which attempts, at what cost — and the
 * last resorts after every step failed (the best degraded answer, the cache, the static answer).
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fallback from "../../Fallback.js"
import type { CompletionRequestInput, CompletionResult } from "../../Llm.js"
import type { FallbackAttempt, FallbackExhausted } from "../../LlmError.js"
import type { ResilientResult } from "../../Resilient.js"
import type { Client, Outcome } from "./client.js"
import { costOf, priceOf } from "./plan.js"

/** @internal */
export const served = (
  outcome: Outcome<unknown>,
  result: CompletionResult,
  position: number,
  attempts: ReadonlyArray<FallbackAttempt>
): ResilientResult => {
  const first = attempts[0]?.label
  const label = outcome.step.label
  const costUsd = costOf(priceOf(outcome.step.tier.config, outcome.step.model), result)
  // The common answer in one literal: the conditional spreads below cost two objects more per request.
  if (outcome.degraded === undefined && (first === undefined || first === label)) {
    return { ...result, servedBy: label, tier: position, attempts, costUsd }
  }
  return {
    ...result,
    servedBy: label,
    tier: position,
    ...(first !== undefined && first !== label ? { fallbackFrom: first } : {}),
    attempts,
    costUsd,
    ...(outcome.degraded !== undefined ? { degraded: outcome.degraded } : {})
  }
}

/** After every step failed: the best degraded answer, the cache, the static answer, or the typed failure. @internal */
export const lastResorts = (
  client: Client,
  input: CompletionRequestInput,
  exhausted: FallbackExhausted,
  degradedSeen: Outcome<CompletionResult> | undefined
): Effect.Effect<ResilientResult, FallbackExhausted> =>
  Effect.gen(function*() {
    const base = { attempts: exhausted.attempts, tier: exhausted.attempts.length + 1, costUsd: 0 }
    const fallbackFrom = exhausted.attempts[0]?.label
    if (degradedSeen !== undefined) {
      return {
        ...degradedSeen.value,
        ...base,
        servedBy: degradedSeen.step.label,
        fallbackFrom,
        costUsd: costOf(priceOf(degradedSeen.step.tier.config, degradedSeen.step.model), degradedSeen.value),
        degraded: degradedSeen.degraded
      }
    }
    const hit = client.cache === undefined ? Option.none() : yield* client.cache.get(input)
    if (Option.isSome(hit)) {
      return { ...hit.value, ...base, servedBy: "cache", fallbackFrom, degraded: "cache" }
    }
    const fixed = client.config.degrade?.staticResponse
    if (fixed !== undefined) {
      const result = yield* Fallback.staticResponse(fixed)
      return { ...result, ...base, servedBy: "static", fallbackFrom, degraded: "static" }
    }
    return yield* Effect.fail(exhausted)
  })
