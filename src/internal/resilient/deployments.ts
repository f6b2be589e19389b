/**
 * Several deployments of a tier's model (API keys, regions, Azure OpenAI endpoints), each with its own breaker and
 * limits keyed `provider:model@deployment`. When a step of such a tier runs, outliers are ejected — a deployment whose
 * breaker is open is out of rotation, at most `maxEjectionPercent` of them at once, and `panic` decides when all would
 * be out — then the tier's balancer (./balance.ts) picks one of the rest, and the step runs on it. A request uses one
 * deployment per step; the next step of the ladder is the failover.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as CircuitBreaker from "../../CircuitBreaker.js"
import type { CompletionResult } from "../../Llm.js"
import { CircuitOpen, InvalidOptions } from "../../LlmError.js"
import type { Service as LlmProvider } from "../../LlmProvider.js"
import type * as RateLimit from "../../RateLimit.js"
import type { Tier } from "../../Resilient.js"
import * as genAiSpans from "../genAiSpans.js"
import type { StepError } from "./attempt.js"
import { Balancer } from "./balance.js"
import type { Client, Outcome, RequestContext } from "./client.js"
import type { Step } from "./plan.js"

/** A deployment, built: its provider knows its name, so that its limiter key carries it. @internal */
export interface BuiltDeployment {
  readonly name: string
  readonly provider: LlmProvider
  readonly weight: number
  readonly limits: RateLimit.Limits | false | undefined
}

/** A tier's deployments and how they are shared out. @internal */
export interface TierDeployments {
  readonly members: ReadonlyArray<BuiltDeployment>
  readonly balancer: Balancer
  readonly maxEjectionPercent: number
  readonly panic: "oldest" | "skip"
}

/**
 * A tier's deployments, built (each provider once, with the client), or `undefined` for a tier of one provider. Each
 * serves the first one's `provider:model`. Their options were checked by ./options.ts.
 * @internal
 */
export const buildDeployments = (
  tier: Tier,
  path: string
): Effect.Effect<{ readonly first: LlmProvider; readonly deployments: TierDeployments } | undefined, InvalidOptions> =>
  Effect.gen(function*() {
    if (tier.deployments === undefined || tier.deployments.length === 0) return undefined
    const members: Array<BuiltDeployment> = []
    let first: LlmProvider | undefined
    for (const [position, deployment] of tier.deployments.entries()) {
      const field = `${path}deployments[${position}].provider`
      const provider = Effect.isEffect(deployment.provider)
        ? yield* Effect.mapError(
          deployment.provider,
          (error) => new InvalidOptions({ field: `${field}.${error.field}`, reason: error.reason })
        )
        : deployment.provider
      if (first === undefined) first = provider
      else if (provider.name !== first.name || provider.model !== first.model) {
        return yield* Effect.fail(
          new InvalidOptions({
            field,
            reason:
              `must serve ${first.name}:${first.model} like deployments[0], got ${provider.name}:${provider.model}`
          })
        )
      }
      members.push({
        name: deployment.name,
        provider: { ...provider, deployment: deployment.name },
        weight: deployment.weight ?? 1,
        limits: deployment.limits
      })
    }
    return {
      first: first!,
      deployments: {
        members,
        balancer: new Balancer(tier.balance ?? "weighted-round-robin", members.map((member) => member.weight)),
        maxEjectionPercent: tier.maxEjectionPercent ?? 100,
        panic: tier.panic ?? "oldest"
      }
    }
  })

/** The breaker, limiter and metrics key of a deployment of `label` (`provider:model`). @internal */
export const deploymentKey = (label: string, deployment: string): string => `${label}@${deployment}`

/**
 * The breaker a step runs under: its own, unless it is a deployment kept in rotation while its breaker is open (past
 * the ejection cap, or in panic), which is called without asking or telling it.
 * @internal
 */
export const breakerOf = (client: Client, step: Step): CircuitBreaker.CircuitBreaker | undefined =>
  step.unguarded === true ? undefined : client.breakers.get(step.label)

interface Rotation {
  /** Indices of the deployments the balancer may pick. */
  readonly eligible: ReadonlyArray<number>
  /** Those among them whose breaker is open (kept in rotation past the cap, or in panic). */
  readonly unguarded: ReadonlySet<number>
}

/**
 * Outlier ejection (Envoy's, with a breaker as the detector): open breakers are out, at most `maxEjectionPercent`
 * of the deployments (at least one when above 0); past that, the ones whose breakers opened longest ago (the least
 * cooldown left) stay in. When every deployment is out, `panic: "oldest"` keeps the one closest to recovery and
 * `skip` refuses the step as `CircuitOpen` with the soonest recovery.
 */
const rotation = (
  client: Client,
  step: Step,
  deployments: TierDeployments
): Effect.Effect<Rotation, CircuitOpen> =>
  Effect.gen(function*() {
    const open: Array<{ readonly index: number; readonly remaining: number }> = []
    for (const [index, member] of deployments.members.entries()) {
      const breaker = client.breakers.get(deploymentKey(step.label, member.name))
      if (breaker !== undefined && (yield* CircuitBreaker.isOpen(breaker))) {
        const snapshot = yield* breaker.snapshot
        open.push({ index, remaining: snapshot.remainingMs ?? Infinity })
      }
    }
    const all = deployments.members.map((_, index) => index)
    if (open.length === 0) return { eligible: all, unguarded: new Set() }
    const size = deployments.members.length
    const cap = deployments.maxEjectionPercent === 0
      ? 0
      : Math.max(1, Math.floor((size * deployments.maxEjectionPercent) / 100))
    // The most cooldown left first: those are ejected; the rest are closest to recovery and stay.
    const byRecovery = [...open].sort((a, b) => b.remaining - a.remaining || a.index - b.index)
    const ejected = new Set(byRecovery.slice(0, cap).map((entry) => entry.index))
    const kept = new Set(byRecovery.slice(cap).map((entry) => entry.index))
    if (ejected.size < size) return { eligible: all.filter((index) => !ejected.has(index)), unguarded: kept }
    const oldest = byRecovery[byRecovery.length - 1]!
    if (deployments.panic === "oldest") return { eligible: [oldest.index], unguarded: new Set([oldest.index]) }
    return yield* Effect.fail(
      new CircuitOpen({
        key: step.label,
        remaining: Number.isFinite(oldest.remaining) ? Duration.millis(oldest.remaining) : Duration.infinity
      })
    )
  })

/** The step on one deployment: its provider, its key. */
const on = (step: Step, member: BuiltDeployment, unguarded: boolean): Step => ({
  ...step,
  tier: { ...step.tier, provider: member.provider },
  label: deploymentKey(step.label, member.name),
  ...(unguarded ? { unguarded } : {})
})

/**
 * Runs `run` on the deployment the tier's balancer picks for `step` (or on `step` itself, for a tier of one
 * provider), keeping the balancer's counts: in flight, latency (a completion's, or a stream's time to its commit
 * point), and the provider's word on usage (a completion's rate-limit headers, a 429's `Retry-After`).
 * @internal
 */
export const deployed = <A>(
  client: Client,
  step: Step,
  context: RequestContext,
  run: (step: Step) => Effect.Effect<Outcome<A>, StepError>
): Effect.Effect<Outcome<A>, StepError> => {
  const deployments = step.tier.deployments
  if (deployments === undefined) return run(step)
  const { balancer, members } = deployments
  const { clock } = context
  return Effect.flatMap(rotation(client, step, deployments), ({ eligible, unguarded }) =>
    Effect.suspend(() => {
      const started = clock.unsafeCurrentTimeMillis()
      const index = balancer.pick(eligible, started)
      balancer.start(index)
      const member = members[index]!
      const call = run(on(step, member, unguarded.has(index)))
      // Inside the step's span (./event.ts), which cannot know the deployment before this pick.
      const traced = context.traced
        ? Effect.zipRight(Effect.annotateCurrentSpan(genAiSpans.serverAttributes(member.provider.baseURL)), call)
        : call
      return traced.pipe(
        Effect.tapBoth({
          onSuccess: (outcome) =>
            Effect.sync(() => {
              const now = clock.unsafeCurrentTimeMillis()
              const value: unknown = outcome.value
              const rateLimit = isResult(value) ? value.rateLimit : undefined
              balancer.observe(index, now - started, rateLimit, now)
            }),
          onFailure: (error) =>
            Effect.sync(() => {
              if (error._tag === "HardFailure" && error.reason === "RateLimited") {
                const retryAfter = error.retryAfter === undefined ? undefined : Duration.toMillis(error.retryAfter)
                balancer.exhausted(index, retryAfter, clock.unsafeCurrentTimeMillis())
              }
            })
        }),
        Effect.ensuring(Effect.sync(() => balancer.end(index)))
      )
    }))
}

const isResult = (value: unknown): value is Pick<CompletionResult, "rateLimit"> =>
  typeof value === "object" && value !== null && "rateLimit" in value
