/**
 * Valid configuration files: defaults, presets, the YAML and TOML forms of one configuration, the shipped examples,
 * environment overrides over the file, secrets, and the Layers.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as ResilienceConfig from "../src/Config.js"
import * as Resilient from "../src/Resilient.js"

const SECRET = "sk-test-do-not-print-4f7a"

const KEYS = { OPENAI_API_KEY: SECRET, ANTHROPIC_API_KEY: "sk-ant-test" }

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const settings = (text: string, format: ResilienceConfig.Format, env: Record<string, string> = {}) =>
  ResilienceConfig.settingsFromString(text, format).pipe(withEnv(env))

const EXAMPLE_YAML = "examples/config/resilient.yaml"
const EXAMPLE_TOML = "examples/config/resilient.toml"

const MINIMAL = `
models:
  - id: gpt
    provider: openai
    model: gpt-4.1
chain: [gpt]
`

const tier = (s: ResilienceConfig.Settings, index: number): ResilienceConfig.TierSettings => s.chain[index]!

describe("ResilienceConfig: stream timeouts and continuation", () => {
  const STREAMING = `
continuation: true
models:
  - id: gpt
    provider: openai
    model: gpt-4.1
    timeout: 30 seconds
    first_chunk_timeout: 2 seconds
    stall_timeout: 5 seconds
  - id: claude
    provider: anthropic
    model: claude-sonnet-4-6
chain:
  - gpt
  - model: claude
    stall_timeout: 3 seconds
`

  it.effect("first_chunk_timeout and stall_timeout per model or chain entry; continuation for the chain", () =>
    Effect.gen(function*() {
      const s = yield* settings(STREAMING, "yaml")
      expect(s.continuation).toBe(true)
      expect(tier(s, 0).firstChunkTimeout).toEqual(Duration.seconds(2))
      expect(tier(s, 0).stallTimeout).toEqual(Duration.seconds(5))
      expect(tier(s, 1).firstChunkTimeout).toBeUndefined()
      expect(tier(s, 1).stallTimeout).toEqual(Duration.seconds(3))
      const config = yield* ResilienceConfig.toResilientConfig(s).pipe(withEnv(KEYS))
      expect(config.continuation).toBe(true)
      expect(config.chain[0].firstChunkTimeout).toEqual(Duration.seconds(2))
      expect(config.chain[0].stallTimeout).toEqual(Duration.seconds(5))
    }))

  it.effect("LLM_FIRST_CHUNK_TIMEOUT, LLM_STALL_TIMEOUT and LLM_CONTINUATION override the file", () =>
    Effect.gen(function*() {
      const s = yield* settings(STREAMING, "yaml", {
        LLM_FIRST_CHUNK_TIMEOUT: "1 second",
        LLM_STALL_TIMEOUT: "4 seconds",
        LLM_CONTINUATION: "false"
      })
      expect(s.continuation).toBe(false)
      expect([tier(s, 0).firstChunkTimeout, tier(s, 1).firstChunkTimeout]).toEqual([
        Duration.seconds(1),
        Duration.seconds(1)
      ])
      expect([tier(s, 0).stallTimeout, tier(s, 1).stallTimeout]).toEqual([Duration.seconds(4), Duration.seconds(4)])
    }))

  it.effect("a stall_timeout that is not a positive duration is refused, naming the key", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        settings(STREAMING.replace("stall_timeout: 5 seconds", "stall_timeout: -1"), "yaml")
      )
      expect(JSON.stringify(error)).toContain("stall_timeout")
    }))
})

describe("ResilienceConfig: a model's output limit and capabilities", () => {
  const LOCAL = `
models:
  - id: gpt
    provider: openai
    model: gpt-4.1
    max_output_tokens: 8000
  - id: local
    provider: openai-compatible
    model: llama3
    base_url: http://127.0.0.1:11434/v1
    capabilities: { tools: false, images: true }
chain: [gpt, local]
`

  it.effect("max_output_tokens and capabilities reach the tier", () =>
    Effect.gen(function*() {
      const s = yield* settings(LOCAL, "yaml")
      expect(tier(s, 0).maxOutputTokens).toBe(8000)
      expect(tier(s, 0).capabilities).toBeUndefined()
      expect(tier(s, 1).capabilities).toEqual({ tools: false, images: true })
      const config = yield* ResilienceConfig.toResilientConfig(s).pipe(withEnv(KEYS))
      expect(config.chain[0].maxOutputTokens).toBe(8000)
      expect(config.chain[1]?.capabilities).toEqual({ tools: false, images: true })
    }))

  it.effect("a capability that is not a boolean is refused, naming the key", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(settings(LOCAL.replace("tools: false", "tools: sometimes"), "yaml"))
      expect(JSON.stringify(error)).toContain("capabilities")
    }))
})

describe("ResilienceConfig: defaults and presets", () => {
  it.effect("a minimal file gets the documented defaults", () =>
    Effect.gen(function*() {
      const s = yield* settings(MINIMAL, "yaml")
      expect(s).toEqual({
        strategy: "ordered",
        relaxation: true,
        continuation: false,
        degraded: "fallback",
        rateLimit: {},
        degrade: {},
        chain: [{
          id: "gpt",
          provider: { type: "openai", model: "gpt-4.1", name: "openai", apiKeyEnv: "OPENAI_API_KEY" },
          downgrades: [],
          retry: {},
          breaker: CircuitBreaker.presets.balanced,
          limits: false
        }]
      })
    }))

  it.effect("breaker presets by name, a preset with explicit fields, false, and the top-level default", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
breaker: lenient
models:
  - { id: a, provider: openai, model: a }
  - { id: b, provider: openai, model: b }
  - { id: c, provider: openai, model: c }
  - { id: d, provider: openai, model: d }
chain:
  - a
  - { model: b, breaker: strict }
  - { model: c, breaker: { preset: strict, cooldown: 5 seconds, failure_rate: false } }
  - { model: d, breaker: false }
`,
        "yaml"
      )
      expect(tier(s, 0).breaker).toEqual(CircuitBreaker.presets.lenient)
      expect(tier(s, 1).breaker).toEqual(CircuitBreaker.presets.strict)
      expect(tier(s, 2).breaker).toEqual({
        consecutiveFailures: 3,
        cooldown: Duration.seconds(5),
        failureRate: false
      })
      expect(tier(s, 3).breaker).toBe(false)
    }))

  it.effect("durations are decoded with Effect's Duration", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
timeout: 1.5 minutes
retry: { attempt_timeout: 250 millis, deadline: 2 minutes }
models: [{ id: a, provider: openai, model: a }]
chain: [a]
degrade: { cache: { ttl: 1 hour } }
`,
        "yaml"
      )
      expect(tier(s, 0).timeout).toEqual(Duration.seconds(90))
      expect(tier(s, 0).retry).toEqual({ attemptTimeout: Duration.millis(250), deadline: Duration.minutes(2) })
      expect(s.degrade.cache).toEqual({ ttl: Duration.hours(1), capacity: 1000 })
    }))

  it.effect("an openai-compatible model is named by its id and needs no key; downgrades become model names", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
models:
  - id: big
    provider: openai
    model: gpt-4.1
    price: { input_per_1k: 0.002, output_per_1k: 0.008 }
    downgrades: [small]
  - id: small
    provider: openai
    model: gpt-4.1-mini
    price: { input_per_1k: 0.0004, output_per_1k: 0.0016 }
  - { id: ollama, provider: openai-compatible, model: llama3.1, base_url: "http://127.0.0.1:11434/v1" }
chain: [big, ollama]
`,
        "yaml"
      )
      expect(tier(s, 0).downgrades).toEqual(["gpt-4.1-mini"])
      expect(tier(s, 0).price).toEqual({
        "gpt-4.1": { inputPer1k: 0.002, outputPer1k: 0.008 },
        "gpt-4.1-mini": { inputPer1k: 0.0004, outputPer1k: 0.0016 }
      })
      expect(tier(s, 1).provider).toEqual({
        type: "openai-compatible",
        model: "llama3.1",
        name: "ollama",
        baseURL: "http://127.0.0.1:11434/v1"
      })
      const config = yield* ResilienceConfig.toResilientConfig(s).pipe(withEnv(KEYS))
      expect(config.chain.length).toBe(2)
      expect(config.chain[0]?.downgrades).toEqual(["gpt-4.1-mini"])
    }))
})

describe("ResilienceConfig: YAML and TOML", () => {
  it.effect("the shipped examples load, and the YAML and TOML forms give equal settings", () =>
    Effect.gen(function*() {
      const yaml = yield* ResilienceConfig.settingsFromFile(EXAMPLE_YAML)
      const toml = yield* ResilienceConfig.settingsFromFile(EXAMPLE_TOML)
      expect(toml).toEqual(yaml)
      expect(yaml.chain.map((t) => t.id)).toEqual(["gpt", "claude", "local"])
      expect(tier(yaml, 0).provider.apiKeyEnv).toBe("OPENAI_API_KEY")
      expect(tier(yaml, 0).downgrades).toEqual(["gpt-4.1-mini"])
      expect(tier(yaml, 0).limits).toEqual({ rpm: 500, tpm: 200000, concurrency: 32 })
      expect(tier(yaml, 0).timeout).toEqual(Duration.seconds(45))
      expect(tier(yaml, 0).breaker).toEqual({
        consecutiveFailures: 5,
        failureRate: 50,
        window: 20,
        minimumCalls: 10,
        cooldown: Duration.seconds(60),
        cooldownGrowth: { factor: 2, max: Duration.minutes(10) },
        probes: 1,
        successThreshold: 1,
        probeTimeout: Duration.minutes(2)
      })
      expect(tier(yaml, 0).retry).toMatchObject({
        maxAttempts: 6,
        budget: { ratio: 0.2, minPerSecond: 1, window: Duration.seconds(10) },
        policies: {
          RateLimited: {
            maxAttempts: 4,
            backoff: "exponential",
            baseDelay: Duration.seconds(1),
            maxDelay: Duration.seconds(30),
            jitter: 0.2,
            honorRetryAfter: true
          }
        }
      })
      expect(tier(yaml, 1).breaker).toEqual(CircuitBreaker.presets.strict)
      expect(tier(yaml, 1).provider.defaultMaxTokens).toBe(4096)
      expect(tier(yaml, 2)).toMatchObject({ retry: false, breaker: false, timeout: Duration.minutes(3) })
      expect(yaml.rateLimit).toEqual({
        mode: "wait",
        maxWait: Duration.seconds(30),
        outputTokenEstimate: 512,
        adaptive: true,
        idleExpiry: Duration.hours(1)
      })
      expect(yaml.degrade).toEqual({
        cache: { ttl: Duration.minutes(10), capacity: 1000 },
        staticResponse: "We are answering slowly right now. Please try again in a minute."
      })
      expect(yaml.hedging).toBeUndefined()
    }).pipe(withEnv(KEYS), Effect.provide(NodeFileSystem.layer)))

  it.effect("the examples build a Resilient client with env-supplied keys", () =>
    Effect.gen(function*() {
      for (const path of [EXAMPLE_YAML, EXAMPLE_TOML]) {
        const client = yield* Effect.provide(
          Resilient.Resilient,
          ResilienceConfig.layerFromFile(path).pipe(Layer.provide(NodeFileSystem.layer))
        )
        expect(client.providers.map((p) => `${p.name}:${p.model}`)).toEqual([
          "openai:gpt-4.1",
          "anthropic:claude-sonnet-4-6",
          "ollama:llama3.1"
        ])
        expect([...client.breakers.keys()]).toContain("openai:gpt-4.1")
      }
    }).pipe(withEnv(KEYS)))

  it.effect("equivalent inline YAML and TOML produce equal settings", () =>
    Effect.gen(function*() {
      const yaml = yield* settings(
        `
strategy: cost-first
degraded: [Truncated, Slow]
models:
  - id: a
    provider: anthropic
    model: claude-haiku-4-5
    base_url: https://proxy.example.com
    headers: { x-team: search }
    limits: { tpm: 1000 }
chain:
  - model: a
    retry: { max_attempts: 2, budget: false }
    quality_rank: 1
hedging: { delay: 2 seconds }
`,
        "yaml"
      )
      const toml = yield* settings(
        `
strategy = "cost-first"
degraded = ["Truncated", "Slow"]
chain = [{ model = "a", retry = { max_attempts = 2, budget = false }, quality_rank = 1 }]
hedging = { delay = "2 seconds" }

[[models]]
id = "a"
provider = "anthropic"
model = "claude-haiku-4-5"
base_url = "https://proxy.example.com"
headers = { x-team = "search" }
limits = { tpm = 1000 }
`,
        "toml"
      )
      expect(toml).toEqual(yaml)
      expect(yaml.strategy).toBe("cost-first")
      expect(yaml.degraded).toEqual(["Truncated", "Slow"])
      expect(tier(yaml, 0)).toMatchObject({
        retry: { maxAttempts: 2, budget: false },
        qualityRank: 1,
        limits: { tpm: 1000 },
        provider: { headers: { "x-team": "search" }, apiKeyEnv: "ANTHROPIC_API_KEY" }
      })
      expect(yaml.hedging).toEqual({ delay: Duration.seconds(2) })
    }))
})

describe("ResilienceConfig: environment overrides", () => {
  it.effect("LLM_CIRCUIT_BREAKER_* win over the file, in every tier", () =>
    Effect.gen(function*() {
      const file = `
breaker: { threshold: 10, cooldown: 30 seconds }
models: [{ id: a, provider: openai, model: a }, { id: b, provider: openai, model: b }]
chain: [a, { model: b, breaker: { preset: strict, cooldown: 1 second } }]
`
      const s = yield* settings(file, "yaml", {
        LLM_CIRCUIT_BREAKER_THRESHOLD: "7",
        LLM_CIRCUIT_BREAKER_COOLDOWN: "2 minutes"
      })
      expect(tier(s, 0).breaker).toEqual({ consecutiveFailures: 7, cooldown: Duration.minutes(2) })
      expect(tier(s, 1).breaker).toEqual({ consecutiveFailures: 7, cooldown: Duration.minutes(2) })
      const off = yield* settings(file, "yaml", { LLM_CIRCUIT_BREAKER_ENABLED: "false" })
      expect(off.chain.map((t) => t.breaker)).toEqual([false, false])
      const preset = yield* settings(file, "yaml", { LLM_CIRCUIT_BREAKER_PRESET: "lenient" })
      expect(tier(preset, 0).breaker).toEqual(CircuitBreaker.presets.lenient)
    }))

  it.effect("LLM_CIRCUIT_BREAKER_ENABLED=true turns a breaker the file disabled back on", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
models: [{ id: a, provider: openai, model: a }]
chain: [{ model: a, breaker: false }]
`,
        "yaml",
        { LLM_CIRCUIT_BREAKER_ENABLED: "true" }
      )
      expect(tier(s, 0).breaker).toEqual(CircuitBreaker.presets.balanced)
    }))

  it.effect("deadline and when_all_refused: from the file (YAML and TOML alike), then the environment", () =>
    Effect.gen(function*() {
      const yaml = yield* settings(
        `
deadline: 20 seconds
when_all_refused: { wait: 30 seconds }
models: [{ id: a, provider: openai, model: a }]
chain: [a]
`,
        "yaml"
      )
      const toml = yield* settings(
        `
deadline = "20 seconds"
when_all_refused = { wait = "30 seconds" }
chain = ["a"]
[[models]]
id = "a"
provider = "openai"
model = "a"
`,
        "toml"
      )
      expect(yaml.deadline).toEqual(Duration.seconds(20))
      expect(yaml.whenAllRefused).toEqual({ wait: Duration.seconds(30) })
      expect(toml).toEqual(yaml)
      const overridden = yield* settings("models: [{ id: a, provider: openai, model: a }]\nchain: [a]\n", "yaml", {
        LLM_DEADLINE: "5 seconds",
        LLM_WHEN_ALL_REFUSED_WAIT: "1 minute"
      })
      expect(overridden.deadline).toEqual(Duration.seconds(5))
      expect(overridden.whenAllRefused).toEqual({ wait: Duration.minutes(1) })
      const config = yield* ResilienceConfig.toResilientConfig(yaml).pipe(withEnv(KEYS))
      expect(config.deadline).toEqual(Duration.seconds(20))
      expect(config.whenAllRefused).toEqual({ wait: Duration.seconds(30) })
      const bad = yield* Effect.flip(
        settings("deadline: 0 seconds\nmodels: [{ id: a, provider: openai, model: a }]\nchain: [a]\n", "yaml")
      )
      expect(bad.issues.map((issue) => issue.path)).toContain("deadline")
    }))

  it.effect("rate_limit.idle_expiry: a duration, false to keep every key, LLM_RATE_LIMIT_IDLE_EXPIRY over it", () =>
    Effect.gen(function*() {
      const body = "models: [{ id: a, provider: openai, model: a }]\nchain: [a]\n"
      const timed = yield* settings(`rate_limit: { idle_expiry: 1m30s }\n${body}`, "yaml")
      expect(timed.rateLimit.idleExpiry).toEqual(Duration.seconds(90))
      const off = yield* settings(
        `chain = ["a"]\n[rate_limit]\nidle_expiry = false\n[[models]]\nid = "a"\nprovider = "openai"\nmodel = "a"\n`,
        "toml"
      )
      expect(off.rateLimit.idleExpiry).toBe(false)
      const fromEnv = yield* settings(`rate_limit: { idle_expiry: false }\n${body}`, "yaml", {
        LLM_RATE_LIMIT_IDLE_EXPIRY: "2 hours"
      })
      expect(fromEnv.rateLimit.idleExpiry).toEqual(Duration.hours(2))
      const bad = yield* Effect.flip(settings(`rate_limit: { idle_expiry: true }\n${body}`, "yaml"))
      expect(bad.issues.map((issue) => issue.path)).toContain("rate_limit.idle_expiry")
      const config = yield* ResilienceConfig.toResilientConfig(timed).pipe(withEnv(KEYS))
      expect(config.rateLimit?.idleExpiry).toEqual(Duration.seconds(90))
    }))

  it.effect("deployments: each with its api_key_env, base_url and weight; YAML and TOML alike; a working client", () =>
    Effect.gen(function*() {
      const yaml = yield* settings(
        `
models:
  - id: gpt
    provider: openai
    model: gpt-4.1
    balance: least-in-flight
    max_ejection_percent: 50
    panic: skip
    deployments:
      - { name: east, api_key_env: EAST_KEY, base_url: "https://east.example.com/v1", weight: 3 }
      - { name: west, api_key_env: WEST_KEY, limits: { rpm: 10 } }
chain: [gpt]
`,
        "yaml"
      )
      const toml = yield* settings(
        `
chain = ["gpt"]
[[models]]
id = "gpt"
provider = "openai"
model = "gpt-4.1"
balance = "least-in-flight"
max_ejection_percent = 50
panic = "skip"
deployments = [
  { name = "east", api_key_env = "EAST_KEY", base_url = "https://east.example.com/v1", weight = 3 },
  { name = "west", api_key_env = "WEST_KEY", limits = { rpm = 10 } }
]
`,
        "toml"
      )
      expect(toml).toEqual(yaml)
      const tier = yaml.chain[0]
      expect(tier.balance).toBe("least-in-flight")
      expect(tier.maxEjectionPercent).toBe(50)
      expect(tier.panic).toBe("skip")
      expect(tier.deployments).toEqual([
        {
          name: "east",
          provider: {
            type: "openai",
            model: "gpt-4.1",
            name: "openai",
            apiKeyEnv: "EAST_KEY",
            baseURL: "https://east.example.com/v1"
          },
          weight: 3
        },
        {
          name: "west",
          provider: { type: "openai", model: "gpt-4.1", name: "openai", apiKeyEnv: "WEST_KEY" },
          limits: { rpm: 10 }
        }
      ])
      // Each deployment's key is read from its own variable; a missing one is named.
      const missing = yield* Effect.flip(ResilienceConfig.toResilientConfig(yaml).pipe(withEnv({ EAST_KEY: SECRET })))
      expect(missing.issues).toEqual([{ path: "WEST_KEY", reason: expect.stringContaining("deployment \"west\"") }])
      expect(JSON.stringify(missing)).not.toContain(SECRET)
      const config = yield* ResilienceConfig.toResilientConfig(yaml).pipe(
        withEnv({ EAST_KEY: SECRET, WEST_KEY: "sk-west" })
      )
      expect(config.chain[0].deployments?.map((d) => [d.name, d.weight])).toEqual([["east", 3], ["west", undefined]])
      const client = yield* Effect.scoped(Resilient.make(config))
      expect([...client.breakers.keys()]).toEqual(["openai:gpt-4.1@east", "openai:gpt-4.1@west"])
      const bad = (deployments: string) =>
        Effect.map(
          Effect.flip(
            settings(
              `models:\n  - { id: gpt, provider: openai, model: gpt-4.1, deployments: ${deployments} }\nchain: [gpt]\n`,
              "yaml"
            )
          ),
          (error) => error.issues.map((issue) => issue.path)
        )
      expect(yield* bad("[{ name: a }, { name: a }]")).toEqual(["models[0].deployments[1].name"])
      expect(yield* bad("[{ name: a, weight: 0 }]")).toEqual(["models[0].deployments[0].weight"])
      expect(yield* bad("[{ name: a, weight: .inf }]")).toEqual(["models[0].deployments[0].weight"])
    }))

  it.effect("retry, strategy, rate limit, timeout, cache, static response and hedging overrides", () =>
    Effect.gen(function*() {
      const file = `
strategy: ordered
relaxation: true
retry: { max_attempts: 3, deadline: 1 minute }
rate_limit: { mode: wait, max_wait: 10 seconds }
models: [{ id: a, provider: openai, model: a, timeout: 5 seconds }]
chain: [a]
degrade: { cache: { ttl: 1 minute, capacity: 10 }, static_response: from the file }
`
      const s = yield* settings(file, "yaml", {
        LLM_STRATEGY: "latency-first",
        LLM_RELAXATION: "false",
        LLM_DEGRADED: "accept",
        LLM_RETRY_MAX_ATTEMPTS: "9",
        LLM_RETRY_ATTEMPT_TIMEOUT: "3 seconds",
        LLM_RETRY_BUDGET_RATIO: "0.5",
        LLM_RATE_LIMIT_MODE: "fail-fast",
        LLM_RATE_LIMIT_MAX_WAIT: "infinity",
        LLM_RATE_LIMIT_ADAPTIVE: "no",
        LLM_RATE_LIMIT_IDLE_EXPIRY: "off",
        LLM_TIMEOUT: "20 seconds",
        LLM_CACHE_TTL: "5 minutes",
        LLM_STATIC_RESPONSE: "from the environment",
        LLM_HEDGING_ENABLED: "true",
        LLM_HEDGING_MAX_FRACTION: "0.25"
      })
      expect(s.strategy).toBe("latency-first")
      expect(s.relaxation).toBe(false)
      expect(s.degraded).toBe("accept")
      expect(tier(s, 0).retry).toEqual({
        maxAttempts: 9,
        attemptTimeout: Duration.seconds(3),
        deadline: Duration.minutes(1),
        budget: { ratio: 0.5 }
      })
      expect(s.rateLimit).toEqual({ mode: "fail-fast", maxWait: "infinity", adaptive: false, idleExpiry: false })
      expect(tier(s, 0).timeout).toEqual(Duration.seconds(20))
      expect(s.degrade).toEqual({
        cache: { ttl: Duration.minutes(5), capacity: 10 },
        staticResponse: "from the environment"
      })
      expect(s.hedging).toEqual({ delay: "p95", maxFraction: 0.25 })
    }))

  it.effect("switches: LLM_RETRY_ENABLED, LLM_RETRY_BUDGET_ENABLED, LLM_CACHE_ENABLED, LLM_HEDGING_ENABLED", () =>
    Effect.gen(function*() {
      const file = `
retry: { max_attempts: 3 }
models: [{ id: a, provider: openai, model: a }]
chain: [a]
degrade: { cache: { ttl: 1 minute, capacity: 10 } }
hedging: { delay: 1 second }
`
      const off = yield* settings(file, "yaml", {
        LLM_RETRY_ENABLED: "false",
        LLM_CACHE_ENABLED: "0",
        LLM_HEDGING_ENABLED: "off"
      })
      expect(tier(off, 0).retry).toBe(false)
      expect(off.degrade.cache).toBeUndefined()
      expect(off.hedging).toBeUndefined()
      const noBudget = yield* settings(file, "yaml", { LLM_RETRY_BUDGET_ENABLED: "false" })
      expect(tier(noBudget, 0).retry).toEqual({ maxAttempts: 3, budget: false })
      const cacheOn = yield* settings(MINIMAL, "yaml", { LLM_CACHE_ENABLED: "true" })
      expect(cacheOn.degrade.cache).toEqual({ ttl: Duration.minutes(10), capacity: 1000 })
    }))

  it.effect("blank variables count as unset", () =>
    Effect.gen(function*() {
      const s = yield* settings(MINIMAL, "yaml", { LLM_STRATEGY: "", LLM_CIRCUIT_BREAKER_THRESHOLD: "  " })
      expect(s.strategy).toBe("ordered")
      expect(tier(s, 0).breaker).toEqual(CircuitBreaker.presets.balanced)
    }))

  it("lists every override variable", () => {
    expect(ResilienceConfig.overrideVariables).toContain("LLM_CIRCUIT_BREAKER_THRESHOLD")
    expect(ResilienceConfig.overrideVariables).toContain("LLM_CIRCUIT_BREAKER_CONSECUTIVE_FAILURES")
    expect(ResilienceConfig.overrideVariables).toContain("LLM_CACHE_TTL")
    expect(ResilienceConfig.overrideVariables.length).toBe(35)
  })
})

describe("ResilienceConfig: secrets and layers", () => {
  it.effect("the API key is read with Config.redacted from the named variable and never appears in settings", () =>
    Effect.gen(function*() {
      const s = yield* settings(
        `
models: [{ id: a, provider: openai, model: a, api_key_env: TEAM_OPENAI_KEY }]
chain: [a]
`,
        "yaml",
        { TEAM_OPENAI_KEY: SECRET }
      )
      expect(tier(s, 0).provider.apiKeyEnv).toBe("TEAM_OPENAI_KEY")
      expect(JSON.stringify(s)).not.toContain(SECRET)
      const config = yield* ResilienceConfig.toResilientConfig(s).pipe(withEnv({ TEAM_OPENAI_KEY: SECRET }))
      const provider = yield* (config.chain[0].provider as Effect.Effect<Resilient.Service["providers"][number]>)
      expect(provider.name).toBe("openai")
      expect(String(Redacted.make(SECRET))).not.toContain(SECRET)
    }))

  it.effect("ResilienceConfig.layer reads the path from LLM_CONFIG_FILE", () =>
    Effect.gen(function*() {
      const client = yield* Effect.provide(
        Resilient.Resilient,
        ResilienceConfig.layer.pipe(Layer.provide(NodeFileSystem.layer))
      )
      expect(client.providers.map((p) => p.name)).toEqual(["openai", "anthropic", "ollama"])
    }).pipe(withEnv({ ...KEYS, LLM_CONFIG_FILE: EXAMPLE_TOML })))

  it.effect("LLM_CONFIG_FORMAT names the format of a file without a known extension", () =>
    Effect.gen(function*() {
      const file = yield* ResilienceConfig.fileFromEnv
      expect(file).toEqual({ path: "/etc/llm/config", format: "toml" })
    }).pipe(withEnv({ LLM_CONFIG_FILE: "/etc/llm/config", LLM_CONFIG_FORMAT: "TOML" })))

  it.effect("layerFromString builds the client without a file system", () =>
    Effect.gen(function*() {
      const client = yield* Effect.provide(Resilient.Resilient, ResilienceConfig.layerFromString(MINIMAL, "yaml"))
      expect(client.providers.map((p) => `${p.name}:${p.model}`)).toEqual(["openai:gpt-4.1"])
      expect(yield* client.breakers.get("openai:gpt-4.1")!.state).toBe("Closed")
    }).pipe(withEnv(KEYS)))
})

describe("ResilienceConfig: docs/configuration.md stays true", () => {
  const doc = readFileSync("docs/configuration.md", "utf8")
  const block = (lang: string) => {
    const start = doc.indexOf(`\`\`\`${lang}\n`, doc.indexOf("## Full example"))
    return doc.slice(start + lang.length + 4, doc.indexOf("\n\`\`\`", start + 1))
  }

  it("documents every environment variable", () => {
    for (const name of [...ResilienceConfig.overrideVariables, "LLM_CONFIG_FILE", "LLM_CONFIG_FORMAT"]) {
      expect(doc).toContain(`| \`${name}\` |`)
    }
  })

  it.effect("the full YAML and TOML examples in the docs equal the example files", () =>
    Effect.gen(function*() {
      const file = yield* ResilienceConfig.settingsFromFile(EXAMPLE_YAML)
      expect(yield* ResilienceConfig.settingsFromString(block("yaml"), "yaml")).toEqual(file)
      expect(yield* ResilienceConfig.settingsFromString(block("toml"), "toml")).toEqual(file)
    }).pipe(Effect.provide(NodeFileSystem.layer), withEnv({})))
})
