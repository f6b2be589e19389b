/**
 * Test doubles for applications built on effect-llm-resilience.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as ScriptedProvider from "./ScriptedProvider.js"

/**
 * @since 0.1.0
 */
export * as ProviderEmulator from "./ProviderEmulator.js"
