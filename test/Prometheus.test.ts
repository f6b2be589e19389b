import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { createServer } from "node:http"
import * as Prometheus from "../src/Prometheus.js"

const hits = Metric.counter("prometheus_test.hits", { incremental: true })

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
  })

const serverUrl = (context: Context.Context<HttpServer.HttpServer>) => {
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return `http://127.0.0.1:${address.port}`
}

// The application's own server, with `/metrics` mounted on its own router next to `/hello`.
const appRouter = HttpRouter.empty.pipe(
  HttpRouter.get("/hello", HttpServerResponse.text("hello")),
  HttpRouter.get("/metrics", Prometheus.handler)
)
const appServer = NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" })
const app = HttpServer.serve(appRouter).pipe(Layer.provide(Prometheus.layer()))

describe("Prometheus", () => {
  it.scoped("the handler mounted on the app's own router: /hello and /metrics on one server", () =>
    Effect.gen(function*() {
      yield* Metric.increment(hits)
      const context = yield* Layer.build(Layer.provideMerge(app, appServer))
      const base = serverUrl(context)
      expect(yield* get(`${base}/hello`)).toMatchObject({ status: 200, text: "hello" })
      const metrics = yield* get(`${base}/metrics`)
      expect(metrics.status).toBe(200)
      expect(metrics.type).toBe(Prometheus.contentType)
      expect(metrics.text).toMatch(/^prometheus_test_hits_total\{[^}]*\} [1-9]/m)
    }))

  // With the old `Observability.layerPrometheus` (it provided an HttpServer), merging it before the app's server
  // left /hello hanging and /metrics answering 404.
  for (const order of ["app first", "metrics first"] as const) {
    it.scoped(`the standalone server beside the app's own server (${order})`, () =>
      Effect.gen(function*() {
        yield* Metric.increment(hits)
        const appLayer = HttpServer.serve(
          HttpRouter.empty.pipe(HttpRouter.get("/hello", HttpServerResponse.text("hello")))
        )
        const standalone = Prometheus.layerServer({ port: 0 })
        const merged = order === "app first"
          ? Layer.mergeAll(appServer, standalone)
          : Layer.mergeAll(standalone, appServer)
        const context = yield* Layer.build(Layer.provideMerge(appLayer, merged))
        expect(yield* get(`${serverUrl(context)}/hello`)).toMatchObject({ status: 200, text: "hello" })
        const metricsServer = Context.get(context, Prometheus.Server)
        expect(metricsServer.url).toBe(`http://127.0.0.1:${metricsServer.port}/metrics`)
        const metrics = yield* get(metricsServer.url)
        expect(metrics.status).toBe(200)
        expect(metrics.text).toMatch(/^prometheus_test_hits_total\{[^}]*\} [1-9]/m)
        expect((yield* get(`http://127.0.0.1:${metricsServer.port}/hello`)).status).toBe(404)
      }))
  }

  it.scoped("the standalone server's port in use is a typed ServeError", () =>
    Effect.gen(function*() {
      const first = Context.get(yield* Layer.build(Prometheus.layerServer({ port: 0 })), Prometheus.Server)
      const second = yield* Effect.flip(Layer.build(Prometheus.layerServer({ port: first.port })))
      expect(second._tag).toBe("ServeError")
    }))
})
