/**
 * effect-llm-resilience next to cockatiel and opossum, in one process, around the same no-op async call:
 *
 * 1. Success-path cost per call: two floors (a bare promise call, `Effect.promise` in a running fiber), each
 *    building block, the composed `Resilient` client, cockatiel policies and opossum — median ns per call, the time
 *    added over the floor, and ratios to the floor and to the cockatiel counterpart.
 * 2. Throughput of 1,000 concurrent callers (fibers for the library, promises for cockatiel and opossum): calls/s.
 * 3. Heap bytes per breaker, 10,000 breakers, measured with `gc()` and `heapUsed` deltas.
 *
 *   npm run bench                             # about 75 s at load 3–4 on 2 vCPUs, 2 minutes at load 9
 *   npm run bench -- --quick                  # about 60 s: shorter warm-up, fewer and shorter rounds
 *   npm run bench -- --json                   # the results as JSON on stdout (progress goes to stderr either way)
 *   npm run bench -- --sections=overhead      # any of overhead, throughput, memory
 *   npm run bench -- --only=resilient,o-off   # these overhead/throughput rows (ids as in --json), their floors and peers
 *
 * The library's calls run in a loop inside one running fiber (one `runPromise` per round, not per call); the
 * `runPromise`-per-call rows show what a caller in promise land pays on top. Every contender is warmed up first (the
 * composed client needs thousands of calls before V8 has optimised it); then rounds of all contenders are
 * interleaved (round 1 of every contender, then round 2, …, in a rotating order), so a noisy neighbour slows every
 * contender alike. Times are CPU time (user + system) unless a column says wall; ratios are medians of per-round
 * ratios. No node option is needed: `gc` is exposed at run time. See docs/benchmarks.md for what each row measures
 * and how to read it.
 */
import * as cockatiel from "cockatiel"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { readFileSync } from "node:fs"
import * as os from "node:os"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import OpossumBreaker from "opossum"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { honouringDeadlines } from "../src/internal/providerTimeouts.js"
import { promiseWithin } from "../src/internal/timeout.js"
import type { CompletionResult } from "../src/Llm.js"
import type { Service as LlmProvider } from "../src/LlmProvider.js"
import * as Observability from "../src/Observability.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Resilient from "../src/Resilient.js"
import * as Retry from "../src/Retry.js"
import { smallestQueue } from "./fiberQueue.js"
import { call, effectCall, KEY, provider, REQUEST, TARGET } from "./noop.js"

// The benchmarked clients live as long as the process: their scope is never closed.
const clients = Effect.runSync(Scope.make())

// --- settings ------------------------------------------------------------------------------------------------------

const args = new Set(process.argv.slice(2))
const quick = args.has("--quick")
const asJson = args.has("--json")
/** `--only=resilient,c-stack`: these contenders (by id, see `--json`) and the floors and counterparts they need. */
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length).split(",")
const sections = new Set(
  process.argv.find((arg) => arg.startsWith("--sections="))?.slice("--sections=".length).split(",")
    ?? ["overhead", "throughput", "memory"]
)

const settings = quick
  ? {
    warmUpMs: 150,
    maxWarmUpMs: 1_500,
    sampleMs: 25,
    rounds: 7,
    throughputWindowMs: 150,
    minWindowCycles: 1,
    throughputRounds: 3,
    memoryRepeats: 1
  }
  : {
    warmUpMs: 300,
    maxWarmUpMs: 3_000,
    sampleMs: 40,
    rounds: 11,
    throughputWindowMs: 300,
    minWindowCycles: 1,
    throughputRounds: 3,
    memoryRepeats: 3
  }
const WARM_UP_CALLS = 6_000
const CALLERS = 1_000
// Issue 18's narrow case: 1,000 callers through 100 permits.
const BULKHEAD = 100
const BREAKERS = 10_000

const progress = (line: string): void => {
  process.stderr.write(`${line}\n`)
}

// --- V8 flags, set at run time so that `npm run bench` needs no node option ---------------------------------------

// By default V8 drops the bytecode of functions that did not run during the last few major GCs. Forced GCs (the
// memory section) would then free code, not breakers, and make heap deltas negative; and a contender's code would be
// recompiled between its rounds. Keep bytecode for the whole run.
v8.setFlagsFromString("--no-flush-bytecode")

// `gc` without --expose-gc: the flag can still be set at run time, and `gc` read from a fresh context.
const gc: () => void = (() => {
  const exposed = globalThis.gc
  if (exposed !== undefined) return () => void exposed()
  v8.setFlagsFromString("--expose-gc")
  const candidate: unknown = vm.runInNewContext("gc")
  if (typeof candidate !== "function") {
    throw new Error("no gc(): run with node --expose-gc (NODE_OPTIONS=--expose-gc npm run bench)")
  }
  return () => void Reflect.apply(candidate, undefined, [])
})()

// --- statistics ----------------------------------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1
    ? sorted[mid] ?? Number.NaN
    : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2
}

/** The median of the per-round ratios `a[i] / b[i]`: both were measured in the same round, under the same noise. */
const medianRatio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number =>
  median(a.map((value, i) => value / (b[i] ?? Number.NaN)))

/** Wall-clock and CPU time (user + system, all threads of the process) of one run, in ms. */
interface Sample {
  readonly wall: number
  readonly cpu: number
}

const sample = async (run: () => Promise<void>): Promise<Sample> => {
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  await run()
  const wall = performance.now() - start
  const cpu = process.cpuUsage(cpuBefore)
  return { wall, cpu: (cpu.user + cpu.system) / 1000 }
}

/**
 * Warms `run` up, then returns the work size that makes one round take about `targetMs` of wall time. Warm-up lasts
 * at least `settings.warmUpMs` and `WARM_UP_CALLS` calls (the composed client's code needs thousands of calls before
 * V8 has optimised it), at most `settings.maxWarmUpMs`.
 */
const warmUpAndCalibrate = async (run: (size: number) => Promise<void>, targetMs: number): Promise<number> => {
  let size = 16
  let spent = 0
  let calls = 0
  let perCall = Number.NaN
  while (
    Number.isNaN(perCall)
    || ((spent < settings.warmUpMs || calls < WARM_UP_CALLS) && spent < settings.maxWarmUpMs)
  ) {
    const { wall } = await sample(() => run(size))
    spent += wall
    calls += size
    if (wall >= targetMs / 4) perCall = wall / size
    size = Number.isNaN(perCall)
      ? size * (wall < targetMs / 64 ? 8 : 2)
      : Math.max(1, Math.round(targetMs / perCall))
  }
  return size
}

/** Rounds of every contender interleaved, in a rotating order: a burst of noise hits every contender alike. */
const interleave = async <C extends { readonly id: string }>(
  contenders: ReadonlyArray<C>,
  rounds: number,
  measure: (contender: C) => Promise<Sample>
): Promise<Map<string, Array<Sample>>> => {
  const samples = new Map(contenders.map((c) => [c.id, new Array<Sample>()]))
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(round + k) % contenders.length]
      if (contender !== undefined) samples.get(contender.id)?.push(await measure(contender))
    }
    progress(`  round ${round + 1}/${rounds}`)
  }
  return samples
}

// --- the same no-op call for everyone --------------------------------------------------------------------------------

/**
 * The same no-op call from a provider that takes a tier's per-attempt deadline into its call, as the built-in OpenAI
 * and Anthropic providers do with their SDK request (no fiber per call; src/internal/providerTimeouts.ts).
 */
const honouringProvider: LlmProvider = {
  ...provider,
  complete: honouringDeadlines((_request, attempt) =>
    attempt === undefined
      ? effectCall()
      : promiseWithin(call, (error) => Effect.die(error), attempt.duration, attempt.onTimeout)
  )
}

// --- observability variants --------------------------------------------------------------------------------------

type Around = (self: Effect.Effect<void, unknown>) => Effect.Effect<void, unknown>

const identity: Around = (self) => self
/** Resilient always updates its metrics and emits one log event per request; below the minimum level it is dropped. */
const logOff: Around = (self) => Logger.withMinimumLogLevel(self, LogLevel.None)
let logBytes = 0
const logJson: Around = (self) =>
  Effect.provide(
    self,
    Logger.replace(Logger.defaultLogger, Observability.makeRequestLogger((line) => void (logBytes += line.length)))
  )
// A tracer that is not the built-in one makes Resilient open its spans; it delegates to the built-in spans, so
// nothing is exported and only the span bookkeeping is measured.
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)
const otherTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind, options) =>
    nativeTracer.span(name, parent, context, links, startTime, kind, options),
  context: (f, fiber) => nativeTracer.context(f, fiber)
})
const spansOn: Around = (self) => logOff(Effect.withTracer(self, otherTracer))

/** `calls` calls inside one running fiber: one `runPromise` per round. */
const inFiber = (body: () => Effect.Effect<unknown, unknown>, around: Around = identity) => (calls: number) =>
  Effect.runPromise(around(Effect.gen(function*() {
    for (let i = 0; i < calls; i++) yield* body()
  })))

const inPromises = (body: () => Promise<unknown>) => async (calls: number): Promise<void> => {
  for (let i = 0; i < calls; i++) await body()
}

/**
 * One throughput round: callers make calls until the window closes. The window opens once `CALLERS` calls have
 * completed (every caller is running: forking 1,000 fibers is left out) and closes `calls` completions later; the
 * calls still in flight then finish outside it. Only the two crossings read the clock.
 */
class Window {
  completed = 0
  stopped = false
  startedAt = Number.NaN
  endedAt = Number.NaN
  private startCpu: NodeJS.CpuUsage | undefined = undefined
  private cpuMs = Number.NaN
  constructor(readonly calls: number) {}
  tick(): void {
    const count = ++this.completed
    if (count === CALLERS) {
      this.startCpu = process.cpuUsage()
      this.startedAt = performance.now()
    } else if (count === CALLERS + this.calls) {
      this.endedAt = performance.now()
      const cpu = process.cpuUsage(this.startCpu)
      this.cpuMs = (cpu.user + cpu.system) / 1000
      this.stopped = true
    }
  }
  /** The window's wall and CPU time in ms. */
  get sample(): Sample {
    return { wall: this.endedAt - this.startedAt, cpu: this.cpuMs }
  }
}

/** `CALLERS` concurrent fibers making calls back to back until the window closes. */
const concurrentFibers = (body: () => Effect.Effect<unknown, unknown>, around: Around = identity) => {
  const callers = Array.from({ length: CALLERS }, (_, i) => i)
  return (window: Window) =>
    Effect.runPromise(around(Effect.forEach(
      callers,
      () =>
        Effect.gen(function*() {
          while (!window.stopped) {
            yield* body()
            window.tick()
          }
        }),
      { concurrency: "unbounded", discard: true }
    )))
}

/** `CALLERS` concurrent async functions making calls back to back until the window closes. */
const concurrentPromises = (body: () => Promise<unknown>) => async (window: Window): Promise<void> => {
  const caller = async () => {
    while (!window.stopped) {
      await body()
      window.tick()
    }
  }
  await Promise.all(Array.from({ length: CALLERS }, caller))
}

// --- cockatiel and opossum -----------------------------------------------------------------------------------------

// The closest cockatiel equivalents of the library's defaults: 3 attempts with exponential backoff, a count-based
// window of 20 calls opening at 50 % failures (the library adds 5 consecutive failures), a bulkhead with a queue.
const cockatielRetry = () =>
  cockatiel.retry(cockatiel.handleAll, { maxAttempts: 3, backoff: new cockatiel.ExponentialBackoff() })
const cockatielBreaker = (
  breaker: cockatiel.IBreaker = new cockatiel.CountBreaker({ threshold: 0.5, size: 20, minimumNumberOfCalls: 10 })
) => cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 60_000, breaker })
const cockatielTimeout = () => cockatiel.timeout(30_000, cockatiel.TimeoutStrategy.Aggressive)

const opossumBreakers: Array<OpossumBreaker> = []
const opossum = (options: OpossumBreaker.Options): OpossumBreaker<[], CompletionResult> => {
  const breaker = new OpossumBreaker(call, options)
  opossumBreakers.push(breaker)
  return breaker
}

// --- 1. overhead per call ------------------------------------------------------------------------------------------

interface Contender<In> {
  readonly id: string
  readonly label: string
  readonly group: string
  /** The floor the row is compared to. */
  readonly floor: string
  /** The cockatiel counterpart, if there is one. */
  readonly peer?: string | undefined
  /** A short name, for the rows that name this one as their counterpart. */
  readonly short?: string | undefined
  readonly run: (input: In) => Promise<void>
}

const selected = <C extends { readonly id: string; readonly floor: string; readonly peer?: string | undefined }>(
  all: ReadonlyArray<C>
): ReadonlyArray<C> => {
  if (only === undefined) return all
  const wanted = new Set(only)
  for (const c of all) {
    if (wanted.has(c.id)) {
      wanted.add(c.floor)
      if (c.peer !== undefined) wanted.add(c.peer)
    }
  }
  // Floors of floors (the Effect floor is compared to the promise floor).
  for (const c of all) if (wanted.has(c.id)) wanted.add(c.floor)
  return all.filter((c) => wanted.has(c.id))
}

interface OverheadRow {
  readonly id: string
  readonly group: string
  readonly label: string
  /** CPU time per call (user + system), the figure every ratio is computed from. */
  readonly nsPerCall: number
  readonly wallNsPerCall: number
  readonly addedNs: number
  readonly timesFloor: number
  readonly floor: string
  readonly timesCockatiel: number | undefined
  readonly cockatiel: string | undefined
  readonly short: string
  readonly callsPerRound: number
  readonly rounds: number
}

const overhead = async (): Promise<ReadonlyArray<OverheadRow>> => {
  const retrier = await Effect.runPromise(Retry.make())
  const breaker = await Effect.runPromise(CircuitBreaker.make({ key: KEY }))
  const registry = await Effect.runPromise(CircuitBreaker.makeRegistry())
  const bulkhead = await Effect.runPromise(RateLimit.make({ limits: { concurrency: CALLERS } }))
  const limiterFull = await Effect.runPromise(RateLimit.make({ limits: { concurrency: CALLERS, rpm: 1e9, tpm: 1e12 } }))
  const stackBreaker = await Effect.runPromise(CircuitBreaker.make({ key: KEY }))
  const stackLimiter = await Effect.runPromise(RateLimit.make({ limits: { concurrency: CALLERS } }))
  const client = await Effect.runPromise(
    Scope.extend(Resilient.make({ chain: [{ provider, limits: { concurrency: CALLERS } }] }), clients)
  )
  const clientTimeout = await Effect.runPromise(
    Scope.extend(
      Resilient.make({ chain: [{ provider, limits: { concurrency: CALLERS }, timeout: "30 seconds" }] }),
      clients
    )
  )
  const clientTimeoutInCall = await Effect.runPromise(
    Scope.extend(
      Resilient.make({
        chain: [{ provider: honouringProvider, limits: { concurrency: CALLERS }, timeout: "30 seconds" }]
      }),
      clients
    )
  )
  const app = ManagedRuntime.make(Logger.minimumLogLevel(LogLevel.None))
  const runtime = await app.runtime()
  const runFromPromise = Runtime.runPromise(runtime)

  const cRetry = cockatielRetry()
  const cBreaker = cockatielBreaker()
  const cBulkhead = cockatiel.bulkhead(CALLERS, CALLERS)
  const cStack = cockatiel.wrap(cockatielRetry(), cockatielBreaker(), cockatiel.bulkhead(CALLERS, CALLERS))
  const cStackTimeout = cockatiel.wrap(
    cockatielRetry(),
    cockatielBreaker(),
    cockatiel.bulkhead(CALLERS, CALLERS),
    cockatielTimeout()
  )
  const cBreakerTimeout = cockatiel.wrap(cockatielBreaker(), cockatielTimeout())
  const oOff = opossum({ timeout: false })
  const oOn = opossum({ timeout: 10_000 })

  const contenders: ReadonlyArray<Contender<number>> = selected([
    {
      id: "promise",
      group: "floor",
      label: "bare promise call: await call()",
      floor: "promise",
      run: inPromises(call)
    },
    {
      id: "effect",
      group: "floor",
      label: "Effect.promise(call) in a running fiber",
      floor: "promise",
      run: inFiber(effectCall)
    },
    {
      id: "runPromise",
      group: "floor",
      label: "Effect.runPromise(Effect.promise(call)) per call",
      floor: "promise",
      run: inPromises(() => Effect.runPromise(effectCall()))
    },
    {
      id: "retry",
      group: "library, in a running fiber",
      label: "Retry: retrier.retry(…) (defaults, budget on)",
      floor: "effect",
      peer: "c-retry",
      run: inFiber(() => retrier.retry(effectCall(), TARGET))
    },
    {
      id: "breaker",
      group: "library, in a running fiber",
      label: "CircuitBreaker.make: breaker.execute(…)",
      floor: "effect",
      peer: "c-breaker",
      run: inFiber(() => breaker.execute(effectCall()))
    },
    {
      id: "registry",
      group: "library, in a running fiber",
      label: "CircuitBreaker registry: registry.execute(key, …)",
      floor: "effect",
      peer: "c-breaker",
      run: inFiber(() => registry.execute(KEY, effectCall()))
    },
    {
      id: "limiter",
      group: "library, in a running fiber",
      label: "RateLimit: limiter.limit(key)(…), concurrency",
      floor: "effect",
      peer: "c-bulkhead",
      run: inFiber(() => bulkhead.limit(KEY)(effectCall()))
    },
    {
      id: "limiter-full",
      group: "library, in a running fiber",
      label: "RateLimit: concurrency + rpm + tpm (100 tokens)",
      floor: "effect",
      peer: "c-bulkhead",
      run: inFiber(() => limiterFull.limit(KEY, { tokens: 100 })(effectCall()))
    },
    {
      id: "stack",
      group: "library, in a running fiber",
      label: "Retry ∘ CircuitBreaker ∘ RateLimit, composed by hand",
      floor: "effect",
      peer: "c-stack",
      run: inFiber(() => retrier.retry(stackBreaker.execute(stackLimiter.limit(KEY)(effectCall())), TARGET))
    },
    {
      id: "resilient",
      group: "library, in a running fiber",
      label: "Resilient.complete, 1 tier (metrics; log event filtered)",
      floor: "effect",
      peer: "c-stack",
      run: inFiber(() => client.complete(REQUEST), logOff)
    },
    {
      id: "resilient-log",
      group: "library, in a running fiber",
      label: "Resilient.complete + JSON request log (no-op writer)",
      floor: "effect",
      peer: "c-stack",
      run: inFiber(() => client.complete(REQUEST), logJson)
    },
    {
      id: "resilient-spans",
      group: "library, in a running fiber",
      label: "Resilient.complete + spans (non-built-in tracer, no export)",
      floor: "effect",
      peer: "c-stack",
      run: inFiber(() => client.complete(REQUEST), spansOn)
    },
    {
      id: "resilient-timeout",
      group: "library, in a running fiber",
      label: "Resilient.complete + per-attempt timeout (30 s)",
      floor: "effect",
      peer: "c-stack-timeout",
      run: inFiber(() => clientTimeout.complete(REQUEST), logOff)
    },
    {
      id: "resilient-timeout-in-call",
      group: "library, in a running fiber",
      label: "… timeout taken into the provider's call (as OpenAi, Anthropic)",
      floor: "effect",
      peer: "c-stack-timeout",
      run: inFiber(() => clientTimeoutInCall.complete(REQUEST), logOff)
    },
    {
      id: "resilient-runPromise",
      group: "library, from promise land",
      label: "Runtime.runPromise(Resilient.complete) per call",
      floor: "promise",
      peer: "c-stack",
      run: inPromises(() => runFromPromise(client.complete(REQUEST)))
    },
    {
      id: "c-retry",
      group: "cockatiel 3",
      short: "retry",
      label: "retry(handleAll, 3 attempts, exponential)",
      floor: "promise",
      run: inPromises(() => cRetry.execute(call))
    },
    {
      id: "c-breaker",
      group: "cockatiel 3",
      short: "circuitBreaker",
      label: "circuitBreaker(handleAll, CountBreaker 20)",
      floor: "promise",
      run: inPromises(() => cBreaker.execute(call))
    },
    {
      id: "c-bulkhead",
      group: "cockatiel 3",
      short: "bulkhead",
      label: "bulkhead(1000, 1000)",
      floor: "promise",
      run: inPromises(() => cBulkhead.execute(call))
    },
    {
      id: "c-stack",
      group: "cockatiel 3",
      short: "wrap(retry, breaker, bulkhead)",
      label: "wrap(retry, circuitBreaker, bulkhead)",
      floor: "promise",
      run: inPromises(() => cStack.execute(call))
    },
    {
      id: "c-stack-timeout",
      group: "cockatiel 3",
      short: "wrap(retry, breaker, bulkhead, timeout)",
      label: "wrap(retry, circuitBreaker, bulkhead, timeout)",
      floor: "promise",
      run: inPromises(() => cStackTimeout.execute(call))
    },
    {
      id: "c-breaker-timeout",
      group: "cockatiel 3",
      short: "wrap(breaker, timeout)",
      label: "wrap(circuitBreaker, timeout)",
      floor: "promise",
      run: inPromises(() => cBreakerTimeout.execute(call))
    },
    {
      id: "o-off",
      group: "opossum 8",
      label: "CircuitBreaker.fire(), timeout: false",
      floor: "promise",
      peer: "c-breaker",
      run: inPromises(() => oOff.fire())
    },
    {
      id: "o-on",
      group: "opossum 8",
      label: "CircuitBreaker.fire(), timeout: 10 s (its default)",
      floor: "promise",
      peer: "c-breaker-timeout",
      run: inPromises(() => oOn.fire())
    }
  ])

  progress(`\n1. Overhead per call: warming up and calibrating ${contenders.length} contenders`)
  const sizes = new Map<string, number>()
  for (const contender of contenders) {
    sizes.set(contender.id, await warmUpAndCalibrate(contender.run, settings.sampleMs))
  }
  const samples = await interleave(contenders, settings.rounds, (c) => {
    const size = sizes.get(c.id) ?? 1
    return sample(() => c.run(size))
  })
  await app.dispose()

  const perCall = (id: string, of: keyof Sample = "cpu"): Array<number> => {
    const size = sizes.get(id) ?? 1
    return (samples.get(id) ?? []).map((s) => (s[of] * 1e6) / size)
  }
  return contenders.map((c): OverheadRow => {
    const own = perCall(c.id)
    const floor = perCall(c.floor)
    return {
      id: c.id,
      group: c.group,
      label: c.label,
      nsPerCall: median(own),
      wallNsPerCall: median(perCall(c.id, "wall")),
      addedNs: median(own.map((ns, i) => ns - (floor[i] ?? Number.NaN))),
      timesFloor: medianRatio(own, floor),
      floor: c.floor,
      timesCockatiel: c.peer === undefined ? undefined : medianRatio(own, perCall(c.peer)),
      cockatiel: c.peer,
      short: c.short ?? c.label,
      callsPerRound: sizes.get(c.id) ?? 0,
      rounds: settings.rounds
    }
  })
}

// --- 2. throughput -------------------------------------------------------------------------------------------------

interface ThroughputRow {
  readonly id: string
  readonly group: string
  readonly label: string
  /** Wall-clock: calls completed in the window per second of the window. */
  readonly callsPerSecond: number
  /** CPU time (user + system) per call in the window. */
  readonly cpuNsPerCall: number
  readonly timesFloor: number
  readonly floor: string
  readonly timesCockatiel: number | undefined
  readonly cockatiel: string | undefined
  readonly callsPerWindow: number
  readonly rounds: number
}

const throughput = async (): Promise<ReadonlyArray<ThroughputRow>> => {
  const client = await Effect.runPromise(
    Scope.extend(Resilient.make({ chain: [{ provider, limits: { concurrency: CALLERS } }] }), clients)
  )
  const narrow = await Effect.runPromise(
    Scope.extend(Resilient.make({ chain: [{ provider, limits: { concurrency: BULKHEAD } }] }), clients)
  )
  const clientTimeout = await Effect.runPromise(
    Scope.extend(
      Resilient.make({ chain: [{ provider, limits: { concurrency: CALLERS }, timeout: "30 seconds" }] }),
      clients
    )
  )
  const clientTimeoutInCall = await Effect.runPromise(
    Scope.extend(
      Resilient.make({
        chain: [{ provider: honouringProvider, limits: { concurrency: CALLERS }, timeout: "30 seconds" }]
      }),
      clients
    )
  )
  const retrier = await Effect.runPromise(Retry.make())
  const breaker = await Effect.runPromise(CircuitBreaker.make({ key: KEY }))
  const limiter = await Effect.runPromise(RateLimit.make({ limits: { concurrency: CALLERS } }))
  const narrowLimiter = await Effect.runPromise(RateLimit.make({ limits: { concurrency: BULKHEAD } }))
  const narrowQueue = smallestQueue(BULKHEAD)
  const cNarrowBulkhead = cockatiel.bulkhead(BULKHEAD, CALLERS)
  const cStack = cockatiel.wrap(cockatielRetry(), cockatielBreaker(), cockatiel.bulkhead(CALLERS, CALLERS))
  const cNarrow = cockatiel.wrap(cockatielRetry(), cockatielBreaker(), cockatiel.bulkhead(BULKHEAD, CALLERS))
  const cStackTimeout = cockatiel.wrap(
    cockatielRetry(),
    cockatielBreaker(),
    cockatiel.bulkhead(CALLERS, CALLERS),
    cockatielTimeout()
  )
  const oOff = opossum({ timeout: false })
  const oOn = opossum({ timeout: 10_000 })

  const contenders: ReadonlyArray<Contender<Window>> = selected([
    {
      id: "promise",
      group: "floor",
      label: `${CALLERS} async loops: await call()`,
      floor: "promise",
      run: concurrentPromises(call)
    },
    {
      id: "effect",
      group: "floor",
      label: `${CALLERS} fibers: Effect.promise(call)`,
      floor: "promise",
      run: concurrentFibers(effectCall)
    },
    {
      // The floor of a limiter whose waiters are fibers (bench/fiberQueue.ts): the `RateLimit` row below is compared
      // to it.
      id: "fiber-queue",
      group: "floor",
      label: `smallest fiber queue, ${BULKHEAD} permits (not interrupt-safe)`,
      floor: "effect",
      peer: "c-bulkhead-narrow",
      run: concurrentFibers(() => narrowQueue(effectCall()))
    },
    {
      id: "stack",
      group: "library",
      label: "Retry ∘ CircuitBreaker ∘ RateLimit, composed by hand",
      floor: "effect",
      peer: "c-stack",
      run: concurrentFibers(() => retrier.retry(breaker.execute(limiter.limit(KEY)(effectCall())), TARGET))
    },
    {
      id: "resilient",
      group: "library",
      label: "Resilient.complete, 1 tier, concurrency 1000",
      floor: "effect",
      peer: "c-stack",
      run: concurrentFibers(() => client.complete(REQUEST), logOff)
    },
    {
      id: "resilient-timeout",
      group: "library",
      label: "Resilient.complete + per-attempt timeout (30 s)",
      floor: "effect",
      peer: "c-stack-timeout",
      run: concurrentFibers(() => clientTimeout.complete(REQUEST), logOff)
    },
    {
      id: "resilient-timeout-in-call",
      group: "library",
      label: "… timeout taken into the provider's call",
      floor: "effect",
      peer: "c-stack-timeout",
      run: concurrentFibers(() => clientTimeoutInCall.complete(REQUEST), logOff)
    },
    {
      id: "resilient-narrow",
      group: "library",
      label: `Resilient.complete, concurrency ${BULKHEAD} (${CALLERS - BULKHEAD} queued)`,
      floor: "effect",
      peer: "c-narrow",
      run: concurrentFibers(() => narrow.complete(REQUEST), logOff)
    },
    {
      id: "limiter-narrow",
      group: "library",
      label: `RateLimit alone, concurrency ${BULKHEAD} (${CALLERS - BULKHEAD} queued)`,
      floor: "fiber-queue",
      peer: "c-bulkhead-narrow",
      run: concurrentFibers(() => narrowLimiter.limit(KEY)(effectCall()))
    },
    {
      id: "c-stack",
      group: "cockatiel 3",
      label: "wrap(retry, circuitBreaker, bulkhead(1000))",
      floor: "promise",
      run: concurrentPromises(() => cStack.execute(call))
    },
    {
      id: "c-stack-timeout",
      group: "cockatiel 3",
      label: "wrap(retry, circuitBreaker, bulkhead(1000), timeout)",
      floor: "promise",
      run: concurrentPromises(() => cStackTimeout.execute(call))
    },
    {
      id: "c-narrow",
      group: "cockatiel 3",
      label: `wrap(retry, circuitBreaker, bulkhead(${BULKHEAD}, queue))`,
      floor: "promise",
      run: concurrentPromises(() => cNarrow.execute(call))
    },
    {
      id: "c-bulkhead-narrow",
      group: "cockatiel 3",
      label: `bulkhead(${BULKHEAD}, queue) alone`,
      floor: "promise",
      run: concurrentPromises(() => cNarrowBulkhead.execute(call))
    },
    {
      id: "o-off",
      group: "opossum 8",
      label: "fire(), timeout: false",
      floor: "promise",
      run: concurrentPromises(() => oOff.fire())
    },
    {
      id: "o-on",
      group: "opossum 8",
      label: "fire(), timeout: 10 s",
      floor: "promise",
      run: concurrentPromises(() => oOn.fire())
    }
  ])

  progress(`\n2. Throughput, ${CALLERS} concurrent callers: warming up ${contenders.length} contenders`)
  // Warm-up, and the window size (calls) that lasts about `throughputWindowMs`; at least `minWindowCycles` calls per
  // caller.
  const windows = new Map<string, number>()
  const warmUpStart = performance.now()
  for (const contender of contenders) {
    let spent = 0
    let calls = 0
    let size = CALLERS
    // After the overhead section the code is optimised already: this only settles the 1,000-caller shape.
    const minimumCalls = sections.has("overhead") ? CALLERS : WARM_UP_CALLS
    while (spent < settings.warmUpMs || (calls < minimumCalls && spent < settings.maxWarmUpMs / 2)) {
      const window = new Window(size)
      const start = performance.now()
      await contender.run(window)
      spent += performance.now() - start
      calls += window.completed
      const perSecond = window.calls / (window.sample.wall / 1000)
      size = Math.max(settings.minWindowCycles * CALLERS, Math.round((perSecond * settings.throughputWindowMs) / 1000))
    }
    windows.set(contender.id, size)
  }
  progress(`  warm-up: ${((performance.now() - warmUpStart) / 1000).toFixed(1)} s`)
  const results = await interleave(contenders, settings.throughputRounds, async (c) => {
    const window = new Window(windows.get(c.id) ?? CALLERS)
    await c.run(window)
    return window.sample
  })

  const callsPerSecond = (id: string): Array<number> => {
    const calls = windows.get(id) ?? Number.NaN
    return (results.get(id) ?? []).map((r) => calls / (r.wall / 1000))
  }
  return contenders.map((c): ThroughputRow => {
    const own = callsPerSecond(c.id)
    return {
      id: c.id,
      group: c.group,
      label: c.label,
      callsPerSecond: median(own),
      cpuNsPerCall: median((results.get(c.id) ?? []).map((r) => (r.cpu * 1e6) / (windows.get(c.id) ?? Number.NaN))),
      // Ratios of time per call, like the overhead table: above 1 is slower.
      timesFloor: medianRatio(callsPerSecond(c.floor), own),
      floor: c.floor,
      timesCockatiel: c.peer === undefined ? undefined : medianRatio(callsPerSecond(c.peer), own),
      cockatiel: c.peer,
      callsPerWindow: windows.get(c.id) ?? 0,
      rounds: settings.throughputRounds
    }
  })
}

// --- 3. memory -----------------------------------------------------------------------------------------------------

interface MemoryRow {
  readonly id: string
  readonly group: string
  readonly label: string
  readonly bytesPerBreaker: number
  readonly samples: ReadonlyArray<number>
  readonly timesCockatiel: number | undefined
  readonly cockatiel: string | undefined
  readonly repeats: number
}

interface MemoryCase {
  readonly id: string
  readonly group: string
  readonly label: string
  readonly peer?: string | undefined
  /** Builds `BREAKERS` breakers (kept in a `Map` by key, as an application would) and returns what holds them. */
  readonly build: () => Promise<unknown>
  readonly dispose?: ((built: unknown) => void) | undefined
}

// Each in its own function: a value held in a local of the caller's (async) frame could outlive its iteration and
// still be reachable when the next baseline is taken.
const buildAndDrop = async (memoryCase: MemoryCase): Promise<void> => {
  const built = await memoryCase.build()
  memoryCase.dispose?.(built)
}

/**
 * Full GCs with event-loop turns between them: some memory (weakly held scheduler state of finished fibers, timers,
 * finalization callbacks) is released only after a turn, and would otherwise be freed in the middle of a measurement.
 */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  gc()
}

/** Heap bytes per breaker that `build` adds, with everything from earlier cases collected first. */
const heapDelta = async (memoryCase: MemoryCase): Promise<number> => {
  await settle()
  const before = process.memoryUsage().heapUsed
  const built = await memoryCase.build()
  await settle()
  const after = process.memoryUsage().heapUsed
  memoryCase.dispose?.(built)
  return (after - before) / BREAKERS
}

const memory = async (): Promise<ReadonlyArray<MemoryRow>> => {
  // Keys exist before the baseline: an application holds its `provider:model:tenant` strings anyway.
  const keys = Array.from({ length: BREAKERS }, (_, i) => `provider-${i % 5}:model-${i % 7}:tenant-${i}`)
  const once = async <B>(make: () => B, use: (breaker: B) => Promise<unknown>): Promise<Map<string, B>> => {
    const map = new Map<string, B>()
    for (const key of keys) {
      const breaker = make()
      await use(breaker)
      map.set(key, breaker)
    }
    return map
  }
  const never = async <B>(make: () => B): Promise<Map<string, B>> => new Map(keys.map((key) => [key, make()]))
  const shutdown = (built: unknown): void => {
    if (built instanceof Map) {
      for (const breaker of built.values()) if (breaker instanceof OpossumBreaker) breaker.shutdown()
    }
  }
  const consecutive = () => cockatielBreaker(new cockatiel.ConsecutiveBreaker(5))

  const cases: ReadonlyArray<MemoryCase> = [
    {
      id: "registry-new",
      group: "library",
      label: "registry: created (get), never called",
      peer: "c-count-new",
      build: () =>
        Effect.runPromise(Effect.gen(function*() {
          const registry = yield* CircuitBreaker.makeRegistry()
          for (const key of keys) yield* registry.get(key)
          return registry
        }))
    },
    {
      id: "registry-used",
      group: "library",
      label: "registry: one call each (window allocated)",
      peer: "c-count-used",
      build: () =>
        Effect.runPromise(Effect.gen(function*() {
          const registry = yield* CircuitBreaker.makeRegistry()
          for (const key of keys) yield* registry.execute(key, effectCall())
          return registry
        }))
    },
    {
      id: "standalone-new",
      group: "library",
      label: "standalone CircuitBreaker.make (own event hub), never called",
      peer: "c-count-new",
      build: () => never(() => Effect.runSync(CircuitBreaker.make()))
    },
    {
      id: "standalone-used",
      group: "library",
      label: "standalone CircuitBreaker.make, one call each",
      peer: "c-count-used",
      build: () =>
        once(() => Effect.runSync(CircuitBreaker.make()), (breaker) => Effect.runPromise(breaker.execute(effectCall())))
    },
    {
      id: "c-consecutive-new",
      group: "cockatiel 3",
      label: "circuitBreaker, ConsecutiveBreaker(5) (a call adds nothing)",
      build: () => never(consecutive)
    },
    {
      id: "c-count-new",
      group: "cockatiel 3",
      label: "circuitBreaker, CountBreaker(20), never called",
      build: () => never(() => cockatielBreaker())
    },
    {
      id: "c-count-used",
      group: "cockatiel 3",
      label: "circuitBreaker, CountBreaker(20), one call each",
      build: () => once(() => cockatielBreaker(), (breaker) => breaker.execute(call))
    },
    {
      id: "o-new",
      group: "opossum 8",
      label: "new CircuitBreaker(call) (defaults), never called",
      peer: "c-count-new",
      build: () => never(() => new OpossumBreaker(call)),
      dispose: shutdown
    },
    {
      id: "o-used",
      group: "opossum 8",
      label: "new CircuitBreaker(call) (defaults), one call each",
      peer: "c-count-used",
      build: () => once(() => new OpossumBreaker(call), (breaker) => breaker.fire()),
      dispose: shutdown
    }
  ]

  progress(`\n3. Memory, ${BREAKERS.toLocaleString("en")} breakers per case`)
  const results = new Map<string, Array<number>>()
  for (let repeat = 0; repeat < settings.memoryRepeats; repeat++) {
    for (const memoryCase of cases) {
      // A warm-up build outside the measurement: code, hidden classes and module-level caches are not per breaker.
      if (repeat === 0) await buildAndDrop(memoryCase)
      const list = results.get(memoryCase.id) ?? []
      let bytes = await heapDelta(memoryCase)
      // A negative delta means memory from before the baseline was freed during the build: measure again.
      for (let retry = 0; retry < 2 && bytes < 0; retry++) {
        progress(`  ${memoryCase.id}: negative heap delta, measuring again`)
        bytes = await heapDelta(memoryCase)
      }
      list.push(bytes)
      results.set(memoryCase.id, list)
    }
    progress(`  repeat ${repeat + 1}/${settings.memoryRepeats}`)
  }
  for (const [id, samples] of results) {
    if (samples.length > 1 && Math.max(...samples) > 1.1 * Math.min(...samples)) {
      progress(
        `  ${id}: builds disagree (${samples.map((b) => b.toFixed(0)).join(", ")} bytes); the median is reported`
      )
    }
  }
  return cases.map((c): MemoryRow => {
    const bytes = median(results.get(c.id) ?? [])
    return {
      id: c.id,
      group: c.group,
      label: c.label,
      bytesPerBreaker: bytes,
      samples: results.get(c.id) ?? [],
      timesCockatiel: c.peer === undefined ? undefined : bytes / median(results.get(c.peer) ?? []),
      cockatiel: c.peer,
      repeats: settings.memoryRepeats
    }
  })
}

// --- output --------------------------------------------------------------------------------------------------------

const versionOf = (name: string): string => {
  try {
    const parsed: unknown = JSON.parse(
      readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), "utf8")
    )
    if (typeof parsed === "object" && parsed !== null && "version" in parsed && typeof parsed.version === "string") {
      return parsed.version
    }
  } catch {
    // fall through
  }
  return "?"
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)))
  const numeric = header.map((_, i) => rows.every((row) => /^[-\d.,×% —]*$/.test(row[i] ?? "")))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${
      cells.map((cell, i) => (numeric[i] === true ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join(" | ")
    } |`
  const rule = `|${
    widths.map((width, i) => (numeric[i] === true ? `${"-".repeat(width + 1)}:` : "-".repeat(width + 2))).join("|")
  }|`
  return [line(header), rule, ...rows.map(line)].join("\n")
}

const ns = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString("en") : "—")
const times = (value: number | undefined): string =>
  value === undefined || !Number.isFinite(value) ? "—" : value >= 100 ? `${value.toFixed(0)}×` : `${value.toFixed(2)}×`

const main = async () => {
  const cpus = os.cpus()
  const machine = {
    node: process.version,
    effect: versionOf("effect"),
    cockatiel: versionOf("cockatiel"),
    opossum: versionOf("opossum"),
    cpu: cpus[0]?.model ?? "?",
    cores: cpus.length,
    loadAverage: os.loadavg().map((load) => Number(load.toFixed(2))),
    mode: quick ? "quick" : "full"
  }
  progress(
    `Node ${machine.node}, effect ${machine.effect}, cockatiel ${machine.cockatiel}, opossum ${machine.opossum}; ${machine.cores} × ${machine.cpu}, load ${
      machine.loadAverage.join(" ")
    } (${machine.mode})`
  )
  const started = performance.now()
  const timed = async <A>(name: string, run: () => Promise<ReadonlyArray<A>>): Promise<ReadonlyArray<A>> => {
    if (!sections.has(name)) return []
    const start = performance.now()
    const rows = await run()
    progress(`  ${name}: ${((performance.now() - start) / 1000).toFixed(1)} s`)
    return rows
  }
  const perCall = await timed("overhead", overhead)
  const concurrent = await timed("throughput", throughput)
  const heap = await timed("memory", memory)
  for (const breaker of opossumBreakers) breaker.shutdown()
  const seconds = (performance.now() - started) / 1000
  progress(`\ndone in ${seconds.toFixed(0)} s`)

  if (asJson) {
    console.log(JSON.stringify({ machine, settings, overhead: perCall, throughput: concurrent, memory: heap }, null, 2))
    return
  }

  const loadAfter = os.loadavg().map((load) => load.toFixed(2)).join(" ")
  console.log(
    `Node ${machine.node}, effect ${machine.effect}, cockatiel ${machine.cockatiel}, opossum ${machine.opossum}
${machine.cores} × ${machine.cpu}; load average ${machine.loadAverage.join(" ")} before, ${loadAfter} after; ${
      quick ? "--quick" : "full"
    } run, ${seconds.toFixed(0)} s`
  )

  if (perCall.length > 0) {
    console.log(`
1. Success-path cost per call around the same no-op async call. Median of ${settings.rounds} interleaved rounds of about ${settings.sampleMs} ms
   per contender. "ns/call" is CPU time (user + system); "wall ns" is elapsed time, which a busy machine inflates.
   "added": minus the floor of the same round (the bare promise for promise-based rows, Effect.promise for fiber rows).
   "× floor", "× cockatiel": medians of per-round ratios of CPU time per call (the cockatiel counterpart is named).
`)
    console.log(table(
      ["group", "what", "ns/call", "wall ns", "added ns", "× floor", "× cockatiel", "counterpart"],
      perCall.map((row) => [
        row.group,
        row.label,
        ns(row.nsPerCall),
        ns(row.wallNsPerCall),
        row.id === row.floor ? "—" : ns(row.addedNs),
        row.id === row.floor ? "—" : times(row.timesFloor),
        times(row.timesCockatiel),
        row.cockatiel === undefined ? "" : (perCall.find((r) => r.id === row.cockatiel)?.short ?? row.cockatiel)
      ])
    ))
  }
  if (concurrent.length > 0) {
    console.log(`
2. Throughput: ${CALLERS} concurrent callers (fibers for the library, async functions otherwise), each calling back to back.
   Timed from the moment ${CALLERS} calls have completed (all callers running) over a window of about ${settings.throughputWindowMs} ms
   (start-up and the calls still in flight at the end are left out); median of ${settings.throughputRounds} rounds.
   "calls/s" is wall-clock; "cpu ns/call" is CPU time per call. "× floor", "× cockatiel": ratios of time per call
   (calls/s of the reference / calls/s of the row; above 1 is slower).
`)
    console.log(table(
      ["group", "what", "calls/s", "cpu ns/call", "× floor", "× cockatiel"],
      concurrent.map((row) => [
        row.group,
        row.label,
        Math.round(row.callsPerSecond).toLocaleString("en"),
        ns(row.cpuNsPerCall),
        row.id === row.floor ? "—" : times(row.timesFloor),
        times(row.timesCockatiel)
      ])
    ))
  }
  if (heap.length > 0) {
    console.log(`
3. Heap per breaker: ${
      BREAKERS.toLocaleString("en")
    } breakers kept in a Map by key (key strings not counted), gc() + heapUsed delta
   (after one unmeasured build of each case; median of ${settings.memoryRepeats} measured ${
      settings.memoryRepeats === 1 ? "build" : "builds"
    }).
   "× cockatiel": against circuitBreaker with CountBreaker(20) at the same stage.
`)
    console.log(table(
      ["group", "what", "bytes/breaker", "× cockatiel"],
      heap.map((
        row
      ) => [row.group, row.label, Math.round(row.bytesPerBreaker).toLocaleString("en"), times(row.timesCockatiel)])
    ))
  }
  if (perCall.length > 0 && logBytes === 0) console.log("\n(warning: the JSON request log wrote nothing)")
}

void main()
