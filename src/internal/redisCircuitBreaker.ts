/**
 * A `CircuitBreaker.Store` in Redis, shared by a fleet.
 *
 * What is shared: each breaker's state, its open-until deadline and re-open count (one hash per key, holding the
 * last transition's snapshot), and the half-open probe permits (a sorted set of probe ids scored by their
 * deadline, so a probe whose process died frees its permit when its timeout passes). Window contents (the ring
 * buffer of recent calls, the consecutive-failure streak, the latency baseline) stay in each process: the hot path
 * never leaves it. A breaker that trips anywhere opens everywhere.
 *
 * Every write is one Lua script, so the check and the update are atomic across the fleet, and each accepted
 * transition is published from inside the same script (in order, on one channel): other processes adopt it.
 *
 * - `save` is queued and written by one fiber in order: a transition never waits on Redis.
 * - A transition that conflicts with the shared state is refused (a probe success cannot close a breaker another
 *   process has re-opened since); the process then adopts the shared state instead.
 * - `acquireProbe` is the one call that waits on Redis (bounded by the operation timeout), and only in HalfOpen.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import type * as Api from "../CircuitBreaker.js"
import { Snapshot } from "../CircuitBreaker.js"
import type { Connection } from "./redisConnection.js"

/** @internal */
export interface BreakerStoreOptions {
  /** How long a breaker's shared state outlives its last transition. */
  readonly ttlMs: number
  /** How often breakers that are not Closed here are compared with the shared state (a missed message heals). */
  readonly syncIntervalMs: number
}

// KEYS: state hash, probes zset. ARGV: snapshot JSON, to, openUntil, reason, origin, now, ttl, channel.
const SAVE = `
local cur = redis.call('HGET', KEYS[1], 'state')
local to = ARGV[2]
local reason = ARGV[4]
local now = tonumber(ARGV[6])
if cur and reason ~= 'Manual' and reason ~= 'FatalFailure' then
  local accept = true
  if to == 'HalfOpen' then
    if cur == 'HalfOpen' then return {2} end
    accept = cur == 'Open' and now >= tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0')
  elseif to == 'Closed' then
    if cur == 'Closed' then return {2} end
    accept = cur == 'HalfOpen'
  elseif to == 'Open' then
    accept = cur ~= 'ForcedOpen' and cur ~= 'Disabled' and cur ~= 'MetricsOnly'
  end
  if not accept then
    return {0, cur, redis.call('HGET', KEYS[1], 'snap'), redis.call('HGET', KEYS[1], 'reason')}
  end
end
redis.call('HSET', KEYS[1], 'state', to, 'openUntil', ARGV[3], 'snap', ARGV[1], 'reason', reason)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[8], '{"o":"' .. ARGV[5] .. '","st":"' .. to .. '","r":"' .. reason .. '","s":' .. ARGV[1] .. '}')
return {1}
`

// KEYS: state hash, probes zset. ARGV: now, permits, probe timeout, probe id, origin, channel, ttl.
const PROBE = `
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {'local'} end
local now = tonumber(ARGV[1])
if cur == 'Open' and now >= tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0') then
  cur = 'HalfOpen'
  redis.call('HSET', KEYS[1], 'state', cur, 'reason', 'CooldownElapsed')
  redis.call('DEL', KEYS[2])
  local snap = redis.call('HGET', KEYS[1], 'snap')
  redis.call('PUBLISH', ARGV[6], '{"o":"' .. ARGV[5] .. '","st":"HalfOpen","r":"CooldownElapsed","s":' .. snap .. '}')
end
if cur ~= 'HalfOpen' then
  return {'adopt', cur, redis.call('HGET', KEYS[1], 'snap'), redis.call('HGET', KEYS[1], 'reason')}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  return {'granted'}
end
return {'denied'}
`

// KEYS: state hash, probes zset. ARGV: snapshot JSON, state, openUntil, reason, origin, ttl, channel.
// After an outage: a process writes its state where the fleet has none (Redis restarted empty: a breaker that
// opened meanwhile re-opens the fleet); otherwise it adopts the shared state, which is newer than anything it
// missed. A closed breaker writes nothing: no entry reads as closed.
const SYNC = `
local cur = redis.call('HGET', KEYS[1], 'state')
local to = ARGV[2]
if (not cur) and to == 'Closed' then return {2} end
if not cur then
  redis.call('HSET', KEYS[1], 'state', to, 'openUntil', ARGV[3], 'snap', ARGV[1], 'reason', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[7], '{"o":"' .. ARGV[5] .. '","st":"' .. to .. '","r":"' .. ARGV[4] .. '","s":' .. ARGV[1] .. '}')
  return {1}
end
return {0, cur, redis.call('HGET', KEYS[1], 'snap'), redis.call('HGET', KEYS[1], 'reason')}
`

type Reply = Array<string | number | null>

interface Scripts {
  llmrCbSave(...args: Array<string | number>): Promise<Reply>
  llmrCbProbe(...args: Array<string | number>): Promise<Reply>
  llmrCbSync(...args: Array<string | number>): Promise<Reply>
}

const reasons: ReadonlySet<string> = new Set<Api.Reason>([
  "ConsecutiveFailures",
  "FailureRate",
  "LatencyP95",
  "SlowCallRate",
  "FatalFailure",
  "ProbeFailed",
  "ProbeTimeout",
  "Hanging",
  "CooldownElapsed",
  "ProbesSucceeded",
  "Manual"
])

const decodeSnapshot = Schema.decodeUnknownOption(Schema.parseJson(Snapshot))
const decodeState = Schema.decodeUnknownOption(Snapshot.fields.state)

/** The stored snapshot, with the state the hash says (a probe script may have moved it on since). */
const remoteOf = (
  state: unknown,
  snap: unknown,
  reason: unknown
): { readonly snapshot: Api.Snapshot; readonly reason: Api.Reason } | undefined => {
  const snapshot = decodeSnapshot(snap)
  const decodedState = decodeState(state)
  if (Option.isNone(snapshot) || Option.isNone(decodedState)) return undefined
  return {
    snapshot: { ...snapshot.value, state: decodedState.value },
    reason: typeof reason === "string" && reasons.has(reason) ? reason as Api.Reason : "Manual"
  }
}

const defineScripts = (client: Redis): Scripts => {
  client.defineCommand("llmrCbSave", { numberOfKeys: 2, lua: SAVE })
  client.defineCommand("llmrCbProbe", { numberOfKeys: 2, lua: PROBE })
  client.defineCommand("llmrCbSync", { numberOfKeys: 2, lua: SYNC })
  return client as unknown as Scripts
}

const local: Api.ProbeAdmission = { _tag: "local" }
const denied: Api.ProbeAdmission = { _tag: "denied" }

/** @internal */
export const makeStore = (
  connection: Connection,
  options: BreakerStoreOptions
): Effect.Effect<Api.Store, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scripts = defineScripts(connection.client)
    const channel = connection.key("cb", "events")
    // Hash tags keep a breaker's two keys in one slot, so the scripts also run on Redis Cluster.
    const stateKey = (key: string) => connection.key("cb", `{${key}}`)
    const probesKey = (key: string) => connection.key("cb", `{${key}}`, "probes")
    let follower: Api.Follower | undefined
    let probeCounter = 0

    const adopt = (reply: Reply): Effect.Effect<void> => {
      const remote = remoteOf(reply[1], reply[2], reply[3])
      return remote === undefined || follower === undefined
        ? Effect.void
        : follower.adopt(remote.snapshot, remote.reason)
    }

    const writes = yield* Queue.unbounded<readonly [Api.Snapshot, Api.Reason]>()
    const write = ([snapshot, reason]: readonly [Api.Snapshot, Api.Reason]) =>
      Effect.flatMap(
        connection.run("breaker.save", () =>
          scripts.llmrCbSave(
            stateKey(snapshot.key),
            probesKey(snapshot.key),
            JSON.stringify(snapshot),
            snapshot.state,
            snapshot.openUntil,
            reason,
            connection.id,
            snapshot.at,
            options.ttlMs,
            channel
          )),
        (reply) => Option.isSome(reply) && reply.value[0] === 0 ? adopt(reply.value) : Effect.void
      )
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(writes), write)))

    const load: Api.Store["load"] = (key) =>
      Effect.map(
        connection.run("breaker.load", (client) => client.hmget(stateKey(key), "state", "snap", "reason")),
        (reply) => {
          if (Option.isNone(reply)) return Option.none()
          const remote = remoteOf(reply.value[0], reply.value[1], reply.value[2])
          return remote === undefined ? Option.none() : Option.some(remote.snapshot)
        }
      )

    const save: Api.Store["save"] = (snapshot, reason) =>
      Effect.sync(() => {
        writes.unsafeOffer([snapshot, reason ?? "Manual"])
      })

    const acquireProbe: NonNullable<Api.Store["acquireProbe"]> = (key, now, permits, probeTimeoutMs) =>
      Effect.suspend(() => {
        const probe = `${connection.id}:${++probeCounter}`
        return Effect.map(
          connection.run("breaker.probe", () =>
            scripts.llmrCbProbe(
              stateKey(key),
              probesKey(key),
              now,
              permits,
              probeTimeoutMs,
              probe,
              connection.id,
              channel,
              options.ttlMs
            )),
          (reply): Api.ProbeAdmission => {
            if (Option.isNone(reply)) return local
            switch (reply.value[0]) {
              case "granted":
                return { _tag: "granted", probe }
              case "denied":
                return denied
              case "adopt": {
                const remote = remoteOf(reply.value[1], reply.value[2], reply.value[3])
                return remote === undefined ? local : { _tag: "adopt", remote: remote.snapshot, reason: remote.reason }
              }
              default:
                return local
            }
          }
        )
      })

    const releaseProbe: NonNullable<Api.Store["releaseProbe"]> = (key, probe) =>
      Effect.sync(() =>
        connection.fork(
          Effect.asVoid(connection.run("breaker.release", (client) => client.zrem(probesKey(key), probe)))
        )
      )

    const sync = (onlyOpen: boolean) =>
      Effect.suspend(() => {
        if (follower === undefined || !connection.healthy) return Effect.void
        const current = follower
        return Effect.flatMap(current.local, (all) => {
          const snapshots = onlyOpen ? all.filter((snapshot) => snapshot.state !== "Closed") : all
          return Effect.forEach(snapshots, (snapshot) =>
            Effect.flatMap(
              connection.run("breaker.sync", () =>
                scripts.llmrCbSync(
                  stateKey(snapshot.key),
                  probesKey(snapshot.key),
                  JSON.stringify(snapshot),
                  snapshot.state,
                  snapshot.openUntil,
                  "Manual",
                  connection.id,
                  options.ttlMs,
                  channel
                )),
              (reply) => Option.isSome(reply) && reply.value[0] === 0 ? adopt(reply.value) : Effect.void
            ), { discard: true })
        })
      })

    const watch: NonNullable<Api.Store["watch"]> = (next) =>
      Effect.suspend(() => {
        follower = next
        connection.onRecover(sync(false))
        // Anti-entropy for a message lost in a reconnect: a breaker that is open here but closed in the fleet would
        // otherwise stay open for its whole cooldown. Closed breakers need no sweep: they hear of a trip from their
        // own failures at worst.
        const sweep = Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(options.syncIntervalMs)), sync(true)))
        return Effect.zipRight(
          Effect.asVoid(Effect.forkScoped(sweep)),
          connection.subscribe(channel, (message) => {
            const parsed: unknown = JSON.parse(message)
            if (typeof parsed !== "object" || parsed === null) return
            const { o, r, s, st } = parsed as Record<string, unknown>
            if (o === connection.id) return
            const remote = remoteOf(st, JSON.stringify(s), r)
            if (remote !== undefined) connection.fork(next.adopt(remote.snapshot, remote.reason))
          })
        )
      })

    return { load, save, acquireProbe, releaseProbe, watch }
  })
