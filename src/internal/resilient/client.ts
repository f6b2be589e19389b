/**
 * What the engine works with: the client built once (tiers, breakers, limiter, cache, hedgers, latency windows),
 * the state of one request, and the two call shapes — a completion, or a stream up to its commit point.
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Effect from "effect/Effect"
import type * as CircuitBreaker from "../../CircuitBreaker.js"
import type * as Fallback from "../../Fallback.js"
import type { CompletionRequest, CompletionResult } from "../../Llm.js"
import type {
  CircuitOpen,
  DegradedReason,
  DegradedResponse,
  HardFailure,
  InvalidRequest,
  RateLimitExceeded,
  SoftFailure
} from "../../LlmError.js"
import type * as RateLimit from "../../RateLimit.js"
import type { Config, Strategy } from "../../Resilient.js"
import type * as observability from "../observability.js"
import type { Lane } from "./fastPath.js"
import type { BuiltTier, Latencies, Step } from "./plan.js"
import type { Plan } from "./request.js"

/** What one call of a step can fail with. @internal */
export type AttemptError =
  | HardFailure
  | InvalidRequest
  | RateLimitExceeded
  | CircuitOpen
  | SoftFailure
  | DegradedResponse

/** The client, built once and shared by every request. @internal */
export interface Client {
  readonly config: Config
  readonly tiers: ReadonlyArray<BuiltTier>
  readonly breakers: ReadonlyMap<string, CircuitBreaker.CircuitBreaker>
  readonly limiter: RateLimit.Limiter
  /** Some limit is configured: the limiter's wait is measured. */
  readonly limited: boolean
  /** Some tier has quality checks: requests carry a trace for their scores. */
  readonly checked: boolean
  readonly cache: Fallback.ResponseCache | undefined
  /** Completion latency per label (latency-first ordering, the completion hedge's P95). */
  readonly latency: Latencies
  /** Time to first token per label (latency-first ordering of streams, the stream hedge's P95). */
  readonly ttft: Latencies
  readonly hedgers: { readonly completion: Fallback.Hedger; readonly stream: Fallback.Hedger } | undefined
  readonly acceptReasons: ReadonlyArray<DegradedReason> | undefined
  /** The plans of the strategies whose order is fixed by the config, built on first use (./request.ts). */
  readonly plans: Map<Strategy, Plan>
  /** The tiers whose first attempt may run on the fast path, with their lanes by model (./fastPath.ts). */
  readonly fast: Map<BuiltTier, ReadonlyMap<string, Lane>>
}

/** An answer (or, for a stream, a committed stream) and the step that produced it. @internal */
export interface Outcome<A> {
  readonly value: A
  readonly step: Step
  readonly degraded: DegradedReason | undefined
}

/** One request in flight. @internal */
export interface RequestContext {
  readonly clock: Clock.Clock
  readonly trace: observability.RequestTrace
  /** A tracer that exports spans is installed: each step gets an `llm.attempt` span. */
  readonly traced: boolean
  readonly primary: string
  /** The first degraded answer a step gave: served if nothing better comes. */
  degradedSeen: Outcome<CompletionResult> | undefined
  /** The request's deadline (`Clock` milliseconds), or `undefined` without one (./deadline.ts). */
  readonly deadlineAt: number | undefined
  /** What a step's observed latency is for this call shape: a completion's latency, a stream's time to first token. */
  readonly latency: Latencies
  /** The failed first attempt of the fast path, until the ladder takes it over (./fastPath.ts). */
  primed: Primed | undefined
}

/**
 * The first attempt of `step`, made by the fast path (./fastPath.ts): when it started (deposit in the retry budget
 * made) and what it failed with. The ladder runs as if it had made that attempt itself.
 * @internal
 */
export interface Primed {
  readonly step: Step
  readonly startedAt: number
  readonly failure: AttemptError
}

/**
 * How a step calls its provider: a completion, or a stream opened up to its commit point. `call` is everything from
 * the rate limiter inwards (limiter → breaker admission and record → timeouts → call → checks); the attempt pipeline
 * around it (breaker pre-check, retry, relaxation, adapted messages, degraded answers) and the ladder are shared.
 * @internal
 */
export interface CallShape<A> {
  readonly call: (step: Step, request: CompletionRequest, context: RequestContext) => Effect.Effect<A, AttemptError>
  /** A degraded answer served as this shape's value. */
  readonly fromResult: (result: CompletionResult, step: Step) => A
  /** The tier's quality check has run when `call` succeeds (a completion; a buffered stream). */
  readonly checkedBeforeCommit: (step: Step) => boolean
  readonly hedger: Fallback.Hedger | undefined
}
