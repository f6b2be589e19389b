/**
 * Optional peer dependencies, loaded on first use: an application that never uses a feature does not install its
 * packages, and one that does gets a typed error naming what to install instead of a raw "Cannot find package".
 * @internal
 */
import * as Effect from "effect/Effect"
import { InvalidOptions } from "../LlmError.js"

/** @internal `load` once; a failure names `packages` (the install command) under `field`, and is not remembered. */
export const loader = <A>(
  field: string,
  packages: ReadonlyArray<string>,
  load: () => Promise<A>
): Effect.Effect<A, InvalidOptions> => {
  let loaded: Promise<A> | undefined
  const names = packages.map((name) => JSON.stringify(name)).join(", ")
  const plural = packages.length > 1 ? "optional peer dependencies" : "optional peer dependency"
  return Effect.tryPromise({
    try: () => {
      loaded ??= load()
      // A failed load is not remembered: the package may be installed by the next attempt.
      loaded.catch(() => (loaded = undefined))
      return loaded
    },
    catch: () =>
      new InvalidOptions({
        field,
        reason: `needs the ${plural} ${names}, which ${packages.length > 1 ? "are" : "is"} not installed (npm install ${
          packages.join(" ")
        })`
      })
  })
}
