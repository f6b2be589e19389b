#!/usr/bin/env node
/**
 * The package's command line: `demo` (what `npm start` runs) and `simulate` (what `npm run simulate` runs).
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { isMainThread } from "node:worker_threads"
import * as Demo from "./demo.js"
import * as Simulate from "./simulate.js"

const root = Command.make("effect-llm-resilience").pipe(
  Command.withDescription("Resilient LLM calls for Effect: a live demo and an outage simulator"),
  Command.withSubcommands([Demo.command, Simulate.command])
)

const cli = Command.run(root, { name: "effect-llm-resilience", version: "0.1.0" })

// @effect/cli styles its help with ANSI codes whatever the output is. Into a pipe or a file, or with NO_COLOR set
// (no-color.org), they are noise: strip them at the stream.
const plain = (stream: NodeJS.WriteStream) => {
  const write = stream.write.bind(stream)

  const ansi = /\u001b\[[0-9;]*m/g
  stream.write =
    ((chunk: unknown, ...rest: Array<never>) =>
      write(typeof chunk === "string" ? chunk.replace(ansi, "") : chunk as Uint8Array, ...rest)) as typeof stream.write
}
if (isMainThread && (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "")) {
  plain(process.stdout)
  plain(process.stderr)
} else if (isMainThread) {
  if (process.stdout.isTTY !== true) plain(process.stdout)
  if (process.stderr.isTTY !== true) plain(process.stderr)
}

// The simulator's worker threads load this bundle too; only the main thread runs the command line.
if (isMainThread) cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
