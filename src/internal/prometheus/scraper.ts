import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { InvalidOptions } from "../../LlmError.js"
import { loader } from "../optionalPeer.js"

/** @internal What to install for `/metrics`: the OpenTelemetry producer and Prometheus serializer. */
export const packages = [
  "@effect/opentelemetry",
  "@opentelemetry/exporter-prometheus",
  "@opentelemetry/sdk-metrics",
  "@opentelemetry/resources"
] as const

// Optional peers, loaded when a scraper is built: together they are about half a second of a cold import and 37 MB
// on disk, which an application that never exposes /metrics should not pay.
const loadExporter = loader("prometheus", packages, () =>
  Promise.all([
    import("@opentelemetry/exporter-prometheus"),
    import("@effect/opentelemetry/Metrics"),
    import("@effect/opentelemetry/Resource")
  ]))

/** @internal The Prometheus text format's content type. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * @internal Registers an OpenTelemetry Prometheus reader on Effect's metric registry (through @effect/opentelemetry's
 * producer) for the scope, and returns the scrape: every Effect metric in Prometheus text format.
 */
export const makeScraper = (
  options: { readonly serviceName?: string | undefined } = {}
): Effect.Effect<Effect.Effect<string>, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const [{ PrometheusExporter, PrometheusSerializer }, OtelMetrics, OtelResource] = yield* loadExporter
    // Never listens: the scrape is served by the application's router or by `layerServer`.
    const reader = new PrometheusExporter({ preventServerStart: true })
    const serializer = new PrometheusSerializer()
    yield* Layer.buildWithScope(
      OtelMetrics.layer(() => reader).pipe(
        Layer.provide(OtelResource.layer({ serviceName: options.serviceName ?? "effect-llm-resilience" }))
      ),
      yield* Effect.scope
    )
    return Effect.map(
      Effect.promise(() => reader.collect()),
      ({ resourceMetrics }) => serializer.serialize(resourceMetrics)
    )
  })
