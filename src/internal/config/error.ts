/**
 * The configuration error and the translation of Schema parse issues into `path: reason` lines.
 *
 * @internal
 */
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"

/**
 * One problem: where (`chain[1].breaker.threshold`, an environment variable name, or `line 3, column 7`) and why.
 *
 * @since 0.1.0
 * @category Models
 */
export const Issue = Schema.Struct({ path: Schema.String, reason: Schema.String })

/**
 * @since 0.1.0
 * @category Models
 */
export type Issue = typeof Issue.Type

/**
 * The configuration is unusable. `issues` lists every problem found (at least one); `path` and `reason` repeat the
 * first one. `source` names the file (or `<string>`, `environment`). Never carries a secret's value.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>("effect-llm-resilience/InvalidConfig")(
  "InvalidConfig",
  {
    source: Schema.String,
    path: Schema.String,
    reason: Schema.String,
    issues: Schema.NonEmptyArray(Issue)
  }
) {
  /**
   * @since 0.1.0
   */
  static of(source: string, issues: readonly [Issue, ...Array<Issue>]): InvalidConfig {
    const [first, ...rest] = issues.map(hideSecretValue)
    return new InvalidConfig({ source, path: first!.path, reason: first!.reason, issues: [first!, ...rest] })
  }

  /**
   * @since 0.1.0
   */
  override get message(): string {
    const lines = this.issues.map((issue) => `  ${issue.path}: ${issue.reason}`)
    const count = this.issues.length === 1 ? "1 problem" : `${this.issues.length} problems`
    return `Invalid configuration (${this.source}), ${count}:\n${lines.join("\n")}`
  }
}

// Fields a secret can land in by mistake: a key pasted into `api_key_env`, a `user:key@` base URL, an auth header,
// or any `LLM_*` variable (set in the same shell as the keys). Their values are never echoed.
const SECRET_FIELD = /(^|\.)(api_key_env|base_url|headers)(\.|\[|$)|^LLM_|_API_KEY$|_KEY$|_TOKEN$|_SECRET$/

/**
 * An issue whose path can carry a secret says what was expected, never what was given: `(value hidden)`.
 * @internal
 */
export const hideSecretValue = (issue: Issue): Issue => {
  if (!SECRET_FIELD.test(issue.path)) return issue
  const at = issue.reason.lastIndexOf(", got ")
  return at === -1 ? issue : { path: issue.path, reason: `${issue.reason.slice(0, at)} (value hidden)` }
}

/** @internal */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else {
      const name = String(key)
      out += out === "" ? name : /^[A-Za-z_][A-Za-z0-9_-]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`
    }
  }
  return out === "" ? "(root)" : out
}

/** @internal */
export const show = (u: unknown): string => {
  if (u === undefined) return "nothing"
  if (typeof u === "string") return JSON.stringify(u)
  if (Array.isArray(u)) return "a list"
  if (u !== null && typeof u === "object") return "a table"
  return String(u)
}

const unknownKey = (message: string | undefined): string => {
  const allowed = message?.split("expected: ")[1]
  return allowed === undefined
    ? "unknown key"
    : `unknown key (allowed: ${allowed.split(" | ").map((key) => key.replace(/^"|"$/g, "")).join(", ")})`
}

const describe = (ast: AST.AST): string => {
  const description = AST.getDescriptionAnnotation(ast)
  if (Option.isSome(description)) return description.value
  switch (ast._tag) {
    case "StringKeyword":
      return "a string"
    case "NumberKeyword":
      return "a number"
    case "BooleanKeyword":
      return "true or false"
    case "Literal":
      return JSON.stringify(ast.literal)
    case "TupleType":
      return ast.elements.length > 0 ? "a non-empty list" : "a list"
    case "TypeLiteral":
      return "a table"
    case "Union": {
      const flat = (ast: AST.AST): Array<AST.AST> =>
        ast._tag === "Union" && Option.isNone(AST.getDescriptionAnnotation(ast)) ? ast.types.flatMap(flat) : [ast]
      const members = flat(ast).map(describe)
      return members.length === 1 ? members[0]! : `one of ${members.join(", ")}`
    }
    case "Refinement":
      return describe(ast.from)
    case "Transformation":
      return describe(ast.from)
    default:
      return String(ast)
  }
}

const literals = (ast: AST.AST): Array<AST.LiteralValue> =>
  ast._tag === "Literal" ? [ast.literal] : ast._tag === "Union" ? ast.types.flatMap(literals) : []

// A union member that failed on the kind of value (a string where a table was expected), not inside it.
const isTypeMismatch = (issue: ParseResult.ParseIssue): boolean =>
  issue._tag === "Type"
  || (issue._tag === "Refinement" && issue.kind === "From" && isTypeMismatch(issue.issue))
  || (issue._tag === "Transformation" && issue.kind === "Encoded" && isTypeMismatch(issue.issue))
  || (issue._tag === "Composite" && issue.ast._tag === "Union"
    && (Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]).every(isTypeMismatch))

/**
 * Turns a parse issue tree into flat `path: reason` lines. Union failures are reported against the one member the
 * value was meant for (an object against the table member), otherwise as "expected one of …".
 *
 * @internal
 */
export const fromParseIssue = (issue: ParseResult.ParseIssue): Array<Issue> => {
  const out: Array<Issue> = []
  const go = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>): void => {
    switch (issue._tag) {
      case "Pointer": {
        const segment = Array.isArray(issue.path) ? issue.path : [issue.path as PropertyKey]
        return go(issue.issue, [...path, ...segment])
      }
      case "Missing":
        out.push({ path: formatPath(path), reason: "is required" })
        return
      case "Unexpected":
        out.push({ path: formatPath(path), reason: unknownKey(issue.message) })
        return
      case "Forbidden":
        out.push({ path: formatPath(path), reason: issue.message ?? "is not allowed" })
        return
      case "Type":
        out.push({
          path: formatPath(path),
          reason: issue.message ?? `expected ${describe(issue.ast)}, got ${show(issue.actual)}`
        })
        return
      case "Refinement":
        if (issue.kind === "Predicate") return go(issue.issue, path)
        // The value is not even of the refined type: describe the refinement, not its base type.
        if (isTypeMismatch(issue.issue)) {
          out.push({ path: formatPath(path), reason: `expected ${describe(issue.ast)}, got ${show(issue.actual)}` })
          return
        }
        return go(issue.issue, path)
      case "Transformation":
        return go(issue.issue, path)
      case "Composite": {
        const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
        if (issue.ast._tag === "TupleType" && Array.isArray(issue.actual) && issue.actual.length === 0) {
          out.push({ path: formatPath(path), reason: "expected a non-empty list, got an empty list" })
          return
        }
        if (issue.ast._tag === "Union") {
          const deep = issues.filter((member) => !isTypeMismatch(member))
          // "p99" against `"p95" | duration`: name both alternatives, not only the one it came closest to.
          const literalOfSameKind = literals(issue.ast).some((literal) => typeof literal === typeof issue.actual)
          if (deep.length === 1 && !literalOfSameKind) return go(deep[0]!, path)
          if (deep.length === 0 || issue.actual === null || typeof issue.actual !== "object") {
            out.push({ path: formatPath(path), reason: `expected ${describe(issue.ast)}, got ${show(issue.actual)}` })
            return
          }
        }
        for (const member of issues) go(member, path)
        return
      }
    }
  }
  go(issue, [])
  return out
}

/** At least one issue. */
export type Issues = readonly [Issue, ...Array<Issue>]

export const isNonEmpty = (issues: ReadonlyArray<Issue>): issues is Issues => issues.length > 0

export const mapNonEmpty = (issues: Issues, f: (issue: Issue) => Issue): Issues => [
  f(issues[0]),
  ...issues.slice(1).map(f)
]
