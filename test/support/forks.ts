import * as Effect from "effect/Effect"
import * as Supervisor from "effect/Supervisor"

/** Counts the fibers started under it (`Effect.supervised(forks)`). */
export class Forks extends Supervisor.AbstractSupervisor<number> {
  count = 0
  get value() {
    return Effect.sync(() => this.count)
  }
  override onStart() {
    this.count++
  }
}
