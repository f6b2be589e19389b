import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  type HardFailure,
  hardFailure,
  HardReason,
  InvalidOptions,
  isHardFailure,
  isSoftFailure,
  type RetryBudgetExhausted
} from "../LlmError.js"
import type { Options, Policy, Retrier, RetryCallOptions, RetryReason, Settings, Target } from "../Retry.js"
import { failureFacts } from "./classify.js"
import { logLine, roundMillis } from "./logLine.js"
import { retriesTotal, retriesTotalKey, Series } from "./metrics.js"
import { checkDuration as durationCheck } from "./options.js"
import { retryBudgetExhausted, timeoutFailure } from "./ownErrors.js"
import { RetryBudget } from "./retryBudget.js"
import { timeoutFail } from "./timeout.js"

type RetryInput = { readonly retryAfter?: Duration.Duration | undefined }

/** @internal */
export const policySchedule = <In extends RetryInput>(
  policy: Policy,
  ceiling: Duration.Duration
): Schedule.Schedule<Duration.Duration, In> => {
  const base = Duration.decode(policy.baseDelay)
  const maxDelay = Duration.decode(policy.maxDelay)
  const backoff: Schedule.Schedule<unknown> = policy.backoff === "exponential"
    ? Schedule.exponential(base, 2)
    : policy.backoff === "linear"
    ? Schedule.linear(base)
    : Schedule.spaced(base)
  const jittered = policy.jitter > 0
    ? Schedule.jitteredWith(backoff, { min: 1 - policy.jitter, max: 1 + policy.jitter })
    : backoff
  const capped = Schedule.modifyDelay(jittered, (_, delay) => Duration.min(delay, maxDelay))
  return Schedule.intersect(capped, Schedule.identity<In>()).pipe(
    Schedule.whileInput((input: In) =>
      !policy.honorRetryAfter || input.retryAfter === undefined || Duration.lessThanOrEqualTo(input.retryAfter, ceiling)
    ),
    Schedule.modifyDelay(([, input], delay) =>
      policy.honorRetryAfter && input.retryAfter !== undefined ? Duration.max(delay, input.retryAfter) : delay
    ),
    Schedule.intersect(Schedule.recurs(policy.maxAttempts - 1)),
    Schedule.delays
  )
}

const noRetry: Policy = {
  maxAttempts: 1,
  backoff: "constant",
  baseDelay: 0,
  maxDelay: 0,
  jitter: 0,
  honorRetryAfter: false
}

const serverError: Policy = {
  maxAttempts: 3,
  backoff: "exponential",
  baseDelay: "1 second",
  maxDelay: "30 seconds",
  jitter: 0.2,
  honorRetryAfter: true
}

const transport: Policy = {
  maxAttempts: 2,
  backoff: "linear",
  baseDelay: "2 seconds",
  maxDelay: "30 seconds",
  jitter: 0.2,
  honorRetryAfter: false
}

/** @internal */
export const defaultPolicies: { readonly [R in RetryReason]: Policy } = {
  RateLimited: { ...serverError, maxAttempts: 5, maxDelay: "30 seconds" },
  ServerError: serverError,
  Overloaded: serverError,
  Timeout: transport,
  Connection: transport,
  QuotaExhausted: noRetry,
  BadRequest: noRetry,
  ContextLengthExceeded: noRetry,
  Unauthorized: noRetry,
  Forbidden: noRetry,
  NotFound: noRetry,
  ContentFiltered: noRetry,
  Unknown: noRetry,
  Soft: noRetry
}

interface Resolved {
  readonly schedules: ReadonlyMap<RetryReason, Schedule.Schedule<Duration.Duration, RetryInput>>
  readonly maxAttempts: number
  readonly attemptTimeout: Duration.Duration | undefined
  readonly deadline: Duration.Duration | undefined
}

const reasons: ReadonlyArray<RetryReason> = [...HardReason.literals, "Soft"]

const isRetryReason = (reason: string): reason is RetryReason => reasons.some((known) => known === reason)

const invalid = (field: string, reason: string) => new InvalidOptions({ field, reason })

const checkDuration = (field: string, value: Duration.DurationInput | undefined, positive: boolean) => {
  if (value === undefined) return undefined
  const checked = durationCheck(value, { allowZero: !positive })
  return "problem" in checked ? invalid(field, checked.problem) : undefined
}

const checkAttempts = (field: string, value: number | undefined) =>
  value === undefined || (Number.isSafeInteger(value) && value >= 1)
    ? undefined
    : invalid(field, "must be an integer >= 1 (it counts calls, the first included)")

const checkSettings = (prefix: string, settings: Settings): InvalidOptions | undefined => {
  const problems = [
    checkAttempts(`${prefix}maxAttempts`, settings.maxAttempts),
    checkDuration(`${prefix}retryAfterCeiling`, settings.retryAfterCeiling, false),
    checkDuration(`${prefix}attemptTimeout`, settings.attemptTimeout, true),
    checkDuration(`${prefix}deadline`, settings.deadline, true)
  ]
  for (const [reason, policy] of Object.entries(settings.policies ?? {})) {
    const field = `${prefix}policies.${reason}`
    if (!isRetryReason(reason)) problems.push(invalid(field, "is not a known failure reason"))
    if (policy === undefined) continue
    problems.push(
      checkAttempts(`${field}.maxAttempts`, policy.maxAttempts),
      checkDuration(`${field}.baseDelay`, policy.baseDelay, false),
      checkDuration(`${field}.maxDelay`, policy.maxDelay, false),
      policy.jitter === undefined || (policy.jitter >= 0 && policy.jitter < 1)
        ? undefined
        : invalid(`${field}.jitter`, "must be in [0, 1)")
    )
  }
  return problems.find((problem) => problem !== undefined)
}

const merge = (base: Settings, over: Settings | undefined): Settings => {
  if (over === undefined) return base
  const policies: Record<string, Partial<Policy>> = { ...base.policies }
  for (const [reason, policy] of Object.entries(over.policies ?? {})) {
    policies[reason] = { ...policies[reason], ...policy }
  }
  return { ...base, ...over, policies }
}

const resolve = (settings: Settings): Resolved => {
  const ceiling = Duration.decode(settings.retryAfterCeiling ?? "60 seconds")
  const schedules = new Map(reasons.map((reason) => [
    reason,
    policySchedule<RetryInput>({ ...defaultPolicies[reason], ...settings.policies?.[reason] }, ceiling)
  ]))
  return {
    schedules,
    maxAttempts: settings.maxAttempts ?? 6,
    attemptTimeout: settings.attemptTimeout === undefined ? undefined : Duration.decode(settings.attemptTimeout),
    deadline: settings.deadline === undefined ? undefined : Duration.decode(settings.deadline)
  }
}

const reasonOf = (
  error: unknown
): { readonly reason: RetryReason; readonly failure: HardFailure | undefined } | undefined => {
  if (isHardFailure(error)) return error.retryable ? { reason: error.reason, failure: error } : undefined
  if (isSoftFailure(error)) return error.retryable ? { reason: "Soft", failure: undefined } : undefined
  return undefined
}

const retryLabels = (target: Target, reason: RetryReason): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("provider", target.name),
  MetricLabel.make("model", target.model),
  MetricLabel.make("reason", reason)
]

// `llm.retries` per provider, model and reason through its registry hook (../metrics.ts `Series`), instead of a tagged
// metric built per retry, whose key was made and hashed each time; where the caller tags metrics
// (`Effect.tagMetrics`), the tagged metric as before, which adds those labels.
const retrySeries = new Map<string, Series>()
const countRetry = (target: Target, reason: RetryReason): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    if (fiber.getFiberRef(FiberRef.currentMetricLabels).length > 0) {
      return Metric.increment(Metric.taggedWithLabels(retriesTotal, retryLabels(target, reason)))
    }
    const key = `${target.name}\u0000${target.model}\u0000${reason}`
    let series = retrySeries.get(key)
    if (series === undefined) {
      series = new Series(MetricKey.taggedWithLabels(retriesTotalKey, retryLabels(target, reason)))
      retrySeries.set(key, series)
    }
    series.update(1)
    return Effect.void
  })

/** @internal */
export const make = (options: Options = {}): Effect.Effect<Retrier, InvalidOptions> =>
  Effect.suspend(() => {
    const problem = checkSettings("", options)
      ?? Object.entries(options.overrides ?? {}).map(([key, settings]) => checkSettings(`overrides.${key}.`, settings))
        .find((p) => p !== undefined)
    if (problem !== undefined) return Effect.fail(problem)
    const budgetOptions = options.budget === false ? undefined : options.budget ?? {}
    if (budgetOptions !== undefined) {
      if (budgetOptions.ratio !== undefined && !(budgetOptions.ratio >= 0)) {
        return Effect.fail(invalid("budget.ratio", "must be >= 0"))
      }
      if (budgetOptions.minPerSecond !== undefined && !(budgetOptions.minPerSecond >= 0)) {
        return Effect.fail(invalid("budget.minPerSecond", "must be >= 0"))
      }
      const windowProblem = checkDuration("budget.window", budgetOptions.window, true)
      if (windowProblem !== undefined) return Effect.fail(windowProblem)
    }
    return Effect.succeed(makeRetrier(options, budgetOptions))
  })

const makeRetrier = (options: Options, budgetOptions: Exclude<Options["budget"], false>): Retrier => {
  const global: Settings = { ...options, policies: options.policies ?? {} }
  // Resolved schedules depend only on the overrides that apply, so they are shared per policy, not built per target:
  // one for every target without an override, one per override key. (Per target they cost ≈ 45 KB each, which grew
  // without bound with the number of provider:model targets.)
  const resolvedByOverride = new Map<string, Resolved>()
  const budgets = new Map<string, RetryBudget>()

  const resolved = (target: Target): Resolved => {
    // Without overrides every target shares the one policy: no key to build per call.
    if (options.overrides === undefined) return resolvedByOverride.get("") ?? resolvedFor("", undefined, undefined)
    const key = targetKey(target)
    const byKey = options.overrides?.[key]
    const byName = options.overrides?.[target.name]
    const policy = byKey !== undefined ? `key:${key}` : byName !== undefined ? `name:${target.name}` : ""
    return resolvedByOverride.get(policy) ?? resolvedFor(policy, byName, byKey)
  }
  const resolvedFor = (
    policy: string,
    byName: Settings | undefined,
    byKey: Settings | undefined
  ): Resolved => {
    const found = resolve(merge(merge(global, byName), byKey))
    resolvedByOverride.set(policy, found)
    return found
  }

  const sharedBudget = budgetOptions === undefined ? undefined : {
    ratio: budgetOptions.ratio ?? 0.2,
    minPerSecond: budgetOptions.minPerSecond ?? 1,
    windowMillis: Duration.toMillis(budgetOptions.window ?? "10 seconds")
  }
  // Budgets of targets idle for a whole window are forgotten, at most once per window: a retrier called for ever new
  // targets (a model per tenant, say) then keeps only the budgets of its recent ones. A retry still running for a
  // forgotten budget (its backoff outlasted the window) withdraws from its own copy, which grants what a new budget
  // would.
  let sweptAt = 0
  const sweep = (nowMillis: number, windowMillis: number): void => {
    if (nowMillis - sweptAt < windowMillis) return
    sweptAt = nowMillis
    for (const [key, budget] of budgets) {
      if (budget.idle(nowMillis)) budgets.delete(key)
    }
  }
  const budgetOf = (key: string, nowMillis: number): RetryBudget | undefined => {
    if (sharedBudget === undefined) return undefined
    sweep(nowMillis, sharedBudget.windowMillis)
    let budget = budgets.get(key)
    if (budget === undefined) {
      budget = new RetryBudget(sharedBudget)
      budgets.set(key, budget)
    }
    return budget
  }

  // A call that starts at `started` deposits into its target's retry budget (`key`: the target's `name:model`).
  const deposit = (key: string, started: number): void => {
    budgetOf(key, started)?.deposit(started)
  }

  // The first attempt of a call that started at `started` (deposit made), and the retries after its failure.
  const prepare = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target,
    callOptions: RetryCallOptions<E> | undefined,
    started: number
  ): Prepared<A, E, R> => {
    const key = targetKey(target)
    const settings = resolved(target)
    const budget = budgetOf(key, started)
    const ownDeadline = settings.deadline === undefined ? undefined : started + Duration.toMillis(settings.deadline)
    const callDeadline = callOptions?.deadlineAt
    const deadlineAt = ownDeadline === undefined
      ? callDeadline
      : callDeadline === undefined
      ? ownDeadline
      : Math.min(ownDeadline, callDeadline)

    // A deadline per attempt, and only when a timeout or deadline is configured: the attempt gets whichever of the
    // two ends first. Timing out interrupts it, which aborts its HTTP request. `timeoutFail` (./timeout.ts) runs
    // the attempt in one fiber and shares the timer, where `Effect.timeoutFail` forks two fibers per attempt.
    const attempt = (now: number): Effect.Effect<A, E | HardFailure, R> => {
      const untilDeadline = deadlineAt === undefined ? undefined : deadlineAt - now
      const attemptMillis = settings.attemptTimeout === undefined
        ? undefined
        : Duration.toMillis(settings.attemptTimeout)
      if (untilDeadline === undefined && attemptMillis === undefined) return effect
      const deadlineFirst = attemptMillis === undefined
        || (untilDeadline !== undefined && untilDeadline < attemptMillis)
      const millis = Math.max(0, deadlineFirst ? untilDeadline ?? 0 : attemptMillis)
      // `effect` is any caller's effect: fiber refs it sets are carried back, as without a timeout.
      return timeoutFail(
        effect,
        Duration.millis(millis),
        () => timeoutFailure(target.name, target.model, deadlineFirst ? "deadline_exceeded" : "attempt_timeout"),
        { inheritFiberRefs: true }
      )
    }

    const retryLoop = (first: E | HardFailure) =>
      Effect.gen(function*() {
        const states = new Map<RetryReason, unknown>()
        let error = first
        for (let calls = 1;; calls++) {
          const classified = reasonOf(error)
          if (classified === undefined || calls >= settings.maxAttempts) return yield* Effect.fail(error)
          if (callOptions?.until !== undefined && (yield* callOptions.until(error))) return yield* Effect.fail(error)
          const schedule = settings.schedules.get(classified.reason)
          if (schedule === undefined) return yield* Effect.fail(error)
          const now = yield* Clock.currentTimeMillis
          const [state, , decision] = yield* schedule.step(
            now,
            { retryAfter: classified.failure?.retryAfter },
            states.has(classified.reason) ? states.get(classified.reason) : schedule.initial
          )
          if (ScheduleDecision.isDone(decision)) return yield* Effect.fail(error)
          states.set(classified.reason, state)
          const delay = Math.max(0, Intervals.start(decision.intervals) - now)
          if (deadlineAt !== undefined && now + delay >= deadlineAt) return yield* Effect.fail(error)
          if (budget !== undefined && !budget.tryWithdraw(now)) {
            return yield* Effect.fail(
              retryBudgetExhausted(
                key,
                classified.failure ?? hardFailure({
                  reason: "Unknown",
                  provider: target.name,
                  model: target.model,
                  providerCode: "soft_failure"
                })
              )
            )
          }
          yield* logLine("info", "llm.retry", {
            provider: target.name,
            model: target.model,
            attempt: calls + 1,
            delay_ms: roundMillis(delay),
            reason: classified.reason,
            ...failureFacts(error)
          })
          yield* countRetry(target, classified.reason)
          if (delay > 0) yield* Effect.sleep(Duration.millis(delay))
          const result = yield* Effect.either(attempt(now + delay))
          if (result._tag === "Right") return result.right
          error = result.left
        }
      })

    return { first: attempt(started), retriesAfter: retryLoop }
  }

  const retry = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target,
    callOptions?: RetryCallOptions<E>
  ): Effect.Effect<A, E | HardFailure | RetryBudgetExhausted, R> =>
    Effect.flatMap(Clock.currentTimeMillis, (started) => {
      deposit(targetKey(target), started)
      const { first, retriesAfter } = prepare(effect, target, callOptions, started)
      return Effect.catchAll(first, retriesAfter)
    })

  // The stream's first element is pulled inside the retried effect; the rest follows from the same pull. A failed
  // attempt's pull stays in the stream's scope until the stream ends: its request has ended already.
  const retryStream = <A, E, R>(
    stream: Stream.Stream<A, E, R>,
    target: Target,
    callOptions?: RetryCallOptions<E>
  ): Stream.Stream<A, E | HardFailure | RetryBudgetExhausted, R> => {
    const opened: Effect.Effect<Stream.Stream<A, E, R>, E, R | Scope.Scope> = Effect.flatMap(
      Stream.toPull(stream),
      (pull) =>
        Effect.matchEffect(pull, {
          onFailure: Option.match({ onNone: () => Effect.succeed(Stream.empty), onSome: Effect.fail }),
          onSuccess: (first) =>
            Effect.succeed(Stream.concat(Stream.fromChunk(first), Stream.repeatEffectChunkOption(pull)))
        })
    )
    return Stream.unwrapScoped(retry(opened, target, callOptions))
  }

  const remainingBudget = (target: Target) =>
    Effect.map(
      Clock.currentTimeMillis,
      (now) => budgetOf(targetKey(target), now)?.remaining(now) ?? Infinity
    )

  const retrier: Retrier = { retry, retryStream, remainingBudget }
  // Whether a first attempt with no call options is the effect itself: no attempt timeout and no deadline, or an
  // effect bounded by `withinMillis` that ends before either could: `prepare`'s `attempt(started)` gives the first
  // attempt the earlier of the two in full, and a timer that would fire only after the effect has ended changes
  // nothing.
  const bareFirst = (target: Target, withinMillis?: number): boolean => {
    const settings = resolved(target)
    const { attemptTimeout, deadline } = settings
    if (attemptTimeout === undefined && deadline === undefined) return true
    if (withinMillis === undefined) return false
    return (attemptTimeout === undefined || withinMillis < Duration.toMillis(attemptTimeout))
      && (deadline === undefined || withinMillis < Duration.toMillis(deadline))
  }

  stages.set(retrier, { deposit, prepare, bareFirst })
  return retrier
}

/**
 * A call's first attempt and the retries after it, run apart: what `retry` runs as
 * `Effect.catchAll(first, retriesAfter)` once it has deposited into the budget.
 * @internal
 */
export interface Prepared<A, E, R> {
  readonly first: Effect.Effect<A, E | HardFailure, R>
  readonly retriesAfter: (failure: E | HardFailure) => Effect.Effect<A, E | HardFailure | RetryBudgetExhausted, R>
}

/**
 * `retry` in its two stages, for the client's fast path (./resilient/fastPath.ts): it makes the first attempt itself
 * and hands a failure to the same retries.
 * @internal
 */
export interface RetryStages {
  /** Deposits a call started at `started` into the budget of the target whose {@link targetKey} is `key`. */
  readonly deposit: (key: string, started: number) => void
  readonly prepare: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    target: Target,
    callOptions: RetryCallOptions<E> | undefined,
    started: number
  ) => Prepared<A, E, R>
  /**
   * Whether `prepare(effect, target, undefined, started).first` is `effect` itself, unwrapped — or, given
   * `withinMillis`, behaves as `effect` does for an effect that ends within `withinMillis` of `started` (its attempt
   * timeout and deadline both later).
   */
  readonly bareFirst: (target: Target, withinMillis?: number) => boolean
}

const stages = new WeakMap<Retrier, RetryStages>()

/** A target's `name:model`: the key of its budget and of its overrides. @internal */
export const targetKey = (target: Target): string => `${target.name}:${target.model}`

/** The stages of a retrier this module made. @internal */
export const stagesOf = (retrier: Retrier): RetryStages | undefined => stages.get(retrier)
