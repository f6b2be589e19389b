/**
 * Balancing among a tier's deployments (LiteLLM's routing strategies, Envoy's load balancers): which member of a set
 * of eligible deployments serves the next call. Plain state, no Effect: the caller says who is eligible (./deployments
 * .ts ejects outliers first), calls `pick`, then reports the call's start, end and what it observed.
 * @internal
 */
import * as Duration from "effect/Duration"
import type { RateLimitInfo } from "../../Llm.js"
import type { Balance } from "../../Resilient.js"
import type { BuiltTier, Latencies } from "./plan.js"

/** One request in this many goes to the least-observed member under latency balancing (ε-greedy, ε = 5 %). */
export const EXPLORE_EVERY = 20

/** Weight of a new latency sample in the EWMA. */
const EWMA_ALPHA = 0.3

interface Member {
  readonly weight: number
  /** Smooth weighted round-robin's running weight (nginx's algorithm). */
  current: number
  inFlight: number
  /** From the last rate-limit headers or 429; forgotten at `usageUntil`. */
  remainingRequests: number | undefined
  remainingTokens: number | undefined
  usageUntil: number
  ewma: number | undefined
  samples: number
}

/** @internal */
export class Balancer {
  private readonly members: ReadonlyArray<Member>
  private picks = 0

  constructor(readonly strategy: Balance, weights: ReadonlyArray<number>) {
    this.members = weights.map((weight) => ({
      weight,
      current: 0,
      inFlight: 0,
      remainingRequests: undefined,
      remainingTokens: undefined,
      usageUntil: 0,
      ewma: undefined,
      samples: 0
    }))
  }

  /** The member (an index into the weights) to call among `eligible` (not empty), at `now` (ms). */
  pick(eligible: ReadonlyArray<number>, now: number): number {
    this.picks++
    switch (this.strategy) {
      case "weighted-round-robin":
        return this.roundRobin(eligible)
      case "least-in-flight":
        return this.roundRobin(this.best(eligible, (member) => member.inFlight / member.weight))
      case "usage":
        return this.roundRobin(this.best(eligible, (member) => {
          const fresh = now < member.usageUntil
          // Unknown usage is the most promising: it gets traffic, and with it headers.
          const requests = fresh ? member.remainingRequests ?? Infinity : Infinity
          const tokens = fresh ? member.remainingTokens ?? Infinity : Infinity
          return requests === Infinity ? -Infinity : -(requests * 1e9 + Math.min(tokens, 1e9 - 1))
        }))
      case "latency": {
        const unobserved = eligible.filter((index) => this.members[index]!.samples === 0)
        if (unobserved.length > 0) return this.roundRobin(unobserved)
        // Exploration: a member that is slow once would otherwise never be measured again.
        if (this.picks % EXPLORE_EVERY === 0) {
          return this.roundRobin(this.best(eligible, (member) => member.samples))
        }
        return this.roundRobin(this.best(eligible, (member) => member.ewma ?? 0))
      }
    }
  }

  /** A call to `index` started. */
  start(index: number): void {
    this.members[index]!.inFlight++
  }

  /** A call to `index` ended. */
  end(index: number): void {
    const member = this.members[index]!
    member.inFlight = Math.max(0, member.inFlight - 1)
  }

  /** A successful call's latency (ms) and the provider's rate-limit headers. */
  observe(index: number, latencyMs: number, rateLimit: RateLimitInfo | undefined, now: number): void {
    const member = this.members[index]!
    member.ewma = member.ewma === undefined ? latencyMs : EWMA_ALPHA * latencyMs + (1 - EWMA_ALPHA) * member.ewma
    member.samples++
    if (
      rateLimit !== undefined && (rateLimit.remainingRequests !== undefined || rateLimit.remainingTokens !== undefined)
    ) {
      member.remainingRequests = rateLimit.remainingRequests
      member.remainingTokens = rateLimit.remainingTokens
      const reset = Math.max(
        rateLimit.resetRequests === undefined ? 0 : Duration.toMillis(rateLimit.resetRequests),
        rateLimit.resetTokens === undefined ? 0 : Duration.toMillis(rateLimit.resetTokens)
      )
      member.usageUntil = now + (reset > 0 ? reset : 60_000)
    }
  }

  /** The provider said the member is rate limited (a 429) until `retryAfterMs` from `now`. */
  exhausted(index: number, retryAfterMs: number | undefined, now: number): void {
    const member = this.members[index]!
    member.remainingRequests = 0
    member.remainingTokens = 0
    member.usageUntil = now + (retryAfterMs ?? 60_000)
  }

  /** The members of `eligible` with the lowest `score`. */
  private best(eligible: ReadonlyArray<number>, score: (member: Member) => number): ReadonlyArray<number> {
    let lowest = Infinity
    let found: Array<number> = []
    for (const index of eligible) {
      const value = score(this.members[index]!)
      if (value < lowest) {
        lowest = value
        found = [index]
      } else if (value === lowest) found.push(index)
    }
    return found.length === 0 ? eligible : found
  }

  /**
   * Smooth weighted round-robin among `eligible`: each gains its weight, the highest is chosen and gives back the
   * total. Over any run the picks follow the weights exactly, interleaved (5:1:1 gives a a b a c a a, not a×5 b c).
   */
  private roundRobin(eligible: ReadonlyArray<number>): number {
    if (eligible.length === 1) return eligible[0]!
    let total = 0
    let chosen = eligible[0]!
    for (const index of eligible) {
      const member = this.members[index]!
      member.current += member.weight
      total += member.weight
      if (member.current > this.members[chosen]!.current) chosen = index
    }
    this.members[chosen]!.current -= total
    return chosen
  }
}

/** The latency windows of a tier: its own, or its deployments'. */
const windowsOf = (tier: BuiltTier, latency: Latencies) => {
  // `labelOf` (./plan.ts), not imported: plan.ts imports this module.
  const label = `${tier.provider.name}:${tier.provider.model}`
  return tier.deployments === undefined
    ? [latency.of(label)]
    : tier.deployments.members.map((member) => latency.of(`${label}@${member.name}`))
}

/**
 * A tier's observed `q` quantile: its own, or its fastest observed deployment's; `undefined` before any sample.
 * @internal
 */
export const observedQuantile = (tier: BuiltTier, latency: Latencies, q: number): number | undefined => {
  let best: number | undefined
  for (const window of windowsOf(tier, latency)) {
    const value = window.quantile(q)
    if (value !== undefined && (best === undefined || value < best)) best = value
  }
  return best
}

/**
 * What `latency-first` sorts tiers by, lowest first: the observed median (the best deployment's), with an
 * unobserved tier first — it may be the fastest, and it is never measured otherwise — and, one ordering in
 * {@link EXPLORE_EVERY}, the number of samples instead, so that the least observed tier is measured again.
 * @internal
 */
export const latencyScore = (latency: Latencies): (tier: BuiltTier) => number => {
  latency.orderings++
  if (latency.orderings % EXPLORE_EVERY === 0) {
    return (tier) => windowsOf(tier, latency).reduce((sum, window) => sum + window.recorded, 0)
  }
  return (tier) => {
    let best = Infinity
    for (const window of windowsOf(tier, latency)) {
      const median = window.quantile(0.5)
      if (median === undefined) return -1
      best = Math.min(best, median)
    }
    return best
  }
}
