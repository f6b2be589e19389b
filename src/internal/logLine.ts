/**
 * The library's log lines other than the request event: each is a message naming the event (`llm.retry`,
 * `llm.circuit_breaker`, …) with its fields as log annotations, so every logger prints it on one line and the JSON
 * logger prints it with the same `event` / `level` / `ts` keys as the request event.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import type * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/** @internal A field of a log line; `undefined` fields are left out. */
export type Field = string | number | boolean | undefined

/** @internal The events the library logs besides `llm.request`. */
export type EventName =
  | "llm.retry"
  | "llm.circuit_breaker"
  | "llm.settings_ignored"
  | "llm.redis.unavailable"
  | "llm.redis.available"

const EVENT = /^llm\.[a-z_.]+$/

/** @internal Whole milliseconds; other numbers to six decimals (a micro-dollar, a score). */
export const roundMillis = (value: number): number => Math.round(value)

/** @internal */
export const roundFraction = (value: number): number => Math.round(value * 1e6) / 1e6

/**
 * @internal Logs `event` at `level` with `fields` as annotations. Rare lines only: it costs an `annotateLogs`. Under
 * the fiber's minimum log level, which the fiber's `log` would drop it for, nothing is built (a retry storm in an
 * outage logs one line per retry).
 */
export const logLine = (
  level: "info" | "warn",
  event: EventName,
  fields: Readonly<Record<string, Field>>
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const logLevel = level === "warn" ? LogLevel.Warning : LogLevel.Info
    if (LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), logLevel)) return Effect.void
    const annotations: Record<string, string | number | boolean> = {}
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) annotations[key] = value
    }
    return Effect.annotateLogs(Effect.logWithLevel(logLevel, event), annotations)
  })

const levelName = (level: LogLevel.LogLevel): string => level.label === "WARN" ? "warn" : level.label.toLowerCase()

/**
 * @internal One JSON line for any log entry: `event` for the library's own events (`message` for the application's),
 * `level`, `ts`, the annotations, and the cause when there is one (printed as Effect's default logger prints it).
 */
export const jsonLine = (entry: Logger.Logger.Options<unknown>): string => {
  const message = Array.isArray(entry.message) && entry.message.length === 1 ? entry.message[0] : entry.message
  const line: Record<string, unknown> = typeof message === "string" && EVENT.test(message)
    ? { event: message }
    : { message }
  line.level = levelName(entry.logLevel)
  line.ts = entry.date.toISOString()
  for (const [key, value] of HashMap.toEntries(entry.annotations)) {
    if (!(key in line)) line[key] = value
  }
  if (!Cause.isEmpty(entry.cause)) line.cause = Cause.pretty(entry.cause, { renderErrorCause: true })
  return JSON.stringify(line, (_key, value: unknown) => typeof value === "bigint" ? value.toString() : value)
}
