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

// The simulator's worker threads load this bundle too; only the main thread runs the command line.
if (isMainThread) cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
