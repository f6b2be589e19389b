/**
 * The start of a request, shared by `complete` and `stream`: its plan (the strategy's order), its context, and the
 * trace that a tier's quality scorers write into.
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type * as Tracer from "effect/Tracer"
import type { CompletionResult } from "../../Llm.js"
import type { CallOptions, Strategy } from "../../Resilient.js"
import * as observability from "../observability.js"
import type { Client, Outcome, Primed, RequestContext } from "./client.js"
import { budgetOf } from "./deadline.js"
import type { RequestStart } from "./event.js"
import { labelOf, type Latencies, order, type Step, stepsOf } from "./plan.js"

/** @internal */
export interface Started {
  readonly start: RequestStart
  readonly context: RequestContext
  readonly steps: ReadonlyArray<Step>
}

/** A plan's ordered steps and the label of its first. @internal */
export interface Plan {
  readonly steps: ReadonlyArray<Step>
  readonly primary: string
}

const planOf = (client: Client, strategy: Strategy, latency: Latencies): Plan => {
  const ordered = order(client.tiers, strategy, latency)
  return { steps: stepsOf(ordered), primary: labelOf(ordered[0] ?? client.tiers[0]!) }
}

/**
 * The plan for `strategy`: the order of every strategy but latency-first depends on the config alone, so it is built
 * once per client and shared by its requests; latency-first orders by the latencies seen so far, per request.
 */
const planFor = (client: Client, strategy: Strategy, latency: Latencies): Plan => {
  if (strategy === "latency-first") return planOf(client, strategy, latency)
  let plan = client.plans.get(strategy)
  if (plan === undefined) {
    plan = planOf(client, strategy, latency)
    client.plans.set(strategy, plan)
  }
  return plan
}

/**
 * A request in flight: its start (for the report), its context (for the ladder) and its plan's steps, as one object —
 * three objects and two boxes fewer per request than separate ones.
 */
class OpenRequest implements Started, RequestStart, RequestContext {
  readonly requestId: string | undefined
  readonly trace = new observability.RequestTrace()
  readonly traced: boolean
  degradedSeen: Outcome<CompletionResult> | undefined = undefined
  primed: Primed | undefined = undefined
  constructor(
    readonly span: Tracer.Span | undefined,
    readonly primary: string,
    readonly startedAt: number,
    readonly clock: Clock.Clock,
    readonly deadlineAt: number | undefined,
    readonly latency: Latencies,
    readonly steps: ReadonlyArray<Step>
  ) {
    // Without a span the id is drawn only if the request's event is logged (./event.ts).
    this.requestId = span === undefined ? undefined : observability.nextRequestId()
    this.traced = span !== undefined
  }
  get start(): RequestStart {
    return this
  }
  get context(): RequestContext {
    return this
  }
}

/**
 * Orders the plan and opens the request's context, at `clock`'s time. `latency`: what latency-first compares, and
 * what a step must fit in what is left of the deadline.
 * @internal
 */
export const open = (
  client: Client,
  options: CallOptions | undefined,
  span: Tracer.Span | undefined,
  clock: Clock.Clock,
  latency: Latencies
): Started => {
  const { primary, steps } = planFor(client, options?.strategy ?? client.config.strategy ?? "ordered", latency)
  const startedAt = clock.unsafeCurrentTimeMillis()
  const budget = budgetOf(client.config, options)
  return new OpenRequest(
    span,
    primary,
    startedAt,
    clock,
    budget === undefined ? undefined : startedAt + budget,
    latency,
    steps
  )
}

/** {@link open} at the fiber's clock. @internal */
export const begin = (
  client: Client,
  options: CallOptions | undefined,
  span: Tracer.Span | undefined,
  latency: Latencies
): Effect.Effect<Started> => Effect.clockWith((clock) => Effect.succeed(open(client, options, span, clock, latency)))

/**
 * Runs `effect` with the request's trace as `Observability`'s current one, for the scores a tier's checks note (only
 * chains with checks pay for it). Set and restored by hand: `Effect.locally` costs ~10 µs.
 * @internal
 */
export const withTrace = <A, E>(
  client: Client,
  context: RequestContext,
  effect: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  client.checked
    ? Effect.flatMap(FiberRef.getAndSet(observability.currentTrace, context.trace), (outer) =>
      Effect.ensuring(effect, FiberRef.set(observability.currentTrace, outer)))
    : effect
