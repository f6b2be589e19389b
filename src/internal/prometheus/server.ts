import * as HttpServerError from "@effect/platform/HttpServerError"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { contentType } from "./scraper.js"

/** @internal Where the standalone server listens. */
export interface Address {
  readonly host: string
  readonly port: number
  readonly url: string
}

/**
 * @internal A plain `node:http` server answering `GET path` with the scrape and 404 otherwise, for the scope. It is
 * deliberately not an `@effect/platform` `HttpServer`: it must not become the application's server.
 */
export const serve = (
  scrape: Effect.Effect<string>,
  options: { readonly port: number; readonly host: string; readonly path: string }
): Effect.Effect<Address, HttpServerError.ServeError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Server, HttpServerError.ServeError>((resume) => {
      const server = createServer((request, response) => {
        const path = (request.url ?? "/").split("?")[0]
        if (path !== options.path || (request.method !== "GET" && request.method !== "HEAD")) {
          response.writeHead(404).end()
          return
        }
        Effect.runPromise(scrape).then(
          (text) => response.writeHead(200, { "content-type": contentType }).end(text),
          () => response.writeHead(500).end()
        )
      })
      server.once("error", (cause) => resume(Effect.fail(new HttpServerError.ServeError({ cause }))))
      server.listen(options.port, options.host, () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => {
    const { port } = server.address() as AddressInfo
    const host = options.host.includes(":") ? `[${options.host}]` : options.host
    return { host: options.host, port, url: `http://${host}:${port}${options.path}` }
  }))
