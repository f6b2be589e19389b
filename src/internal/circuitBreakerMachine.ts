/**
 * The breaker's state machine, free of Effect: plain synchronous functions over one mutable {@link Machine}.
 * The Effect layer (circuitBreaker.ts) keeps the machine in a `Ref` and calls these functions only from inside
 * `Ref.modify`, so every step is atomic with respect to other fibers.
 *
 * @internal
 */

// The public module owns the state and reason vocabularies; the machine uses them as they are.
import type { Reason, State } from "../CircuitBreaker.js"

/** @internal */
export type { Reason, State }

/** @internal */
export interface Change {
  readonly from: State
  readonly to: State
  readonly reason: Reason
  readonly at: number
}

/** What a finished call counts as; a `FAILURE` also carries its weight in thousandths. @internal */
export type Verdict = typeof SUCCESS | typeof FAILURE | typeof IGNORED | typeof FATAL
/** @internal */
export const SUCCESS = 0
/** @internal */
export const FAILURE = 1
/** @internal */
export const IGNORED = 2
/** @internal */
export const FATAL = 3

/** @internal */
export interface Config {
  /** Weighted consecutive failures (thousandths) that trip; `Infinity` disables the policy. */
  readonly streakMilli: number
  /** Failure-rate threshold as a fraction in (0, 1]; `undefined` disables the policy. */
  readonly failureRate: number | undefined
  readonly windowSize: number
  readonly minimumCalls: number
  readonly hardMilli: number
  readonly softMilli: number
  readonly degradedMilli: number
  /** P95 trip multiplier over the P50 baseline; `undefined` disables the policy. */
  readonly latencyMultiplier: number | undefined
  /** A fixed P50 baseline in ms; `undefined` learns it from successful calls. */
  readonly baselineMs: number | undefined
  readonly slowCallMs: number | undefined
  /** Slow-call rate threshold as a fraction in (0, 1]. */
  readonly slowCallRate: number
  readonly cooldownMs: number
  readonly growthFactor: number
  readonly maxCooldownMs: number
  readonly retryAfter: "longer" | "override" | "ignore"
  readonly permits: number
  readonly successThreshold: number
  readonly probeTimeoutMs: number
  /** A call still running this long (or `hangMultiplier` × the learned median, if longer) is hanging; `undefined`: off. */
  readonly hangAfterMs: number | undefined
  readonly hangMultiplier: number
  /** Hanging calls, with no call finished since the first of them started, that open the breaker. */
  readonly hangCalls: number
}

// One slot of the ring buffer packs a call into 16 bits: the failure weight in thousandths (0..1000, 10 bits), and
// whether the call was slow against the learned baseline (bit 10) or against the fixed slow-call threshold (bit 11).
const WEIGHT_MASK = 0x3ff
const SLOW_BASELINE = 1 << 10
const SLOW_FIXED = 1 << 11

// Step of the multiplicative streaming median (a "frugal" estimator: one number of state, O(1) per sample, and a
// single outlier moves it by one step at most, so a slow burst cannot drag the baseline up with it).
const BASELINE_STEP = 1.05
const WARMUP_STEP = 2

/**
 * The whole state of one breaker. Fields are grouped by the state that uses them; the ring buffer is allocated on
 * the first recorded call, so an idle breaker costs one small object.
 *
 * @internal
 */
export class Machine {
  state: State = "Closed"
  /** Bumped by every transition; a ticket from an older generation cannot change this one. */
  generation = 0
  // Closed and MetricsOnly
  streak = 0
  slots: Uint16Array | undefined = undefined
  count = 0
  next = 0
  weightSum = 0
  slowBaseline = 0
  slowFixed = 0
  baselineMs = 0
  baselineSamples = 0
  /** Calls admitted (by `execute`) since the last call finished, all still running; and when the first of them was. */
  waiting = 0
  waitingSince = Infinity
  // Open
  openedAt = 0
  openUntil = 0
  reopens = 0
  // HalfOpen
  inFlight = 0
  successes = 0
  probeDeadline = Infinity
  lastChangeAt = 0
}

/** Admission outcomes other than a ticket (tickets are generations, always >= 0). @internal */
export const REJECTED = -1
/** @internal */
export const BYPASS = -2

/** The cooldown the next re-open will use, growing with every consecutive re-open from HalfOpen. @internal */
export const cooldownFor = (config: Config, reopens: number): number =>
  reopens === 0 ? config.cooldownMs : Math.min(
    config.maxCooldownMs,
    config.cooldownMs * Math.pow(config.growthFactor, reopens)
  )

const clearWindow = (m: Machine): void => {
  if (m.slots !== undefined) m.slots.fill(0)
  m.count = 0
  m.next = 0
  m.weightSum = 0
  m.slowBaseline = 0
  m.slowFixed = 0
  m.streak = 0
}

const transition = (m: Machine, to: State, reason: Reason, at: number, changes: Array<Change>): void => {
  changes.push({ from: m.state, to, reason, at })
  m.state = to
  m.generation++
  m.lastChangeAt = at
  m.waiting = 0
  m.waitingSince = Infinity
  m.inFlight = 0
  m.successes = 0
  m.probeDeadline = Infinity
}

/** @internal */
export const open = (
  m: Machine,
  config: Config,
  at: number,
  reason: Reason,
  retryAfterMs: number | undefined,
  changes: Array<Change>
): void => {
  const reopens = m.state === "HalfOpen" ? m.reopens + 1 : 0
  let cooldown = cooldownFor(config, reopens)
  if (retryAfterMs !== undefined) {
    if (config.retryAfter === "longer") cooldown = Math.max(cooldown, retryAfterMs)
    else if (config.retryAfter === "override") cooldown = retryAfterMs
  }
  transition(m, "Open", reason, at, changes)
  m.reopens = reopens
  m.openedAt = at
  m.openUntil = at + cooldown
}

const close = (m: Machine, reason: Reason, at: number, changes: Array<Change>): void => {
  transition(m, "Closed", reason, at, changes)
  clearWindow(m)
  m.reopens = 0
}

/**
 * Applies the transitions that time alone causes: an elapsed cooldown (Open → HalfOpen) and the probe watchdog
 * (HalfOpen with a permit out past its deadline → Open). Each is stamped with the moment it became due, not the
 * moment it was noticed, so the history reads the same however late the next call comes.
 *
 * @internal
 */
export const poll = (m: Machine, config: Config, now: number, changes: Array<Change>): void => {
  while (due(m, config, now)) {
    if (m.state === "Closed") open(m, config, now, "Hanging", undefined, changes)
    else if (m.state === "Open") transition(m, "HalfOpen", "CooldownElapsed", m.openUntil, changes)
    else open(m, config, m.probeDeadline, "ProbeTimeout", undefined, changes)
  }
}

/** Whether time alone makes a transition due now, which {@link poll} would make. @internal */
export const due = (m: Machine, config: Config, now: number): boolean =>
  m.state === "Closed"
    ? hanging(m, config, now)
    : m.state === "Open"
    ? now >= m.openUntil
    : m.state === "HalfOpen" && m.inFlight > 0 && now >= m.probeDeadline

/**
 * Asks to run one call. Returns the generation as the call's ticket, {@link REJECTED} (see {@link remaining}) or
 * {@link BYPASS} (disabled: run the call and record nothing).
 *
 * @internal
 */
export const admit = (
  m: Machine,
  config: Config,
  now: number,
  changes: Array<Change>,
  watched: boolean
): number => {
  switch (m.state) {
    case "Closed":
      if (hanging(m, config, now)) {
        open(m, config, now, "Hanging", undefined, changes)
        return REJECTED
      }
      if (watched && config.hangAfterMs !== undefined && m.waiting++ === 0) m.waitingSince = now
      return m.generation
    case "MetricsOnly":
      return m.generation
    case "Disabled":
      return BYPASS
    case "ForcedOpen":
      return REJECTED
  }
  poll(m, config, now, changes)
  if (m.state === "HalfOpen" && m.inFlight < config.permits) {
    m.inFlight++
    // The watchdog deadline follows the latest permit taken, so no probe is ever cut short of its own timeout.
    m.probeDeadline = now + config.probeTimeoutMs
    return m.generation
  }
  return REJECTED
}

/**
 * Hang detection: the provider has gone silent. At least `hangCalls` calls have been admitted since the last call
 * finished (so all of them are still running), and the first of them has run past the hang threshold: `hangAfterMs`
 * or `hangMultiplier` × the median latency, whichever is longer. Until the breaker knows the median (a fixed baseline,
 * or `minimumCalls` successful calls learned) it cannot tell a hang from a burst of long calls, and stays quiet. Two
 * numbers of state, O(1), and no timer: checked on admission and on state reads, it trips on the first call after it
 * is due.
 *
 * @internal
 */
export const hanging = (m: Machine, config: Config, now: number): boolean => {
  if (config.hangAfterMs === undefined || m.waiting < config.hangCalls) return false
  const typical = config.baselineMs ?? (m.baselineSamples >= config.minimumCalls ? m.baselineMs : undefined)
  return typical !== undefined && now - m.waitingSince >= Math.max(config.hangAfterMs, config.hangMultiplier * typical)
}

/** Milliseconds until a rejected caller could be admitted (at most: a probe may finish sooner). @internal */
export const remaining = (m: Machine, now: number): number => {
  switch (m.state) {
    case "Open":
      return Math.max(0, m.openUntil - now)
    case "HalfOpen":
      return m.probeDeadline === Infinity ? 0 : Math.max(0, m.probeDeadline - now)
    case "ForcedOpen":
      return Infinity
    default:
      return 0
  }
}

const slowAgainstBaseline = (m: Machine, config: Config, latencyMs: number): boolean => {
  if (config.latencyMultiplier === undefined) return false
  if (config.baselineMs !== undefined) return latencyMs > config.latencyMultiplier * config.baselineMs
  return m.baselineSamples >= config.minimumCalls
    && latencyMs > config.latencyMultiplier * Math.max(1, m.baselineMs)
}

const learnBaseline = (m: Machine, config: Config, latencyMs: number): void => {
  // Large steps while warming up let a first outlier wash out within a few calls; small steps afterwards.
  const step = m.baselineSamples < config.minimumCalls ? WARMUP_STEP : BASELINE_STEP
  if (m.baselineSamples === 0) m.baselineMs = latencyMs
  else if (latencyMs > m.baselineMs) m.baselineMs = Math.min(latencyMs, Math.max(1, m.baselineMs) * step)
  else if (latencyMs < m.baselineMs) m.baselineMs = Math.max(latencyMs, m.baselineMs / step)
  m.baselineSamples++
}

const push = (m: Machine, config: Config, slot: number): void => {
  const size = config.windowSize
  const slots = m.slots ??= new Uint16Array(size)
  if (m.count === size) {
    const evicted = slots[m.next]!
    m.weightSum -= evicted & WEIGHT_MASK
    if ((evicted & SLOW_BASELINE) !== 0) m.slowBaseline--
    if ((evicted & SLOW_FIXED) !== 0) m.slowFixed--
  } else {
    m.count++
  }
  slots[m.next] = slot
  m.weightSum += slot & WEIGHT_MASK
  if ((slot & SLOW_BASELINE) !== 0) m.slowBaseline++
  if ((slot & SLOW_FIXED) !== 0) m.slowFixed++
  m.next = m.next + 1 === size ? 0 : m.next + 1
}

/**
 * Which policy the window currently violates, if any. P95 uses the nearest-rank definition: over `n` calls it is the
 * `ceil(0.95 n)`-th fastest, so it exceeds the limit exactly when more than `n - ceil(0.95 n)` calls do — a count
 * kept in O(1), with no sorting.
 *
 * @internal
 */
export const violation = (m: Machine, config: Config): Reason | undefined => {
  if (m.streak >= config.streakMilli) return "ConsecutiveFailures"
  const n = m.count
  if (n < config.minimumCalls) return undefined
  if (config.failureRate !== undefined && m.weightSum >= config.failureRate * n * 1000) return "FailureRate"
  if (config.latencyMultiplier !== undefined && m.slowBaseline > n - Math.ceil(0.95 * n)) return "LatencyP95"
  if (config.slowCallMs !== undefined && m.slowFixed >= config.slowCallRate * n) return "SlowCallRate"
  return undefined
}

/**
 * Records a finished call admitted with `ticket`. A ticket from an older generation changes nothing: its period has
 * ended (and any half-open permit it held ended with it). `milli` is the failure weight of a `FAILURE`.
 *
 * @internal
 */
export const record = (
  m: Machine,
  config: Config,
  ticket: number,
  verdict: Verdict,
  milli: number,
  latencyMs: number,
  retryAfterMs: number | undefined,
  now: number,
  changes: Array<Change>,
  watched: boolean
): void => {
  if (ticket !== m.generation) return
  if (verdict !== IGNORED) {
    // A call finished: the provider is answering, whatever it answered.
    m.waiting = 0
    m.waitingSince = Infinity
  } else if (watched && m.waiting > 0 && now - latencyMs >= m.waitingSince && --m.waiting === 0) {
    // Interrupted or ignored: it no longer waits, and says nothing about the provider.
    m.waitingSince = Infinity
  }
  if (m.state === "HalfOpen") {
    m.inFlight--
    if (verdict === IGNORED) {
      // Released without a decision: the next caller may probe.
      if (m.inFlight === 0) m.probeDeadline = Infinity
      return
    }
    if (verdict === FATAL) {
      open(m, config, now, "FatalFailure", retryAfterMs, changes)
    } else if (verdict === FAILURE && milli > 0) {
      open(m, config, now, "ProbeFailed", retryAfterMs, changes)
    } else if (++m.successes >= config.successThreshold) {
      close(m, "ProbesSucceeded", now, changes)
    } else if (m.inFlight === 0) {
      m.probeDeadline = Infinity
    }
    return
  }
  if (verdict === IGNORED) return
  const weight = verdict === SUCCESS ? 0 : verdict === FATAL ? 1000 : milli
  let slot = weight
  if (slowAgainstBaseline(m, config, latencyMs)) slot |= SLOW_BASELINE
  if (config.slowCallMs !== undefined && latencyMs > config.slowCallMs) slot |= SLOW_FIXED
  if (
    verdict === SUCCESS && (config.latencyMultiplier !== undefined || config.hangAfterMs !== undefined)
    && config.baselineMs === undefined
  ) {
    learnBaseline(m, config, latencyMs)
  }
  push(m, config, slot)
  m.streak = weight === 0 ? 0 : m.streak + weight
  if (m.state !== "Closed") return
  if (verdict === FATAL) {
    open(m, config, now, "FatalFailure", retryAfterMs, changes)
    return
  }
  const reason = violation(m, config)
  if (reason !== undefined) open(m, config, now, reason, retryAfterMs, changes)
}

/** Moves to a state by hand; `forget` also drops the learned latency baseline. @internal */
export const force = (
  m: Machine,
  to: "Closed" | "ForcedOpen" | "Disabled" | "MetricsOnly",
  now: number,
  changes: Array<Change>,
  forget: boolean
): void => {
  if (m.state === to && !forget) return
  if (m.state === to) {
    m.generation++
  } else {
    transition(m, to, "Manual", now, changes)
  }
  if (to === "Closed" || to === "MetricsOnly") {
    clearWindow(m)
    m.reopens = 0
  }
  if (forget) {
    m.baselineMs = 0
    m.baselineSamples = 0
  }
}

/** What a shared store says another instance's breaker moved to. @internal */
export interface Remote {
  readonly state: State
  readonly openedAt: number
  readonly openUntil: number
  readonly reopens: number
}

/**
 * Follows a transition made by another instance of the fleet (a shared store heard it). Adopting is itself a
 * transition here (the generation moves on, so local tickets of the old period are fenced out), except when the
 * local breaker is already there: then an `Open` only takes the later deadline. Window contents stay local.
 *
 * @internal
 */
export const adopt = (m: Machine, remote: Remote, reason: Reason, now: number, changes: Array<Change>): void => {
  if (m.state === remote.state) {
    if (remote.state === "Open" && remote.openUntil > m.openUntil) {
      m.openUntil = remote.openUntil
      m.openedAt = remote.openedAt
      m.reopens = remote.reopens
    }
    return
  }
  switch (remote.state) {
    case "Open":
      transition(m, "Open", reason, now, changes)
      m.openedAt = remote.openedAt
      m.openUntil = remote.openUntil
      m.reopens = remote.reopens
      return
    case "HalfOpen":
      // Another instance saw the cooldown end; this one probes through the store like every other.
      transition(m, "HalfOpen", reason, now, changes)
      m.reopens = remote.reopens
      return
    case "Closed":
    case "MetricsOnly":
      transition(m, remote.state, reason, now, changes)
      clearWindow(m)
      m.reopens = 0
      return
    case "ForcedOpen":
    case "Disabled":
      transition(m, remote.state, reason, now, changes)
      return
  }
}
