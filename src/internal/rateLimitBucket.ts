/**
 * The per-key admission state of the rate limiter: a concurrency counter, an exact sliding-window log of requests and
 * tokens, a pause (429 Retry-After) and the provider's own view from its rate-limit headers.
 *
 * Why not Effect's pieces (DESIGN.md §4, bench/rate-limit.ts):
 * - `Semaphore.withPermits` ≈ 9 µs uncontended and wakes every waiter on each release (O(waiters)); the limiter
 *   needs a FIFO hand-off that resumes exactly one waiter, which the waiter queue in `rateLimit.ts` does on top of
 *   the counter here.
 * - core `RateLimiter` ≈ 7.7 µs, is gone in Effect 4, needs the cost before the call and cannot refund it; a token
 *   bucket also admits up to twice its limit in a 60 s window (a full bucket, then a full refill).
 * - `@effect/experimental`'s `RateLimiter.consume` has no concurrency limit, no refund or adjustment of a charge
 *   after the call, nothing to tighten a key from response headers and no FIFO queue (each caller sleeps its own
 *   computed delay). So it is not a dependency here.
 *
 * What this is instead: a ring-buffer deque of admissions `(time, requests, tokens)` ordered by time. The sums over
 * the window are kept incrementally; expiry pops from the head (amortised O(1)); a charge is found again by its
 * sequence number in O(1) to reconcile it with real usage. A window therefore never holds more than the limit — the
 * property a token bucket lacks. All methods are synchronous and run inside one Effect step, so each is atomic.
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { RateLimitInfo } from "../Llm.js"

/** Limits after defaults and per-key overrides; `Infinity` means no limit. @internal */
export interface ResolvedLimits {
  readonly concurrency: number
  readonly rpm: number
  readonly tpm: number
}

/** Which limit blocks a call. @internal */
export type BlockingLimit = "concurrency" | "requests" | "tokens" | "paused"

/** Why a call cannot start now. `readyAt` is when the time-based limits allow it (0: none blocks). @internal */
export interface Blocked {
  readonly readyAt: number
  readonly limit: BlockingLimit
  /** Only a release can unblock it. */
  readonly concurrency: boolean
}

/** One admitted call's charge. @internal */
export interface Ticket {
  readonly seq: number
  readonly tokens: number
  /** The header observation it was counted against, or -1. */
  readonly remoteEpoch: number
  /** The shared-store lease the call was charged against (a shared store's bucket only). */
  readonly lease?: string | undefined
}

/** @internal */
export interface BucketSnapshot {
  readonly inFlight: number
  readonly requestsInWindow: number
  readonly tokensInWindow: number
  readonly pausedUntil: number | undefined
  readonly remainingRequests: number | undefined
  readonly requestsResetAt: number | undefined
  readonly remainingTokens: number | undefined
  readonly tokensResetAt: number | undefined
}

/**
 * The state one key needs. The in-memory store makes one per key; a shared store (Redis, a later issue) can keep
 * the same synchronous shape by leasing quota into it in batches, so the per-call path never waits on the network.
 * @internal
 */
export interface Bucket {
  readonly limits: ResolvedLimits
  /**
   * Whether a call's token charge can matter: a TPM limit, or a token budget seen in the provider's headers. Without
   * either the caller charges 0 and skips counting the prompt (a tokenizer pass: ≈ 0.2 ms for 2,000 characters).
   */
  readonly countsTokens: () => boolean
  /** `undefined` when a call costing `tokens` may start now. */
  readonly check: (tokens: number, now: number) => Blocked | undefined
  /** Admits a call (call `check` first). */
  readonly take: (tokens: number, now: number) => Ticket
  /** The call ended: returns its concurrency permit and sets its token charge to `actualTokens`. */
  readonly settle: (ticket: Ticket, actualTokens: number, now: number) => void
  /** The call never started: returns everything, its request slot included. */
  readonly cancel: (ticket: Ticket) => void
  /** Tightens the key from the provider's headers; malformed values are ignored. */
  readonly observe: (info: RateLimitInfo, now: number) => void
  /** No call starts before `until` (never shortens an existing pause). */
  readonly pauseUntil: (until: number) => void
  readonly snapshot: (now: number) => BucketSnapshot
}

const validCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0

const resetMillis = (value: unknown): number | undefined => {
  if (!Duration.isDuration(value)) return undefined
  const millis = Duration.toMillis(value)
  return Number.isFinite(millis) && millis > 0 ? millis : undefined
}

const INITIAL_CAPACITY = 16

/** The usual block, shared: every permit is held and no time-based limit stands in the way. */
const onlyConcurrency: Blocked = { readyAt: 0, limit: "concurrency", concurrency: true }

/** @internal */
export class MemoryBucket implements Bucket {
  private capacity = INITIAL_CAPACITY
  private at = new Float64Array(INITIAL_CAPACITY)
  private requests = new Uint8Array(INITIAL_CAPACITY)
  private tokens = new Float64Array(INITIAL_CAPACITY)
  private headSeq = 0
  private tailSeq = 0
  private requestsInWindow = 0
  private tokensInWindow = 0
  private inFlight = 0
  private pausedUntil = 0
  // The provider's view: at most `remaining` more until `resetAt`, counted from the observation (epoch).
  private remoteEpoch = 0
  private remoteRequests = Infinity
  private remoteRequestsResetAt = 0
  private remoteRequestsUsed = 0
  private remoteTokens = Infinity
  private remoteTokensResetAt = 0
  private remoteTokensUsed = 0

  // With neither rpm nor tpm there is nothing to count in the window: skip the log (and its memory).
  private readonly tracked: boolean

  constructor(readonly limits: ResolvedLimits, readonly windowMillis: number) {
    this.tracked = limits.rpm !== Infinity || limits.tpm !== Infinity
  }

  // Sequence numbers grow for ever (2^53 is out of reach), so `%`, not `&`, which would wrap at 2^31.
  private index(seq: number): number {
    return seq % this.capacity
  }

  private expire(now: number): void {
    const cutoff = now - this.windowMillis
    while (this.headSeq < this.tailSeq) {
      const i = this.index(this.headSeq)
      if ((this.at[i] ?? 0) > cutoff) break
      this.requestsInWindow -= this.requests[i] ?? 0
      this.tokensInWindow -= this.tokens[i] ?? 0
      this.headSeq++
    }
    if (this.headSeq === this.tailSeq) {
      // Float drift cannot accumulate across empty windows.
      this.requestsInWindow = 0
      this.tokensInWindow = 0
    }
    if (now >= this.remoteRequestsResetAt) {
      this.remoteRequests = Infinity
      this.remoteRequestsUsed = 0
    }
    if (now >= this.remoteTokensResetAt) {
      this.remoteTokens = Infinity
      this.remoteTokensUsed = 0
    }
  }

  private push(now: number, requests: number, tokens: number): number {
    if (this.tailSeq - this.headSeq === this.capacity) this.grow()
    const seq = this.tailSeq++
    const i = this.index(seq)
    this.at[i] = now
    this.requests[i] = requests
    this.tokens[i] = tokens
    this.requestsInWindow += requests
    this.tokensInWindow += tokens
    return seq
  }

  private grow(): void {
    const capacity = this.capacity * 2
    const at = new Float64Array(capacity)
    const requests = new Uint8Array(capacity)
    const tokens = new Float64Array(capacity)
    for (let seq = this.headSeq; seq < this.tailSeq; seq++) {
      const from = this.index(seq)
      const to = seq % capacity
      at[to] = this.at[from] ?? 0
      requests[to] = this.requests[from] ?? 0
      tokens[to] = this.tokens[from] ?? 0
    }
    this.capacity = capacity
    this.at = at
    this.requests = requests
    this.tokens = tokens
  }

  /** When enough old entries have left the window to free `requests` and `tokens`. */
  private freedAt(requests: number, tokens: number): number {
    let freedRequests = 0
    let freedTokens = 0
    for (let seq = this.headSeq; seq < this.tailSeq; seq++) {
      const i = this.index(seq)
      freedRequests += this.requests[i] ?? 0
      freedTokens += this.tokens[i] ?? 0
      if (freedRequests >= requests && freedTokens >= tokens) return (this.at[i] ?? 0) + this.windowMillis
    }
    return Infinity
  }

  countsTokens(): boolean {
    return this.limits.tpm !== Infinity || this.remoteTokens !== Infinity
  }

  check(tokens: number, now: number): Blocked | undefined {
    this.expire(now)
    let readyAt = 0
    let limit: BlockingLimit = "concurrency"
    // The latest moment a time-based limit allows the call wins (ties: the first named here).
    if (now < this.pausedUntil) {
      readyAt = this.pausedUntil
      limit = "paused"
    }
    if (this.remoteRequestsUsed + 1 > this.remoteRequests && this.remoteRequestsResetAt > readyAt) {
      readyAt = this.remoteRequestsResetAt
      limit = "requests"
    }
    if (tokens > 0 && this.remoteTokensUsed + tokens > this.remoteTokens && this.remoteTokensResetAt > readyAt) {
      readyAt = this.remoteTokensResetAt
      limit = "tokens"
    }
    const needRequests = this.requestsInWindow + 1 - this.limits.rpm
    if (needRequests > 0) {
      const at = this.freedAt(needRequests, 0)
      if (at > readyAt) {
        readyAt = at
        limit = "requests"
      }
    }
    if (tokens > this.limits.tpm) {
      if (readyAt < Infinity) {
        readyAt = Infinity
        limit = "tokens"
      }
    } else {
      const needTokens = this.tokensInWindow + tokens - this.limits.tpm
      if (needTokens > 0) {
        const at = this.freedAt(0, needTokens)
        if (at > readyAt) {
          readyAt = at
          limit = "tokens"
        }
      }
    }
    const concurrency = this.inFlight >= this.limits.concurrency
    if (readyAt === 0) return concurrency ? onlyConcurrency : undefined
    return { readyAt, limit, concurrency }
  }

  take(tokens: number, now: number): Ticket {
    this.inFlight++
    this.remoteRequestsUsed++
    this.remoteTokensUsed += tokens
    return { seq: this.tracked ? this.push(now, 1, tokens) : -1, tokens, remoteEpoch: this.remoteEpoch }
  }

  private recharge(ticket: Ticket, actualTokens: number, now: number): void {
    const delta = actualTokens - ticket.tokens
    if (delta === 0) return
    if (ticket.remoteEpoch === this.remoteEpoch) this.remoteTokensUsed = Math.max(0, this.remoteTokensUsed + delta)
    if (!this.tracked) return
    if (ticket.seq >= this.headSeq) {
      const i = this.index(ticket.seq)
      this.tokens[i] = actualTokens
      this.tokensInWindow += delta
    } else if (delta > 0) {
      // The estimate has left the window already; the extra tokens were spent now.
      this.push(now, 0, delta)
    }
  }

  settle(ticket: Ticket, actualTokens: number, now: number): void {
    this.inFlight--
    this.expire(now)
    this.recharge(ticket, actualTokens, now)
  }

  cancel(ticket: Ticket): void {
    this.inFlight--
    if (ticket.remoteEpoch === this.remoteEpoch) {
      this.remoteRequestsUsed = Math.max(0, this.remoteRequestsUsed - 1)
      this.remoteTokensUsed = Math.max(0, this.remoteTokensUsed - ticket.tokens)
    }
    if (this.tracked && ticket.seq >= this.headSeq) {
      const i = this.index(ticket.seq)
      this.requestsInWindow -= this.requests[i] ?? 0
      this.tokensInWindow -= this.tokens[i] ?? 0
      this.requests[i] = 0
      this.tokens[i] = 0
    }
  }

  observe(info: RateLimitInfo, now: number): void {
    const requestsReset = resetMillis(info.resetRequests)
    const tokensReset = resetMillis(info.resetTokens)
    const requestsKnown = validCount(info.remainingRequests) && requestsReset !== undefined
    const tokensKnown = validCount(info.remainingTokens) && tokensReset !== undefined
    if (!requestsKnown && !tokensKnown) return
    // Calls admitted before this observation are not counted against it: the provider has seen them already.
    this.remoteEpoch++
    if (requestsKnown) {
      this.remoteRequests = info.remainingRequests as number
      this.remoteRequestsResetAt = now + (requestsReset as number)
      this.remoteRequestsUsed = 0
    }
    if (tokensKnown) {
      this.remoteTokens = info.remainingTokens as number
      this.remoteTokensResetAt = now + (tokensReset as number)
      this.remoteTokensUsed = 0
    }
  }

  pauseUntil(until: number): void {
    if (until > this.pausedUntil) this.pausedUntil = until
  }

  snapshot(now: number): BucketSnapshot {
    this.expire(now)
    const requestsActive = this.remoteRequests !== Infinity
    const tokensActive = this.remoteTokens !== Infinity
    return {
      inFlight: this.inFlight,
      requestsInWindow: this.requestsInWindow,
      tokensInWindow: this.tokensInWindow,
      pausedUntil: this.pausedUntil > now ? this.pausedUntil : undefined,
      remainingRequests: requestsActive ? Math.max(0, this.remoteRequests - this.remoteRequestsUsed) : undefined,
      requestsResetAt: requestsActive ? this.remoteRequestsResetAt : undefined,
      remainingTokens: tokensActive ? Math.max(0, this.remoteTokens - this.remoteTokensUsed) : undefined,
      tokensResetAt: tokensActive ? this.remoteTokensResetAt : undefined
    }
  }
}

/**
 * Where per-key state lives: the seam for a shared store. In memory, a bucket per key in this process.
 * @internal
 */
export interface Store {
  /**
   * `wake` re-examines the key's waiters: a bucket whose capacity can grow by itself (a shared store's lease
   * arriving) runs it then. The in-memory bucket never needs it.
   */
  readonly bucket: (key: string, limits: ResolvedLimits, windowMillis: number, wake: Effect.Effect<void>) => Bucket
}

/** @internal */
export const memoryStore: Store = {
  bucket: (_key, limits, windowMillis) => new MemoryBucket(limits, windowMillis)
}
