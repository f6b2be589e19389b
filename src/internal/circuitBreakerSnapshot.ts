/**
 * A circuit breaker's machine to and from the `Snapshot` its store saves and `snapshot` returns.
 * @internal
 */
import type * as Api from "../CircuitBreaker.js"
import * as machine from "./circuitBreakerMachine.js"

/** A breaker's machine as the store saves it and `snapshot` shows it, at `now`. @internal */
export const toSnapshot = (key: string, m: machine.Machine, now: number): Api.Snapshot => {
  const calls = m.count
  const remaining = machine.remaining(m, now)
  return {
    key,
    state: m.state,
    since: m.lastChangeAt,
    at: now,
    generation: m.generation,
    calls,
    failureRate: calls === 0 ? 0 : m.weightSum / calls / 10,
    slowCallRate: calls === 0 ? 0 : (m.slowFixed * 100) / calls,
    consecutiveFailures: m.streak / 1000,
    remainingMs: remaining === Infinity ? null : remaining,
    openedAt: m.openedAt,
    openUntil: m.openUntil,
    reopens: m.reopens,
    probesInFlight: m.inFlight,
    probeSuccesses: m.successes,
    baselineMs: m.baselineMs,
    baselineSamples: m.baselineSamples
  }
}

/** A machine restored from a saved snapshot. @internal */
export const fromSnapshot = (snapshot: Api.Snapshot): machine.Machine => {
  const m = new machine.Machine()
  // Permits and window contents belong to the process that saved them; a restored HalfOpen starts with every
  // permit free, so the next call probes at once.
  m.state = snapshot.state
  m.openedAt = snapshot.openedAt
  m.openUntil = snapshot.openUntil
  m.reopens = snapshot.reopens
  m.baselineMs = snapshot.baselineMs
  m.baselineSamples = snapshot.baselineSamples
  m.lastChangeAt = snapshot.since
  return m
}
