/**
 * `stream`: the request's plan run by the ladder with the stream call shape. The ladder serves at the first content
 * chunk; from there the committed stream is delivered, continued on the next steps after a failure when
 * `continuation` is on, checked on its assembled text, and ended with a `StreamEnd` that carries the
 * `ResilientResult`. When every step fails, the last resorts are streamed as chunks. One request event either way.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Fallback from "../../Fallback.js"
import type { CompletionRequest, CompletionRequestInput, StreamChunk } from "../../Llm.js"
import { DegradedResponse, type FallbackAttempt, HardFailure, type InvalidRequest } from "../../LlmError.js"
import * as Quality from "../../Quality.js"
import type {
  CallOptions,
  ResilientResult,
  ResilientStreamChunk,
  ResilientStreamEnd,
  Service
} from "../../Resilient.js"
import * as metrics from "../metrics.js"
import * as observability from "../observability.js"
import { validateRequest } from "../request.js"
import type { AttemptError, Client, Outcome, RequestContext } from "./client.js"
import { chunksOf, type Committed, resultChunks, resultOf, streamShape } from "./commit.js"
import { continuationRequest, dropRepeated } from "./continuation.js"
import { type LadderError, runLadder } from "./engine.js"
import { reportRequest, type RequestStart } from "./event.js"
import { checkCallOptions } from "./options.js"
import type { Step } from "./plan.js"
import { withRecovery } from "./recovery.js"
import { begin, withTrace } from "./request.js"
import { lastResorts, served } from "./result.js"

type StreamEnd = Extract<StreamChunk, { readonly _tag: "StreamEnd" }>
type StreamError = FallbackExhausted | HardFailure | InvalidRequest
type FallbackExhausted = Extract<LadderError, { readonly _tag: "FallbackExhausted" }>

const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** A last resort (or an accepted degraded answer) as a stream. */
const asStream = (result: ResilientResult): Stream.Stream<ResilientStreamChunk> =>
  Stream.fromIterable(
    resultChunks(result).map((chunk): ResilientStreamChunk => chunk._tag === "StreamEnd" ? { ...chunk, result } : chunk)
  )

// After the commit point only a provider's failure can end a step's stream (limits, breakers and buffered checks
// act before it); the rest of the taxonomy cannot reach the caller from there.
const afterCommit = (error: AttemptError): Stream.Stream<never, HardFailure | InvalidRequest> =>
  error._tag === "HardFailure" || error._tag === "InvalidRequest"
    ? Stream.fail(error)
    : Stream.dieMessage(`unexpected ${error._tag} after a stream's commit point`)

/** The failure that ends a committed stream, carrying every character the caller received. */
const withDelivered = (error: AttemptError, delivered: string): AttemptError =>
  error instanceof HardFailure && error.partialContent !== delivered && delivered !== ""
    ? new HardFailure({ ...error, partialContent: delivered })
    : error

interface Delivery {
  readonly client: Client
  readonly input: CompletionRequestInput
  readonly request: CompletionRequest
  readonly steps: ReadonlyArray<Step>
  readonly context: RequestContext
  readonly start: RequestStart
  readonly shape: ReturnType<typeof streamShape>
}

/** The committed stream, its continuations and its end. */
const deliver = (
  delivery: Delivery,
  first: Fallback.Served<Outcome<Committed>>
): Stream.Stream<ResilientStreamChunk, StreamError> => {
  const { client, context, input, request, shape, start, steps } = delivery
  let text = ""
  // A continuation resumes text; a tool call cut short cannot be resumed on another provider without repeating it.
  let toolCallDelivered = false
  let firstAt: number | undefined
  let end: StreamEnd | undefined
  let outcome = first.value
  let position = first.tier
  let attempts: ReadonlyArray<FallbackAttempt> = first.attempts
  let final: ResilientResult | undefined

  const segment = (
    current: Outcome<Committed>,
    delivered: string
  ): Stream.Stream<Exclude<StreamChunk, StreamEnd>, StreamError> =>
    Stream.suspend(() => {
      const startedAt = context.clock.unsafeCurrentTimeMillis()
      const source = delivered === "" ? chunksOf(current.value) : dropRepeated(delivered)(chunksOf(current.value))
      return source.pipe(
        Stream.filter((chunk): chunk is Exclude<StreamChunk, StreamEnd> => {
          if (chunk._tag === "StreamEnd") {
            end = chunk
            return false
          }
          if (chunk._tag === "ContentDelta") text += chunk.text
          else toolCallDelivered = true
          firstAt ??= context.clock.unsafeCurrentTimeMillis()
          return true
        }),
        Stream.catchAll((error): Stream.Stream<Exclude<StreamChunk, StreamEnd>, StreamError> => {
          const failure = withDelivered(error, text)
          const next = steps.slice(current.step.index + 1)
          if (
            client.config.continuation !== true || toolCallDelivered || next.length === 0
            || !Fallback.shouldFallBack(failure)
          ) {
            return afterCommit(failure)
          }
          const failed = Fallback.attemptOf(failure, {
            tier: position,
            label: current.step.label,
            latencyMs: context.clock.unsafeCurrentTimeMillis() - startedAt
          })
          const soFar = text
          const continued = runLadder(
            client,
            shape,
            next,
            (step) => continuationRequest(request, soFar, step.tier.provider.name),
            context,
            false
          )
          return Stream.unwrap(Effect.match(continued, {
            onFailure: () => afterCommit(failure),
            onSuccess: (served) => {
              attempts = [...attempts, failed, ...served.attempts]
              outcome = served.value
              position = served.value.step.index + 1
              return segment(served.value, soFar)
            }
          }))
        })
      )
    })

  // The whole stream's result: checked on its assembled text, recorded, cached, and carried by the end.
  const finish = Effect.suspend((): Effect.Effect<ResilientStreamEnd, HardFailure> => {
    if (end === undefined) {
      return Effect.fail(
        new HardFailure({
          reason: "Connection",
          provider: outcome.step.tier.provider.name,
          model: outcome.step.model,
          providerCode: "stream_incomplete",
          partialContent: text,
          retryable: true
        })
      )
    }
    const streamEnd = end
    const { label } = outcome.step
    const result = resultOf(text, streamEnd)
    const check = outcome.step.tier.config.quality
    const checks = shape.checkedBeforeCommit(outcome.step) || check === undefined
      ? Quality.all(Quality.truncated, Quality.repetitive())
      : Quality.all(Quality.truncated, Quality.repetitive(), check)
    return Effect.map(Effect.exit(withTrace(client, context, checks(result))), (checked) => {
      let degraded = outcome.degraded
      const { trace } = context
      if (check !== undefined && !shape.checkedBeforeCommit(outcome.step)) {
        const error = Exit.isFailure(checked) ? Option.getOrUndefined(Cause.failureOption(checked.cause)) : undefined
        const format = error?._tag === "SoftFailure"
          && (error.reason === "FormatViolation" || error.reason === "SchemaMismatch")
        observability.recordFormat(label, !format, trace)
        if (error?._tag === "SoftFailure" && error.score !== undefined) {
          observability.recordQualityScore(label, error.score, trace)
        } else if (trace.passedScore !== undefined) observability.recordQualityScore(label, trace.passedScore, trace)
        trace.passedScore = undefined
      }
      if (Exit.isFailure(checked)) {
        const error = Option.getOrUndefined(Cause.failureOption(checked.cause))
        if (error instanceof DegradedResponse) degraded ??= error.reason
      }
      const resilient = served(outcome.step, degraded, result, position, attempts)
      observability.recordStreamEnd(streamEnd)
      final = resilient
      return { ...streamEnd, result: resilient } satisfies ResilientStreamEnd
    })
  })

  // Without an end, a stream that did not fail was stopped by its consumer: not a request outcome.
  const report = (exit: Exit.Exit<unknown, StreamError>) =>
    Effect.suspend(() => {
      const ttftMs = firstAt === undefined ? undefined : firstAt - start.startedAt
      if (final !== undefined) {
        const result = final
        const remember = result.degraded === undefined
          ? Effect.zipRight(
            Effect.sync(() => {
              if (end?.ttftMs !== undefined) client.ttft.of(result.servedBy).record(end.ttftMs)
            }),
            client.cache === undefined ? Effect.void : client.cache.set(input, result)
          )
          : Effect.void
        return Effect.zipRight(remember, reportRequest(client, start, context, Exit.succeed(result), ttftMs))
      }
      if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
        return reportRequest(client, start, context, Exit.failCause(exit.cause), ttftMs)
      }
      return Effect.void
    })

  return Stream.concat(segment(first.value, ""), Stream.fromEffect(finish)).pipe(Stream.ensuringWith(report))
}

/** @internal */
export const makeStream = (client: Client): Service["stream"] => {
  const open = (
    input: CompletionRequestInput,
    options: CallOptions | undefined,
    span: Tracer.Span | undefined
  ): Effect.Effect<Stream.Stream<ResilientStreamChunk, StreamError>, never, Scope.Scope> =>
    Effect.gen(function*() {
      const refused = checkCallOptions(options)
      if (refused !== undefined) return Stream.fail(refused)
      const { context, start, steps } = yield* begin(client, options, span, client.ttft)
      const scope = yield* Effect.scope
      const shape = streamShape(client, scope, options?.buffer)
      const ladder = Effect.flatMap(
        validateRequest(input),
        (request) =>
          Effect.map(
            withRecovery(client, context, runLadder(client, shape, steps, request, context)),
            (served) => ({ request, served })
          )
      )
      const exit = yield* Effect.exit(withTrace(client, context, ladder))
      if (Exit.isSuccess(exit)) {
        const { request, served } = exit.value
        return deliver({ client, input, request, steps, context, start, shape }, served)
      }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && failure.value._tag === "FallbackExhausted") {
        const last = yield* Effect.exit(lastResorts(client, input, failure.value, context.degradedSeen))
        yield* reportRequest(client, start, context, last)
        return Exit.isSuccess(last) ? asStream(last.value) : Stream.failCause(last.cause)
      }
      yield* reportRequest(client, start, context, Exit.failCause(exit.cause))
      return Stream.failCause(exit.cause)
    })

  // As for `complete`: spans only under a tracer that exports them. `llm.stream` lives as long as the stream.
  return (input, options) =>
    Stream.unwrapScoped(
      Effect.tracerWith((tracer) =>
        tracer === nativeTracer ? open(input, options, undefined) : Effect.flatMap(
          Effect.makeSpanScoped("llm.stream", {
            kind: "client",
            captureStackTrace: false,
            attributes: { [metrics.attr.operation]: "chat" }
          }),
          (span) => Effect.withParentSpan(open(input, options, span), span)
        )
      )
    )
}
