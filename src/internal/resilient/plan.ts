/**
 * The plan of a request: the built tiers, the order a strategy puts them in, and the ordered steps (tier × model)
 * that the engine runs — the same plan for a completion and a stream.
 * @internal
 */
import type * as Duration from "effect/Duration"
import type { CompletionResult } from "../../Llm.js"
import type { Service as LlmProvider } from "../../LlmProvider.js"
import type { Price, Strategy, Tier } from "../../Resilient.js"
import type * as Retry from "../../Retry.js"
import { latencyScore } from "./balance.js"
import type { TierDeployments } from "./deployments.js"

/** A tier of the chain with its options decoded and its provider built. @internal */
export interface BuiltTier {
  readonly index: number
  readonly config: Tier
  readonly provider: LlmProvider
  /** The main model, then the downgrades. */
  readonly models: ReadonlyArray<string>
  readonly retrier: Retry.Retrier | undefined
  readonly timeout: Duration.Duration | undefined
  /** Time to a stream's first content chunk: `firstChunkTimeout`, else `timeout`. */
  readonly firstChunkTimeout: Duration.Duration | undefined
  /** Longest gap between two chunks of a stream. */
  readonly stallTimeout: Duration.Duration | undefined
  readonly contextWindow: number
  readonly qualityRank: number
  /** Several deployments of the model, balanced per step (./deployments.ts); `provider` is the first. */
  readonly deployments?: TierDeployments | undefined
}

/** One step of the ladder: a tier's provider with one of its models. @internal */
export interface Step {
  /** 0-based position in the ordered plan. */
  readonly index: number
  readonly tier: BuiltTier
  readonly model: string
  /** `provider:model` (`provider:model@deployment` on a deployment): the breaker, limiter and metrics key. */
  readonly label: string
  /** A deployment kept in rotation while its breaker is open: called without its breaker (./deployments.ts). */
  readonly unguarded?: boolean | undefined
}

/** @internal */
export const labelOf = (tier: BuiltTier, model = tier.provider.model): string => `${tier.provider.name}:${model}`

const isPrice = (price: Tier["price"]): price is Price =>
  price !== undefined && "inputPer1k" in price && typeof price.inputPer1k === "number"

/** @internal */
export const priceOf = (tier: Tier, model: string): Price | undefined =>
  tier.price === undefined ? undefined : isPrice(tier.price) ? tier.price : tier.price[model]

/** @internal */
export const costOf = (price: Price | undefined, result: CompletionResult): number =>
  price === undefined
    ? 0
    : (result.usage.inputTokens / 1000) * price.inputPer1k + (result.usage.outputTokens / 1000) * price.outputPer1k

const LATENCY_SAMPLES = 64

/** Observed latencies of one step, newest overwriting oldest. @internal */
export class LatencyWindow {
  private readonly samples = new Float64Array(LATENCY_SAMPLES)
  private count = 0
  /** Samples recorded so far. */
  get recorded(): number {
    return this.count
  }
  record(millis: number): void {
    this.samples[this.count % LATENCY_SAMPLES] = millis
    this.count++
  }
  quantile(q: number): number | undefined {
    const size = Math.min(this.count, LATENCY_SAMPLES)
    if (size === 0) return undefined
    const sorted = Array.from(this.samples.subarray(0, size)).sort((a, b) => a - b)
    return sorted[Math.min(size - 1, Math.floor(q * size))]
  }
}

/** Latency windows by label: a completion's latency, or a stream's time to first token. @internal */
export class Latencies {
  private readonly windows = new Map<string, LatencyWindow>()
  /** Latency-first orderings made so far (for exploration, ./balance.ts). */
  orderings = 0
  of(label: string): LatencyWindow {
    let window = this.windows.get(label)
    if (window === undefined) {
      window = new LatencyWindow()
      this.windows.set(label, window)
    }
    return window
  }
}

/** The tiers in the order `strategy` puts them; `latency` is what latency-first compares. @internal */
export const order = (
  tiers: ReadonlyArray<BuiltTier>,
  strategy: Strategy,
  latency: Latencies
): ReadonlyArray<BuiltTier> => {
  const sorted = [...tiers]
  const byNumber = (f: (tier: BuiltTier) => number) => sorted.sort((a, b) => f(a) - f(b) || a.index - b.index)
  switch (strategy) {
    case "cost-first":
      return byNumber((tier) => {
        const price = priceOf(tier.config, tier.provider.model)
        return price === undefined ? Number.POSITIVE_INFINITY : price.inputPer1k + price.outputPer1k
      })
    case "latency-first":
      // Observed medians, with exploration (./balance.ts): a tier never observed comes first, and now and then the
      // least observed one does, so that a tier slow once is measured again.
      return byNumber(latencyScore(latency))
    case "quality-first":
      return byNumber((tier) => tier.qualityRank)
    case "ordered":
      return sorted
  }
}

/** The ladder's steps: each tier's main model, then its downgrades, tier after tier. @internal */
export const stepsOf = (ordered: ReadonlyArray<BuiltTier>): ReadonlyArray<Step> =>
  ordered.flatMap((tier) => tier.models.map((model) => ({ tier, model, label: labelOf(tier, model) }))).map((
    step,
    index
  ) => ({ ...step, index }))
