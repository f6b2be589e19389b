/**
 * The two timeouts of a provider call, shared by both SDK mappings.
 *
 * - `timeout` bounds the whole response: the wait for headers and the body (a completion's JSON, a stream's events).
 *   The SDKs' own `timeout` stops at the headers, so a server that sends them and then stalls would hang forever:
 *   the bound here is an Effect deadline on the `Clock`, and reaching it interrupts the call, which aborts its HTTP
 *   request (the socket is closed).
 * - `connectTimeout` bounds the wait for the response headers only (given to the SDK): a refused or black-holed host
 *   then fails in seconds, not after a long `timeout` meant for slow generations.
 *
 * A request's own values win over the provider's.
 *
 * A `Resilient` tier's per-attempt `timeout` reaches the built-in providers as an {@link AttemptDeadline}: their SDK
 * call then runs within the earlier of the two ends with no fiber of its own (`promiseWithin` in ./timeout.ts), where
 * any other provider's call is wrapped in `timeoutFail`, which forks one (see {@link completeWithin}).
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as DurationValue from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { CompletionRequest, CompletionRequestInput } from "../Llm.js"
import type { HardFailure } from "../LlmError.js"
import type { Service } from "../LlmProvider.js"
import { timeoutFailure } from "./ownErrors.js"
import { validateRequest } from "./request.js"
import { promiseWithin, timeoutFail } from "./timeout.js"

/** @internal */
export interface Timeouts {
  readonly timeout: Duration.Duration | undefined
  readonly connectTimeout?: Duration.Duration | undefined
}

const wholeOf = (request: CompletionRequest, defaults: Timeouts) => request.timeout ?? defaults.timeout

/** The SDK's per-request options: its retries off, its timeout the header wait. @internal */
export const sdkOptions = (request: CompletionRequest, defaults: Timeouts, signal: AbortSignal) => {
  const headers = request.connectTimeout ?? defaults.connectTimeout ?? wholeOf(request, defaults)
  return { signal, maxRetries: 0, ...(headers !== undefined ? { timeout: DurationValue.toMillis(headers) } : {}) }
}

const timedOut = (provider: string, model: string): HardFailure => timeoutFailure(provider, model, "response_timeout")

/**
 * A `Resilient` attempt's own deadline, handed to a provider that honours it: its length, counted from the call, and
 * the failure to report when it is reached.
 * @internal
 */
export interface AttemptDeadline {
  readonly duration: Duration.Duration
  readonly onTimeout: () => HardFailure
}

/** A provider's `complete` that takes an attempt's deadline. @internal */
export type CompleteWithin = (
  input: CompletionRequestInput,
  attempt: AttemptDeadline | undefined
) => ReturnType<Service["complete"]>

// Keyed by the `complete` function itself: a copy of the service (a deployment's `{ ...provider, deployment }`) keeps
// it, and a wrapper that replaces `complete` (which may do more than the SDK call) falls back to `timeoutFail`.
const honouring = new WeakMap<Service["complete"], CompleteWithin>()

/** The `complete` of a provider that honours attempt deadlines: `within` without one. @internal */
export const honouringDeadlines = (within: CompleteWithin): Service["complete"] => {
  const complete: Service["complete"] = (input) => within(input, undefined)
  honouring.set(complete, within)
  return complete
}

/**
 * `provider.complete(input)` within an attempt's deadline: handed to the provider when it honours it (no fiber per
 * call), else `timeoutFail` around the call (one fiber per call). Same `Timeout` failure either way.
 * @internal
 */
export const completeWithin = (
  provider: Service,
  input: CompletionRequestInput,
  attempt: AttemptDeadline
): ReturnType<Service["complete"]> => {
  const within = honouring.get(provider.complete)
  return within === undefined
    ? timeoutFail(provider.complete(input), attempt.duration, attempt.onTimeout)
    : within(input, attempt)
}

/**
 * An SDK completion call (`run`, given the signal that aborts it), body included, within the provider's `timeout`
 * and the attempt's deadline, whichever ends first (the attempt's on a tie); `onReject` maps what the SDK throws.
 * @internal
 */
export const boundResponse = <A>(
  run: (signal: AbortSignal) => PromiseLike<A>,
  onReject: (error: unknown) => Effect.Effect<never, HardFailure>,
  request: CompletionRequest,
  defaults: Timeouts,
  provider: string,
  model: string,
  attempt: AttemptDeadline | undefined
): Effect.Effect<A, HardFailure> => {
  const whole = wholeOf(request, defaults)
  if (attempt !== undefined && (whole === undefined || DurationValue.lessThanOrEqualTo(attempt.duration, whole))) {
    return promiseWithin(run, onReject, attempt.duration, attempt.onTimeout)
  }
  return whole === undefined
    ? Effect.catchAll(Effect.tryPromise({ try: run, catch: (error) => error }), onReject)
    : promiseWithin(run, onReject, whole, () => timedOut(provider, model))
}

/**
 * A provider's `stream`, from the request to its last event, within `timeout`: `unbounded` is the SDK mapping.
 * @internal
 */
export const boundedStream = (
  unbounded: Service["stream"],
  defaults: Timeouts & { readonly model: string },
  provider: string
): Service["stream"] =>
(input) =>
  Stream.unwrap(Effect.map(validateRequest(input), (request) => {
    const whole = wholeOf(request, defaults)
    const model = request.model ?? defaults.model
    return whole === undefined
      ? unbounded(request)
      : Stream.interruptWhen(
        unbounded(request),
        Effect.zipRight(Effect.sleep(whole), Effect.fail(timedOut(provider, model)))
      )
  }))
