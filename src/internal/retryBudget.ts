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

/**
 * One bucket is three cells of one `Float64Array` — its epoch (second), requests, retries — so a budget is two small
 * objects and one buffer: it exists per provider:model target, and a retrier may see thousands of targets.
 * @internal
 */
export class RetryBudget {
  private readonly cells: Float64Array

  /** `options` is shared by every budget of a retrier. */
  constructor(readonly options: RetryBudgetOptions) {
    const buckets = Math.max(1, Math.ceil(options.windowMillis / BUCKET_MILLIS))
    this.cells = new Float64Array(buckets * 3)
    for (let i = 0; i < this.cells.length; i += 3) this.cells[i] = -1
  }

  /** The first cell of the current second's bucket, emptied if it held an older second. */
  private bucket(nowMillis: number): number {
    const epoch = Math.floor(nowMillis / BUCKET_MILLIS)
    const index = (epoch % (this.cells.length / 3)) * 3
    if (this.cells[index] !== epoch) {
      this.cells[index] = epoch
      this.cells[index + 1] = 0
      this.cells[index + 2] = 0
    }
    return index
  }

  private totals(nowMillis: number): { readonly requests: number; readonly retries: number } {
    const oldest = Math.floor(nowMillis / BUCKET_MILLIS) - this.cells.length / 3 + 1
    let requests = 0
    let retries = 0
    for (let i = 0; i < this.cells.length; i += 3) {
      if ((this.cells[i] ?? -1) >= oldest) {
        requests += this.cells[i + 1] ?? 0
        retries += this.cells[i + 2] ?? 0
      }
    }
    return { requests, retries }
  }

  /** Records a request (a first attempt). */
  deposit(nowMillis: number): void {
    const index = this.bucket(nowMillis) + 1
    this.cells[index] = (this.cells[index] ?? 0) + 1
  }

  /** Takes one retry from the budget; `false` when it is spent. */
  tryWithdraw(nowMillis: number): boolean {
    const index = this.bucket(nowMillis) + 2
    const { requests, retries } = this.totals(nowMillis)
    const allowance = this.options.ratio * requests + this.options.minPerSecond * (this.options.windowMillis / 1_000)
    if (retries + 1 > allowance) return false
    this.cells[index] = (this.cells[index] ?? 0) + 1
    return true
  }

  /**
   * Nothing recorded within the window: the budget is in the state of a new one, so forgetting it changes nothing
   * the next request of its target sees.
   */
  idle(nowMillis: number): boolean {
    const oldest = Math.floor(nowMillis / BUCKET_MILLIS) - this.cells.length / 3 + 1
    for (let i = 0; i < this.cells.length; i += 3) {
      if ((this.cells[i] ?? -1) >= oldest && ((this.cells[i + 1] ?? 0) > 0 || (this.cells[i + 2] ?? 0) > 0)) {
        return false
      }
    }
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
