/**
 * What a request leaves behind, for completions and streams alike: one `llm.attempt` span and attempt metric per
 * step, and when the request ends one log event, one synchronous block of metric updates and its span's attributes.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import type * as LogLevel from "effect/LogLevel"
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
 * Records a request's outcome (metrics, span attributes, the breaker state gauge) and returns the logging of its
 * event — built only when `minimum` (the fiber's minimum log level) lets it through — or `undefined` when there is
 * nothing left to run. Synchronous where the breaker's state reads synchronously (`stateNow`), as on the fast path.
 * @internal
 */
export const reportNow = (
  client: Client,
  start: RequestStart,
  exit: Exit.Exit<ResilientResult, unknown>,
  endedAt: number,
  minimum: LogLevel.LogLevel,
  ttftMs?: number | undefined
): Effect.Effect<void> | undefined => {
  const answeredBy = Exit.isSuccess(exit) ? exit.value.servedBy : start.primary
  const breaker = client.breakers.get(answeredBy)
  // `endedAt`: the request's end, and the moment its breaker's state is read.
  if (breaker === undefined) return report(start, exit, endedAt, undefined, minimum, ttftMs)
  const state = breakerInternal.stateNow(breaker, endedAt)
  if (state !== undefined) return report(start, exit, endedAt, state, minimum, ttftMs)
  return Effect.flatMap(
    breaker.state,
    (state) => report(start, exit, endedAt, state, minimum, ttftMs) ?? Effect.void
  )
}

const report = (
  start: RequestStart,
  exit: Exit.Exit<ResilientResult, unknown>,
  endedAt: number,
  circuitState: string | undefined,
  minimum: LogLevel.LogLevel,
  ttftMs: number | undefined
): Effect.Effect<void> | undefined => {
  const event = observability.recordRequest(exit, start, endedAt, circuitState, ttftMs, minimum)
  return event === undefined ? undefined : observability.logEvent(event)
}

/** {@link reportNow} at the fiber's minimum log level. @internal */
export const reportRequest = (
  client: Client,
  start: RequestStart,
  context: RequestContext,
  exit: Exit.Exit<ResilientResult, unknown>,
  ttftMs?: number | undefined
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) =>
    reportNow(
      client,
      start,
      exit,
      context.clock.unsafeCurrentTimeMillis(),
      fiber.getFiberRef(FiberRef.currentMinimumLogLevel),
      ttftMs
    ) ?? Effect.void
  )
