/**
 * Idle expiry of keyed state (breaker-registry entries, limiter keys), without a timer and without a clock read on
 * the way in: an entry is stamped with the current epoch whenever it is used; where a clock reading is at hand anyway
 * (an admission), `due` says whether `idleMs` have passed since the last sweep, and if so starts a new epoch. A sweep
 * removes the entries not used since the sweep before it (and that their owner says hold nothing worth keeping), so
 * an entry goes between one and two `idleMs` after its last use. A client that stops calling keeps what it has.
 * @internal
 */
import type * as Duration from "effect/Duration"
import { InvalidOptions } from "../LlmError.js"
import { checkDuration } from "./duration.js"

/** The default idle expiry of breaker-registry entries and limiter keys. @internal */
export const DEFAULT_IDLE_EXPIRY_MILLIS = 60 * 60_000

/** @internal */
export class IdleExpiry {
  /** Bumped by every sweep; entries carry the epoch of their last use. */
  epoch = 0
  private nextSweepAt = Number.NaN

  constructor(readonly idleMs: number) {}

  /** Whether a sweep is due at `now`; when it is, the next epoch has started. The first call only starts the clock. */
  due(now: number): boolean {
    if (Number.isNaN(this.nextSweepAt)) {
      this.nextSweepAt = now + this.idleMs
      return false
    }
    if (now < this.nextSweepAt) return false
    this.nextSweepAt = now + this.idleMs
    this.epoch++
    return true
  }

  /** Whether an entry last used in epoch `stamp` has been idle for a whole sweep interval. */
  idle(stamp: number): boolean {
    return stamp < this.epoch - 1
  }
}

/**
 * The `idleExpiry` option: a positive duration (default 1 hour), or `false` to keep every key.
 * @internal
 */
export const resolveIdleExpiry = (
  field: string,
  value: Duration.DurationInput | false | undefined
): IdleExpiry | undefined | InvalidOptions => {
  if (value === false) return undefined
  if (value === undefined) return new IdleExpiry(DEFAULT_IDLE_EXPIRY_MILLIS)
  const checked = checkDuration(value)
  return "millis" in checked
    ? new IdleExpiry(checked.millis)
    : new InvalidOptions({ field, reason: `${checked.problem} (or false to keep every key)` })
}
