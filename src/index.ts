/**
 * @since 0.1.0
 */

/**
 * The provider-neutral domain model.
 *
 * @since 0.1.0
 */
export * as Llm from "./Llm.js"

/**
 * The failure taxonomy: hard, soft and degraded.
 *
 * @since 0.1.0
 */
export * as LlmError from "./LlmError.js"

/**
 * The provider service interface and its tag.
 *
 * @since 0.1.0
 */
export * as LlmProvider from "./LlmProvider.js"

/**
 * @since 0.1.0
 */
export * as OpenAi from "./providers/OpenAi.js"

/**
 * @since 0.1.0
 */
export * as Anthropic from "./providers/Anthropic.js"

/**
 * @since 0.1.0
 */
export * as OpenAiCompatible from "./providers/OpenAiCompatible.js"

/**
 * Circuit breakers: one per provider:model, with a keyed registry Layer.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * Retry policies per failure reason, Retry-After, timeouts, deadline and retry budget.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.js"

/**
 * Soft and degraded failure detection: format, schema, quality score, truncation, repetition, latency.
 *
 * @since 0.1.0
 */
export * as Quality from "./Quality.js"

/**
 * Resilient streaming: first-chunk and stall timeouts, the commit point, failover and continuation.
 *
 * @since 0.1.0
 */
export * as Streaming from "./Streaming.js"

/**
 * Rate limiting per provider:model: a concurrency bulkhead, RPM and TPM with reconciled token charges, and the
 * provider's own rate-limit headers.
 *
 * @since 0.1.0
 */
export * as RateLimit from "./RateLimit.js"

/**
 * Fallback programs: typed orElse, ordered chains, relaxation, cache, static answer, hedging.
 *
 * @since 0.1.0
 */
export * as Fallback from "./Fallback.js"

/**
 * The composed resilient client.
 *
 * @since 0.1.0
 */
export * as Resilient from "./Resilient.js"

/**
 * Declarative YAML/TOML configuration and LLM_* environment overrides for the Resilient client.
 *
 * @since 0.1.0
 */
export * as ResilienceConfig from "./Config.js"

/**
 * Metrics, the per-request log event, spans, the Prometheus endpoint and alert rules.
 *
 * @since 0.1.0
 */
export * as Observability from "./Observability.js"
