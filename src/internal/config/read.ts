/**
 * The configuration file → `Settings`: read, parse (YAML or TOML), interpolate and overlay the environment, decode with
 * Schema, resolve. Every stage collects all of its problems into one `InvalidConfig`.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { parse as parseToml, TomlError } from "smol-toml"
import * as YAML from "yaml"
import { attributeIssue, resolveEnvironment } from "./environment.js"
import { fromParseIssue, InvalidConfig, isNonEmpty, type Issue, type Issues, mapNonEmpty } from "./error.js"
import { resolve } from "./resolve.js"
import * as S from "./schema.js"
import type { Format, Settings } from "./settings.js"

// -----------------------------------------------------------------------------
// reading and parsing
// -----------------------------------------------------------------------------

/** @internal */
export const formatOf = (path: string): Format | undefined => {
  const lower = path.toLowerCase()
  return lower.endsWith(".yaml") || lower.endsWith(".yml") ? "yaml" : lower.endsWith(".toml") ? "toml" : undefined
}

/** @internal */
export const parseText = (text: string, format: Format): Either.Either<unknown, Issues> => {
  if (format === "yaml") {
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true })
    const issues = doc.errors.map((error): Issue => {
      const at = error.linePos?.[0]
      const reason = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
      return {
        path: at === undefined ? "(document)" : `line ${at.line}, column ${at.col}`,
        reason: `malformed YAML: ${reason}`
      }
    })
    if (isNonEmpty(issues)) return Either.left(issues)
    try {
      return Either.right(doc.toJS({ maxAliasCount: 100 }) as unknown)
    } catch (error) {
      // e.g. an alias bomb: "Excessive alias count indicates a resource exhaustion attack"
      return Either.left([{ path: "(document)", reason: `malformed YAML: ${(error as Error).message}` }])
    }
  }
  try {
    return Either.right(parseToml(text) as unknown)
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "")
      return Either.left([{ path: `line ${error.line}, column ${error.column}`, reason: `malformed TOML: ${reason}` }])
    }
    return Either.left([{ path: "(document)", reason: `malformed TOML: ${String(error)}` }])
  }
}

const decodeDocument = Schema.decodeUnknownEither(S.Document, { errors: "all", onExcessProperty: "error" })

// -----------------------------------------------------------------------------
// environment
// -----------------------------------------------------------------------------

/** Reads every `LLM_*` override through the current `ConfigProvider`; blank values count as unset. @internal */
export const readEnv: Effect.Effect<Either.Either<S.EnvValues, Issues>> = Effect.gen(function*() {
  const values: Record<string, unknown> = {}
  const issues: Array<Issue> = []
  for (const name of Object.keys(S.env) as Array<S.EnvName>) {
    const raw = yield* Effect.either(Config.option(Config.string(name)))
    if (Either.isLeft(raw)) {
      issues.push({ path: name, reason: "cannot be read from the configuration provider" })
      continue
    }
    if (Option.isNone(raw.right) || raw.right.value.trim() === "") continue
    const schema = S.env[name] as Schema.Schema<unknown, string>
    const decoded = Schema.decodeUnknownEither(schema)(raw.right.value.trim())
    if (Either.isLeft(decoded)) {
      for (const issue of fromParseIssue(decoded.left.issue)) issues.push({ path: name, reason: issue.reason })
    } else {
      values[name] = decoded.right
    }
  }
  return isNonEmpty(issues) ? Either.left(issues) : Either.right(values as S.EnvValues)
})

// -----------------------------------------------------------------------------
// the pipeline
// -----------------------------------------------------------------------------

/** @internal */
export const settingsFromString = (
  text: string,
  format: Format,
  source: string
): Effect.Effect<Settings, InvalidConfig> =>
  Effect.gen(function*() {
    const env = yield* readEnv
    const raw = parseText(text, format)
    if (Either.isLeft(raw)) return yield* InvalidConfig.of(source, raw.left)
    const environment = yield* resolveEnvironment(raw.right)
    const decoded = decodeDocument(environment.document)
    // A key whose variable is missing is reported once, for the variable.
    const unresolved = new Set(environment.issues.map((issue) => issue.path))
    const docIssues = Either.isLeft(decoded)
      ? fromParseIssue(decoded.left.issue).filter((issue) => !unresolved.has(issue.path)).map(
        attributeIssue(environment)
      )
      : []
    const envIssues = Either.isLeft(env) ? env.left : []
    const all = [...environment.issues, ...docIssues, ...envIssues]
    if (isNonEmpty(all) || Either.isLeft(decoded) || Either.isLeft(env)) {
      return yield* InvalidConfig.of(source, isNonEmpty(all) ? all : [{ path: "(root)", reason: "is invalid" }])
    }
    const settings = resolve(decoded.right, env.right)
    if (Either.isLeft(settings)) {
      return yield* InvalidConfig.of(source, mapNonEmpty(settings.left, attributeIssue(environment)))
    }
    return settings.right
  })

/** @internal */
export const readSource = (
  path: string,
  format: Format | undefined
): Effect.Effect<{ readonly text: string; readonly format: Format }, InvalidConfig, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const resolved = format ?? formatOf(path)
    if (resolved === undefined) {
      return yield* InvalidConfig.of(path, [{
        path,
        reason: "cannot tell the format from the file name: use .yaml, .yml or .toml, or pass the format"
      }])
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* Effect.mapError(
      fs.readFileString(path),
      (error) =>
        InvalidConfig.of(path, [{
          path,
          reason: `cannot read the file (${error._tag === "SystemError" ? error.reason : error._tag}): ${error.message}`
        }])
    )
    return { text, format: resolved }
  })

/** @internal */
export const settingsFromFile = (
  path: string,
  format: Format | undefined
): Effect.Effect<Settings, InvalidConfig, FileSystem.FileSystem> =>
  Effect.flatMap(readSource(path, format), ({ format, text }) => settingsFromString(text, format, path))
