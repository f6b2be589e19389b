/**
 * The smallest strict-FIFO permit queues with their waiters parked as fibers (a counter, an array of `Effect.async`
 * resumes; no `maxWait`, no windows, no metrics): the floors of any limiter whose waiters are fibers, for
 * bench/compare.ts and bench/limiter-queue.ts.
 *
 * - `smallestQueue`: the call inside `ensuring` (its permit comes back however it ends), the wait outside it. Not
 *   interrupt-safe: a permit handed to a waiter that is interrupted before it runs is lost.
 * - `bareQueue`: no region at all (the permit comes back only when the call succeeds): a parked fiber's suspension
 *   and resumption by another fiber, and nothing else.
 * - `safeQueue`: the smallest interrupt-safe one: the wait and the call in one interruptible region and one
 *   `matchCauseEffect` inside an uninterruptible one (the shape of `RateLimit`'s queued call), which gives back a
 *   permit however the call ends and passes on one handed to a waiter interrupted before it ran.
 */
import * as Effect from "effect/Effect"

type Resume = (effect: Effect.Effect<void>) => void

/**
 * The permit counter and FIFO of resumes both unsafe queues share: `acquire` takes a permit or parks the fiber;
 * `release` hands the permit to the oldest waiter, or frees it.
 */
const fifo = (permits: number) => {
  let free = permits
  const waiters: Array<Resume | undefined> = []
  let head = 0
  const release = (): void => {
    if (head < waiters.length) {
      const resume = waiters[head]
      waiters[head++] = undefined
      if (head === waiters.length) {
        waiters.length = 0
        head = 0
      }
      resume?.(Effect.void)
    } else {
      free++
    }
  }
  const acquire = Effect.suspend(() => {
    if (free > 0 && head === waiters.length) {
      free--
      return Effect.void
    }
    return Effect.async<void>((resume) => {
      waiters.push(resume)
    })
  })
  return { acquire, release }
}

/** `ensuring` around the call; the wait outside it. */
export const smallestQueue = (permits: number) => {
  const { acquire, release } = fifo(permits)
  const released = Effect.sync(release)
  return <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.flatMap(acquire, () => Effect.ensuring(effect, released))
}

/** No region: the permit comes back when the call succeeds. */
export const bareQueue = (permits: number) => {
  const { acquire, release } = fifo(permits)
  const releasing = <A>(value: A): A => {
    release()
    return value
  }
  return <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.flatMap(acquire, () => Effect.map(effect, releasing))
}

class Waiter {
  /** Queued, handed the permit, running the call, or gone (interrupted while queued). */
  state: "queued" | "handed" | "running" | "gone" = "queued"
  resume: Resume | undefined = undefined
}

/** Interrupt-safe: one uninterruptible region, the wait and the call in one interruptible region and one handler. */
export const safeQueue = (permits: number) => {
  let free = permits
  const waiters: Array<Waiter | undefined> = []
  let head = 0
  const release = (): void => {
    while (head < waiters.length) {
      const waiter = waiters[head]
      waiters[head++] = undefined
      if (head === waiters.length) {
        waiters.length = 0
        head = 0
      }
      if (waiter?.state === "queued") {
        waiter.state = "handed"
        waiter.resume?.(Effect.void)
        return
      }
    }
    free++
  }
  return <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.uninterruptibleMask((restore) => {
      if (free > 0 && head === waiters.length) {
        free--
        return Effect.matchCauseEffect(restore(effect), {
          onSuccess: (value) => {
            release()
            return Effect.succeed(value)
          },
          onFailure: (cause) => {
            release()
            return Effect.failCause(cause)
          }
        })
      }
      const waiter = new Waiter()
      waiters.push(waiter)
      const wait = Effect.async<void>((resume) => {
        if (waiter.state === "handed") resume(Effect.void)
        else waiter.resume = resume
      })
      const run = Effect.flatMap(wait, () => {
        waiter.state = "running"
        return effect
      })
      return Effect.matchCauseEffect(restore(run), {
        onSuccess: (value) => {
          release()
          return Effect.succeed(value)
        },
        onFailure: (cause) => {
          // Interrupted while queued: nothing to give back; handed the permit or running: pass it on.
          if (waiter.state === "queued") waiter.state = "gone"
          else release()
          return Effect.failCause(cause)
        }
      })
    })
}
