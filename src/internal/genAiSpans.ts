/**
 * The OpenTelemetry GenAI conventions' span of a chat call: its name and request attributes (the metrics of the same
 * conventions are in ./metrics.ts).
 * @internal
 */
import { attr } from "./metrics.js"

/** @internal The GenAI conventions' span name of a chat call: `chat {model}`. */
export const genAiSpanName = (model: string): string => `chat ${model}`

/**
 * @internal The GenAI conventions' request attributes of a span: operation, provider, model, max tokens,
 * temperature and, from the base URL, the server's address and port.
 */
export const genAiRequestAttributes = (request: {
  readonly provider: string
  readonly model: string
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  readonly baseURL?: string | undefined
}): Record<string, string | number> => {
  const attributes: Record<string, string | number> = {
    [attr.operation]: "chat",
    [attr.providerName]: request.provider,
    [attr.requestModel]: request.model
  }
  if (request.maxTokens !== undefined) attributes[attr.requestMaxTokens] = request.maxTokens
  if (request.temperature !== undefined) attributes[attr.requestTemperature] = request.temperature
  return request.baseURL === undefined ? attributes : { ...attributes, ...serverAttributes(request.baseURL) }
}

/** @internal `server.address` and `server.port` of a base URL; none when it is not a URL. */
export const serverAttributes = (baseURL: string | undefined): Record<string, string | number> => {
  if (baseURL === undefined) return {}
  try {
    const url = new URL(baseURL)
    return {
      [attr.serverAddress]: url.hostname,
      [attr.serverPort]: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port)
    }
  } catch {
    return {}
  }
}
