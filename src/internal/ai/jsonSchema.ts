/**
 * Tools and structured outputs cross between the two models as JSON Schema: this library keeps a tool's parameters
 * and an output format as a JSON Schema object, @effect/ai keeps them as an Effect Schema.
 * @internal
 */
import * as AiTool from "@effect/ai/Tool"
import type * as AiToolkit from "@effect/ai/Toolkit"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { JsonSchemaObject, Tool } from "../../Llm.js"

/**
 * An Effect Schema that accepts any JSON object and whose JSON Schema is exactly `jsonSchema` (an object schema with
 * a `type` replaces the derived one): @effect/ai providers send it as the tool's parameters or the output format,
 * and @effect/ai decodes what comes back with it without narrowing it.
 * @internal
 */
export const carrying = (jsonSchema: JsonSchemaObject) =>
  Schema.Struct({}, Schema.Record({ key: Schema.String, value: Schema.Unknown })).annotations({ jsonSchema })

/** The JSON Schema @effect/ai derives from an Effect Schema (the one its own providers send). @internal */
export const jsonSchemaOf = (schema: Schema.Schema.All): Record<string, unknown> => {
  const derived: Record<string, unknown> = { ...AiTool.getJsonSchemaFromSchemaAst(schema.ast) }
  delete derived["$schema"]
  return derived
}

/**
 * This library's tools as an @effect/ai toolkit. Its calls are never run here (the caller runs its own tools), so the
 * toolkit is only ever used with `disableToolCallResolution`.
 * @internal
 */
export const toolkitOf = (tools: ReadonlyArray<Tool>): AiToolkit.WithHandler<Record<string, AiTool.Any>> => {
  const byName: Record<string, AiTool.Any> = {}
  for (const tool of tools) {
    byName[tool.name] = AiTool.make(tool.name, { description: tool.description }).setParameters(
      carrying(tool.parameters)
    )
  }
  return {
    tools: byName,
    handle: (name) => Effect.dieMessage(`tool ${String(name)} is run by the caller, not by effect-llm-resilience`)
  }
}
