/**
 * The one ladder: the plan's steps, each an attempt through the call shape, hedged on the first two when hedging is
 * on, run in order by `Fallback.chain` until one serves. Completions and streams both run here; a stream's step
 * serves when it reaches its commit point.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fallback from "../../Fallback.js"
import type { CompletionRequest } from "../../Llm.js"
import type { FallbackExhausted, HardFailure, InvalidRequest } from "../../LlmError.js"
import { chain } from "../fallbackChain.js"
import { attempt, type StepError } from "./attempt.js"
import type { CallShape, Client, Outcome, RequestContext } from "./client.js"
import { deployed } from "./deployments.js"
import { instrumentStep } from "./event.js"
import type { Step } from "./plan.js"

type Rung<A> = Fallback.Tier<Outcome<A>, StepError, never>

/** Failures that end a ladder: every step failed, or a failure no other step could avoid. @internal */
export type LadderError = FallbackExhausted | HardFailure | InvalidRequest

/**
 * Runs `steps` (a plan's steps, or the ones after a committed stream's step) for `request`. `Served.tier` is the
 * 1-based position among them.
 * @internal
 */
export const runLadder = <A>(
  client: Client,
  shape: CallShape<A>,
  steps: ReadonlyArray<Step>,
  request: CompletionRequest | ((step: Step) => CompletionRequest),
  context: RequestContext,
  hedge = true
): Effect.Effect<Fallback.Served<Outcome<A>>, LadderError> => {
  const rungs = steps.map((step): Rung<A> => {
    const stepRequest = typeof request === "function" ? request(step) : request
    return {
      label: step.label,
      // On a tier with several deployments, the step runs on the one its balancer picks (./deployments.ts).
      run: instrumentStep(
        deployed(client, step, context, (chosen) => attempt(client, shape, chosen, stepRequest, context)),
        step,
        stepRequest,
        context
      )
    }
  })
  const [first, second, ...rest] = rungs
  if (first === undefined) return Effect.dieMessage("a resilient chain has at least one step")
  const ladder: readonly [Rung<A>, ...Array<Rung<A>>] = hedge && shape.hedger !== undefined && second !== undefined
    ? [{ label: `${first.label} | ${second.label}`, run: shape.hedger.hedge(first.run, second.run) }, ...rest]
    : [first, ...(second === undefined ? [] : [second]), ...rest]
  // After the fast path's failed first attempt, the first step's latency counts from that attempt's start.
  const chained = chain(
    ladder,
    Fallback.shouldFallBack,
    context.primed === undefined ? undefined : () => context.primed?.startedAt
  )
  return Effect.catchAll(chained, (error): Effect.Effect<never, LadderError> => {
    switch (error._tag) {
      case "FallbackExhausted":
      case "HardFailure":
      case "InvalidRequest":
        return Effect.fail(error)
      default:
        // Fallback.shouldFallBack moves every other failure on to the next step: none can end the chain.
        return Effect.dieMessage(`unexpected ${error._tag} ended a fallback chain`)
    }
  })
}
