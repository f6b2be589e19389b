/**
 * What a request leaves behind, for completions and streams alike: one `llm.attempt` span and attempt metric per
 * step, and when the request ends one log event, one synchronous block of metric updates and its span's attributes.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type { CompletionRequest } from "../../Llm.js"
import type { ResilientResult } from "../../Resilient.js"
import * as breakerInternal from "../circuitBreaker.js"
import * as genAiSpans from "../genAiSpans.js"
import * as metrics from "../metrics.js"
import * as observability from "../observability.js"
import type { Client, RequestContext } from "./client.js"
import type { Step } from "./plan.js"

/** Records a ladder step: its attempt metric, and (when traced) its `llm.attempt` span. @internal */
export const instrumentStep = <A extends { readonly degraded: unknown }, E, R>(
  run: Effect.Effect<A, E, R>,
  step: Step,
  request: CompletionRequest,
  context: RequestContext
): Effect.Effect<A, E, R> => {
  const { primary, trace } = context
  const { label } = step
  if (!context.traced) {
    return Effect.onExit(run, (exit) => Effect.sync(() => observability.recordAttempt(undefined, label, exit, trace)))
  }
  const { model, system } = metrics.splitLabel(label)
  const position = step.index + 1
  // One GenAI inference span per call: `chat {model}`, with the request as this step sends it.
  return Effect.useSpan(
    genAiSpans.genAiSpanName(model),
    {
      kind: "client",
      captureStackTrace: false,
      attributes: {
        ...genAiSpans.genAiRequestAttributes({
          provider: system,
          model,
          maxTokens: request.maxTokens,
          temperature: request.temperature,
          // A tier of deployments: the server is the picked deployment's, set when it is picked (./deployments.ts).
          baseURL: step.tier.deployments === undefined ? step.tier.provider.baseURL : undefined
        }),
        [metrics.attr.system]: system,
        "llm.attempt": position,
        ...(position > 1 ? { "llm.fallback_from": primary } : {})
      }
    },
    (span) =>
      Effect.withParentSpan(
        Effect.onExit(run, (exit) => Effect.sync(() => observability.recordAttempt(span, label, exit, trace))),
        span
      )
  )
}

/** What a request's report takes from its start: span, id, primary, start time and trace. @internal */
export type RequestStart = observability.RequestReport

/**
 * Records a request's outcome (metrics, span attributes, the breaker state gauge) and logs its event on `fiber` — the
 * event built only when the fiber's minimum log level lets it through. Synchronous (`undefined`: nothing left to run)
 * where the breaker's state reads synchronously (`stateNow`), as on the fast path; else the effect that reads it.
 * @internal
 */
export const reportNow = (
  client: Client,
  start: RequestStart,
  exit: Exit.Exit<ResilientResult, unknown>,
  endedAt: number,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  ttftMs?: number | undefined
): Effect.Effect<void> | undefined => {
  const answeredBy = Exit.isSuccess(exit) ? exit.value.servedBy : start.primary
  const breaker = client.breakers.get(answeredBy)
  // `endedAt`: the request's end, and the moment its breaker's state is read.
  const state = breaker === undefined ? undefined : breakerInternal.stateNow(breaker, endedAt)
  if (breaker === undefined || state !== undefined) return report(start, exit, endedAt, state, fiber, ttftMs)
  return Effect.map(breaker.state, (state) => report(start, exit, endedAt, state, fiber, ttftMs))
}

const report = (
  start: RequestStart,
  exit: Exit.Exit<ResilientResult, unknown>,
  endedAt: number,
  circuitState: string | undefined,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  ttftMs: number | undefined
): undefined => {
  const minimum = fiber.getFiberRef(FiberRef.currentMinimumLogLevel)
  const event = observability.recordRequest(exit, start, endedAt, circuitState, ttftMs, minimum)
  if (event !== undefined) observability.logEventNow(fiber, event)
  return undefined
}

/** {@link reportNow} on the running fiber, at the request context's clock. @internal */
export const reportRequest = (
  client: Client,
  start: RequestStart,
  context: RequestContext,
  exit: Exit.Exit<ResilientResult, unknown>,
  ttftMs?: number | undefined
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) =>
    reportNow(client, start, exit, context.clock.unsafeCurrentTimeMillis(), fiber, ttftMs) ?? Effect.void
  )
