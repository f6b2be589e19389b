/**
 * The environment inside a configuration file: `${VAR}` in string values (a missing variable is a typed error naming
 * it; a value read is never echoed), per-model variables `LLM_MODEL_<ID>_<KEY>`, and compact durations (`30s`,
 * `1m30s`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ResilienceConfig from "../src/Config.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const settings = (text: string, format: ResilienceConfig.Format, env: Record<string, string> = {}) =>
  ResilienceConfig.settingsFromString(text, format).pipe(withEnv(env))

const millis = (duration: Duration.Duration | undefined) =>
  duration === undefined ? undefined : Duration.toMillis(duration)

const SECRET = "sk-hidden-ENVMARK"

describe("ResilienceConfig: the environment in the file", () => {
  it.effect("${VAR} in string values, YAML and TOML alike; ${VAR:-default}; $${ is a literal", () =>
    Effect.gen(function*() {
      const env = { OPENAI_BASE_URL: "http://127.0.0.1:4010/v1", TENANT: "acme" }
      const yaml = yield* settings(
        `
models:
  - id: gpt
    provider: openai
    model: \${MODEL:-gpt-4.1}
    base_url: \${OPENAI_BASE_URL}
    headers: { x-tenant: "t-\${TENANT}", x-literal: "$\${TENANT}" }
chain: [gpt]
`,
        "yaml",
        env
      )
      const toml = yield* settings(
        `
chain = ["gpt"]
[[models]]
id = "gpt"
provider = "openai"
model = "\${MODEL:-gpt-4.1}"
base_url = "\${OPENAI_BASE_URL}"
headers = { x-tenant = "t-\${TENANT}", x-literal = "$\${TENANT}" }
`,
        "toml",
        env
      )
      expect(yaml).toEqual(toml)
      expect(yaml.chain[0].provider).toMatchObject({
        model: "gpt-4.1",
        baseURL: "http://127.0.0.1:4010/v1",
        headers: { "x-tenant": "t-acme", "x-literal": "${TENANT}" }
      })
    }))

  it.effect("a missing variable is an InvalidConfig naming it and the key; every one is reported", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(settings(
        `
models:
  - { id: gpt, provider: openai, model: gpt-4.1, base_url: "\${OPENAI_BASE_URL}", organization: "\${ORG_ID}" }
chain: [gpt]
`,
        "yaml"
      ))
      expect(error._tag).toBe("InvalidConfig")
      expect(error.issues).toEqual([
        { path: "models[0].base_url", reason: "uses ${OPENAI_BASE_URL}, which is not set" },
        { path: "models[0].organization", reason: "uses ${ORG_ID}, which is not set" }
      ])
    }))

  it.effect("an interpolated value that does not fit is refused by its variable, without its value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(settings(
        `
models:
  - { id: gpt, provider: openai, model: gpt-4.1, base_url: "\${OPENAI_BASE_URL}", timeout: "\${TIMEOUT}" }
chain: [gpt]
`,
        "yaml",
        { OPENAI_BASE_URL: SECRET, TIMEOUT: SECRET }
      ))
      expect(error.issues.map((issue) => issue.path)).toEqual(["models[0].base_url", "models[0].timeout"])
      expect(error.issues[1]?.reason).toContain("(from ${TIMEOUT}; value hidden)")
      expect(error.message).not.toContain("ENVMARK")
    }))

  it.effect("a malformed reference is refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(settings(
        `models: [{ id: gpt, provider: openai, model: "\${1BAD}" }]\nchain: [gpt]\n`,
        "yaml"
      ))
      expect(error.issues[0]?.path).toBe("models[0].model")
      expect(error.issues[0]?.reason).toContain("is not an environment variable reference")
    }))

  it.effect("LLM_MODEL_<ID>_<KEY> overrides one model; a bad value is reported by the variable's name", () =>
    Effect.gen(function*() {
      const text = `
models:
  - { id: gpt-primary, provider: openai, model: gpt-4.1, timeout: 30s }
  - { id: claude, provider: anthropic, model: claude-sonnet-4-6 }
chain: [gpt-primary, claude]
`
      const overridden = yield* settings(text, "yaml", {
        LLM_MODEL_GPT_PRIMARY_BASE_URL: "http://127.0.0.1:4010/v1",
        LLM_MODEL_GPT_PRIMARY_TIMEOUT: "1m30s",
        LLM_MODEL_GPT_PRIMARY_CONTEXT_WINDOW: "64000",
        LLM_MODEL_CLAUDE_MODEL: "claude-haiku-4-5"
      })
      expect(overridden.chain[0].provider.baseURL).toBe("http://127.0.0.1:4010/v1")
      expect(millis(overridden.chain[0].timeout)).toBe(90_000)
      expect(overridden.chain[0].contextWindow).toBe(64_000)
      expect(overridden.chain[1]?.provider.model).toBe("claude-haiku-4-5")
      expect(overridden.chain[1]?.provider.baseURL).toBeUndefined()
      const error = yield* Effect.flip(settings(text, "yaml", { LLM_MODEL_GPT_PRIMARY_TIMEOUT: SECRET }))
      expect(error.issues).toEqual([{
        path: "LLM_MODEL_GPT_PRIMARY_TIMEOUT",
        reason: expect.stringContaining("value hidden")
      }])
      expect(error.message).not.toContain("ENVMARK")
    }))

  it.effect("durations: Go's compact form beside Effect's", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
timeout: 30s
retry: { deadline: 1m30s, attempt_timeout: 250ms }
breaker: { cooldown: 1.5h }
models: [{ id: gpt, provider: openai, model: gpt-4.1, connect_timeout: "2 seconds" }]
chain: [gpt]
`,
        "yaml",
        { LLM_RETRY_RETRY_AFTER_CEILING: "2m" }
      )
      const tier = s.chain[0]
      expect(millis(tier.timeout)).toBe(30_000)
      expect(millis(tier.connectTimeout)).toBe(2_000)
      expect(tier.retry === false ? undefined : millis(Duration.decode(tier.retry.deadline!))).toBe(90_000)
      expect(tier.retry === false ? undefined : millis(Duration.decode(tier.retry.attemptTimeout!))).toBe(250)
      expect(tier.retry === false ? undefined : millis(Duration.decode(tier.retry.retryAfterCeiling!))).toBe(120_000)
      expect(tier.breaker === false ? undefined : millis(Duration.decode(tier.breaker.cooldown!))).toBe(5_400_000)
      const error = yield* Effect.flip(
        settings(`timeout: 0s\n${"models: [{ id: gpt, provider: openai, model: m }]\nchain: [gpt]\n"}`, "yaml")
      )
      expect(error.issues[0]?.path).toBe("timeout")
    }))
})

describe("ResilienceConfig: one name per setting", () => {
  it.effect("consecutive_failures and LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES; the old names still read", () =>
    Effect.gen(function*() {
      const file = (key: string) =>
        `breaker: { ${key}: 7 }\nmodels: [{ id: gpt, provider: openai, model: m }]\nchain: [gpt]\n`
      const consecutive = (s: ResilienceConfig.Settings) => {
        const breaker = s.chain[0].breaker
        return breaker === false ? undefined : breaker.consecutiveFailures
      }
      expect(consecutive(yield* settings(file("consecutive_failures"), "yaml"))).toBe(7)
      expect(consecutive(yield* settings(file("threshold"), "yaml"))).toBe(7)
      expect(
        consecutive(
          yield* settings(file("consecutive_failures"), "yaml", { LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES: "3" })
        )
      ).toBe(3)
      expect(
        consecutive(
          yield* settings(file("consecutive_failures"), "yaml", {
            LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES: "3",
            LLM_CIRCUIT_BREAKER_THRESHOLD: "9"
          })
        )
      ).toBe(3)
      expect(ResilienceConfig.overrideVariables).toContain("LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES")
    }))
})
