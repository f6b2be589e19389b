import effectPlugin from "@effect/eslint-plugin"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", "scratch/**", ".tmp-*/**"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.mjs"],
    plugins: { "@effect": effectPlugin },
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.mjs", ".ci/*.mjs", "scripts/*.mjs"] },
        tsconfigRootDir: import.meta.dirname
      }
    },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          "arrowFunction.useParentheses": "force"
        }
      }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-namespace": "off",
      "no-console": "error"
    }
  },
  {
    // The CJS build rewrites `a ?? b` and `a?.b` into helper calls taking arrow functions, where a `yield*` on the
    // right is a syntax error: the CJS bundle would not even load.
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-syntax": ["error", {
        selector: "LogicalExpression[operator='??'] > YieldExpression.right, ChainExpression YieldExpression",
        message: "yield* inside ?? or ?. breaks the CJS build; use a conditional expression"
      }]
    }
  },
  {
    files: ["src/cli/**", "bench/**", "examples/**", ".ci/**", "scripts/**"],
    rules: { "no-console": "off" }
  }
)
