/** Weighted samples, growable, without boxing: a year of latencies. */
export class Samples {
  private values = new Float64Array(1 << 12)
  private weights = new Float64Array(1 << 12)
  size = 0
  totalWeight = 0
  weightedSum = 0
  max = 0
  push(value: number, weight: number): void {
    if (this.size === this.values.length) {
      const values = new Float64Array(this.values.length * 2)
      const weights = new Float64Array(this.values.length * 2)
      values.set(this.values)
      weights.set(this.weights)
      this.values = values
      this.weights = weights
    }
    this.values[this.size] = value
    this.weights[this.size++] = weight
    this.totalWeight += weight
    this.weightedSum += value * weight
    if (value > this.max) this.max = value
  }
  get mean(): number {
    return this.totalWeight === 0 ? 0 : this.weightedSum / this.totalWeight
  }
  quantile(q: number): number {
    if (this.size === 0) return 0
    const order = Uint32Array.from({ length: this.size }, (_, index) => index)
    order.sort((a, b) => this.values[a]! - this.values[b]!)
    const target = q * this.totalWeight
    let seen = 0
    for (const index of order) {
      seen += this.weights[index]!
      if (seen >= target) return this.values[index]!
    }
    return this.values[order[order.length - 1]!]!
  }
  summary(): LatencySummary {
    return {
      p50: this.quantile(0.5),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.max,
      count: this.totalWeight
    }
  }
}

/** Percentiles of a latency, in milliseconds; `count` is the (weighted) number of requests behind them. */
export interface LatencySummary {
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
  readonly count: number
}

/**
 * The 95 % Wilson score interval of a proportion from `successes` of `trials` (well-behaved at 0 and at `trials`,
 * where the normal approximation collapses to a point).
 */
export const wilson = (successes: number, trials: number): readonly [number, number] => {
  if (trials <= 0) return [0, 1]
  const z = 1.959964
  const p = successes / trials
  const denominator = 1 + (z * z) / trials
  const centre = (p + (z * z) / (2 * trials)) / denominator
  const half = (z * Math.sqrt((p * (1 - p)) / trials + (z * z) / (4 * trials * trials))) / denominator
  return [Math.max(0, centre - half), Math.min(1, centre + half)]
}
