/**
 * Distributed breakers and limits against a real `redis-server` this file starts on a free port (and stops by PID).
 * Three independent instances (each its own ioredis connections, registry and limiter) share it. Real time is
 * unavoidable here; every cooldown and window is milliseconds long.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { assertTrue, strictEqual } from "@effect/vitest/utils"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as net from "node:net"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Redis from "../src/Redis.js"
import * as Resilient from "../src/Resilient.js"
import * as ScriptedProvider from "../src/testing/ScriptedProvider.js"

const INSTALL_HINT = "The Redis tests need a real redis-server on PATH. Install it with `apt-get install redis-server` "
  + "(Debian/Ubuntu) or `brew install redis` (macOS); CI installs it in .ci/run."

const requireRedisServer = (): void => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
  } catch (cause) {
    throw new Error(`redis-server not found. ${INSTALL_HINT}`, { cause })
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const ping = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1")
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(200, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")))
  })

let port = 0
let server: ChildProcess | undefined

const startServer = async (): Promise<void> => {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" }
  )
  server = child
  const spawned = await new Promise<boolean>((resolve) => {
    child.once("spawn", () => resolve(true))
    child.once("error", () => resolve(false))
  })
  if (!spawned) throw new Error(`could not start redis-server. ${INSTALL_HINT}`)
  for (let i = 0; i < 100; i++) {
    if (await ping(port)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`redis-server did not answer on port ${port}`)
}

const stopServer = async (): Promise<void> => {
  const child = server
  server = undefined
  if (child?.pid === undefined || child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once("exit", resolve))
  process.kill(child.pid, "SIGKILL")
  await exited
}

beforeAll(async () => {
  requireRedisServer()
  port = await freePort()
  await startServer()
})

afterAll(async () => {
  await stopServer()
})

let prefixes = 0
const uniquePrefix = () => `test-${process.pid}-${++prefixes}:`

const connection = (keyPrefix: string, options: Redis.ConnectionOptions) =>
  Redis.layer({
    url: `redis://127.0.0.1:${port}`,
    keyPrefix,
    operationTimeout: "50 millis",
    recoveryInterval: "50 millis",
    ...options
  })

/** One instance of the fleet: its own connections, registry and limiter. */
const instance = (
  keyPrefix: string,
  breaker: CircuitBreaker.Options & Redis.CircuitBreakerStoreOptions,
  limits: Redis.RateLimitOptions,
  redis: Redis.ConnectionOptions
): Effect.Effect<
  { readonly registry: CircuitBreaker.Registry; readonly limiter: RateLimit.Limiter; readonly redis: Redis.Connection },
  never,
  Scope.Scope
> =>
  Effect.orDie(Effect.map(
    Layer.build(
      Layer.mergeAll(Redis.layerCircuitBreaker(breaker), Redis.layerRateLimiter(limits)).pipe(
        Layer.provideMerge(connection(keyPrefix, redis))
      )
    ),
    (context) => ({
      registry: Context.get(context, CircuitBreaker.CircuitBreakerRegistry),
      limiter: Context.get(context, RateLimit.RateLimiter),
      redis: Context.get(context, Redis.RedisConnection)
    })
  ))

const fleet = (
  breaker: CircuitBreaker.Options & Redis.CircuitBreakerStoreOptions,
  limits: Redis.RateLimitOptions = {},
  redis: Redis.ConnectionOptions = {}
) =>
  Effect.gen(function*() {
    const prefix = uniquePrefix()
    const one = instance(prefix, breaker, limits, redis)
    return yield* Effect.all([one, one, one])
  })

const KEY = "openai:gpt-4.1"

/** The measured figures, for docs/distributed.md (logs are silenced: the breakers log every transition). */
const report = (line: string): void => {
  process.stdout.write(`[Redis.test] ${line}\n`)
}

const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(effect, LogLevel.None)
const boom = Effect.fail("boom")

/** Waits (polling, real time) until `condition` holds; fails after `timeoutMs`. */
const eventually = <E, R>(
  condition: Effect.Effect<boolean, E, R>,
  timeoutMs: number,
  what: string
): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`timed out after ${timeoutMs} ms: ${what}`))
      yield* Effect.sleep(Duration.millis(5))
    }
  })

/** `llm.redis.fallbacks` summed over its labels (operation, reason). */
const fallbackCount = Effect.map(Metric.snapshot, (pairs) => {
  let total = 0
  for (const pair of pairs) {
    if (pair.metricKey.name === "llm.redis.fallbacks" && MetricState.isCounterState(pair.metricState)) {
      total += Number(pair.metricState.count)
    }
  }
  return total
})

const stateOf = (registry: CircuitBreaker.Registry) => Effect.flatMap(registry.get(KEY), (breaker) => breaker.state)

describe("Redis-backed breakers and limits (three instances, one redis-server)", () => {
  it.scopedLive("a breaker tripped in one instance is open in all; propagation is measured", () =>
    quiet(Effect.gen(function*() {
      const [a, b, c] = yield* fleet({ consecutiveFailures: 2, cooldown: "10 seconds" })
      for (const { registry } of [a, b, c]) yield* registry.get(KEY)
      const heardB = yield* b.registry.subscribe
      const heardC = yield* c.registry.subscribe

      // A real trip: two failures in A.
      yield* Effect.exit(a.registry.execute(KEY, boom))
      yield* Effect.exit(a.registry.execute(KEY, boom))
      const trippedAt = performance.now()
      strictEqual(yield* stateOf(a.registry), "Open")
      const openB = yield* Queue.take(heardB)
      const openC = yield* Queue.take(heardC)
      const tripLatency = performance.now() - trippedAt
      strictEqual(openB.to, "Open")
      strictEqual(openB.reason, "ConsecutiveFailures")
      strictEqual(openC.to, "Open")
      strictEqual(yield* stateOf(b.registry), "Open")
      strictEqual(yield* stateOf(c.registry), "Open")
      const rejected = yield* Effect.exit(c.registry.execute(KEY, Effect.succeed("never runs")))
      assertTrue(Exit.isFailure(rejected))

      // 40 more transitions (manual close / open in A), each timed until both B and C have it.
      const latencies: Array<number> = [tripLatency]
      for (let i = 0; i < 40; i++) {
        const breaker = yield* a.registry.get(KEY)
        const started = performance.now()
        yield* i % 2 === 0 ? breaker.forceClose : breaker.forceOpen
        const [eventB, eventC] = [yield* Queue.take(heardB), yield* Queue.take(heardC)]
        latencies.push(performance.now() - started)
        strictEqual(eventB.to, i % 2 === 0 ? "Closed" : "ForcedOpen")
        strictEqual(eventC.to, eventB.to)
      }
      latencies.sort((x, y) => x - y)
      const median = latencies[Math.floor(latencies.length / 2)]!
      const p95 = latencies[Math.floor(latencies.length * 0.95)]!
      const worst = latencies[latencies.length - 1]!
      report(
        `propagation to 2 other instances over ${latencies.length} transitions: median ${median.toFixed(2)} ms, `
          + `p95 ${p95.toFixed(2)} ms, max ${worst.toFixed(2)} ms`
      )
      // The target is 100 ms; a loaded CI machine may stall the event loop now and then, hence p95 and a ceiling.
      assertTrue(p95 < 100, `p95 propagation ${p95} ms`)
      assertTrue(worst < 500, `slowest propagation ${worst} ms`)
    })))

  it.scopedLive("half-open admits exactly the configured number of probes across the fleet", () =>
    quiet(Effect.gen(function*() {
      const instances = yield* fleet({ consecutiveFailures: 1, cooldown: "100 millis", probes: 2 })
      const [a, b, c] = instances
      for (const { registry } of instances) yield* registry.get(KEY)
      yield* Effect.exit(a.registry.execute(KEY, boom))
      yield* eventually(
        Effect.map(Effect.all([stateOf(b.registry), stateOf(c.registry)]), (s) => s.every((x) => x === "Open")),
        500,
        "B and C open"
      )
      yield* Effect.sleep(Duration.millis(130))
      let probes = 0
      const probe = Effect.zipRight(
        Effect.sync(() => probes++),
        Effect.sleep(Duration.millis(150))
      )
      const calls = instances.flatMap(({ registry }) =>
        Array.from({ length: 6 }, () => Effect.exit(registry.execute(KEY, probe)))
      )
      const exits = yield* Effect.all(calls, { concurrency: "unbounded" })
      strictEqual(probes, 2)
      strictEqual(exits.filter(Exit.isSuccess).length, 2)
      // The probes succeeded: every instance closes.
      yield* eventually(
        Effect.map(
          Effect.all([a, b, c].map(({ registry }) => stateOf(registry))),
          (s) => s.every((x) => x === "Closed")
        ),
        500,
        "all closed after the probes"
      )
    })))

  it.scopedLive("a global RPM limit is never exceeded across the fleet and is at least 95 % used", () =>
    quiet(Effect.gen(function*() {
      const windowMs = 1_000
      const rpm = 30
      // Exact sliding windows admit rpm at 0, 1000 and 2000 ms: 3 rpm within the run. The fleet gives up a lease
      // (100 ms) per window, so its third batch starts near 2200 ms; the run leaves it 500 ms, for a loaded machine.
      const durationMs = 2_700
      // A generous operation timeout: a busy test machine must not push the fleet into its local fallback here
      // (each instance would then apply the whole limit: correct behaviour, but not what this test measures).
      const instances = yield* fleet({}, {
        limits: { rpm },
        window: Duration.millis(windowMs),
        lease: "100 millis",
        leaseRequests: 5,
        maxWait: "infinity"
      }, { operationTimeout: "2 seconds" })
      const fallbacksBefore = yield* fallbackCount
      const starts: Array<number> = []
      const end = Date.now() + durationMs
      const worker = (limiter: RateLimit.Limiter) =>
        Effect.whileLoop({
          while: () => Date.now() < end,
          body: () => limiter.limit("shared:model")(Effect.sync(() => starts.push(Date.now()))),
          step: () => {}
        })
      const fibers = yield* Effect.forEach(
        instances.flatMap(({ limiter }) => Array.from({ length: 8 }, () => limiter)),
        (limiter) => Effect.fork(worker(limiter))
      )
      yield* Effect.sleep(Duration.millis(durationMs))
      yield* Fiber.interruptAll(fibers)
      const admitted = starts.filter((at) => at < end).sort((x, y) => x - y)
      // Sliding check over the start times. A waiter admitted by the limiter resumes on the next scheduler tick, so
      // a start is recorded a moment after its admission; on a busy machine that moment can reach tens of ms:
      // 25 ms of slack.
      let worst = 0
      for (let i = 0; i < admitted.length; i++) {
        let j = i
        while (j < admitted.length && admitted[j]! < admitted[i]! + windowMs - 25) j++
        worst = Math.max(worst, j - i)
      }
      // An exact sliding window admits rpm at 0, windowMs and 2 windowMs within the run: 3 rpm in all.
      const ideal = rpm * Math.ceil(durationMs / windowMs)
      report(`admitted ${admitted.length} of ${ideal}; busiest window ${worst} of ${rpm}`)
      strictEqual(yield* fallbackCount, fallbacksBefore, "no operation fell back to local state")
      assertTrue(worst <= rpm, `a window admitted ${worst} > ${rpm}`)
      assertTrue(admitted.length >= 0.95 * ideal, `admitted ${admitted.length} < 95 % of ${ideal}`)
    })))

  it.scopedLive("a 429 pause in one instance pauses the key in all", () =>
    quiet(Effect.gen(function*() {
      const [a, b, c] = yield* fleet({}, { limits: { rpm: 1000 }, window: "1 second" })
      // Buckets exist where a call has gone through.
      for (const { limiter } of [a, b, c]) yield* limiter.limit("p:m")(Effect.void)
      yield* a.limiter.pause("p:m", "2 seconds")
      yield* eventually(
        Effect.map(
          Effect.all([b.limiter.snapshot("p:m"), c.limiter.snapshot("p:m")]),
          (snapshots) => snapshots.every((s) => s.pausedUntil !== undefined)
        ),
        100,
        "pause visible in B and C"
      )
    })))

  it.scopedLive("Redis killed mid-test: calls go on locally; restarted, the fleet converges", () =>
    quiet(Effect.gen(function*() {
      const instances = yield* fleet({ consecutiveFailures: 2, cooldown: "5 seconds", syncInterval: "200 millis" }, {
        limits: { rpm: 10_000 },
        window: "1 second"
      })
      const [a, b, c] = instances
      for (const { limiter, registry } of instances) {
        yield* registry.get(KEY)
        yield* limiter.limit("k:m")(Effect.void)
      }
      const fallbacksBefore = yield* fallbackCount

      yield* Effect.promise(stopServer)
      // Every call still runs, none waits on the dead server for long.
      const started = performance.now()
      for (let i = 0; i < 20; i++) {
        for (const { limiter, registry } of instances) {
          strictEqual(yield* registry.execute(KEY, limiter.limit("k:m")(Effect.succeed(i))), i)
        }
      }
      const elapsed = performance.now() - started
      assertTrue(elapsed < 1_000, `60 calls took ${elapsed} ms without Redis`)
      // A trips while Redis is away: only A knows.
      yield* Effect.exit(a.registry.execute(KEY, boom))
      yield* Effect.exit(a.registry.execute(KEY, boom))
      strictEqual(yield* stateOf(a.registry), "Open")
      strictEqual(yield* stateOf(b.registry), "Closed")
      yield* eventually(
        Effect.map(fallbackCount, (count) => count > fallbacksBefore),
        1_000,
        "fallbacks counted in llm.redis.fallbacks"
      )
      yield* eventually(
        Effect.map(Effect.all(instances.map(({ redis }) => redis.available)), (all) => all.every((x) => !x)),
        1_000,
        "every instance notices Redis is gone"
      )

      yield* Effect.promise(startServer)
      yield* eventually(
        Effect.map(Effect.all(instances.map(({ redis }) => redis.available)), (all) => all.every(Boolean)),
        5_000,
        "every instance sees Redis again"
      )
      // A's trip reaches the fleet through the resynchronization.
      yield* eventually(
        Effect.map(Effect.all([stateOf(b.registry), stateOf(c.registry)]), (s) => s.every((x) => x === "Open")),
        3_000,
        "B and C adopt A's trip"
      )
      // And new transitions propagate again.
      yield* Effect.flatMap(a.registry.get(KEY), (breaker) => breaker.forceClose)
      yield* eventually(
        Effect.map(Effect.all([stateOf(b.registry), stateOf(c.registry)]), (s) => s.every((x) => x === "Closed")),
        2_000,
        "B and C follow A's close"
      )
      strictEqual(yield* b.registry.execute(KEY, Effect.succeed("ok")), "ok")
    })))

  it.scopedLive("Redis hung (SIGSTOP): operations time out, calls go on; resumed (SIGCONT), the fleet converges", () =>
    quiet(Effect.gen(function*() {
      const instances = yield* fleet({ consecutiveFailures: 2, cooldown: "5 seconds" }, {
        limits: { rpm: 10_000 },
        window: "1 second"
      })
      const [a, b, c] = instances
      for (const { limiter, registry } of instances) {
        yield* registry.get(KEY)
        yield* limiter.limit("k:m")(Effect.void)
      }
      const pid = server?.pid
      assertTrue(pid !== undefined, "redis-server is running")
      const timeoutsBefore = yield* fallbackCount
      process.kill(pid!, "SIGSTOP")
      try {
        const started = performance.now()
        yield* Effect.exit(a.registry.execute(KEY, boom))
        yield* Effect.exit(a.registry.execute(KEY, boom))
        for (let i = 0; i < 10; i++) {
          for (const { limiter, registry } of instances) {
            strictEqual(yield* registry.execute("other:model", limiter.limit("k:m")(Effect.succeed(i))), i)
          }
        }
        const elapsed = performance.now() - started
        assertTrue(elapsed < 1_000, `32 calls took ${elapsed} ms against a hung Redis`)
        strictEqual(yield* stateOf(a.registry), "Open")
        // A's save timed out (50 ms): A runs on local state.
        yield* eventually(Effect.map(a.redis.available, (up) => !up), 1_000, "A notices the timeout")
        assertTrue((yield* fallbackCount) > timeoutsBefore, "the timeout was counted")
      } finally {
        process.kill(pid!, "SIGCONT")
      }
      yield* eventually(a.redis.available, 3_000, "A sees Redis again")
      yield* eventually(
        Effect.map(Effect.all([stateOf(b.registry), stateOf(c.registry)]), (s) => s.every((x) => x === "Open")),
        3_000,
        "B and C adopt A's trip"
      )
    })))

  it.scopedLive("Redis unreachable at start: the layers build, calls run on local state, onUnavailable applies", () =>
    quiet(Effect.gen(function*() {
      const deadPort = yield* Effect.promise(freePort)
      const redis = { url: `redis://127.0.0.1:${deadPort}`, operationTimeout: "50 millis" } as const
      const started = performance.now()
      const [local, open, closed] = yield* Effect.all([
        instance(uniquePrefix(), {}, { limits: { rpm: 2 }, mode: "fail-fast" }, redis),
        instance(uniquePrefix(), {}, { limits: { rpm: 2 }, mode: "fail-fast", onUnavailable: "open" }, redis),
        instance(uniquePrefix(), {}, { limits: { rpm: 2 }, mode: "fail-fast", onUnavailable: "closed" }, redis)
      ])
      assertTrue(performance.now() - started < 5_000, "the layers build without Redis")
      strictEqual(yield* local.redis.available, false)
      const run = (limiter: RateLimit.Limiter) =>
        Effect.all(Array.from({ length: 4 }, () => Effect.exit(limiter.limit("x:y")(Effect.succeed(1)))))
      // local: the whole limit in this instance; open: no RPM limit; closed: nothing starts.
      strictEqual((yield* run(local.limiter)).filter(Exit.isSuccess).length, 2)
      strictEqual((yield* run(open.limiter)).filter(Exit.isSuccess).length, 4)
      strictEqual((yield* run(closed.limiter)).filter(Exit.isSuccess).length, 0)
      // Breakers serve and trip locally.
      strictEqual(yield* local.registry.execute(KEY, Effect.succeed("ok")), "ok")
    })))

  it.scopedLive("layerConfig reads LLM_REDIS_URL and LLM_REDIS_KEY_PREFIX; without a URL it fails", () =>
    quiet(Effect.gen(function*() {
      const prefix = uniquePrefix()
      const config = ConfigProvider.fromMap(
        new Map([["LLM_REDIS_URL", `redis://127.0.0.1:${port}`], ["LLM_REDIS_KEY_PREFIX", prefix]])
      )
      const context = yield* Layer.build(Redis.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(config))))
      const connection = Context.get(context, Redis.RedisConnection)
      strictEqual(connection.keyPrefix, prefix)
      yield* eventually(connection.available, 2_000, "connected")
      const missing = yield* Effect.exit(
        Layer.build(Redis.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))))
      )
      assertTrue(Exit.isFailure(missing))
    })))

  it.scopedLive("Resilient clients in two instances share the breaker: a trip in one is skipped without a call in the other", () =>
    quiet(Effect.gen(function*() {
      const [a, b] = yield* fleet({ consecutiveFailures: 2, cooldown: "10 seconds" })
      const primary = yield* ScriptedProvider.make({
        name: "openai",
        model: "gpt-4.1",
        script: [ScriptedProvider.failure("ServerError", { status: 502 })]
      })
      const backup = yield* ScriptedProvider.make({
        name: "anthropic",
        model: "claude",
        script: [ScriptedProvider.success("from backup")]
      })
      const chain = [{ provider: primary, retry: false as const }, { provider: backup }] as const
      const request = { messages: [{ role: "user" as const, content: "question" }] }
      // Instance A through its layer (the registry comes from the context), instance B through make.
      const clientA = yield* Effect.provideService(
        Layer.build(Resilient.layer({ chain })),
        CircuitBreaker.CircuitBreakerRegistry,
        a.registry
      ).pipe(Effect.map((context) => Context.get(context, Resilient.Resilient)))
      const clientB = yield* Resilient.make({ chain, breakers: b.registry })

      yield* clientA.complete(request)
      yield* clientA.complete(request)
      strictEqual((yield* primary.calls).length, 2)
      strictEqual(yield* stateOf(a.registry), "Open")
      yield* eventually(Effect.map(stateOf(b.registry), (state) => state === "Open"), 2_000, "B sees the trip")

      const answer = yield* clientB.complete(request)
      strictEqual(answer.servedBy, "anthropic:claude")
      strictEqual(answer.attempts[0]?.error, "CircuitOpen")
      strictEqual((yield* primary.calls).length, 2, "instance B never called the provider")
    })))
})
