import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { PrometheusOptions } from "../Observability.js"

// OpenTelemetry, @effect/opentelemetry and the HTTP server are loaded when a scraper is built: together they are
// about half a second of a cold import, which an application that never exposes /metrics should not pay.
const loadExporter = Effect.promise(() =>
  Promise.all([
    import("@opentelemetry/exporter-prometheus"),
    import("@effect/opentelemetry/Metrics"),
    import("@effect/opentelemetry/Resource")
  ])
)
const loadServer = Effect.promise(() =>
  Promise.all([
    import("@effect/platform/HttpRouter"),
    import("@effect/platform/HttpServer"),
    import("@effect/platform/HttpServerResponse"),
    import("@effect/platform-node/NodeHttpServer"),
    import("node:http")
  ])
)

/** @internal The Prometheus text format's content type. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * @internal Registers an OpenTelemetry Prometheus reader on Effect's metric registry (through @effect/opentelemetry's
 * producer) and returns the scrape: every Effect metric in Prometheus text format.
 */
export const makeScraper = (
  options: Pick<PrometheusOptions, "serviceName"> = {}
): Effect.Effect<Effect.Effect<string>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const [{ PrometheusExporter, PrometheusSerializer }, OtelMetrics, OtelResource] = yield* loadExporter
    // Never listens: this package serves /metrics through @effect/platform.
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

/** @internal */
export const layer = (
  options: PrometheusOptions = {}
): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const scrape = yield* makeScraper(options)
    const [HttpRouter, HttpServer, HttpServerResponse, NodeHttpServer, { createServer }] = yield* loadServer
    const router = HttpRouter.empty.pipe(
      HttpRouter.get(
        (options.path ?? "/metrics") as HttpRouter.PathInput,
        Effect.map(scrape, (text) => HttpServerResponse.text(text, { contentType }))
      )
    )
    const server = NodeHttpServer.layer(() => createServer(), {
      port: options.port ?? 9464,
      host: options.host ?? "127.0.0.1"
    })
    return HttpServer.serve(router).pipe(Layer.provideMerge(server))
  }))
