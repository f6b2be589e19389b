/**
 * `npm start`: a live outage drill. A steady stream of requests goes through one `Resilient` client — OpenAI, then
 * Anthropic, then a local OpenAI-compatible model, then the cache and a static answer — while a script breaks the
 * primary: a 429 storm, a 503 outage (during which the failover overloads Anthropic for a while), then recovery.
 * The terminal shows each breaker, the traffic per provider and a timeline as it happens, then a summary of who
 * answered, what it cost in latency and money, and whether the chain did its job (the exit code says so too).
 *
 * By default nothing leaves the machine: the real SDKs talk over real HTTP to the embedded emulator (aimock), which
 * plays all three providers and injects the faults. `--live` sends the same traffic to the real APIs.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { Service as LlmProvider } from "../LlmProvider.js"
import * as Resilient from "../Resilient.js"
import type * as Retry from "../Retry.js"
import { type Backend, DemoBackend, DemoSetupError, emulator, live } from "./internal/demoBackend.js"
import { DEFAULT_DURATION_MS, OutageSwitch, type Plan, plan, questionAt } from "./internal/demoScenario.js"
import { DemoStats, summarize, type Summary } from "./internal/demoStats.js"
import {
  changeLine,
  dashboard,
  intro,
  lineHeader,
  lineRow,
  Screen,
  segmentLine,
  summaryLines,
  type ViewContext
} from "./internal/demoView.js"

export { DemoSetupError } from "./internal/demoBackend.js"
export type { Check, SegmentSummary, Summary } from "./internal/demoStats.js"

export interface RunOptions {
  /** Real APIs instead of the emulator (needs OPENAI_API_KEY and ANTHROPIC_API_KEY). */
  readonly live?: boolean | undefined
  /** Length of the scripted run; every phase and policy duration scales with it. Default 20 s (live: 60 s). */
  readonly durationMs?: number | undefined
  /** A batch of requests starts every `intervalMs`. Default 80 ms (live: 1 s). */
  readonly intervalMs?: number | undefined
  /** Requests per batch. Default 3 (live: 1). */
  readonly concurrency?: number | undefined
  /** `dashboard`: redrawn in place (a terminal); `lines`: a line per second and per event; `quiet`: nothing. */
  readonly output?: "dashboard" | "lines" | "quiet" | undefined
  /** Where the text goes. Default: stdout. */
  readonly write?: ((text: string) => void) | undefined
  /** Default: on for the dashboard unless NO_COLOR is set. */
  readonly color?: boolean | undefined
  /** Terminal width. Default: stdout's, or 100. */
  readonly columns?: number | undefined
  /** Terminal height, for the dashboard. Default: stdout's, or 40. */
  readonly rows?: number | undefined
}

/** The demo's records, shared by the instrumented providers, the traffic and the views. */
class Recorder extends Context.Tag("effect-llm-resilience/cli/DemoRecorder")<Recorder, DemoStats>() {}

/** The reason a provider call failed, for the dashboard's "last error" column. */
const failureReason = (cause: Cause.Cause<{ readonly _tag: string }>): string =>
  Option.match(Cause.failureOption(cause), {
    // The tier's timeout interrupts the call (aborting its HTTP request): that is the usual interruption here.
    onNone: () => Cause.isInterruptedOnly(cause) ? "Interrupted" : "Defect",
    onSome: (error) => "reason" in error && typeof error.reason === "string" ? error.reason : error._tag
  })

/**
 * The provider as the chain sees it, plus a record of every call (retries included) — the per-provider numbers come
 * from here, not from the library, so the dashboard shows what really went over the wire.
 */
const instrument = (provider: LlmProvider, stats: DemoStats, outage: OutageSwitch): LlmProvider => ({
  ...provider,
  complete: (request) =>
    Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
      const segment = outage.index
      return Effect.onExit(provider.complete(request), (exit) =>
        Effect.map(Clock.currentTimeMillis, (endedAt) => {
          stats.calls.push({
            key: provider.key,
            startedAt,
            endedAt,
            ok: Exit.isSuccess(exit),
            reason: Exit.isFailure(exit) ? failureReason(exit.cause) : undefined,
            segment
          })
        }))
    })
})

const millis = (value: number) => Duration.millis(Math.max(1, Math.round(value)))

/**
 * The chain, with policies sized for a demo: short timeouts, quick retries, a breaker that trips within a second of
 * an outage and probes again after `plan.cooldown`. Time-based values scale with the run's length.
 */
const chainConfig = (backend: Backend, timing: Plan, stats: DemoStats, outage: OutageSwitch): Resilient.Config => {
  const scale = timing.scale
  const retry: Retry.Options = {
    policies: {
      // Retry-After wins when longer; a rate limit gets one more try, then the chain moves on.
      RateLimited: { maxAttempts: 2, baseDelay: millis(200 * scale), maxDelay: millis(1_500 * scale) },
      Overloaded: { maxAttempts: 2, baseDelay: millis(100 * scale), maxDelay: millis(400 * scale) },
      ServerError: { maxAttempts: 2, baseDelay: millis(100 * scale), maxDelay: millis(400 * scale) },
      // A timed-out attempt already cost a full timeout: fall over instead of paying it twice.
      Timeout: { maxAttempts: 1 }
    },
    retryAfterCeiling: millis(2_000 * scale)
  }
  const breaker: CircuitBreaker.Options = {
    consecutiveFailures: 5,
    failureRate: 50,
    window: 20,
    minimumCalls: 10,
    cooldown: timing.cooldown,
    // The demo's recovery is scripted to the cooldown: keep it fixed rather than doubling after a failed probe.
    cooldownGrowth: false,
    probes: 1,
    successThreshold: 1,
    // A probe that never answers re-opens the breaker a little after the tier's own timeout would have fired.
    probeTimeout: Duration.sum(backend.localTimeout, Duration.seconds(1))
  }
  const tier = (provider: LlmProvider, timeout: Duration.Duration, price: Resilient.Price | undefined) => ({
    provider: instrument(provider, stats, outage),
    retry,
    breaker,
    timeout,
    ...(price !== undefined ? { price } : {})
  })
  return {
    chain: [
      tier(backend.openAi, backend.cloudTimeout, backend.prices.openAi),
      tier(backend.anthropic, backend.cloudTimeout, backend.prices.anthropic),
      tier(backend.local, backend.localTimeout, backend.prices.local)
    ],
    // A key paused by a 429's Retry-After (or full) sends the request down the chain at once instead of holding
    // it: the caller is better served by the next tier than by a wait.
    rateLimit: { maxWait: millis(250 * scale) },
    degrade: {
      cache: { ttl: "10 minutes", capacity: 100 },
      staticResponse: "We are answering slowly right now; please try again in a minute."
    }
  }
}

// Fibers following a stream are suspended on their subscription once it is taken: wait for that, so that no
// transition of the first requests is missed (the same wait `Resilient.make` does for its metrics).
const awaitSubscribed = (fibers: ReadonlyArray<Fiber.RuntimeFiber<void>>) =>
  Effect.forEach(fibers, (fiber) =>
    Effect.gen(function*() {
      for (let turn = 0; turn < 1_000 && (yield* Fiber.status(fiber))._tag !== "Suspended"; turn++) {
        yield* Effect.yieldNow()
      }
    }), { discard: true })

interface Settings {
  readonly live: boolean
  readonly durationMs: number
  readonly intervalMs: number
  readonly concurrency: number
}

const settingsOf = (options: RunOptions): Effect.Effect<Settings, DemoSetupError> => {
  const live = options.live === true
  const settings: Settings = {
    live,
    durationMs: options.durationMs ?? (live ? 60_000 : DEFAULT_DURATION_MS),
    intervalMs: options.intervalMs ?? (live ? 1_000 : 80),
    concurrency: options.concurrency ?? (live ? 1 : 3)
  }
  const problem = !(Number.isFinite(settings.durationMs) && settings.durationMs >= 4_000
      && settings.durationMs <= 3_600_000)
    ? "--duration must be between 4 and 3600 seconds"
    : !(Number.isInteger(settings.intervalMs) && settings.intervalMs >= 10)
    ? "--interval must be an integer of at least 10 (milliseconds)"
    : !(Number.isInteger(settings.concurrency) && settings.concurrency >= 1 && settings.concurrency <= 100)
    ? "--concurrency must be an integer between 1 and 100"
    : undefined
  return problem === undefined ? Effect.succeed(settings) : Effect.fail(new DemoSetupError({ message: problem }))
}

const program = (settings: Settings, timing: Plan, outage: OutageSwitch, options: RunOptions) =>
  Effect.gen(function*() {
    const backend = yield* DemoBackend
    const stats = yield* Recorder
    const client = yield* Resilient.Resilient
    const output = options.output ?? "lines"
    const write = options.write ?? ((text: string) => void process.stdout.write(text))
    const print = (lines: ReadonlyArray<string>) =>
      Effect.sync(() => {
        if (output !== "quiet") write(lines.map((line) => `${line.trimEnd()}\n`).join(""))
      })
    const view: ViewContext = {
      color: options.color ?? (output === "dashboard" && process.env.NO_COLOR === undefined),
      columns: options.columns ?? (output === "dashboard" ? process.stdout.columns ?? 100 : 100),
      rows: options.rows ?? (output === "dashboard" ? process.stdout.rows ?? 40 : 1_000),
      description: backend.description,
      plan: timing,
      intervalMs: settings.intervalMs,
      concurrency: settings.concurrency,
      timeoutMs: Duration.toMillis(backend.cloudTimeout)
    }

    // Breaker transitions drive the breaker column and the timeline, and are logged as they happen in line mode.
    for (const [key, breaker] of client.breakers) stats.initialStates.set(key, yield* breaker.state)
    const followers = yield* Effect.forEach(
      client.breakers.values(),
      (breaker) =>
        Effect.forkScoped(Stream.runForEach(breaker.events, (change) =>
          Effect.zipRight(
            Effect.sync(() => stats.changes.push(change)),
            output === "lines" ? print([changeLine(stats, view, change)]) : Effect.void
          )))
    )
    yield* awaitSubscribed(followers)

    // A running service is warm: load the tokenizers (the rate limiter counts every request's tokens; the first
    // count loads a 1-2 MB encoding) before the clock starts, or the first requests of the healthy phase would
    // time out on module loading and trip the breakers before any fault is injected.
    // Against the emulator, one request per provider as well (the SDKs' first request is several times slower than
    // the next); not in live mode, where it would be a billed request the summary does not count.
    yield* Effect.forEach(
      [backend.openAi, backend.anthropic, backend.local],
      (provider) =>
        Effect.zipRight(
          provider.countTokens([{ role: "user", content: "warm-up" }]),
          backend.mode === "emulator"
            ? Effect.ignore(provider.complete({ messages: [{ role: "user", content: questionAt(0) }] }))
            : Effect.void
        ),
      { discard: true }
    )
    yield* print([...intro(stats, view), ""])
    stats.startedAt = yield* Clock.currentTimeMillis

    // The display runs beside the traffic: redrawn every 100 ms on a terminal, a line per second otherwise.
    const screen = new Screen(write)
    const lastRow = yield* Ref.make(stats.startedAt)
    const row = (to: number) => Effect.flatMap(Ref.getAndSet(lastRow, to), (from) => print([lineRow(stats, from, to)]))
    const display = output === "dashboard"
      ? yield* Effect.gen(function*() {
        // Restored on every exit, Ctrl-C included.
        yield* Effect.acquireRelease(
          Effect.sync(() => write(Screen.hideCursor)),
          () => Effect.sync(() => write(Screen.showCursor))
        )
        return yield* Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => Effect.sync(() => screen.draw(dashboard(stats, view, now)))),
          Effect.repeat(Schedule.spaced("100 millis")),
          Effect.forkScoped
        )
      })
      : output === "lines"
      ? yield* print(lineHeader(stats)).pipe(
        Effect.zipRight(
          Effect.gen(function*() {
            for (let second = 1;; second++) {
              const now = yield* Clock.currentTimeMillis
              yield* Effect.sleep(millis(stats.startedAt + second * 1_000 - now))
              yield* row(stats.startedAt + second * 1_000)
            }
          })
        ),
        Effect.forkScoped
      )
      : undefined

    // The script: each segment starts at its planned time from the start (no drift), flipping the outage switch.
    const driver = Effect.forEach(timing.segments, (planned) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        outage.set(planned.index)
        stats.segmentStarts[planned.index] = now
        if (output === "lines") yield* print([segmentLine(stats, view, planned.index, now)])
        yield* Effect.sleep(millis(stats.startedAt + planned.endMs - now))
      }), { discard: true })

    // The traffic: a batch every interval, each request in its own fiber so a slow one never delays the next batch.
    const requests = yield* FiberSet.make<void, never>()
    const request = (n: number) =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(client.complete({
          messages: [{ role: "system", content: "Answer in one sentence." }, { role: "user", content: questionAt(n) }],
          maxTokens: 60
        }))
        const endedAt = yield* Clock.currentTimeMillis
        const common = { startedAt, endedAt, segment: stats.segmentAt(endedAt), latencyMs: endedAt - startedAt }
        stats.requests.push(Exit.match(exit, {
          onSuccess: (result) => ({
            ...common,
            servedBy: result.servedBy,
            tier: result.tier,
            costUsd: result.costUsd,
            skipped: result.attempts.filter((attempt) => attempt.error === "CircuitOpen").map((attempt) =>
              attempt.label
            ),
            paused: result.attempts.filter((attempt) => attempt.error === "RateLimitExceeded")
              .map((attempt) => attempt.label),
            content: result.content
          }),
          onFailure: (cause) => ({
            ...common,
            servedBy: undefined,
            tier: 0,
            costUsd: 0,
            skipped: [],
            paused: [],
            error: Option.match(Cause.failureOption(cause), {
              onNone: () => Cause.pretty(cause).split("\n")[0] ?? "defect",
              onSome: (error) => error.message
            })
          })
        }))
      })
    const launch = Effect.suspend(() =>
      Effect.forEach(
        Array.from({ length: settings.concurrency }, () => stats.launched++),
        (n) => FiberSet.run(requests, request(n)),
        { discard: true }
      )
    )
    yield* Effect.raceFirst(driver, Effect.asVoid(Effect.repeat(launch, Schedule.fixed(millis(settings.intervalMs)))))

    // Let the requests still in flight finish (bounded: each is bounded by its tiers' timeouts and retries).
    const drain = Duration.sum(Duration.times(backend.localTimeout, 3), Duration.times(backend.cloudTimeout, 6))
    yield* FiberSet.awaitEmpty(requests).pipe(Effect.timeoutOption(drain))
    const finishedAt = yield* Clock.currentTimeMillis
    stats.finishedAt = finishedAt
    if (display !== undefined) yield* Fiber.interrupt(display)
    if (output === "dashboard") yield* Effect.sync(() => screen.draw(dashboard(stats, view, finishedAt)))
    // The last, partial second, unless the drain was instant.
    if (output === "lines" && finishedAt - (yield* Ref.get(lastRow)) >= 100) yield* row(finishedAt)

    const summary = summarize(stats, backend.mode)
    yield* print(summaryLines(summary, stats, view, output !== "dashboard"))
    return summary
  })

/**
 * Runs the demo and returns its summary. Fails only when it cannot start (`DemoSetupError`: bad options, or
 * `--live` without keys); a run in which the chain misbehaved returns a summary with `ok: false`.
 */
export const run = (options: RunOptions = {}): Effect.Effect<Summary, DemoSetupError> =>
  Effect.gen(function*() {
    const settings = yield* settingsOf(options)
    const timing = plan(settings.durationMs)
    const outage = new OutageSwitch(timing)
    const backendLayer = settings.live ? live(outage) : emulator(outage)
    const recorderLayer = Layer.effect(
      Recorder,
      Effect.map(DemoBackend, (backend) =>
        new DemoStats(timing, [backend.openAi.key, backend.anthropic.key, backend.local.key]))
    )
    const resilientLayer = Layer.unwrapEffect(
      Effect.gen(function*() {
        const backend = yield* DemoBackend
        const stats = yield* Recorder
        // Invalid options here would be a bug in this file, not something a user can fix.
        return Layer.orDie(Resilient.layer(chainConfig(backend, timing, stats, outage)))
      })
    )
    const layer = resilientLayer.pipe(Layer.provideMerge(recorderLayer), Layer.provideMerge(backendLayer))
    return yield* Effect.scoped(program(settings, timing, outage, options)).pipe(Effect.provide(layer))
  }).pipe(
    // The library logs every request and every retry; here the dashboard tells the same story.
    Logger.withMinimumLogLevel(LogLevel.None)
  )

const setExitCode = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const options = {
  live: Options.boolean("live").pipe(
    Options.withDescription(
      "Send the traffic to the real OpenAI and Anthropic APIs instead of the embedded emulator. Needs "
        + "OPENAI_API_KEY and ANTHROPIC_API_KEY (read as redacted config, never printed); optional OPENAI_MODEL, "
        + "ANTHROPIC_MODEL, and LOCAL_LLM_BASE_URL + LOCAL_LLM_MODEL for a real local model (else the emulator "
        + "plays it). The outage is then injected client-side, inside the SDKs' fetch, so no real provider is "
        + "hammered; the load defaults to 1 request per second for 60 s (a few cents at most)."
    )
  ),
  duration: Options.integer("duration").pipe(
    Options.withDescription("Length of the run in seconds; every phase scales with it (default 20, live 60)"),
    Options.optional
  ),
  interval: Options.integer("interval").pipe(
    Options.withDescription("Milliseconds between two batches of requests (default 80, live 1000)"),
    Options.optional
  ),
  concurrency: Options.integer("concurrency").pipe(
    Options.withDescription("Requests per batch (default 3, live 1)"),
    Options.optional
  ),
  plain: Options.boolean("plain").pipe(
    Options.withDescription("A line per second instead of the live dashboard (the default when stdout is not a TTY)")
  )
}

export const command = Command.make("demo", options, (config) =>
  Effect.gen(function*() {
    const summary = yield* run({
      live: config.live,
      durationMs: Option.getOrUndefined(Option.map(config.duration, (seconds) => seconds * 1_000)),
      intervalMs: Option.getOrUndefined(config.interval),
      concurrency: Option.getOrUndefined(config.concurrency),
      output: process.stdout.isTTY === true && !config.plain ? "dashboard" : "lines"
    })
    // Non-zero when the chain did not do its job: the demo doubles as an end-to-end check in CI.
    if (!summary.ok) yield* setExitCode(1)
  }).pipe(
    Effect.catchTag("DemoSetupError", (error) => Effect.zipRight(Console.error(error.message), setExitCode(2)))
  )).pipe(
    Command.withDescription(
      "Drive steady traffic through a resilient OpenAI → Anthropic → local chain while a scripted outage hits "
        + "OpenAI (429 storm, 503s, recovery), and show breakers, fallbacks, latency and cost live. No keys, no "
        + "network: the real SDKs talk to an embedded emulator on 127.0.0.1 (see --live)."
    )
  )
