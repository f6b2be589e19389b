/**
 * The demo's outage script and the switch that plays it. The switch is read by code outside Effect — aimock's
 * response factories and the SDKs' `fetch` — at the moment a request arrives, so it is a plain mutable cell that
 * the script's driver fiber flips.
 */
import * as Duration from "effect/Duration"

/** What the primary (OpenAI) does during a segment. */
export type OpenAiFault = "none" | "rateLimit" | "unavailable"

/** What the second tier (Anthropic) does during a segment. */
export type AnthropicFault = "none" | "overloaded"

export interface Segment {
  readonly name: string
  /** Share of the run, in twentieths: the default 20 s run gives one second per unit. */
  readonly weight: number
  readonly openAi: OpenAiFault
  readonly anthropic: AnthropicFault
  readonly story: string
}

/**
 * Healthy traffic, then a 429 storm on the primary, then a hard 503 outage — during which the traffic that fails
 * over overloads Anthropic for a while (outages are correlated: everyone fails over to the same backup), so the
 * local model gets its turn — and finally recovery.
 */
export const script: readonly [Segment, ...Array<Segment>] = [
  { name: "healthy", weight: 3, openAi: "none", anthropic: "none", story: "every provider answers" },
  {
    name: "429 storm",
    weight: 4,
    openAi: "rateLimit",
    anthropic: "none",
    story: "OpenAI rate-limits 2 of 3 calls with a 429"
  },
  {
    name: "503 outage",
    weight: 2.5,
    openAi: "unavailable",
    anthropic: "none",
    story: "OpenAI answers 503 to every call"
  },
  {
    name: "spillover",
    weight: 2.5,
    openAi: "unavailable",
    anthropic: "overloaded",
    story: "OpenAI still 503; Anthropic overloaded (529) by everyone failing over"
  },
  {
    name: "503 outage",
    weight: 2,
    openAi: "unavailable",
    anthropic: "none",
    story: "Anthropic is back; OpenAI still 503"
  },
  {
    name: "recovery",
    weight: 6,
    openAi: "none",
    anthropic: "none",
    story: "OpenAI is back: its breaker probes and closes"
  }
]

const TOTAL_WEIGHT = script.reduce((sum, segment) => sum + segment.weight, 0)

/** The default run: one weight unit per second. */
export const DEFAULT_DURATION_MS = TOTAL_WEIGHT * 1_000

export interface PlannedSegment {
  readonly index: number
  readonly segment: Segment
  readonly startMs: number
  readonly endMs: number
}

/**
 * The script laid out over a run of `totalMs`. `scale` compresses or stretches every policy duration with it
 * (breaker cooldown, backoff, Retry-After), so a short test run and a slow live run tell the same story.
 */
export interface Plan {
  readonly totalMs: number
  readonly scale: number
  readonly segments: ReadonlyArray<PlannedSegment>
  /** Retry-After the injected 429s carry, in seconds (1 s in the default run). */
  readonly retryAfterSeconds: number
  readonly cooldown: Duration.Duration
}

export const plan = (totalMs: number): Plan => {
  const scale = totalMs / DEFAULT_DURATION_MS
  let at = 0
  const segments = script.map((segment, index) => {
    const startMs = at
    at += (segment.weight / TOTAL_WEIGHT) * totalMs
    return { index, segment, startMs: Math.round(startMs), endMs: Math.round(at) }
  })
  return {
    totalMs,
    scale,
    segments,
    // Tenths of a second: aimock writes the value as is into the Retry-After header, which this library parses.
    retryAfterSeconds: Math.max(0.1, Math.round(scale * 10) / 10),
    cooldown: Duration.millis(Math.round(1_500 * scale))
  }
}

/** An error to answer instead of the real one, in the provider's own wire format. */
export interface InjectedError {
  readonly status: number
  readonly type: string
  readonly code?: string | undefined
  readonly message: string
  readonly retryAfterSeconds?: number | undefined
}

/** The live fault state, flipped by the script's driver and read by the emulator (or the SDKs' fetch). */
export class OutageSwitch {
  private current = 0
  private rateLimitCalls = 0
  constructor(readonly plan: Plan) {}

  get index(): number {
    return this.current
  }

  get segment(): Segment {
    return this.plan.segments[this.current]?.segment ?? script[0]
  }

  set(index: number): void {
    this.current = index
  }

  openAi(): InjectedError | undefined {
    switch (this.segment.openAi) {
      case "none":
        return undefined
      case "rateLimit":
        // A storm, not a wall: every third call gets through, so retries after Retry-After sometimes succeed and
        // the breaker trips on its failure rate rather than on a clean run of failures. Counted, not random, so
        // every run is the same.
        return this.rateLimitCalls++ % 3 === 2 ? undefined : {
          status: 429,
          type: "requests",
          code: "rate_limit_exceeded",
          message: "Rate limit reached for requests per min (RPM). Please try again later.",
          retryAfterSeconds: this.plan.retryAfterSeconds
        }
      case "unavailable":
        return { status: 503, type: "server_error", message: "The server is overloaded or not ready yet." }
    }
  }

  anthropic(): InjectedError | undefined {
    switch (this.segment.anthropic) {
      case "none":
        return undefined
      case "overloaded":
        return { status: 529, type: "overloaded_error", message: "Overloaded" }
    }
  }
}

/** The questions the traffic cycles through; a few distinct ones so that the degrade cache has entries. */
export const questions: readonly [
  { readonly question: string; readonly answer: string },
  ...Array<{ readonly question: string; readonly answer: string }>
] = [
  {
    question: "In one sentence, why do LLM applications need fallbacks?",
    answer: "Because rate limits, outages and slow answers are routine, not rare."
  },
  {
    question: "In one sentence, what does a circuit breaker do?",
    answer: "It stops calling a failing dependency, then probes it before letting traffic back."
  },
  {
    question: "In one sentence, what is a Retry-After header for?",
    answer: "It tells the client how long to wait before trying again."
  },
  {
    question: "In one sentence, what is a retry budget?",
    answer: "A cap on retries as a share of traffic, so retries cannot multiply an outage."
  },
  {
    question: "In one sentence, why put a local model last in the chain?",
    answer: "It is slower or weaker, but it is there when every cloud provider is not."
  }
]

/** The `n`th question of the cycle. */
export const questionAt = (n: number): string => (questions[n % questions.length] ?? questions[0]).question

export const answerFor = (question: string): string =>
  questions.find((entry) => entry.question === question)?.answer ?? "An answer."
