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
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as DurationValue from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { CompletionRequest } from "../Llm.js"
import { type HardFailure, hardFailure } from "../LlmError.js"
import type { Service } from "../LlmProvider.js"
import { validateRequest } from "./request.js"
import { timeoutFail } from "./timeout.js"

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

const timedOut = (provider: string, model: string): HardFailure =>
  hardFailure({ reason: "Timeout", provider, model, providerCode: "response_timeout" })

/** A completion call, body included, within `timeout`. @internal */
export const boundResponse = <A, E, R>(
  call: Effect.Effect<A, E, R>,
  request: CompletionRequest,
  defaults: Timeouts,
  provider: string,
  model: string
): Effect.Effect<A, E | HardFailure, R> => {
  const whole = wholeOf(request, defaults)
  return whole === undefined ? call : timeoutFail(call, whole, () => timedOut(provider, model))
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
