/**
 * `complete`: the request's plan run by the ladder with the completion call shape, the served answer (or a last
 * resort), and the request event.
 * @internal
 */
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import type { CompletionRequestInput } from "../../Llm.js"
import type { CallOptions, ResilientResult, Service } from "../../Resilient.js"
import * as metrics from "../metrics.js"
import { validateRequest } from "../request.js"
import type { Client } from "./client.js"
import { completionShape } from "./completion.js"
import { type LadderError, runLadder } from "./engine.js"
import { reportRequest } from "./event.js"
import { fastPath } from "./fastPath.js"
import { checkCallOptions } from "./options.js"
import { withRecovery } from "./recovery.js"
import { begin, withTrace } from "./request.js"
import { lastResorts, served } from "./result.js"

const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** @internal */
export const makeComplete = (client: Client): Service["complete"] => {
  const shape = completionShape(client)

  // Plain `flatMap` chains, not `Effect.gen`: a generator per request costs more than the steps it sequences.
  const run = (
    input: CompletionRequestInput,
    options: CallOptions | undefined,
    span: Tracer.Span | undefined
  ): Effect.Effect<ResilientResult, LadderError> => {
    const refused = checkCallOptions(options)
    if (refused !== undefined) return Effect.fail(refused)
    return Effect.flatMap(begin(client, options, span, client.latency), ({ context, start, steps }) => {
      const remember = (outcome: ResilientResult): Effect.Effect<ResilientResult> => {
        if (outcome.degraded !== undefined) return Effect.succeed(outcome)
        client.latency.of(outcome.servedBy).record(outcome.latencyMs)
        return client.cache === undefined
          ? Effect.succeed(outcome)
          : Effect.as(client.cache.set(input, outcome), outcome)
      }
      const answer = Effect.flatMap(
        validateRequest(input),
        (request) =>
          fastPath(
            client,
            shape,
            client.fast,
            steps[0]!,
            request,
            context,
            () => withRecovery(client, context, runLadder(client, shape, steps, request, context))
          ).pipe(
            Effect.map((step) => served(step.value, step.value.value, step.tier, step.attempts)),
            Effect.catchTag(
              "FallbackExhausted",
              (exhausted) => lastResorts(client, input, exhausted, context.degradedSeen.value)
            ),
            Effect.flatMap(remember)
          )
      )
      return Effect.flatMap(
        Effect.exit(withTrace(client, context, answer)),
        (exit) => Effect.zipRight(reportRequest(client, start, context, exit), exit)
      )
    })
  }

  // Effect 3 spans cost ~25 µs each (the parent span is provided through the context). Effect's built-in tracer
  // exports nothing, so under it the spans are skipped; any other tracer (@effect/opentelemetry, a test tracer)
  // gets the request span and one child per ladder step.
  return (input, options) =>
    Effect.tracerWith((tracer) =>
      tracer === nativeTracer ? run(input, options, undefined) : Effect.useSpan(
        "llm.request",
        { kind: "client", captureStackTrace: false, attributes: { [metrics.attr.operation]: "chat" } },
        (span) => Effect.withParentSpan(run(input, options, span), span)
      )
    )
}
