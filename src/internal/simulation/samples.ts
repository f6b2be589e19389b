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
  /** The weighted `q` quantiles, for ascending `qs`, from one sort of the samples. */
  private quantiles(qs: ReadonlyArray<number>): Array<number> {
    if (this.size === 0) return qs.map(() => 0)
    const values = this.values
    const weights = this.weights
    const order = new Uint32Array(this.size)
    for (let index = 0; index < order.length; index++) order[index] = index
    order.sort((a, b) => values[a]! - values[b]!)
    const result: Array<number> = []
    let seen = 0
    let position = 0
    for (const q of qs) {
      const target = q * this.totalWeight
      while (position < order.length && seen + weights[order[position]!]! < target) {
        seen += weights[order[position]!]!
        position++
      }
      result.push(values[order[Math.min(position, order.length - 1)]!]!)
    }
    return result
  }
  summary(): LatencySummary {
    const [p50 = 0, p99 = 0, p999 = 0] = this.quantiles([0.5, 0.99, 0.999])
    return { p50, p99, p999, max: this.max, count: this.totalWeight }
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
