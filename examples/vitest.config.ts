// The examples' own test run (`npm run examples`): the root vitest.config.ts runs only the library's test/ suite.
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["**/*.test.ts"],
    testTimeout: 20_000
  }
})
