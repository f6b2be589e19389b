// After `npm run build`: the published declarations show every type under its own name. A bundler that merges
// modules renames colliding declarations (`Options$1`, `Config$2`), and users' editors then show those names.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const files = readdirSync("dist", { recursive: true })
  .map(String)
  .filter((file) => /\.d\.c?ts$/.test(file))
if (files.length === 0) {
  console.error("no .d.ts under dist/: run npm run build first")
  process.exit(1)
}
const renamed = []
for (const file of files) {
  const lines = readFileSync(join("dist", file), "utf8").split("\n")
  lines.forEach((line, index) => {
    for (const match of line.matchAll(/\b[A-Za-z_][\w]*\$\d+\b/g)) {
      renamed.push(`dist/${file}:${index + 1}: ${match[0]}`)
    }
  })
}
if (renamed.length > 0) {
  console.error(`bundler-renamed declarations in dist/:\n${renamed.join("\n")}`)
  process.exit(1)
}
console.log(`${files.length} declaration files, no renamed names`)
