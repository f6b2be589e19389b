/**
 * Fallback programs: typed `orElse` steps, ordered chains that report every attempt, parameter relaxation, a
 * response cache and a static answer for graceful degradation, and hedging.
 *
 * Every piece works on any Effect; `Resilient` assembles them into the six-tier ladder.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as internal from "./internal/fallbackChain.js"
import * as validate from "./internal/options.js"
import { RetryBudget } from "./internal/retryBudget.js"
import type { ChatMessage, CompletionRequest, CompletionRequestInput, CompletionResult } from "./Llm.js"
import { type FallbackAttempt, type FallbackExhausted, type InvalidOptions } from "./LlmError.js"

/**
 * Which failures move on to the next step by default (DESIGN.md's table): every hard failure but a caller's
 * `BadRequest`; soft and degraded answers; a tier refused locally (open breaker, rate limit, spent retry budget).
 * `InvalidRequest` never moves on: every tier would reject it. Errors outside the taxonomy move on.
 *
 * @since 0.1.0
 * @category Predicates
 */
export const shouldFallBack = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) return true
  if (error._tag === "InvalidRequest") return false
  if (error._tag === "HardFailure" && "reason" in error) return error.reason !== "BadRequest"
  return true
}

/**
 * `self`, or `that` when `self` fails with an error `when` accepts (default {@link shouldFallBack}); other errors
 * pass through. The error channel is `that`'s plus whatever `when` lets through.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const orElse: {
  <A2, E2, R2>(
    that: Effect.Effect<A2, E2, R2>,
    options?: { readonly when?: ((error: unknown) => boolean) | undefined }
  ): <A1, E1, R1>(self: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1 | A2, E1 | E2, R1 | R2>
  <A1, E1, R1, A2, E2, R2>(
    self: Effect.Effect<A1, E1, R1>,
    that: Effect.Effect<A2, E2, R2>,
    options?: { readonly when?: ((error: unknown) => boolean) | undefined }
  ): Effect.Effect<A1 | A2, E1 | E2, R1 | R2>
} = dual(
  (args) => Effect.isEffect(args[0]) && Effect.isEffect(args[1]),
  <A1, E1, R1, A2, E2, R2>(
    self: Effect.Effect<A1, E1, R1>,
    that: Effect.Effect<A2, E2, R2>,
    options?: { readonly when?: ((error: unknown) => boolean) | undefined }
  ): Effect.Effect<A1 | A2, E1 | E2, R1 | R2> => {
    const when = options?.when ?? shouldFallBack
    return Effect.catchAll(self, (error): Effect.Effect<A2, E1 | E2, R2> => when(error) ? that : Effect.fail(error))
  }
)

/**
 * One step of a {@link chain}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Tier<A, E, R> {
  /** How the step is reported, e.g. `openai:gpt-4.1` or `cache`. */
  readonly label: string
  readonly run: Effect.Effect<A, E, R>
}

/**
 * What a chain returns: the value and how it was obtained.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Served<A> {
  readonly value: A
  /** 1-based position of the step that answered. */
  readonly tier: number
  readonly label: string
  /** The steps before it, failed or skipped. */
  readonly attempts: ReadonlyArray<FallbackAttempt>
}

/**
 * How a chain reports a step that failed with `error` (the error's tag, reason and message, whether it was skipped,
 * when it could be tried again, and the provider's error code or a connection failure's system code and host). A stream that fails after its commit point is reported the same way.
 *
 * @since 0.1.0
 * @category Models
 */
export const attemptOf: (
  error: unknown,
  step: { readonly tier: number; readonly label: string; readonly latencyMs: number }
) => FallbackAttempt = internal.attemptOf

/**
 * Runs the steps in order until one succeeds. A failure that {@link shouldFallBack} (or `when`) rejects ends the
 * chain with that failure; when every step fails, the chain fails with `FallbackExhausted` listing each attempt with
 * its latency. An open breaker or a full limiter answers at once, so such a tier costs no call and no wait; it is
 * reported as skipped.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const chain = <
  const Tiers extends readonly [Tier<unknown, unknown, unknown>, ...Array<Tier<unknown, unknown, unknown>>]
>(
  tiers: Tiers,
  options: { readonly when?: ((error: unknown) => boolean) | undefined } = {}
): Effect.Effect<
  Served<Effect.Effect.Success<Tiers[number]["run"]>>,
  Effect.Effect.Error<Tiers[number]["run"]> | FallbackExhausted,
  Effect.Effect.Context<Tiers[number]["run"]>
> =>
  internal.chain<
    Effect.Effect.Success<Tiers[number]["run"]>,
    Effect.Effect.Error<Tiers[number]["run"]>,
    Effect.Effect.Context<Tiers[number]["run"]>
  >(
    // Sound: each tier's `run` is one of the members of `Tiers[number]["run"]`; TypeScript cannot see through the
    // indexed access on a generic tuple.
    tiers as unknown as ReadonlyArray<
      Tier<
        Effect.Effect.Success<Tiers[number]["run"]>,
        Effect.Effect.Error<Tiers[number]["run"]>,
        Effect.Effect.Context<Tiers[number]["run"]>
      >
    >,
    options.when ?? shouldFallBack
  )

/**
 * Counts prompt tokens, e.g. a provider's `countTokens`.
 *
 * @since 0.1.0
 * @category Models
 */
export type TokenCounter = (messages: ReadonlyArray<ChatMessage>) => Effect.Effect<number>

/**
 * The history in the units trimming drops whole: an assistant message with tool calls together with the tool
 * results that answer it (a result without its call, or a call without its results, is refused by the providers);
 * any other message alone.
 */
const turns = (messages: ReadonlyArray<ChatMessage>): Array<Array<ChatMessage>> => {
  const units: Array<Array<ChatMessage>> = []
  let open: { readonly unit: Array<ChatMessage>; readonly ids: ReadonlySet<string> } | undefined
  for (const message of messages) {
    if (open !== undefined && message.role === "tool" && open.ids.has(message.toolCallId ?? "")) {
      open.unit.push(message)
      continue
    }
    const unit = [message]
    units.push(unit)
    open = message.toolCalls !== undefined && message.toolCalls.length > 0
      ? { unit, ids: new Set(message.toolCalls.map((call) => call.id)) }
      : undefined
  }
  return units
}

/**
 * Drops the oldest non-system messages until the prompt fits `maxInputTokens`. System messages and the last message
 * are always kept; a tool call and its results are dropped or kept together. `None` when even that does not fit.
 *
 * @since 0.1.0
 * @category Relaxation
 */
export const trimToFit = (
  messages: ReadonlyArray<ChatMessage>,
  maxInputTokens: number,
  count: TokenCounter
): Effect.Effect<Option.Option<ReadonlyArray<ChatMessage>>> =>
  Effect.gen(function*() {
    let units = turns(messages)
    let kept = messages
    while ((yield* count(kept)) > maxInputTokens) {
      const oldest = units.findIndex((unit, index) => unit[0]!.role !== "system" && index < units.length - 1)
      if (oldest === -1) return Option.none()
      units = units.filter((_, index) => index !== oldest)
      kept = units.flat()
    }
    return Option.some(kept)
  })

/**
 * @since 0.1.0
 * @category Relaxation
 */
export interface RelaxOptions {
  /** The model's context window, in tokens. */
  readonly contextWindow: number
  readonly countTokens: TokenCounter
  /** Output tokens to reserve when the request sets no `maxTokens`. Default 1024. */
  readonly outputReserve?: number | undefined
  /** Temperature for the retry after a soft failure. Default 0. */
  readonly softTemperature?: number | undefined
}

/**
 * The relaxed version of a request after a failure, or `None` when relaxing cannot help:
 * - `ContextLengthExceeded`: halve `maxTokens` (not below 256) and trim the oldest non-system messages so that the
 *   prompt plus the output reserve fits the context window;
 * - a soft failure: lower the temperature (default to 0) — a cooler sample is likelier to follow the format.
 *
 * @since 0.1.0
 * @category Relaxation
 */
export const relax = (
  request: CompletionRequest,
  error: unknown,
  options: RelaxOptions
): Effect.Effect<Option.Option<CompletionRequest>> =>
  Effect.gen(function*() {
    if (typeof error !== "object" || error === null || !("_tag" in error)) return Option.none()
    if (error._tag === "SoftFailure") {
      const temperature = options.softTemperature ?? 0
      return request.temperature === undefined || request.temperature > temperature
        ? Option.some({ ...request, temperature })
        : Option.none()
    }
    if (error._tag !== "HardFailure" || !("reason" in error) || error.reason !== "ContextLengthExceeded") {
      return Option.none()
    }
    const maxTokens = request.maxTokens === undefined
      ? options.outputReserve ?? 1024
      : Math.max(256, Math.floor(request.maxTokens / 2))
    const trimmed = yield* trimToFit(request.messages, options.contextWindow - maxTokens, options.countTokens)
    if (Option.isNone(trimmed)) return Option.none()
    const unchanged = trimmed.value.length === request.messages.length && maxTokens === request.maxTokens
    return unchanged ? Option.none() : Option.some({ ...request, messages: trimmed.value, maxTokens })
  })

/**
 * @since 0.1.0
 * @category Degradation
 */
export interface ResponseCache {
  /** The last good answer for an equal normalized request, if it is younger than the TTL. */
  readonly get: (request: CompletionRequestInput) => Effect.Effect<Option.Option<CompletionResult>>
  /** Remembers a good answer. Only successes are ever stored: there is no way to cache an error. */
  readonly set: (request: CompletionRequestInput, result: CompletionResult) => Effect.Effect<void>
  readonly size: Effect.Effect<number>
}

// Equal requests are equal after whitespace is normalized; metadata (tracing, tenants) does not change the answer;
// tools, tool choice and response format do.
const cacheKey = (request: CompletionRequestInput): string =>
  JSON.stringify([
    request.model ?? null,
    request.responseFormat ?? "text",
    request.providerOptions ?? null,
    request.temperature ?? null,
    request.maxTokens ?? null,
    request.stopSequences ?? [],
    request.tools ?? [],
    request.toolChoice ?? "auto",
    request.topP ?? null,
    request.seed ?? null,
    request.parallelToolCalls ?? null,
    request.messages.map((message) => [
      message.role,
      typeof message.content === "string" ? message.content.trim().replace(/\s+/g, " ") : message.content ?? null,
      message.toolCalls ?? null,
      message.toolCallId ?? null
    ])
  ])

/**
 * An in-memory LRU cache of good answers with a TTL, read on the Effect `Clock` (so `TestClock` controls expiry).
 *
 * @since 0.1.0
 * @category Degradation
 */
export const makeResponseCache = (
  options: { readonly ttl: Duration.DurationInput; readonly capacity: number }
): Effect.Effect<ResponseCache, InvalidOptions> =>
  Effect.gen(function*() {
    const ttl = Duration.toMillis((yield* validate.duration("ttl", options.ttl))!)
    yield* validate.positiveInteger("capacity", options.capacity)
    const entries = new Map<string, { readonly result: CompletionResult; readonly at: number }>()
    return {
      get: (request) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const key = cacheKey(request)
          const entry = entries.get(key)
          if (entry === undefined) return Option.none()
          if (now - entry.at > ttl) {
            entries.delete(key)
            return Option.none()
          }
          // Re-insert: a Map iterates in insertion order, so the first key is the least recently used.
          entries.delete(key)
          entries.set(key, entry)
          return Option.some(entry.result)
        }),
      set: (request, result) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const key = cacheKey(request)
          entries.delete(key)
          entries.set(key, { result, at: now })
          while (entries.size > options.capacity) {
            const oldest = entries.keys().next()
            if (oldest.done === true) break
            entries.delete(oldest.value)
          }
        }),
      size: Effect.sync(() => entries.size)
    }
  })

/**
 * A fixed answer as a result from provider `static`, the last resort before the final error.
 *
 * @since 0.1.0
 * @category Degradation
 */
export const staticResponse = (content: string): Effect.Effect<CompletionResult> =>
  Effect.succeed({
    content,
    usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0 },
    model: "static",
    provider: "static",
    finishReason: "stop",
    latencyMs: 0
  })

/**
 * @since 0.1.0
 * @category Hedging
 */
export interface HedgeOptions {
  /** How long the primary runs alone. A function is asked on each call (e.g. the primary's observed P95). */
  readonly delay: Duration.DurationInput | (() => Duration.DurationInput)
  /** Hedges may add at most this share of the calls (default 0.1), within a 10 s window. */
  readonly maxFraction?: number | undefined
}

/**
 * @since 0.1.0
 * @category Hedging
 */
export interface Hedger {
  readonly hedge: <A1, E1, R1, A2, E2, R2>(
    primary: Effect.Effect<A1, E1, R1>,
    secondary: Effect.Effect<A2, E2, R2>
  ) => Effect.Effect<A1 | A2, E1 | E2, R1 | R2>
}

/**
 * Hedged requests: the primary starts; if it has not answered after `delay` (or failed before it), the secondary
 * starts too, and the first success wins — the other is interrupted, which aborts its HTTP request and returns its
 * permits; breakers do not count an interruption. When the budget is spent, the secondary starts only after a
 * primary failure, as a plain fallback. If both fail, the failure holds both causes.
 *
 * @since 0.1.0
 * @category Hedging
 */
export const makeHedger = (options: HedgeOptions): Effect.Effect<Hedger, InvalidOptions> =>
  Effect.gen(function*() {
    if (typeof options.delay !== "function") yield* validate.duration("delay", options.delay, { allowZero: true })
    yield* validate.fraction("maxFraction", options.maxFraction)
    const budget = new RetryBudget({ ratio: options.maxFraction ?? 0.1, minPerSecond: 0, windowMillis: 10_000 })
    // A computed delay no timer can wait (unparsable, negative, too long) hedges only after a failure: hedging at
    // once would double every call.
    const delayOf = () => {
      const checked = validate.checkDuration(typeof options.delay === "function" ? options.delay() : options.delay, {
        allowZero: true
      })
      return Duration.millis("millis" in checked ? checked.millis : validate.MAX_TIMER_MILLIS)
    }
    const hedge = <A1, E1, R1, A2, E2, R2>(
      primary: Effect.Effect<A1, E1, R1>,
      secondary: Effect.Effect<A2, E2, R2>
    ): Effect.Effect<A1 | A2, E1 | E2, R1 | R2> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        budget.deposit(now)
        const primaryFailed = yield* Deferred.make<void>()
        const first = Effect.tapError(primary, () => Deferred.succeed(primaryFailed, undefined))
        const trigger = Effect.raceFirst(Effect.sleep(delayOf()), Deferred.await(primaryFailed))
        const second = Effect.flatMap(trigger, () =>
          Effect.flatMap(Deferred.isDone(primaryFailed), (failed) =>
            Effect.flatMap(Clock.currentTimeMillis, (at) =>
              // A hedge (primary still running) spends budget; a fallback after a failure does not.
              failed || budget.tryWithdraw(at)
                ? secondary
                : Effect.zipRight(Deferred.await(primaryFailed), secondary))))
        return yield* Effect.race(first, second)
      })
    return { hedge }
  })
