import { LLMock } from "@copilotkit/aimock"
import Anthropic from "@anthropic-ai/sdk"
const mock = new LLMock({ port: 0, host: "127.0.0.1" })
await mock.start()
mock.onMessage("hello", { content: "Hi there!", usage: { input_tokens: 7, output_tokens: 3 }, finishReason: "length", model: "claude-mock" })
mock.onMessage("err", { error: { message: "Rate limited", type: "rate_limit_error" }, status: 429, retryAfter: 3 })
mock.onMessage("trunc", { content: "Hello world this is a long text to truncate" }, { truncateAfterChunks: 4, chunkSize: 5 })
const c = new Anthropic({ apiKey: "k", baseURL: mock.url, maxRetries: 0 })
const r = await c.messages.create({ model: "m", max_tokens: 10, messages: [{ role: "user", content: "hello" }] }).withResponse()
console.log(JSON.stringify(r.data), r.request_id, [...r.response.headers])
try { await c.messages.create({ model: "m", max_tokens: 10, messages: [{ role: "user", content: "err" }] }) } catch (e: any) { console.log(e.constructor.name, e.status, e.type, e.message, [...e.headers]) }
const s = await c.messages.create({ model: "m", max_tokens: 10, stream: true, messages: [{ role: "user", content: "trunc" }] })
try { for await (const ev of s) console.log(JSON.stringify(ev)) } catch (e: any) { console.log("ERR", e.constructor.name, e.message) }
console.log(JSON.stringify(mock.getRequests().map(r => ({ path: r.path, body: r.body, status: r.response.status }))))
await mock.stop()
