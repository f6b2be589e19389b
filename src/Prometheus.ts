/**
 * Every Effect metric of the process in the Prometheus text format, two ways: a `/metrics` handler the application
 * mounts on its own router (`layer` + `handler`), or a small server of its own on another port (`layerServer`).
 * Neither puts an `HttpServer` into the application's context, so either one merges with the application's own
 * server in any order.
 *
 * The rendering is `@effect/opentelemetry`'s metric producer and `@opentelemetry/exporter-prometheus`'s serializer:
 * optional peer dependencies, loaded when the scraper is built. Without them, building it fails with an
 * `InvalidOptions` naming the packages to install. Imported as `effect-llm-resilience/prometheus`. See
 * docs/observability.md.
 *
 * @since 0.1.0
 */
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as scraper from "./internal/prometheus/scraper.js"
import * as server from "./internal/prometheus/server.js"
import type { InvalidOptions } from "./LlmError.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** `service_name` of the `target_info` series. Default `effect-llm-resilience`. */
  readonly serviceName?: string | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface ServerOptions extends Options {
  /** Default 9464 (the OpenTelemetry Prometheus exporter's port). 0 picks a free port. */
  readonly port?: number | undefined
  /** Default `127.0.0.1`; `0.0.0.0` to be scraped from other hosts. */
  readonly host?: string | undefined
  /** Default `/metrics`. */
  readonly path?: string | undefined
}

/**
 * The optional peer dependencies the scrape needs (`npm install` them with the versions in docs/observability.md).
 *
 * @since 0.1.0
 * @category Constants
 */
export const packages: ReadonlyArray<string> = scraper.packages

/**
 * The Prometheus text format's content type.
 *
 * @since 0.1.0
 * @category Constants
 */
export const contentType: string = scraper.contentType

/**
 * Registers a Prometheus reader on Effect's metric registry for the scope and returns the scrape: an Effect rendering
 * every Effect metric in the Prometheus text format. Metric names become Prometheus names the OpenTelemetry way
 * (dots → underscores, counters get `_total`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeScraper: (options?: Options) => Effect.Effect<Effect.Effect<string>, InvalidOptions, Scope.Scope> =
  scraper.makeScraper

/**
 * The scrape as a service, for {@link handler}.
 *
 * @since 0.1.0
 * @category Tags
 */
export class Scraper extends Context.Tag("effect-llm-resilience/Prometheus/Scraper")<
  Scraper,
  { readonly scrape: Effect.Effect<string> }
>() {}

/**
 * Provides the {@link Scraper} for the life of the Layer.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options?: Options): Layer.Layer<Scraper, InvalidOptions> =>
  Layer.scoped(Scraper, Effect.map(makeScraper(options), (scrape) => ({ scrape })))

/**
 * The `/metrics` response, to mount on the application's own router:
 * `HttpRouter.get("/metrics", Prometheus.handler)`, with {@link layer} provided.
 *
 * @since 0.1.0
 * @category Handlers
 */
export const handler: Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scraper> = Effect.flatMap(
  Scraper,
  ({ scrape }) => Effect.map(scrape, (text) => HttpServerResponse.text(text, { contentType }))
)

/**
 * Where {@link layerServer} listens (with `port: 0`, the port it picked).
 *
 * @since 0.1.0
 * @category Tags
 */
export class Server extends Context.Tag("effect-llm-resilience/Prometheus/Server")<Server, {
  readonly host: string
  readonly port: number
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string
}>() {}

/**
 * Serves `GET /metrics` on a port of its own (a plain Node HTTP server, not an `@effect/platform` `HttpServer`, so the
 * application's own server is left alone), for the life of the Layer.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerServer = (
  options: ServerOptions = {}
): Layer.Layer<Server, InvalidOptions | HttpServerError.ServeError> =>
  Layer.scoped(
    Server,
    Effect.flatMap(makeScraper(options), (scrape) =>
      server.serve(scrape, {
        port: options.port ?? 9464,
        host: options.host ?? "127.0.0.1",
        path: options.path ?? "/metrics"
      }))
  )
