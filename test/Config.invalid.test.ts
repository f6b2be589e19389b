/**
 * Invalid configurations: each one fails — at Layer build, as a typed `InvalidConfig`, never a defect — with every
 * problem as `path: reason`.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ResilienceConfig from "../src/Config.js"
import * as Resilient from "../src/Resilient.js"

const SECRET = "sk-test-never-print-91c2"
const KEYS = { OPENAI_API_KEY: SECRET, ANTHROPIC_API_KEY: SECRET }

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

type Expected = ReadonlyArray<readonly [path: string, reason: string]>

/** Builds the Layer from the text and returns the typed failure (a defect or a success fails the test). */
const failure = (text: string, format: ResilienceConfig.Format, env: Record<string, string> = KEYS) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(
      Layer.build(ResilienceConfig.layerFromString(text, format)).pipe(Effect.scoped, withEnv(env))
    )
    if (Exit.isSuccess(exit)) return expect.fail("the configuration was accepted")
    const error = Cause.failureOption(exit.cause)
    if (error._tag === "None") return expect.fail(`not a typed failure: ${Cause.pretty(exit.cause)}`)
    expect(error.value).toBeInstanceOf(ResilienceConfig.InvalidConfig)
    return error.value
  })

const expectIssues = (error: ResilienceConfig.InvalidConfig, expected: Expected) => {
  expect(error.issues.map((issue) => [issue.path, issue.reason])).toEqual(expected)
  expect(error.path).toBe(expected[0]![0])
  expect(error.reason).toBe(expected[0]![1])
  for (const [path, reason] of expected) expect(error.message).toContain(`  ${path}: ${reason}`)
  expect(error.message).not.toContain(SECRET)
}

const model = (fields: string) => `models:\n  - { id: a, provider: openai, model: gpt-4.1${fields} }\n`

const CHAIN_A = "chain: [a]\n"

const cases: ReadonlyArray<{
  readonly name: string
  readonly text: string
  readonly format?: ResilienceConfig.Format
  readonly env?: Record<string, string>
  readonly issues: Expected
}> = [
  {
    name: "wrong type: a string where a number is expected",
    text: model(", context_window: big") + CHAIN_A,
    issues: [["models[0].context_window", "expected a positive integer, got \"big\""]]
  },
  {
    name: "wrong type: a number where a duration string is expected (TOML)",
    format: "toml",
    text: "chain = [\"a\"]\n[[models]]\nid = \"a\"\nprovider = \"openai\"\nmodel = \"m\"\ntimeout = 30\n",
    issues: [[
      "models[0].timeout",
      "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got 30"
    ]]
  },
  {
    name: "a duration too long for a timer, and .nan / .inf reported as what they are",
    text: model(
      ", timeout: '99999999999999999999 days', context_window: .inf, price: { input_per_1k: .nan, output_per_1k: 1 }"
    )
      + CHAIN_A,
    issues: [
      [
        "models[0].timeout",
        "expected a duration of at most 2147483647 ms (about 24.8 days), got \"99999999999999999999 days\""
      ],
      ["models[0].context_window", "expected a positive integer, got Infinity"],
      ["models[0].price.input_per_1k", "expected a non-negative number, got NaN"]
    ]
  },
  {
    name: "a key pasted where a variable name or URL goes is never echoed",
    text: model(", api_key_env: 'sk-test-never-print-91c2', base_url: 'sk-test-never-print-91c2'") + CHAIN_A,
    env: { ...KEYS, LLM_RATE_LIMIT_MODE: SECRET },
    issues: [
      ["models[0].api_key_env", "expected an environment variable name such as \"OPENAI_API_KEY\" (value hidden)"],
      ["models[0].base_url", "expected an http(s) URL (value hidden)"],
      ["LLM_RATE_LIMIT_MODE", "expected one of \"wait\", \"fail-fast\" (value hidden)"]
    ]
  },
  {
    name: "unknown provider type",
    text: "models:\n  - { id: a, provider: azure, model: m }\n" + CHAIN_A,
    issues: [["models[0].provider", "expected one of \"openai\", \"anthropic\", \"openai-compatible\", got \"azure\""]]
  },
  {
    name: "missing key variable",
    text: model(", api_key_env: TEAM_KEY") + CHAIN_A,
    issues: [["TEAM_KEY", "is not set; it holds the API key of model \"a\" (api_key_env)"]]
  },
  {
    name: "missing default key variable of an anthropic model",
    text: "models:\n  - { id: claude, provider: anthropic, model: claude-sonnet-4-6 }\nchain: [claude]\n",
    env: { OPENAI_API_KEY: SECRET },
    issues: [["ANTHROPIC_API_KEY", "is not set; it holds the API key of model \"claude\" (api_key_env)"]]
  },
  {
    name: "empty key variable",
    text: model("") + CHAIN_A,
    env: { OPENAI_API_KEY: "  " },
    issues: [["OPENAI_API_KEY", "is empty; it holds the API key of model \"a\" (api_key_env)"]]
  },
  {
    name: "negative duration",
    text: model(", timeout: -5 seconds") + CHAIN_A,
    issues: [[
      "models[0].timeout",
      "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"-5 seconds\""
    ]]
  },
  {
    name: "zero and unitless durations",
    text: model("") + CHAIN_A + "breaker: { cooldown: 0 seconds, probe_timeout: '30' }\n",
    issues: [
      [
        "breaker.cooldown",
        "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"0 seconds\""
      ],
      [
        "breaker.probe_timeout",
        "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"30\""
      ]
    ]
  },
  {
    name: "unknown top-level key",
    text: model("") + CHAIN_A + "retries: 3\n",
    issues: [[
      "retries",
      "unknown key (allowed: preset, strategy, deadline, when_all_refused, relaxation, continuation, degraded, retry, breaker, timeout, rate_limit, models, chain, degrade, hedging)"
    ]]
  },
  {
    name: "unknown nested key (a camelCase spelling)",
    text: model(", contextWindow: 8000") + CHAIN_A,
    issues: [[
      "models[0].contextWindow",
      "unknown key (allowed: id, provider, model, name, api_key_env, base_url, organization, project, headers, default_max_tokens, timeout, first_chunk_timeout, stall_timeout, connect_timeout, context_window, max_output_tokens, capabilities, price, limits, downgrades, quality_rank, deployments, balance, max_ejection_percent, panic)"
    ]]
  },
  {
    name: "malformed YAML",
    text: "chain: [a, b\nmodels: []\n",
    issues: [[
      "line 2, column 1",
      "malformed YAML: Flow sequence in block collection must be sufficiently indented and end with a ]"
    ]]
  },
  {
    name: "duplicate YAML key",
    text: model("") + CHAIN_A + "strategy: ordered\nstrategy: cost-first\n",
    issues: [["line 5, column 1", "malformed YAML: Map keys must be unique"]]
  },
  {
    name: "malformed TOML",
    format: "toml",
    text: "chain = [\"a\"\n[[models]]\nid = \"a\"\n",
    issues: [["line 2, column 1", "malformed TOML: expected comma or end of structure"]]
  },
  {
    name: "an empty document",
    text: "# nothing here\n",
    issues: [["(root)", "expected a table, got null"]]
  },
  {
    name: "a list where the document's table is expected",
    text: "- gpt\n- claude\n",
    issues: [["(root)", "expected a table, got a list"]]
  },
  {
    name: "a YAML alias bomb is refused, not expanded",
    text: "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    issues: [["(document)", "malformed YAML: Excessive alias count indicates a resource exhaustion attack"]]
  },
  {
    name: "empty chain",
    text: model("") + "chain: []\n",
    issues: [["chain", "expected a non-empty list, got an empty list"]]
  },
  {
    name: "missing required keys",
    text: "models:\n  - { id: a, provider: openai }\n",
    issues: [["models[0].model", "is required"], ["chain", "is required"]]
  },
  {
    name: "downgrade of an unknown model",
    text: model(", downgrades: [gpt-mini]") + CHAIN_A,
    issues: [["models[0].downgrades[0]", "unknown model id \"gpt-mini\""]]
  },
  {
    name: "downgrade to a model of another provider",
    text: model(", downgrades: [claude]") + "  - { id: claude, provider: anthropic, model: claude-haiku-4-5 }\n"
      + CHAIN_A,
    issues: [[
      "models[0].downgrades[0]",
      "model \"claude\" must have the same provider, name, base_url and api_key_env as \"a\" to be its downgrade"
    ]]
  },
  {
    name: "duplicate model ids",
    text: model("") + "  - { id: a, provider: anthropic, model: claude-haiku-4-5 }\n" + CHAIN_A,
    issues: [["models[1].id", "duplicate model id \"a\" (first at models[0])"]]
  },
  {
    name: "chain entry naming an unknown model, and a model twice",
    text: model("") + "chain: [a, { model: b }, a]\n",
    issues: [
      ["chain[1].model", "unknown model id \"b\""],
      ["chain[2]", "model \"a\" is already in the chain at chain[0]"]
    ]
  },
  {
    name: "negative price",
    text: model(", price: { input_per_1k: -0.5, output_per_1k: 0.1 }") + CHAIN_A,
    issues: [["models[0].price.input_per_1k", "expected a non-negative number, got -0.5"]]
  },
  {
    name: "limits zero",
    text: model(", limits: { rpm: 0, concurrency: 1.5 }") + CHAIN_A,
    issues: [
      ["models[0].limits.rpm", "expected a positive integer, got 0"],
      ["models[0].limits.concurrency", "expected a positive integer, got 1.5"]
    ]
  },
  {
    name: "unknown preset",
    text: model("") + "chain: [{ model: a, breaker: paranoid }]\n",
    issues: [[
      "chain[0].breaker",
      "expected one of \"lenient\", \"balanced\", \"strict\", false, a table, got \"paranoid\""
    ]]
  },
  {
    name: "unknown preset inside a breaker table",
    text: model("") + CHAIN_A + "breaker: { preset: paranoid }\n",
    issues: [["breaker.preset", "expected one of \"lenient\", \"balanced\", \"strict\", got \"paranoid\""]]
  },
  {
    name: "unknown strategy",
    text: model("") + CHAIN_A + "strategy: fastest\n",
    issues: [[
      "strategy",
      "expected one of \"ordered\", \"cost-first\", \"latency-first\", \"quality-first\", got \"fastest\""
    ]]
  },
  {
    name: "bad base URL",
    text: model(", base_url: localhost:8080") + "  - { id: b, provider: openai, model: m, base_url: 'ftp://x' }\n"
      + CHAIN_A,
    issues: [
      ["models[0].base_url", "expected an http(s) URL (value hidden)"],
      ["models[1].base_url", "expected an http(s) URL (value hidden)"]
    ]
  },
  {
    name: "openai-compatible without base_url, and provider-specific keys on the wrong provider",
    text: "models:\n  - { id: local, provider: openai-compatible, model: llama3.1, organization: org-1 }\n"
      + "  - { id: gpt, provider: openai, model: m, default_max_tokens: 100 }\nchain: [local, gpt]\n",
    issues: [
      ["models[0].base_url", "is required for provider \"openai-compatible\""],
      ["models[0].organization", "applies to provider \"openai\" only"],
      ["models[1].default_max_tokens", "applies to provider \"anthropic\" only"]
    ]
  },
  {
    name: "the brief's example: a negative breaker threshold in the second tier",
    text: model("")
      + "  - { id: b, provider: openai, model: m }\nchain: [a, { model: b, breaker: { consecutive_failures: -3 } }]\n",
    issues: [["chain[1].breaker.consecutive_failures", "expected a positive integer, got -3"]]
  },
  {
    name: "retry: an unknown failure reason and a jitter out of range",
    text: model("") + CHAIN_A + "retry:\n  policies:\n    Flaky: { max_attempts: 2 }\n    Timeout: { jitter: 2 }\n",
    issues: [
      [
        "retry.policies.Flaky",
        "unknown key (allowed: RateLimited, QuotaExhausted, ServerError, Overloaded, Timeout, Connection, BadRequest, ContextLengthExceeded, Unauthorized, Forbidden, NotFound, ContentFiltered, Unknown, Soft)"
      ],
      ["retry.policies.Timeout.jitter", "expected a number in [0, 1], got 2"]
    ]
  },
  {
    name: "degradation and hedging out of range",
    text: model("") + CHAIN_A
      + "degrade: { cache: { ttl: forever, capacity: 0 }, static_response: '' }\nhedging: { delay: p99, max_fraction: 2 }\n",
    issues: [
      [
        "degrade.cache.ttl",
        "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"forever\""
      ],
      ["degrade.cache.capacity", "expected a positive integer, got 0"],
      ["degrade.static_response", "expected a non-empty string, got \"\""],
      [
        "hedging.delay",
        "expected one of \"p95\", a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"p99\""
      ],
      ["hedging.max_fraction", "expected a number in (0, 1], got 2"]
    ]
  },
  {
    name: "a bad API key variable name",
    text: model(", api_key_env: 'sk-live-abc'") + CHAIN_A,
    issues: [[
      "models[0].api_key_env",
      "expected an environment variable name such as \"OPENAI_API_KEY\" (value hidden)"
    ]]
  },
  {
    name: "bad environment overrides, reported with the file's problems",
    text: model("") + CHAIN_A + "strategy: fastest\n",
    env: {
      ...KEYS,
      LLM_CIRCUIT_BREAKER_THRESHOLD: "-3",
      LLM_CIRCUIT_BREAKER_ENABLED: "maybe",
      LLM_RATE_LIMIT_MODE: "burst",
      LLM_CACHE_TTL: "10 parsecs",
      LLM_HEDGING_MAX_FRACTION: "lots"
    },
    issues: [
      [
        "strategy",
        "expected one of \"ordered\", \"cost-first\", \"latency-first\", \"quality-first\", got \"fastest\""
      ],
      ["LLM_CIRCUIT_BREAKER_ENABLED", "expected true or false (value hidden)"],
      ["LLM_CIRCUIT_BREAKER_THRESHOLD", "expected a positive integer (value hidden)"],
      ["LLM_RATE_LIMIT_MODE", "expected one of \"wait\", \"fail-fast\" (value hidden)"],
      [
        "LLM_CACHE_TTL",
        "expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\" (value hidden)"
      ],
      ["LLM_HEDGING_MAX_FRACTION", "expected a number in (0, 1] (value hidden)"]
    ]
  }
]

describe("ResilienceConfig: invalid configurations fail the Layer build", () => {
  it("covers at least 20 invalid configurations", () => {
    expect(cases.length).toBeGreaterThanOrEqual(20)
  })

  for (const c of cases) {
    it.effect(c.name, () =>
      Effect.gen(function*() {
        const error = yield* failure(c.text, c.format ?? "yaml", c.env)
        expect(error.source).toBe("<string>")
        expectIssues(error, c.issues)
      }))
  }
})

describe("ResilienceConfig: files and the environment", () => {
  it.effect("an unreadable file", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceConfig.settingsFromFile("/nonexistent/llm/resilient.yaml"))
      expect(error.source).toBe("/nonexistent/llm/resilient.yaml")
      expect(error.path).toBe("/nonexistent/llm/resilient.yaml")
      expect(error.reason).toMatch(/^cannot read the file \(NotFound\): /)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("a file whose format cannot be told from its name", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceConfig.settingsFromFile("config/resilient.json"))
      expectIssues(error, [[
        "config/resilient.json",
        "cannot tell the format from the file name: use .yaml, .yml or .toml, or pass the format"
      ]])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("a file with problems names the file as the source, and layerFromFile fails at build", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Layer.build(ResilienceConfig.layerFromFile("examples/config/resilient.yaml")).pipe(
          Effect.scoped,
          Effect.provide(NodeFileSystem.layer),
          withEnv({ OPENAI_API_KEY: SECRET, LLM_RETRY_MAX_ATTEMPTS: "0" })
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      expect(error?._tag).toBe("Some")
      const invalid = error?._tag === "Some" ? error.value : undefined
      expect(invalid?.source).toBe("examples/config/resilient.yaml")
      expect(invalid?.issues).toEqual([{
        path: "LLM_RETRY_MAX_ATTEMPTS",
        reason: "expected a positive integer (value hidden)"
      }])
    }))

  it.effect("a missing key after a valid file is reported for each model, without the other keys' values", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ResilienceConfig.fromFile("examples/config/resilient.toml").pipe(
          Effect.provide(NodeFileSystem.layer),
          withEnv({ OPENAI_API_KEY: SECRET })
        )
      )
      expectIssues(error, [[
        "ANTHROPIC_API_KEY",
        "is not set; it holds the API key of model \"claude\" (api_key_env)"
      ]])
    }))

  it.effect("ResilienceConfig.layer without LLM_CONFIG_FILE", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(Resilient.Resilient, ResilienceConfig.layer.pipe(Layer.provide(NodeFileSystem.layer)))
      )
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      expect(error?._tag === "Some" ? error.value.issues : undefined).toEqual([
        { path: "LLM_CONFIG_FILE", reason: "is not set; it must name the configuration file" }
      ])
    }).pipe(withEnv({})))

  it.effect("LLM_CONFIG_FORMAT must be yaml or toml", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ResilienceConfig.fileFromEnv)
      expectIssues(error, [["LLM_CONFIG_FORMAT", "expected \"yaml\" or \"toml\" (value hidden)"]])
    }).pipe(withEnv({ LLM_CONFIG_FILE: "x", LLM_CONFIG_FORMAT: "json" })))

  it.effect("InvalidConfig is a tagged, catchable error whose message lists every problem", () =>
    Effect.gen(function*() {
      const error = yield* failure(model(", timeout: soon, limits: { rpm: -1 }") + "chain: [a, b]\n", "yaml")
      expect(error._tag).toBe("InvalidConfig")
      expect(error.message).toBe(
        "Invalid configuration (<string>), 2 problems:\n"
          + "  models[0].timeout: expected a positive duration such as \"30 seconds\", \"2 minutes\", \"30s\" or \"1m30s\", got \"soon\"\n"
          + "  models[0].limits.rpm: expected a positive integer, got -1"
      )
      const caught = yield* ResilienceConfig.fromString("chain: [a]\n", "yaml").pipe(
        Effect.catchTag("InvalidConfig", (e) => Effect.succeed(e.issues.length))
      )
      expect(caught).toBe(1)
    }))
})
