import { defineConfig, type Options } from "tsup"

const shared: Pick<Options, "sourcemap" | "target" | "splitting" | "external"> = {
  sourcemap: true,
  target: "node20",
  splitting: true,
  // Every optional peer stays a runtime import (loaded lazily, or by the bin only), never bundled.
  external: [
    "openai",
    "@anthropic-ai/sdk",
    "@copilotkit/aimock",
    "ioredis",
    "gpt-tokenizer",
    "@effect/cli",
    "@effect/platform-node",
    "@effect/opentelemetry",
    /^@effect\/ai/,
    /^@opentelemetry\//
  ]
}

// `npm run build` empties dist/ first: two configs build side by side and must not clean each other's output.
export default defineConfig([
  {
    ...shared,
    entry: {
      index: "src/index.ts",
      "testing/index": "src/testing/index.ts",
      redis: "src/Redis.ts",
      prometheus: "src/Prometheus.ts",
      ai: "src/Ai.ts"
    },
    format: ["esm", "cjs"],
    // Declarations come from tsc, one file per module (tsconfig.build.json, scripts/build-dts.mjs): tsup's rolled-up
    // .d.ts renamed colliding names (`Options$1`) in users' hovers.
    dts: false
  },
  {
    // The command line (package bin) is ESM only: the simulator starts worker threads from `import.meta.url`.
    ...shared,
    entry: { "cli/main": "src/cli/main.ts" },
    format: ["esm"],
    dts: false
  }
])
