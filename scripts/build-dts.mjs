// The published declarations (run by `npm run build`, after tsup and `tsc -p tsconfig.build.json`).
//
// tsc has emitted one .d.ts per source module under dist/types/, ESM like the package ("type": "module"). This copies
// that tree to dist/types-cjs/ under a `"type": "commonjs"` package.json, so `require` users get CommonJS declarations,
// and writes each entry point's dist/<entry>.d.ts and .d.cts as a one-line re-export, so package.json's "exports"
// keep their paths. A bundled (rolled-up) .d.ts would merge the modules into chunks and rename colliding names
// (`CircuitBreaker.Options` and `RateLimit.Options` as `Options$1`), which users' editors would then show.
import { cpSync, mkdirSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist")

cpSync(join(dist, "types"), join(dist, "types-cjs"), { recursive: true })
writeFileSync(join(dist, "types-cjs", "package.json"), JSON.stringify({ type: "commonjs" }) + "\n")

// The entries of tsup.config.ts and package.json's "exports": dist/<entry> → the module under src/.
const entries = {
  index: "index",
  "testing/index": "testing/index",
  redis: "Redis",
  prometheus: "Prometheus",
  ai: "Ai"
}

for (const [entry, module] of Object.entries(entries)) {
  for (const [extension, tree] of [[".d.ts", "types"], [".d.cts", "types-cjs"]]) {
    const file = join(dist, entry + extension)
    mkdirSync(dirname(file), { recursive: true })
    let target = relative(dirname(file), join(dist, tree, module + ".js"))
    if (!target.startsWith(".")) target = "./" + target
    writeFileSync(file, `export * from "${target}"\n`)
  }
}
