/**
 * `complete`: the request's plan run by the ladder with the completion call shape, the served answer (or a last
 * resort), and the request event.
 *
 * Two routes, one ending. Every request is opened, decoded and, where the fast path can make its first attempt
 * fused (./fastPath.ts), served from inside one uninterruptible region whose exit handler ends the request
 * synchronously ({@link finishNow}: the result, the latency remembered, the request reported) — no effect runs after
 * the provider's call unless something must (a cache to write, an event to log, a transition to announce). Any other
 * request, and any failure of that first attempt, ends through {@link finish}: the same result, remembering and
 * report as effects around the ladder.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Tracer from "effect/Tracer"
import type { CompletionRequest, CompletionRequestInput, CompletionResult } from "../../Llm.js"
import type { CallOptions, ResilientResult, Service } from "../../Resilient.js"
import * as metrics from "../metrics.js"
import type { Restore } from "../rateLimitQueue.js"
import { decodedNow, validateRequest } from "../request.js"
import type { Client } from "./client.js"
import { completionShape } from "./completion.js"
import { type LadderError, runLadder } from "./engine.js"
import { reportNow, reportRequest } from "./event.js"
import {
  type First,
  firstAttempt,
  firstOf,
  fusedAttempt,
  noAttempts,
  type Served,
  servedFirst,
  type Then
} from "./fastPath.js"
import { checkCallOptions } from "./options.js"
import type { Step } from "./plan.js"
import { withRecovery } from "./recovery.js"
import { open, type Started, withTrace } from "./request.js"
import { lastResorts, served as resultOf } from "./result.js"

const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

const keep: Restore = (effect) => effect

/** @internal */
export const makeComplete = (client: Client): Service["complete"] => {
  const shape = completionShape(client)

  const ladder = ({ context, steps }: Started, request: CompletionRequest) => () =>
    withRecovery(client, context, runLadder(client, shape, steps, request, context))

  const resultFrom = (served: Served): ResilientResult =>
    resultOf(served.value.step, served.value.degraded, served.value.value, served.tier, served.attempts)

  /** What latency-first and the P95 hedge learn from an answer (a degraded one teaches nothing). */
  const rememberLatency = (result: ResilientResult): void => {
    if (result.degraded === undefined) client.latency.of(result.servedBy).record(result.latencyMs)
  }

  // Plain `flatMap` chains, not `Effect.gen`: a generator per request costs more than the steps it sequences.
  /** The end of a request as effects around its answer: the result or a last resort, remembered, reported. */
  const finish = (
    input: CompletionRequestInput,
    { context, start }: Started,
    answer: Effect.Effect<Served, LadderError>
  ): Effect.Effect<ResilientResult, LadderError> => {
    const remembered = answer.pipe(
      Effect.map(resultFrom),
      Effect.catchTag(
        "FallbackExhausted",
        (exhausted) => lastResorts(client, input, exhausted, context.degradedSeen)
      ),
      Effect.flatMap((result) => {
        rememberLatency(result)
        return client.cache === undefined || result.degraded !== undefined
          ? Effect.succeed(result)
          : Effect.as(client.cache.set(input, result), result)
      })
    )
    return Effect.flatMap(
      Effect.exit(withTrace(client, context, remembered)),
      (exit) => Effect.zipRight(reportRequest(client, start, context, exit), exit)
    )
  }

  /**
   * {@link finish} for an answer in hand, as synchronous steps: the same result, remembering and report (its event
   * logged too), with nothing left to run but a breaker state that cannot be read synchronously (restored to the
   * caller's interruptibility, as `finish` would run it). With a cache to write, `finish` itself.
   */
  const finishNow = (
    input: CompletionRequestInput,
    started: Started,
    step: Step,
    value: CompletionResult,
    endedAt: number,
    fiber: Fiber.RuntimeFiber<ResilientResult, LadderError>,
    restore: Restore
  ): Effect.Effect<ResilientResult, LadderError> => {
    if (client.cache !== undefined) return restore(finish(input, started, Effect.succeed(servedFirst(step, value))))
    // `resultFrom(servedFirst(step, value))`, without the served value in between.
    const result = resultOf(step, undefined, value, 1, noAttempts)
    rememberLatency(result)
    const exit = Exit.succeed(result)
    const reported = reportNow(client, started.start, exit, endedAt, fiber)
    return reported === undefined ? exit : restore(Effect.zipRight(reported, exit))
  }

  /** The fast path's unfused first attempt of `request` where it can make one, else the ladder. */
  const answer = (started: Started, request: CompletionRequest): Effect.Effect<Served, LadderError> => {
    const first = firstOf(client, started.steps[0]!, request, started.context)
    return first === undefined
      ? ladder(started, request)()
      : firstAttempt(shape, first, started.context, ladder(started, request))
  }

  /** A request decoded by Schema (not of the common shape) or under a span: no fused attempt. */
  const validated = (input: CompletionRequestInput, started: Started) =>
    finish(input, started, Effect.flatMap(validateRequest(input), (request) => answer(started, request)))

  /**
   * A fused request: the region's first step (an effect whose `commit` admits and runs the attempt) and its endings
   * ({@link Then}), as one object per request. `restore`: the caller's interruptibility, given back inside the
   * request's uninterruptible region.
   */
  class FusedRequest extends Effectable.Class<ResilientResult, LadderError>
    implements Then<ResilientResult, LadderError>
  {
    constructor(
      readonly restore: Restore,
      readonly input: CompletionRequestInput,
      readonly started: Started,
      readonly request: CompletionRequest,
      readonly first: First,
      readonly fiber: Fiber.RuntimeFiber<ResilientResult, LadderError>
    ) {
      super()
    }
    commit(): Effect.Effect<ResilientResult, LadderError> {
      const { first, started } = this
      const { context } = started
      // The request's start is the attempt's: read microseconds apart, they are one clock read on this route.
      return fusedAttempt(client, first, context, started.start.startedAt, this)
        ?? this.restore(finish(this.input, started, firstAttempt(shape, first, context, () => this.ladder())))
    }
    ladder() {
      return ladder(this.started, this.request)()
    }
    served(step: Step, value: CompletionResult, endedAt: number) {
      return finishNow(this.input, this.started, step, value, endedAt, this.fiber, this.restore)
    }
    failed(resumed: Effect.Effect<Served, LadderError>) {
      return this.restore(finish(this.input, this.started, resumed))
    }
  }

  /** A request with no span: its first attempt fused where it can be. */
  const run = (
    input: CompletionRequestInput,
    started: Started,
    fiber: Fiber.RuntimeFiber<ResilientResult, LadderError>,
    interruptible: boolean
  ): Effect.Effect<ResilientResult, LadderError> => {
    const request = decodedNow(input)
    if (request === undefined) return validated(input, started)
    const first = firstOf(client, started.steps[0]!, request, started.context)
    if (first === undefined) return finish(input, started, ladder(started, request)())
    // `uninterruptibleMask`, with the fiber's interruptibility read here rather than in the mask (two closures and
    // one call fewer per request): the region's steps run from its first operation (`commit`), after the flags
    // changed.
    const region = new FusedRequest(interruptible ? Effect.interruptible : keep, input, started, request, first, fiber)
    return interruptible ? Effect.uninterruptible(region) : region
  }

  /** A request under a tracer that exports: the request span, and one child per ladder step. */
  const spanned = (input: CompletionRequestInput, options: CallOptions | undefined) =>
    Effect.useSpan(
      "llm.request",
      { kind: "client", captureStackTrace: false, attributes: { [metrics.attr.operation]: "chat" } },
      (span) =>
        Effect.withParentSpan(
          Effect.clockWith((clock) => {
            const refused = checkCallOptions(options)
            if (refused !== undefined) return Effect.fail(refused)
            return validated(input, open(client, options, span, clock, client.latency))
          }),
          span
        )
    )

  // Effect 3 spans cost ≈ 9 µs each (the parent span is provided through the context). Effect's built-in tracer
  // exports nothing, so under it the spans are skipped; any other tracer (@effect/opentelemetry, a test tracer)
  // gets the request span and one child per ladder step.
  // The clock of the last services seen: a fiber's services change rarely, and a lookup costs two map reads.
  let services: Context.Context<DefaultServices.DefaultServices> | undefined
  let clock: Clock.Clock | undefined
  const clockOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Clock.Clock => {
    const current = fiber.currentDefaultServices
    if (current !== services || clock === undefined) {
      services = current
      clock = Context.get(current, Clock.Clock)
    }
    return clock
  }

  return (input, options) =>
    Effect.withFiberRuntime<ResilientResult, LadderError>((fiber, status) => {
      if (fiber.currentTracer !== nativeTracer) return spanned(input, options)
      const refused = checkCallOptions(options)
      if (refused !== undefined) return Effect.fail(refused)
      const started = open(client, options, undefined, clockOf(fiber), client.latency)
      return run(input, started, fiber, RuntimeFlags.interruption(status.runtimeFlags))
    })
}
