/**
 * From an outcome to a `ResilientResult`: who served, at which step, after which attempts, at what cost — and the
 * last resorts after every step failed (the best degraded answer, the cache, the static answer).
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fallback from "../../Fallback.js"
import type { CompletionRequestInput, CompletionResult } from "../../Llm.js"
import type { DegradedReason, FallbackAttempt, FallbackExhausted } from "../../LlmError.js"
import type { ResilientResult } from "../../Resilient.js"
import type { Client, Outcome } from "./client.js"
import { costOf, priceOf, type Step } from "./plan.js"

// A result's keys in the schema's order (Llm.CompletionResult): the six it always has, then the optional ones. A
// prototype-less table: one lookup per key, where a `switch` compared each key with up to ten strings.
const keyIndex: Readonly<Record<string, number | undefined>> = Object.assign(Object.create(null) as object, {
  content: 0,
  usage: 1,
  model: 2,
  provider: 3,
  finishReason: 4,
  latencyMs: 5,
  requestId: 6,
  rateLimit: 7,
  toolCalls: 8,
  notes: 9
})
const MANDATORY = 0b111111

/**
 * Which of the schema's keys `result` has, as bits, when it has the six mandatory ones and no other, in the schema's
 * order; else `undefined`.
 */
const keysOf = (result: CompletionResult): number | undefined => {
  let seen = 0
  let last = -1
  for (const key in result) {
    const index = keyIndex[key] ?? -1
    if (index <= last) return undefined
    seen |= 1 << index
    last = index
  }
  return (seen & MANDATORY) === MANDATORY ? seen : undefined
}

type Writable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * `{ ...result, servedBy, tier, [fallbackFrom], attempts, costUsd, [degraded] }`. Spreading a provider's result costs
 * ≈ 3 µs on the success path here (V8's generic clone), a literal of the same keys in the same order ≈ 30 ns: a
 * result with the schema's keys in the schema's order (every provider's) is copied key by key, any other spread.
 * @internal
 */
export const served = (
  step: Step,
  degraded: DegradedReason | undefined,
  result: CompletionResult,
  position: number,
  attempts: ReadonlyArray<FallbackAttempt>
): ResilientResult => {
  const first = attempts[0]?.label
  const label = step.label
  const costUsd = costOf(priceOf(step.tier.config, step.model), result)
  const fallbackFrom = first !== undefined && first !== label ? first : undefined
  const keys = fallbackFrom === undefined && degraded === undefined ? keysOf(result) : undefined
  if (keys === MANDATORY) {
    return {
      content: result.content,
      usage: result.usage,
      model: result.model,
      provider: result.provider,
      finishReason: result.finishReason,
      latencyMs: result.latencyMs,
      servedBy: label,
      tier: position,
      attempts,
      costUsd
    }
  }
  if (keys !== undefined) {
    // Key by key, in the order the spread would put them.
    const copy: Writable<CompletionResult> = {
      content: result.content,
      usage: result.usage,
      model: result.model,
      provider: result.provider,
      finishReason: result.finishReason,
      latencyMs: result.latencyMs
    }
    if ((keys & (1 << 6)) !== 0) copy.requestId = result.requestId
    if ((keys & (1 << 7)) !== 0) copy.rateLimit = result.rateLimit
    if ((keys & (1 << 8)) !== 0) copy.toolCalls = result.toolCalls
    if ((keys & (1 << 9)) !== 0) copy.notes = result.notes
    return Object.assign(copy, { servedBy: label, tier: position, attempts, costUsd })
  }
  // A fallback, a degraded answer, or a result of another shape.
  return {
    ...result,
    servedBy: label,
    tier: position,
    ...(fallbackFrom !== undefined ? { fallbackFrom } : {}),
    attempts,
    costUsd,
    ...(degraded !== undefined ? { degraded } : {})
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
