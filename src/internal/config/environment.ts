/**
 * The environment inside a configuration file, before it is decoded: `${VAR}` in string values, and per-model
 * overrides (`LLM_MODEL_<ID>_<KEY>`). Both are read through the current `ConfigProvider`; a value read here is never
 * echoed in an error — the error names the variable instead.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { formatPath, type Issue } from "./error.js"

// `${NAME}` or `${NAME:-default}`; `$${` is a literal `${`.
const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

const read = (name: string): Effect.Effect<Either.Either<Option.Option<string>, "unreadable">> =>
  Effect.either(Config.option(Config.string(name))).pipe(
    Effect.map(Either.mapLeft(() => "unreadable" as const))
  )

/** Where a value came from, when it came from the environment: the path in the file → the variables. */
export type Sources = ReadonlyMap<string, ReadonlyArray<string>>

/** @internal */
export interface Resolved {
  readonly document: unknown
  readonly issues: ReadonlyArray<Issue>
  /** Paths whose value was interpolated, with the variables used. */
  readonly interpolated: Sources
  /** Paths whose value a per-model variable replaced, with that variable. */
  readonly overridden: ReadonlyMap<string, string>
}

const interpolateString = (
  text: string,
  path: string,
  issues: Array<Issue>,
  used: Array<string>
): Effect.Effect<string> =>
  Effect.gen(function*() {
    if (!text.includes("${")) return text
    let out = ""
    let last = 0
    for (const match of text.matchAll(REFERENCE)) {
      out += text.slice(last, match.index)
      last = match.index + match[0].length
      if (match[0] === "$${") {
        out += "${"
        continue
      }
      const body = match[1] ?? ""
      const split = body.indexOf(":-")
      const name = split === -1 ? body : body.slice(0, split)
      const fallback = split === -1 ? undefined : body.slice(split + 2)
      if (!NAME.test(name)) {
        issues.push({
          path,
          reason:
            `\${${name}} is not an environment variable reference: use \${NAME} or \${NAME:-default}, and $\${ for a literal \${`
        })
        continue
      }
      used.push(name)
      const value = yield* read(name)
      if (Either.isLeft(value)) issues.push({ path, reason: `uses \${${name}}, which cannot be read` })
      else if (Option.isSome(value.right) && value.right.value !== "") out += value.right.value
      else if (fallback !== undefined) out += fallback
      else issues.push({ path, reason: `uses \${${name}}, which is not set` })
    }
    return out + text.slice(last)
  })

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Replaces `${VAR}` in every string value of the parsed document. */
const interpolate = (
  value: unknown,
  path: ReadonlyArray<PropertyKey>,
  issues: Array<Issue>,
  sources: Map<string, ReadonlyArray<string>>
): Effect.Effect<unknown> =>
  Effect.gen(function*() {
    if (typeof value === "string") {
      const at = formatPath(path)
      const used: Array<string> = []
      const out = yield* interpolateString(value, at, issues, used)
      if (used.length > 0) sources.set(at, used)
      return out
    }
    if (Array.isArray(value)) {
      const out: Array<unknown> = []
      for (let index = 0; index < value.length; index++) {
        out.push(yield* interpolate(value[index], [...path, index], issues, sources))
      }
      return out
    }
    if (isRecord(value)) {
      const out: Record<string, unknown> = {}
      for (const [key, field] of Object.entries(value)) {
        out[key] = yield* interpolate(field, [...path, key], issues, sources)
      }
      return out
    }
    return value
  })

/**
 * The model keys an environment variable may override, and whether the value is a number. Names are the file's keys
 * in upper case: `LLM_MODEL_<ID>_BASE_URL`, `LLM_MODEL_<ID>_TIMEOUT`, …
 * @internal
 */
export const modelOverrideKeys = {
  model: "string",
  base_url: "string",
  api_key_env: "string",
  organization: "string",
  project: "string",
  timeout: "string",
  first_chunk_timeout: "string",
  stall_timeout: "string",
  connect_timeout: "string",
  default_max_tokens: "number",
  context_window: "number",
  quality_rank: "number"
} as const

/** `gpt-primary` → `GPT_PRIMARY`: the id as it appears in a per-model variable's name. @internal */
export const idInVariable = (id: string): string => id.toUpperCase().replace(/[^A-Z0-9]+/g, "_").replace(/^_|_$/g, "")

const overrideModels = (
  document: unknown,
  issues: Array<Issue>,
  overridden: Map<string, string>
): Effect.Effect<unknown> =>
  Effect.gen(function*() {
    if (!isRecord(document) || !Array.isArray(document.models)) return document
    const owners = new Map<string, string>()
    const models: Array<unknown> = []
    for (let index = 0; index < document.models.length; index++) {
      const model: unknown = document.models[index]
      if (!isRecord(model) || typeof model.id !== "string" || idInVariable(model.id) === "") {
        models.push(model)
        continue
      }
      const prefix = `LLM_MODEL_${idInVariable(model.id)}_`
      const owner = owners.get(prefix)
      if (owner !== undefined && owner !== model.id) {
        issues.push({
          path: `models[${index}].id`,
          reason: `${JSON.stringify(model.id)} and ${
            JSON.stringify(owner)
          } share the environment prefix ${prefix}: rename one to override it from the environment`
        })
      }
      owners.set(prefix, model.id)
      const out: Record<string, unknown> = { ...model }
      for (const [key, kind] of Object.entries(modelOverrideKeys)) {
        const variable = `${prefix}${key.toUpperCase()}`
        const value = yield* read(variable)
        if (Either.isLeft(value)) {
          issues.push({ path: variable, reason: "cannot be read from the configuration provider" })
          continue
        }
        if (Option.isNone(value.right) || value.right.value.trim() === "") continue
        const text = value.right.value.trim()
        out[key] = kind === "number" && text !== "" && !Number.isNaN(Number(text)) ? Number(text) : text
        overridden.set(`models[${index}].${key}`, variable)
      }
      models.push(out)
    }
    return { ...document, models }
  })

/** Interpolates `${VAR}` references, then applies the per-model variables. @internal */
export const resolveEnvironment = (document: unknown): Effect.Effect<Resolved> =>
  Effect.gen(function*() {
    const issues: Array<Issue> = []
    const interpolated = new Map<string, ReadonlyArray<string>>()
    const overridden = new Map<string, string>()
    const expanded = yield* interpolate(document, [], issues, interpolated)
    const overriddenDocument = yield* overrideModels(expanded, issues, overridden)
    return { document: overriddenDocument, issues, interpolated, overridden }
  })

/**
 * An issue about a value that came from the environment: at a per-model variable it is reported under that variable's
 * name; an interpolated value is named by its variables. Either way the value is not shown.
 * @internal
 */
export const attributeIssue = (resolved: Pick<Resolved, "interpolated" | "overridden">) => (issue: Issue): Issue => {
  const variable = resolved.overridden.get(issue.path)
  const hide = (reason: string) => {
    const at = reason.lastIndexOf(", got ")
    return at === -1 ? reason : reason.slice(0, at)
  }
  if (variable !== undefined) return { path: variable, reason: `${hide(issue.reason)} (value hidden)` }
  const used = resolved.interpolated.get(issue.path)
  if (used !== undefined) {
    return {
      path: issue.path,
      reason: `${hide(issue.reason)} (from ${used.map((name) => `\${${name}}`).join(", ")}; value hidden)`
    }
  }
  return issue
}
