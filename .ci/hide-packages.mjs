// Preload (`node --import`): makes the packages named in HIDE (comma-separated) unresolvable, for require and import
// alike, as if they were not installed. Used to check that the optional peer SDKs are optional.
import Module from "node:module"
const hidden = (process.env.HIDE ?? "").split(",").filter((name) => name !== "")
const isHidden = (specifier) => hidden.some((name) => specifier === name || specifier.startsWith(`${name}/`))

const resolveFilename = Module._resolveFilename
Module._resolveFilename = function(request, ...rest) {
  if (isHidden(request)) {
    throw Object.assign(new Error(`Cannot find module '${request}' (hidden by .ci/hide-packages.cjs)`), {
      code: "MODULE_NOT_FOUND"
    })
  }
  return resolveFilename.call(this, request, ...rest)
}

const hooks = `
const hidden = ${JSON.stringify(hidden)}
export async function resolve(specifier, context, next) {
  if (hidden.some((name) => specifier === name || specifier.startsWith(name + "/"))) {
    throw Object.assign(new Error("Cannot find package '" + specifier + "' (hidden)"), { code: "ERR_MODULE_NOT_FOUND" })
  }
  return next(specifier, context)
}`
Module.register(`data:text/javascript,${encodeURIComponent(hooks)}`)
