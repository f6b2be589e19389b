/**
 * A rate-limit store in Redis: global RPM / TPM across a fleet, and pauses (429 Retry-After) shared by every process.
 *
 * Why not `@effect/experimental`'s `RateLimiter` with its Redis store: it can only consume — it cannot give a charge
 * back (an interrupted call, a reconciled token estimate) or pause a key until a Retry-After — and every check would
 * be a network round trip. This is the smallest piece that can.
 *
 * How: each process leases quota from a shared sliding-window log in batches, so each call's check stays the
 * synchronous check of `rateLimitBucket.ts` (the lease is one more number to compare):
 *
 * - The log is a sorted set of leases plus a hash of their sizes (requests, tokens) and running sums. A lease is
 *   granted by one Lua script (expire, sum, grant what fits): the fleet never holds more than the limit.
 * - A lease is valid locally until `now + leaseMs` and is scored in the log at that instant, so it stays counted for
 *   a full window after its last possible use: no 60 s span ever starts more than the limit, whichever process
 *   started them. The price is `leaseMs` of the window (default 1/20 of it).
 * - Unused quota goes back (a lease that lapses, a call that never started); a reconciled token estimate is
 *   refunded to its lease, and overspend is charged as a new entry, as the in-memory bucket does.
 * - A pause is written to the shared hash (the later deadline wins) and published; every process pauses the key.
 * - Concurrency and provider headers stay per process.
 *
 * While Redis is unavailable each bucket falls back to its local state (`onUnavailable`): `local` (the full limits
 * per process — the fleet may admit up to N times the limit), `open` (no RPM / TPM limit, concurrency still
 * applies), or `closed` (no call starts until Redis answers again; waiting callers wait up to `maxWait`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import type { RateLimitInfo } from "../Llm.js"
import {
  type Blocked,
  type BlockingLimit,
  type Bucket,
  type BucketSnapshot,
  MemoryBucket,
  type ResolvedLimits,
  type Store,
  type Ticket
} from "./rateLimitBucket.js"
import type { Connection } from "./redisConnection.js"

/** @internal */
export type Unavailable = "local" | "open" | "closed"

/** @internal */
export interface LimiterStoreOptions {
  readonly onUnavailable: Unavailable
  /** Requests per lease; `undefined`: 1/20 of the limit (at least 1). */
  readonly leaseRequests: number | undefined
  /** How long a lease may be used; `undefined`: 1/20 of the window, at most 1 s. */
  readonly leaseMs: number | undefined
  readonly ttlMs: number
}

// KEYS: log zset, sums hash. ARGV: now, window, rpm (-1: none), tpm (-1: none), want requests, want tokens,
// tokens needed now, lease id, lease end (its score), ttl.
// Returns {requests, tokens, pausedUntil, readyAt, limit}: a grant, or nothing and when to ask again.
const LEASE = `
local now = tonumber(ARGV[1])
local cutoff = now - tonumber(ARGV[2])
local R = tonumber(redis.call('HGET', KEYS[2], 'R') or '0')
local T = tonumber(redis.call('HGET', KEYS[2], 'T') or '0')
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #old > 0 then
  for _, id in ipairs(old) do
    R = R - tonumber(redis.call('HGET', KEYS[2], 'r:' .. id) or '0')
    T = T - tonumber(redis.call('HGET', KEYS[2], 't:' .. id) or '0')
    redis.call('HDEL', KEYS[2], 'r:' .. id, 't:' .. id)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  if R < 0 then R = 0 end
  if T < 0 then T = 0 end
  redis.call('HSET', KEYS[2], 'R', R, 'T', T)
end
local pause = tonumber(redis.call('HGET', KEYS[2], 'pause') or '0')
if pause > now then return {0, 0, tostring(pause), tostring(pause), 'paused'} end
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local gR = tonumber(ARGV[5])
local gT = tonumber(ARGV[6])
if rpm >= 0 then gR = math.min(gR, rpm - R) else gR = 0 end
if tpm >= 0 then gT = math.min(gT, tpm - T) else gT = 0 end
local short = nil
if rpm >= 0 and gR < 1 then short = 'requests' elseif tpm >= 0 and gT < tonumber(ARGV[7]) then short = 'tokens' end
if short then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local readyAt = now + 1
  if first[2] then readyAt = tonumber(first[2]) + tonumber(ARGV[2]) end
  return {0, 0, '0', tostring(readyAt), short}
end
redis.call('ZADD', KEYS[1], ARGV[9], ARGV[8])
redis.call('HSET', KEYS[2], 'r:' .. ARGV[8], gR, 't:' .. ARGV[8], gT, 'R', R + gR, 'T', T + gT)
redis.call('PEXPIRE', KEYS[1], ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[10])
return {gR, gT, '0', '0', ''}
`

// KEYS: log zset, sums hash. ARGV: lease id, requests delta, tokens delta, score for a new entry, ttl.
// Gives back (negative deltas) to a lease still in the log, or charges extra (a new entry when the lease is gone).
const ADJUST = `
local id = ARGV[1]
local dR = tonumber(ARGV[2])
local dT = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], id) then
  local r = tonumber(redis.call('HGET', KEYS[2], 'r:' .. id) or '0')
  local t = tonumber(redis.call('HGET', KEYS[2], 't:' .. id) or '0')
  if r + dR < 0 then dR = -r end
  if t + dT < 0 then dT = -t end
  redis.call('HSET', KEYS[2], 'r:' .. id, r + dR, 't:' .. id, t + dT)
  redis.call('HINCRBY', KEYS[2], 'R', dR)
  redis.call('HINCRBY', KEYS[2], 'T', dT)
  return 1
end
if dR > 0 or dT > 0 then
  if dR < 0 then dR = 0 end
  if dT < 0 then dT = 0 end
  id = id .. '+' .. ARGV[4]
  redis.call('ZADD', KEYS[1], ARGV[4], id)
  redis.call('HSET', KEYS[2], 'r:' .. id, dR, 't:' .. id, dT)
  redis.call('HINCRBY', KEYS[2], 'R', dR)
  redis.call('HINCRBY', KEYS[2], 'T', dT)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 0
`

// KEYS: sums hash. ARGV: until, ttl, channel, message. The later pause wins.
const PAUSE = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0')
if tonumber(ARGV[1]) <= cur then return 0 end
redis.call('HSET', KEYS[1], 'pause', ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`

type Reply = Array<string | number>

interface Scripts {
  llmrRlLease(...args: Array<string | number>): Promise<Reply>
  llmrRlAdjust(...args: Array<string | number>): Promise<number>
  llmrRlPause(...args: Array<string | number>): Promise<number>
}

const defineScripts = (client: Redis): Scripts => {
  client.defineCommand("llmrRlLease", { numberOfKeys: 2, lua: LEASE })
  client.defineCommand("llmrRlAdjust", { numberOfKeys: 2, lua: ADJUST })
  client.defineCommand("llmrRlPause", { numberOfKeys: 1, lua: PAUSE })
  return client as unknown as Scripts
}

interface Lease {
  readonly id: string
  requests: number
  tokens: number
  readonly until: number
}

const limitOf = (value: unknown): BlockingLimit =>
  value === "paused" || value === "tokens" || value === "concurrency" ? value : "requests"

interface Shared {
  readonly connection: Connection
  readonly scripts: Scripts
  readonly options: LimiterStoreOptions
  readonly channel: string
  nextLease: number
}

class RedisBucket implements Bucket {
  private readonly local: MemoryBucket
  /** Whether there is anything to share: an RPM or a TPM limit. */
  private readonly shares: boolean
  private readonly leaseRequests: number
  private readonly leaseTokens: number
  private readonly leaseMs: number
  private readonly pollMs: number
  private readonly ttlMs: number
  private readonly logKey: string
  private readonly sumsKey: string
  private leases: Array<Lease> = []
  private refilling = false
  /** Redis said the window is full (or the key paused) until then: no need to ask before. */
  private globalReadyAt = 0
  private globalLimit: BlockingLimit = "requests"
  private localPause = 0

  constructor(
    readonly key: string,
    readonly limits: ResolvedLimits,
    private readonly windowMillis: number,
    private readonly shared: Shared,
    private readonly wake: Effect.Effect<void>
  ) {
    const { options } = shared
    this.local = new MemoryBucket(
      options.onUnavailable === "open" ? { concurrency: limits.concurrency, rpm: Infinity, tpm: Infinity } : limits,
      windowMillis
    )
    this.shares = limits.rpm !== Infinity || limits.tpm !== Infinity
    this.leaseRequests = limits.rpm === Infinity
      ? 0
      : Math.max(1, Math.min(limits.rpm, options.leaseRequests ?? Math.ceil(limits.rpm / 20)))
    this.leaseTokens = limits.tpm === Infinity ? 0 : Math.max(1, Math.ceil(limits.tpm / 20))
    this.leaseMs = options.leaseMs ?? Math.max(1, Math.min(1000, Math.floor(windowMillis / 20)))
    this.pollMs = Math.max(1, Math.min(20, Math.floor(this.leaseMs / 4)))
    this.ttlMs = Math.max(options.ttlMs, 2 * windowMillis + this.leaseMs)
    // Hash tags keep a key's log and sums in one slot, so the scripts also run on Redis Cluster.
    this.logKey = shared.connection.key("rl", `{${key}}`, "log")
    this.sumsKey = shared.connection.key("rl", `{${key}}`)
  }

  private get connection(): Connection {
    return this.shared.connection
  }

  /** Drops lapsed leases, giving their unused quota back to the fleet. */
  private lapse(now: number): void {
    if (this.leases.length === 0 || (this.leases[0]?.until ?? Infinity) > now) return
    const kept: Array<Lease> = []
    for (const lease of this.leases) {
      if (lease.until > now) kept.push(lease)
      else this.giveBack(lease.id, lease.requests, lease.tokens, now)
    }
    this.leases = kept
  }

  private giveBack(id: string, requests: number, tokens: number, now: number): void {
    const dR = Number.isFinite(requests) ? requests : 0
    const dT = Number.isFinite(tokens) ? tokens : 0
    if (dR <= 0 && dT <= 0) return
    this.adjust(id, -dR, -dT, now)
  }

  private adjust(id: string, dR: number, dT: number, now: number): void {
    const { connection, scripts } = this.shared
    connection.fork(
      Effect.asVoid(
        connection.run(
          "limiter.adjust",
          () => scripts.llmrRlAdjust(this.logKey, this.sumsKey, id, dR, dT, now, this.ttlMs)
        )
      )
    )
  }

  private leased(): { requests: number; tokens: number } {
    let requests = 0
    let tokens = 0
    for (const lease of this.leases) {
      requests += lease.requests
      tokens += lease.tokens
    }
    return { requests, tokens }
  }

  private refill(now: number, tokensNeeded: number): void {
    if (this.refilling || now < this.globalReadyAt) return
    this.refilling = true
    const { connection, scripts } = this.shared
    const id = `${connection.id}:${++this.shared.nextLease}`
    const until = now + this.leaseMs
    const wantTokens = Math.max(tokensNeeded, this.leaseTokens)
    const request = connection.run("limiter.lease", () =>
      scripts.llmrRlLease(
        this.logKey,
        this.sumsKey,
        now,
        this.windowMillis,
        this.limits.rpm === Infinity ? -1 : this.limits.rpm,
        this.limits.tpm === Infinity ? -1 : this.limits.tpm,
        this.leaseRequests,
        wantTokens,
        tokensNeeded,
        id,
        until,
        this.ttlMs
      ))
    connection.fork(Effect.ensuring(
      Effect.flatMap(request, (reply) => {
        if (Option.isNone(reply)) return Effect.void
        const [requests, tokens, pausedUntil, readyAt, limit] = reply.value
        const grantedRequests = Number(requests)
        const grantedTokens = Number(tokens)
        const pause = Number(pausedUntil)
        if (pause > 0) this.local.pauseUntil(pause)
        if (grantedRequests > 0 || grantedTokens > 0) {
          this.globalReadyAt = 0
          this.leases.push({
            id,
            requests: this.limits.rpm === Infinity ? Infinity : grantedRequests,
            tokens: this.limits.tpm === Infinity ? Infinity : grantedTokens,
            until
          })
          // Waiters need not wait for their next poll.
          this.refilling = false
          return this.wake
        }
        this.globalReadyAt = Number(readyAt)
        this.globalLimit = limitOf(limit)
        return Effect.void
      }),
      Effect.sync(() => {
        this.refilling = false
      })
    ))
  }

  countsTokens(): boolean {
    return this.limits.tpm !== Infinity || this.local.countsTokens()
  }

  check(tokens: number, now: number): Blocked | undefined {
    const blocked = this.local.check(tokens, now)
    if (blocked !== undefined || !this.shares) return blocked
    if (!this.connection.healthy) {
      return this.shared.options.onUnavailable === "closed"
        ? { readyAt: now + this.connection.options.recoveryIntervalMs, limit: "requests", concurrency: false }
        : undefined
    }
    this.lapse(now)
    const leased = this.leased()
    if (leased.requests >= 1 && leased.tokens >= tokens) return undefined
    this.refill(now, tokens)
    return now < this.globalReadyAt
      ? { readyAt: this.globalReadyAt, limit: this.globalLimit, concurrency: false }
      : { readyAt: now + this.pollMs, limit: leased.requests >= 1 ? "tokens" : "requests", concurrency: false }
  }

  take(tokens: number, now: number): Ticket {
    const ticket = this.local.take(tokens, now)
    if (!this.shares || !this.connection.healthy || this.leases.length === 0) return ticket
    let lease: string | undefined
    let owed = tokens
    for (const entry of this.leases) {
      if (lease === undefined && entry.requests >= 1) {
        entry.requests--
        lease = entry.id
      }
      const spent = Math.min(owed, entry.tokens)
      entry.tokens -= spent
      owed -= spent
    }
    // Ask for the next lease before this one runs out, so a steady flow never waits on Redis.
    const leased = this.leased()
    if (leased.requests * 2 < this.leaseRequests || leased.tokens * 2 < this.leaseTokens) this.refill(now, 0)
    return { ...ticket, lease: lease ?? this.leases[0]?.id }
  }

  /** Returns `requests` and `tokens` to the ticket's lease: locally while it is valid, to the fleet otherwise. */
  private credit(ticket: Ticket, requests: number, tokens: number, now: number): void {
    if (ticket.lease === undefined) return
    const lease = this.leases.find((entry) => entry.id === ticket.lease)
    if (lease !== undefined && lease.until > now) {
      lease.requests += requests
      lease.tokens += tokens
    } else {
      this.giveBack(ticket.lease, requests, tokens, now)
    }
  }

  settle(ticket: Ticket, actualTokens: number, now: number): void {
    this.local.settle(ticket, actualTokens, now)
    if (ticket.lease === undefined || this.limits.tpm === Infinity) return
    const delta = actualTokens - ticket.tokens
    if (delta < 0) this.credit(ticket, 0, -delta, now)
    else if (delta > 0) {
      // Spent already: take it from what is leased here, and charge the rest to the fleet's window now.
      let owed = delta
      for (const entry of this.leases) {
        if (entry.until <= now) continue
        const spent = Math.min(owed, entry.tokens)
        entry.tokens -= spent
        owed -= spent
      }
      if (owed > 0) this.adjust(ticket.lease, 0, owed, now)
    }
  }

  cancel(ticket: Ticket): void {
    this.local.cancel(ticket)
    // The call never started: its whole charge goes back. Without a clock here, a lapsed lease is found later.
    this.credit(ticket, 1, ticket.tokens, 0)
  }

  observe(info: RateLimitInfo, now: number): void {
    this.local.observe(info, now)
  }

  pauseUntil(until: number): void {
    this.local.pauseUntil(until)
    if (until <= this.localPause) return
    this.localPause = until
    this.publishPause(until)
  }

  /** A pause another process published. */
  remotePause(until: number): void {
    this.local.pauseUntil(until)
  }

  publishPause(until: number): void {
    const { channel, connection, scripts } = this.shared
    const message = JSON.stringify({ o: connection.id, k: this.key, u: until })
    connection.fork(
      Effect.asVoid(
        connection.run("limiter.pause", () => scripts.llmrRlPause(this.sumsKey, until, this.ttlMs, channel, message))
      )
    )
  }

  /** After an outage: ask Redis afresh, and share a pause taken meanwhile. */
  resync(now: number): void {
    this.globalReadyAt = 0
    if (this.localPause > now) this.publishPause(this.localPause)
  }

  snapshot(now: number): BucketSnapshot {
    return this.local.snapshot(now)
  }
}

/** @internal */
export const makeStore = (
  connection: Connection,
  options: LimiterStoreOptions
): Effect.Effect<Store, never, Scope.Scope> =>
  Effect.gen(function*() {
    const shared: Shared = {
      connection,
      scripts: defineScripts(connection.client),
      options,
      channel: connection.key("rl", "events"),
      nextLease: 0
    }
    const buckets = new Map<string, RedisBucket>()
    connection.onRecover(Effect.clockWith((clock) =>
      Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        for (const bucket of buckets.values()) bucket.resync(now)
      })
    ))
    yield* connection.subscribe(shared.channel, (message) => {
      const parsed: unknown = JSON.parse(message)
      if (typeof parsed !== "object" || parsed === null) return
      const { k, o, u } = parsed as Record<string, unknown>
      if (o === connection.id || typeof k !== "string" || typeof u !== "number") return
      buckets.get(k)?.remotePause(u)
    })
    return {
      bucket: (key, limits, windowMillis, wake) => {
        const bucket = new RedisBucket(key, limits, windowMillis, shared, wake)
        buckets.set(key, bucket)
        return bucket
      }
    }
  })
