/**
 * The completion call of a step: rate limiter → breaker (admission and record) → attempt timeout → call → quality.
 * The breaker sits inside the limiter so that it admits only a call about to start and times the provider alone:
 * time queued for a permit is not provider latency (it would trip latency policies of a healthy provider).
 * @internal
 */
import * as Effect from "effect/Effect"
import type { CompletionRequestInput, CompletionResult } from "../../Llm.js"
import * as Quality from "../../Quality.js"
import * as metrics from "../metrics.js"
import { timeoutFailure } from "../ownErrors.js"
import { completeWithin } from "../providerTimeouts.js"
import type { AttemptError, CallShape, Client } from "./client.js"
import { breakerOf } from "./deployments.js"
import type { Step } from "./plan.js"

/**
 * A step's provider call within the tier's per-attempt `timeout`, if any. The built-in providers take the deadline
 * into their SDK call (no fiber per call); any other provider's call runs under `timeoutFail` (../timeout.ts: one
 * fiber per call). See ../providerTimeouts.ts.
 * @internal
 */
export const timedCall = (step: Step, input: CompletionRequestInput): Effect.Effect<CompletionResult, AttemptError> => {
  const { model, tier } = step
  return tier.timeout === undefined ? tier.provider.complete(input) : completeWithin(tier.provider, input, {
    duration: tier.timeout,
    onTimeout: () => timeoutFailure(tier.provider.name, model, "attempt_timeout")
  })
}

/** @internal */
export const completionShape = (client: Client): CallShape<CompletionResult> => ({
  checkedBeforeCommit: () => true,
  hedger: client.hedgers?.completion,
  fromResult: (result) => result,
  call: (step, request, context) => {
    const { label, tier } = step
    // A deployment kept in rotation with its breaker open runs without it (./deployments.ts).
    const breaker = breakerOf(client, step)
    const check = tier.config.quality
    const inner = (input: CompletionRequestInput) => {
      const timed = timedCall(step, input)
      const checked = check === undefined ? timed : Quality.validate(timed, check)
      return breaker === undefined ? checked : breaker.execute(checked)
    }
    if (!client.limited) return client.limiter.call(tier.provider, request, inner)
    // The wait in the limiter: from entering it to the moment it runs the call.
    return Effect.suspend(() => {
      const entered = context.clock.unsafeCurrentTimeMillis()
      return client.limiter.call(tier.provider, request, (admitted) =>
        Effect.suspend(() => {
          const waited = context.clock.unsafeCurrentTimeMillis() - entered
          if (waited > 0) metrics.update(metrics.forLabel(label).rateLimitWait, waited)
          return inner(admitted)
        }))
    })
  }
})
