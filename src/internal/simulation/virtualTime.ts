/**
 * Discrete-event virtual time for Effect programs: a `Clock` whose `sleep` registers a timer in a heap, and a
 * `Scheduler` that queues fiber work instead of handing it to the event loop. The driver runs every queued task,
 * and when nothing is runnable jumps the clock to the next timer. The program is unchanged real library code; only
 * time is simulated, so a year of traffic runs in seconds.
 *
 * Why not `TestClock`: each `TestClock.adjust` yields to the real event loop and costs ~5 ms, which caps a
 * simulation at a few hundred timer firings per second. Here a firing is a heap pop and a function call.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Scheduler from "effect/Scheduler"

interface Timer {
  readonly at: number
  readonly seq: number
  /** Cleared when the sleeping fiber is interrupted: the timer is dropped when it reaches the top of the heap. */
  fire: (() => void) | undefined
}

const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

/** A binary min-heap on (time, insertion order), so timers due together fire in the order they were set. */
class TimerHeap {
  private readonly items: Array<Timer> = []

  get size(): number {
    return this.items.length
  }

  push(timer: Timer): void {
    const items = this.items
    let index = items.push(timer) - 1
    while (index > 0) {
      const parent = (index - 1) >> 1
      const above = items[parent]!
      if (!before(timer, above)) break
      items[index] = above
      index = parent
    }
    items[index] = timer
  }

  pop(): Timer | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let index = 0
    for (;;) {
      const left = 2 * index + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && before(items[right]!, items[left]!) ? right : left
      if (!before(items[child]!, last)) break
      items[index] = items[child]!
      index = child
    }
    items[index] = last
    return top
  }
}

/**
 * What `Effect.sleep(Duration.millis(millis))` waits, without building the Duration: a Duration keeps whole
 * nanoseconds (and nothing below zero), so a seed replays the same figures whichever way a delay is taken.
 */
export const sleptMillis = (millis: number): number =>
  !(millis > 0)
    ? 0
    : Number.isInteger(millis) || !Number.isFinite(millis)
    ? millis
    : Math.round(millis * 1_000_000) / 1_000_000

/** How the driver reports progress and lets the real event loop breathe. */
export interface RunOptions {
  /** Called about every `sliceMillis` of real time with the virtual time. */
  readonly onProgress?: ((virtualMillis: number) => void) | undefined
  /** Real time the driver runs before it yields to the event loop. Default 50 ms. */
  readonly sliceMillis?: number | undefined
}

/** Counters of one run, for the report. */
export interface VirtualTimeStats {
  readonly timersFired: number
  readonly tasksRun: number
}

export class VirtualTime {
  private nowMillis: number
  private seq = 0
  private readonly timers = new TimerHeap()
  private tasks: Array<Scheduler.Task> = []
  /** The batch array of the previous pass, emptied, reused for the next one. */
  private spare: Array<Scheduler.Task> = []
  private firedCount = 0
  private taskCount = 0

  constructor(startMillis = 0) {
    this.nowMillis = startMillis
  }

  get now(): number {
    return this.nowMillis
  }

  get stats(): VirtualTimeStats {
    return { timersFired: this.firedCount, tasksRun: this.taskCount }
  }

  readonly scheduler: Scheduler.Scheduler = {
    shouldYield: Scheduler.defaultShouldYield,
    scheduleTask: (task) => {
      this.tasks.push(task)
    }
  }

  /**
   * Calls `fire` (plain code, outside any fiber) once `millis` of virtual time have passed, in the same order as the
   * timers of `sleep`: the simulator's arrivals, which need no fiber of their own.
   */
  schedule(millis: number, fire: () => void): void {
    this.timers.push({ at: this.nowMillis + Math.max(0, millis), seq: this.seq++, fire })
  }

  readonly clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => this.nowMillis,
    currentTimeMillis: Effect.sync(() => this.nowMillis),
    unsafeCurrentTimeNanos: () => BigInt(Math.round(this.nowMillis * 1_000_000)),
    currentTimeNanos: Effect.sync(() => BigInt(Math.round(this.nowMillis * 1_000_000))),
    sleep: (duration) => {
      const millis = Duration.toMillis(duration)
      if (!Number.isFinite(millis)) return Effect.never
      return Effect.async<void>((resume) => {
        const timer: Timer = {
          at: this.nowMillis + Math.max(0, millis),
          seq: this.seq++,
          fire: () => resume(Effect.void)
        }
        this.timers.push(timer)
        return Effect.sync(() => {
          timer.fire = undefined
        })
      })
    }
  }

  private drain(): void {
    // Tasks queued while draining run in the same pass; the two arrays swap so that neither grows without bound.
    while (this.tasks.length > 0) {
      const batch = this.tasks
      this.tasks = this.spare
      for (let index = 0; index < batch.length; index++) batch[index]!()
      this.taskCount += batch.length
      batch.length = 0
      this.spare = batch
    }
  }

  /**
   * Runs the effect to its end in virtual time. Real asynchronous work (a dynamic import, a socket) still works:
   * when no timer is due the driver waits on the event loop, so only programs that wait on nothing at all hang.
   */
  run<A, E>(effect: Effect.Effect<A, E>, options: RunOptions = {}): Promise<Exit.Exit<A, E>> {
    const sliceMillis = options.sliceMillis ?? 50
    const fiber: Fiber.RuntimeFiber<A, E> = Effect.runFork(Effect.withClock(effect, this.clock), {
      scheduler: this.scheduler
    })
    return new Promise((resolve) => {
      const slice = () => {
        const deadline = performance.now() + sliceMillis
        for (let step = 1;; step++) {
          this.drain()
          const exit = fiber.unsafePoll()
          if (exit !== null) return resolve(exit)
          const timer = this.timers.pop()
          if (timer === undefined) {
            // Nothing due in virtual time: the program waits on real I/O.
            setTimeout(slice, 1)
            return
          }
          if (timer.fire === undefined) continue
          if (timer.at > this.nowMillis) this.nowMillis = timer.at
          this.firedCount++
          timer.fire()
          if ((step & 255) === 0 && performance.now() > deadline) {
            options.onProgress?.(this.nowMillis)
            setImmediate(slice)
            return
          }
        }
      }
      slice()
    })
  }
}

/** Runs an effect in a fresh virtual time starting at `startMillis`; fails the promise on a defect. */
export const runVirtual = async <A, E>(
  effect: Effect.Effect<A, E>,
  options: RunOptions & { readonly startMillis?: number } = {}
): Promise<{ readonly exit: Exit.Exit<A, E>; readonly time: VirtualTime }> => {
  const time = new VirtualTime(options.startMillis ?? 0)
  const exit = await time.run(effect, options)
  return { exit, time }
}
