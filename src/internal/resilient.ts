import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as Fallback from "../Fallback.js"
import type { CompletionRequest, CompletionRequestInput, CompletionResult, StreamChunk } from "../Llm.js"
import {
  type CircuitOpen,
  type DegradedReason,
  DegradedResponse,
  type FallbackExhausted,
  type HardFailure,
  hardFailure,
  InvalidOptions,
  type InvalidRequest,
  type RateLimitExceeded,
  type SoftFailure
} from "../LlmError.js"
import type { Service as LlmProvider } from "../LlmProvider.js"
import * as Quality from "../Quality.js"
import * as RateLimit from "../RateLimit.js"
import type { CallOptions, Config, Price, ResilientResult, Service, Strategy, Tier } from "../Resilient.js"
import * as Retry from "../Retry.js"
import * as Streaming from "../Streaming.js"
import * as metrics from "./metrics.js"
import * as observability from "./observability.js"
import { nonBlank, positiveDuration, positiveInteger } from "./options.js"
import { validateRequest, withConnectTimeout, withModel } from "./request.js"
import { checkCallOptions, uniqueSteps, validateConfig } from "./resilient/options.js"
import { preflight } from "./resilient/preflight.js"
import { timeoutFail } from "./timeout.js"

type StreamEnd = Extract<StreamChunk, { readonly _tag: "StreamEnd" }>

interface BuiltTier {
  readonly index: number
  readonly config: Tier
  readonly provider: LlmProvider
  readonly models: ReadonlyArray<string>
  readonly retrier: Retry.Retrier | undefined
  readonly timeout: Duration.Duration | undefined
  readonly contextWindow: number
  readonly qualityRank: number
}

/** What one call through the limiter can fail with. */
type AttemptError = HardFailure | InvalidRequest | RateLimitExceeded | CircuitOpen | SoftFailure | DegradedResponse

/** Refused locally, before any call: what `Fallback.chain` reports as skipped. */
const isRefusal = (error: { readonly _tag: string }): boolean =>
  error._tag === "CircuitOpen" || error._tag === "RateLimitExceeded"

const DEFAULT_CONTEXT_WINDOW = 128_000
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)
const LATENCY_SAMPLES = 64

// Option errors from a building block name its own field; inside a chain the tier's path comes first.
const within = (prefix: string) => (error: InvalidOptions) =>
  new InvalidOptions({ field: `${prefix}${error.field}`, reason: error.reason })

const isPrice = (price: Tier["price"]): price is Price =>
  price !== undefined && "inputPer1k" in price && typeof price.inputPer1k === "number"

const priceOf = (tier: Tier, model: string): Price | undefined =>
  tier.price === undefined ? undefined : isPrice(tier.price) ? tier.price : tier.price[model]

const costOf = (price: Price | undefined, result: CompletionResult): number =>
  price === undefined
    ? 0
    : (result.usage.inputTokens / 1000) * price.inputPer1k + (result.usage.outputTokens / 1000) * price.outputPer1k

/** Observed latencies of one step, newest overwriting oldest. */
class LatencyWindow {
  private readonly samples = new Float64Array(LATENCY_SAMPLES)
  private count = 0
  record(millis: number): void {
    this.samples[this.count % LATENCY_SAMPLES] = millis
    this.count++
  }
  quantile(q: number): number | undefined {
    const size = Math.min(this.count, LATENCY_SAMPLES)
    if (size === 0) return undefined
    const sorted = Array.from(this.samples.subarray(0, size)).sort((a, b) => a - b)
    return sorted[Math.min(size - 1, Math.floor(q * size))]
  }
}

/** @internal */
export const make = (config: Config): Effect.Effect<Service, InvalidOptions> =>
  Effect.gen(function*() {
    yield* validateConfig(config)
    const tiers: Array<BuiltTier> = []
    const breakers = new Map<string, CircuitBreaker.CircuitBreaker>()
    const perKey: Record<string, RateLimit.Limits> = {}
    // Settings a shared registry or limiter makes moot: said once, at construction, rather than dropped silently.
    const ignored: Array<string> = []
    for (const [index, tier] of config.chain.entries()) {
      const path = `chain[${index}].`
      const provider = Effect.isEffect(tier.provider)
        ? yield* Effect.mapError(tier.provider, within(path))
        : tier.provider
      const timeout = yield* Effect.mapError(positiveDuration("timeout", tier.timeout), within(path))
      yield* Effect.mapError(positiveInteger("contextWindow", tier.contextWindow), within(path))
      const retrier = tier.retry === false
        ? undefined
        : yield* Effect.mapError(Retry.make(tier.retry ?? {}), within(`${path}retry.`))
      for (const [position, model] of (tier.downgrades ?? []).entries()) {
        yield* Effect.mapError(nonBlank(`downgrades[${position}]`, model), within(path))
      }
      const models = [provider.model, ...(tier.downgrades ?? [])]
      for (const model of models) {
        const key = `${provider.name}:${model}`
        if (tier.breaker !== false && !breakers.has(key)) {
          const breaker = config.breakers !== undefined
            ? yield* config.breakers.get(key)
            : yield* Effect.mapError(CircuitBreaker.make({ ...tier.breaker, key }), within(`${path}breaker.`))
          breakers.set(key, breaker)
        }
        if (tier.limits !== undefined && tier.limits !== false) perKey[key] = tier.limits
      }
      if (config.breakers !== undefined && tier.breaker !== undefined && tier.breaker !== false) {
        ignored.push(`${path}breaker`)
      }
      if (config.limiter !== undefined && tier.limits !== undefined && tier.limits !== false) {
        ignored.push(`${path}limits`)
      }
      tiers.push({
        index,
        config: tier,
        provider,
        models,
        retrier,
        timeout,
        contextWindow: tier.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
        qualityRank: tier.qualityRank ?? index
      })
    }
    yield* uniqueSteps(tiers.map((tier) => ({ provider: tier.provider, downgrades: tier.config.downgrades })))
    if (config.limiter !== undefined && config.rateLimit !== undefined) ignored.push("rateLimit")
    if (ignored.length > 0) {
      yield* Effect.logWarning("settings ignored: a shared breaker registry or rate limiter decides them").pipe(
        Effect.annotateLogs({ fields: ignored.join(", ") })
      )
    }
    // Not `??`: the CJS build turns its right side into an arrow function, where `yield*` cannot stand.
    const limiter = config.limiter !== undefined
      ? config.limiter
      : yield* Effect.mapError(RateLimit.make({ ...config.rateLimit, perKey }), within("rateLimit."))
    // Breaker state → `llm.circuit_breaker.state` / `.transitions`. One daemon per breaker follows its `events`; it
    // waits on the breaker's hub and is collected with the breaker (nothing else references it). `make` returns once
    // every daemon is suspended on its subscription, so no transition of the first request is missed.
    const followers: Array<Fiber.RuntimeFiber<void>> = []
    for (const [key, breaker] of breakers) {
      metrics.update(metrics.forLabel(key).breakerState, metrics.stateValue(yield* breaker.state))
      followers.push(
        yield* Effect.forkDaemon(
          Stream.runForEach(breaker.events, (change) =>
            Effect.sync(() => metrics.breakerTransition(change.key, change.from, change.to, change.reason)))
        )
      )
    }
    for (const follower of followers) {
      for (let turn = 0; turn < 1_000 && (yield* Fiber.status(follower))._tag !== "Suspended"; turn++) {
        yield* Effect.yieldNow()
      }
    }
    const limited = config.limiter !== undefined || config.rateLimit !== undefined || Object.keys(perKey).length > 0
    const checked = tiers.some((tier) =>
      tier.config.quality !== undefined
    )
    const cache = config.degrade?.cache === undefined
      ? undefined
      : yield* Fallback.makeResponseCache(config.degrade.cache)
    const latency = new Map<string, LatencyWindow>()
    const latencyOf = (label: string) => {
      let window = latency.get(label)
      if (window === undefined) {
        window = new LatencyWindow()
        latency.set(label, window)
      }
      return window
    }
    const firstLabel = (tier: BuiltTier) => `${tier.provider.name}:${tier.provider.model}`
    const hedger = config.hedging === undefined ? undefined : yield* Fallback.makeHedger({
      maxFraction: config.hedging.maxFraction,
      delay: config.hedging.delay === "p95"
        ? () => Duration.millis(latencyOf(firstLabel(order("ordered")[0] ?? tiers[0]!)).quantile(0.95) ?? 2_000)
        : config.hedging.delay
    })
    const acceptReasons: ReadonlyArray<DegradedReason> | undefined = config.degraded === "accept"
      ? ["Truncated", "Repetitive", "Slow"]
      : Array.isArray(config.degraded)
      ? config.degraded
      : undefined

    function order(strategy: Strategy): ReadonlyArray<BuiltTier> {
      const sorted = [...tiers]
      const byNumber = (f: (tier: BuiltTier) => number) => sorted.sort((a, b) => f(a) - f(b) || a.index - b.index)
      switch (strategy) {
        case "cost-first":
          return byNumber((tier) => {
            const price = priceOf(tier.config, tier.provider.model)
            return price === undefined ? Number.POSITIVE_INFINITY : price.inputPer1k + price.outputPer1k
          })
        case "latency-first":
          return byNumber((tier) => latencyOf(firstLabel(tier)).quantile(0.5) ?? Number.POSITIVE_INFINITY)
        case "quality-first":
          return byNumber((tier) => tier.qualityRank)
        case "ordered":
          return sorted
      }
    }

    interface Outcome {
      readonly result: CompletionResult
      readonly label: string
      readonly tier: BuiltTier
      readonly model: string
      readonly degraded: DegradedReason | undefined
    }

    const attempt = (
      tier: BuiltTier,
      model: string,
      request: CompletionRequest,
      degradedSeen: { value: Outcome | undefined },
      trace: observability.RequestTrace,
      clock: Clock.Clock
    ) => {
      const label = `${tier.provider.name}:${model}`
      const breaker = breakers.get(label)
      const check = tier.config.quality
      const inner = (input: CompletionRequestInput) => {
        // `timeoutFail` from ./timeout.ts: one fiber per call where `Effect.timeoutFail` forks two (≈ 2.4× cheaper).
        const timed = tier.timeout === undefined ? tier.provider.complete(input) : timeoutFail(
          tier.provider.complete(input),
          tier.timeout,
          () => hardFailure({ reason: "Timeout", provider: tier.provider.name, model, providerCode: "attempt_timeout" })
        )
        return check === undefined ? timed : Quality.validate(timed, check)
      }
      // breaker admission → retry → breaker record → rate limiter → timeout → call → quality
      // The wait in the limiter: from entering it to the moment it runs the call.
      const throughLimiter = (input: CompletionRequest) =>
        limited
          ? Effect.suspend(() => {
            const entered = clock.unsafeCurrentTimeMillis()
            return limiter.call(tier.provider, input, (admitted) =>
              Effect.suspend(() => {
                const waited = clock.unsafeCurrentTimeMillis() - entered
                if (waited > 0) metrics.update(metrics.forLabel(label).rateLimitWait, waited)
                return inner(admitted)
              }))
          })
          : limiter.call(tier.provider, input, inner)
      // The last failure of a call this step really made (`attempt` is built per request, and so is `seen`). A refusal
      // (`CircuitOpen`, `RateLimitExceeded`) after one — a retry or a relaxed request refused because the breaker
      // opened or the limiter filled meanwhile — is not what the step failed of: the step ends with that real failure,
      // so `attempts` reports it, and only a step that made no call is reported `skipped`.
      const seen: { failure: AttemptError | undefined } = { failure: undefined }
      const retrier = tier.retrier
      // After a failed call, an open breaker would only refuse the next attempt: `until` ends the retries at once
      // instead of sleeping a backoff and spending retry budget first.
      const until = breaker === undefined ? undefined : () => CircuitBreaker.isOpen(breaker)
      const recordedCall = (limitedCall: Effect.Effect<CompletionResult, AttemptError>) =>
        Effect.tapError(breaker === undefined ? limitedCall : breaker.execute(limitedCall), (error) =>
          Effect.sync(() => {
            if (!isRefusal(error)) seen.failure = error
          }))
      // --- preflight (./resilient/preflight.ts): refused or clamped locally, before breaker, retry and limiter ---
      const limits = {
        provider: tier.provider.name,
        model,
        contextWindow: tier.contextWindow,
        maxOutputTokens: tier.config.maxOutputTokens,
        countTokens: tier.provider.countTokens
      }
      const once = (input: CompletionRequest) => Effect.flatMap(preflight(input, limits), sent)
      const sent = (input: CompletionRequest) => {
        const recorded = recordedCall(throughLimiter(input))
        const retried = retrier === undefined
          ? recorded
          : retrier.retry(recorded, { name: tier.provider.name, model }, { until })
        return Effect.matchEffect(retried, {
          onSuccess: (result) => {
            if (check !== undefined) {
              observability.recordFormat(label, true, trace)
              if (trace.passedScore !== undefined) observability.recordQualityScore(label, trace.passedScore, trace)
              trace.passedScore = undefined
            }
            return Effect.succeed<Outcome>({ result, label, tier, model, degraded: undefined })
          },
          onFailure: (failed) => {
            trace.passedScore = undefined
            const error = isRefusal(failed) && seen.failure !== undefined ? seen.failure : failed
            if (check !== undefined && (error._tag === "SoftFailure" || error._tag === "DegradedResponse")) {
              const format = error._tag === "SoftFailure"
                && (error.reason === "FormatViolation" || error.reason === "SchemaMismatch")
              observability.recordFormat(label, !format, trace)
            }
            if (error instanceof DegradedResponse) {
              const outcome: Outcome = { result: error.result, label, tier, model, degraded: error.reason }
              if (acceptReasons?.includes(error.reason) === true) return Effect.succeed(outcome)
              degradedSeen.value ??= outcome
            }
            return Effect.fail(error)
          }
        })
      }
      const adapt = tier.config.adaptMessages
      // Adapted messages are the tier's own code's output: decoded again (the limiter would refuse them otherwise).
      const adapted = adapt === undefined
        ? Effect.succeed(withModel(withConnectTimeout(request, tier.config.connectTimeout), model))
        : validateRequest({
          ...withConnectTimeout(request, tier.config.connectTimeout),
          model,
          messages: adapt(request.messages)
        })
      return Effect.flatMap(adapted, (adapted) =>
        config.relaxation === false ? once(adapted) : Effect.catchAll(once(adapted), (error) =>
          Effect.flatMap(
            Fallback.relax(adapted, error, {
              contextWindow: tier.contextWindow,
              countTokens: tier.provider.countTokens
            }),
            Option.match({
              onNone: () =>
                Effect.fail(error),
              onSome: once
            })
          )))
    }

    type Step = Fallback.Tier<Outcome, Effect.Effect.Error<ReturnType<typeof attempt>>, never>

    const served = (outcome: Outcome, step: Fallback.Served<Outcome>): ResilientResult => {
      const first = step.attempts[0]?.label
      return {
        ...outcome.result,
        servedBy: outcome.label,
        tier: step.tier,
        ...(first !== undefined && first !== outcome.label ? { fallbackFrom: first } : {}),
        attempts: step.attempts,
        costUsd: costOf(priceOf(outcome.tier.config, outcome.model), outcome.result),
        ...(outcome.degraded !== undefined ? { degraded: outcome.degraded } : {})
      }
    }

    const lastResorts = (
      input: CompletionRequestInput,
      exhausted: FallbackExhausted,
      degradedSeen: Outcome | undefined
    ): Effect.Effect<ResilientResult, FallbackExhausted> =>
      Effect.gen(function*() {
        const base = { attempts: exhausted.attempts, tier: exhausted.attempts.length + 1, costUsd: 0 }
        if (degradedSeen !== undefined) {
          return {
            ...degradedSeen.result,
            ...base,
            servedBy: degradedSeen.label,
            fallbackFrom: exhausted.attempts[0]?.label,
            costUsd: costOf(priceOf(degradedSeen.tier.config, degradedSeen.model), degradedSeen.result),
            degraded: degradedSeen.degraded
          }
        }
        const hit = cache === undefined ? Option.none() : yield* cache.get(input)
        if (Option.isSome(hit)) {
          return {
            ...hit.value,
            ...base,
            servedBy: "cache",
            fallbackFrom: exhausted.attempts[0]?.label,
            degraded: "cache"
          }
        }
        const fixed = config.degrade?.staticResponse
        if (fixed !== undefined) {
          const result = yield* Fallback.staticResponse(fixed)
          return {
            ...result,
            ...base,
            servedBy: "static",
            fallbackFrom: exhausted.attempts[0]?.label,
            degraded: "static"
          }
        }
        return yield* Effect.fail(exhausted)
      })

    const instrumentStep = <A extends { readonly degraded: unknown }, E, R>(
      run: Effect.Effect<A, E, R>,
      label: string,
      step: number,
      primary: string,
      trace: observability.RequestTrace,
      traced: boolean
    ): Effect.Effect<A, E, R> => {
      if (!traced) {
        return Effect.onExit(
          run,
          (exit) =>
            Effect.sync(() => observability.recordAttempt(undefined, label, exit, trace))
        )
      }
      const { model, system } = metrics.splitLabel(label)
      return Effect.useSpan(
        "llm.attempt",
        {
          kind: "client",
          captureStackTrace: false,
          attributes: {
            [metrics.attr.operation]: "chat",
            [metrics.attr.system]: system,
            [metrics.attr.requestModel]: model,
            "llm.attempt": step,
            ...(step > 1 ? { "llm.fallback_from": primary } : {})
          }
        },
        (span) =>
          Effect.withParentSpan(
            Effect.onExit(run, (exit) => Effect.sync(() => observability.recordAttempt(span, label, exit, trace))),
            span
          )
      )
    }

    const ladder = (
      input: CompletionRequestInput,
      ordered: ReadonlyArray<BuiltTier>,
      primary: string,
      trace: observability.RequestTrace,
      clock: Clock.Clock,
      traced: boolean
    ): Effect.Effect<ResilientResult, FallbackExhausted | HardFailure | InvalidRequest> =>
      Effect.gen(function*() {
        const request = yield* validateRequest(input)
        const degradedSeen: { value: Outcome | undefined } = { value: undefined }
        const steps = ordered.flatMap((tier) =>
          tier.models.map((model) => {
            const label = `${tier.provider.name}:${model}`
            return { label, run: attempt(tier, model, request, degradedSeen, trace, clock) }
          })
        ).map(({ label, run }, index) => ({
          label,
          run: instrumentStep(run, label, index + 1, primary, trace, traced)
        }))
        const [first, second, ...rest] = steps
        if (first === undefined) return yield* Effect.dieMessage("a resilient chain has at least one step")
        const ladder: readonly [Step, ...Array<Step>] = hedger !== undefined && second !== undefined
          ? [{ label: `${first.label} | ${second.label}`, run: hedger.hedge(first.run, second.run) }, ...rest]
          : [first, ...(second === undefined ? [] : [second]), ...rest]
        const outcome = yield* Fallback.chain(ladder).pipe(
          Effect.map((step) => served(step.value, step)),
          Effect.catchAll((error): Effect.Effect<ResilientResult, FallbackExhausted | HardFailure | InvalidRequest> => {
            switch (error._tag) {
              case "FallbackExhausted":
                return lastResorts(input, error, degradedSeen.value)
              case "HardFailure":
              case "InvalidRequest":
                return Effect.fail(error)
              default:
                // Fallback.shouldFallBack moves every other failure on to the next step: none can end the chain.
                return Effect.dieMessage(`unexpected ${error._tag} ended a fallback chain`)
            }
          })
        )
        if (outcome.degraded === undefined) {
          latencyOf(outcome.servedBy).record(outcome.latencyMs)
          if (cache !== undefined) yield* cache.set(input, outcome)
        }
        return outcome
      })

    // One log event, one synchronous block of metric updates and (when a tracer exports them) one span per request.
    const run = (
      input: CompletionRequestInput,
      options: CallOptions | undefined,
      span: Tracer.Span | undefined
    ): Effect.Effect<ResilientResult, FallbackExhausted | HardFailure | InvalidRequest> =>
      Effect.gen(function*() {
        const refused = checkCallOptions(options)
        if (refused !== undefined) return yield* refused
        const clock = yield* Effect.clock
        const startedAt = clock.unsafeCurrentTimeMillis()
        const ordered = order(options?.strategy ?? config.strategy ?? "ordered")
        const head = ordered[0] ?? tiers[0]!
        const primary = firstLabel(head)
        const requestId = observability.nextRequestId()
        const trace = new observability.RequestTrace()
        // For `Observability.recordQualityScore` in a tier's checks (only chains with checks pay for it). Set and
        // restored by hand: `Effect.locally` costs ~10 µs.
        const outer = checked ? yield* FiberRef.getAndSet(observability.currentTrace, trace) : undefined
        const exit = yield* Effect.exit(ladder(input, ordered, primary, trace, clock, span !== undefined))
        if (checked) yield* FiberRef.set(observability.currentTrace, outer)
        const answeredBy = Exit.isSuccess(exit) ? exit.value.servedBy : primary
        const breaker = breakers.get(answeredBy)
        const circuitState = breaker === undefined ? undefined : yield* breaker.state
        if (circuitState !== undefined) {
          metrics.update(metrics.forLabel(answeredBy).breakerState, metrics.stateValue(circuitState))
        }
        const event = observability.recordRequest(exit, {
          span,
          requestId,
          primary,
          startedAt,
          endedAt: clock.unsafeCurrentTimeMillis(),
          trace,
          circuitState
        })
        yield* observability.logEvent(event)
        return yield* exit
      })

    // Effect 3 spans cost ~25 µs each (the parent span is provided through the context). Effect's built-in tracer
    // exports nothing, so under it the spans are skipped; any other tracer (@effect/opentelemetry, a test tracer)
    // gets the request span and one child per ladder step.
    const complete: Service["complete"] = (input, options) =>
      Effect.tracerWith((tracer) =>
        tracer === nativeTracer ? run(input, options, undefined) : Effect.useSpan(
          "llm.request",
          { kind: "client", captureStackTrace: false, attributes: { [metrics.attr.operation]: "chat" } },
          (span) => Effect.withParentSpan(run(input, options, span), span)
        )
      )

    // One log event per streamed request too, when the stream ends: served (its `StreamEnd` says by whom) or failed.
    // A stream its consumer stops early is not a request outcome, and logs nothing.
    const stream: Service["stream"] = (input, options) =>
      Stream.unwrap(Effect.gen(function*() {
        const refused = checkCallOptions(options)
        if (refused !== undefined) return yield* refused
        const clock = yield* Effect.clock
        const startedAt = clock.unsafeCurrentTimeMillis()
        const ordered = order(options?.strategy ?? config.strategy ?? "ordered")
        const primary = firstLabel(ordered[0] ?? tiers[0]!)
        const requestId = observability.nextRequestId()
        let end: StreamEnd | undefined
        const sources = ordered.map((tier, index) => {
          const breaker = breakers.get(firstLabel(tier))
          const target = { name: tier.provider.name, model: tier.provider.model }
          // One `llm.attempt` span per tier tried, under `llm.stream`, as a completion has one per ladder step.
          const attemptSpan = Stream.withSpan("llm.attempt", {
            kind: "client",
            captureStackTrace: false,
            attributes: {
              [metrics.attr.operation]: "chat",
              [metrics.attr.system]: target.name,
              [metrics.attr.requestModel]: target.model,
              "llm.attempt": index + 1,
              ...(index > 0 ? { "llm.fallback_from": primary } : {})
            }
          })
          // Retried (by the tier's policies) until the first chunk, the same order as a completion: an open breaker
          // refuses the stream before any request, the breaker records how each attempt ends, and a failure that
          // opened it ends the retries.
          const until = breaker === undefined ? undefined : () => CircuitBreaker.isOpen(breaker)
          return {
            ...target,
            stream: (request: CompletionRequestInput) => {
              const limited = limiter.stream(
                tier.provider,
                tier.config.connectTimeout === undefined || request.connectTimeout !== undefined
                  ? request
                  : { ...request, connectTimeout: Duration.decode(tier.config.connectTimeout) }
              )
              const recorded = breaker === undefined ? limited : breaker.executeStream(limited)
              // A spent retry budget ends the stream with the failure it would have retried.
              const retried = tier.retrier === undefined
                ? recorded
                : tier.retrier.retryStream(recorded, target, { until }).pipe(
                  Stream.catchTag("RetryBudgetExhausted", (exhausted) => Stream.fail(exhausted.failure))
                )
              return attemptSpan(retried)
            }
          }
        })
        const servedResult = (chunk: StreamEnd): ResilientResult => {
          const label = `${chunk.provider}:${chunk.model}`
          const index = ordered.findIndex((tier) => tier.provider.name === chunk.provider)
          const tier = ordered[index]
          const result: CompletionResult = {
            content: "",
            usage: chunk.usage,
            model: chunk.model,
            provider: chunk.provider,
            finishReason: chunk.finishReason,
            latencyMs: chunk.latencyMs
          }
          return {
            ...result,
            servedBy: label,
            tier: index + 1,
            ...(label !== primary ? { fallbackFrom: primary } : {}),
            attempts: [],
            costUsd: tier === undefined ? 0 : costOf(priceOf(tier.config, chunk.model), result)
          }
        }
        const logOutcome = <E>(exit: Exit.Exit<unknown, E>) =>
          Effect.suspend(() => {
            // Without a `StreamEnd`, a stream that did not fail was stopped by its consumer (which ends it with
            // success, or interrupts it): not a request outcome.
            let outcome: Exit.Exit<ResilientResult, unknown>
            if (end !== undefined) outcome = Exit.succeed(servedResult(end))
            else if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) outcome = Exit.failCause(exit.cause)
            else return Effect.void
            const answeredBy = Exit.isSuccess(outcome) ? outcome.value.servedBy : primary
            const breaker = breakers.get(answeredBy)
            return Effect.flatMap(breaker === undefined ? Effect.succeed(undefined) : breaker.state, (circuitState) =>
              observability.logEvent(observability.recordRequest(outcome, {
                span: undefined,
                requestId,
                primary,
                startedAt,
                endedAt: clock.unsafeCurrentTimeMillis(),
                trace: new observability.RequestTrace(),
                circuitState,
                ttftMs: end?.ttftMs
              })))
          })
        const [head, ...tail] = sources
        return head === undefined
          ? Stream.dieMessage("a resilient chain has at least one provider")
          : Streaming.failover([head, ...tail], input).pipe(
            Stream.tap((chunk) =>
              chunk._tag === "StreamEnd"
                ? Effect.sync(() => {
                  end = chunk
                  observability.recordStreamEnd(chunk)
                })
                : Effect.void
            ),
            Stream.ensuringWith(logOutcome),
            Stream.withSpan("llm.stream", {
              kind: "client",
              captureStackTrace: false,
              attributes: { [metrics.attr.operation]: "chat", "llm.primary": primary }
            })
          )
      }))

    return {
      complete,
      stream,
      breakers,
      limiter,
      providers: tiers.map((tier) => tier.provider)
    }
  })

/**
 * `make`, with the breaker registry and the limiter taken from the context when the config names none.
 * @internal
 */
export const makeFromContext = (config: Config): Effect.Effect<Service, InvalidOptions> =>
  Effect.gen(function*() {
    const registry = yield* Effect.serviceOption(CircuitBreaker.CircuitBreakerRegistry)
    const limiter = yield* Effect.serviceOption(RateLimit.RateLimiter)
    return yield* make({
      ...config,
      breakers: config.breakers ?? Option.getOrUndefined(registry),
      limiter: config.limiter ?? Option.getOrUndefined(limiter)
    })
  })
