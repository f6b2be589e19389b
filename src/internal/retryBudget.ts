/**
 * A retry budget in the gRPC / Finagle style: within a sliding window, retries may add at most
 * `ratio × requests + minPerSecond × window` calls. When a provider is down for everyone, this is what stops each
 * client from multiplying its traffic by the retry count.
 *
 * The window is a ring of one-second buckets, so deposit and withdraw are O(buckets) with no allocation. State is
 * mutated synchronously inside `Effect.sync`: JavaScript runs one fiber step at a time, so each update is atomic
 * without a `Ref` round trip.
 * @internal
 */
export interface RetryBudgetOptions {
  readonly ratio: number
  readonly minPerSecond: number
  readonly windowMillis: number
}

const BUCKET_MILLIS = 1_000

/** @internal */
export class RetryBudget {
  private readonly requests: Float64Array
  private readonly retries: Float64Array
  private readonly epochs: Float64Array

  constructor(readonly options: RetryBudgetOptions) {
    const buckets = Math.max(1, Math.ceil(options.windowMillis / BUCKET_MILLIS))
    this.requests = new Float64Array(buckets)
    this.retries = new Float64Array(buckets)
    this.epochs = new Float64Array(buckets).fill(-1)
  }

  private bucket(nowMillis: number): number {
    const epoch = Math.floor(nowMillis / BUCKET_MILLIS)
    const index = epoch % this.epochs.length
    if (this.epochs[index] !== epoch) {
      this.epochs[index] = epoch
      this.requests[index] = 0
      this.retries[index] = 0
    }
    return index
  }

  private totals(nowMillis: number): { readonly requests: number; readonly retries: number } {
    const oldest = Math.floor(nowMillis / BUCKET_MILLIS) - this.epochs.length + 1
    let requests = 0
    let retries = 0
    for (let i = 0; i < this.epochs.length; i++) {
      if ((this.epochs[i] ?? -1) >= oldest) {
        requests += this.requests[i] ?? 0
        retries += this.retries[i] ?? 0
      }
    }
    return { requests, retries }
  }

  /** Records a request (a first attempt). */
  deposit(nowMillis: number): void {
    const index = this.bucket(nowMillis)
    this.requests[index] = (this.requests[index] ?? 0) + 1
  }

  /** Takes one retry from the budget; `false` when it is spent. */
  tryWithdraw(nowMillis: number): boolean {
    const index = this.bucket(nowMillis)
    const { requests, retries } = this.totals(nowMillis)
    const allowance = this.options.ratio * requests + this.options.minPerSecond * (this.options.windowMillis / 1_000)
    if (retries + 1 > allowance) return false
    this.retries[index] = (this.retries[index] ?? 0) + 1
    return true
  }

  /** Retries still allowed in the current window. */
  remaining(nowMillis: number): number {
    const { requests, retries } = this.totals(nowMillis)
    return Math.max(
      0,
      Math.floor(
        this.options.ratio * requests + this.options.minPerSecond * (this.options.windowMillis / 1_000) - retries
      )
    )
  }
}
