import { LLMock } from "@copilotkit/aimock"
import Anthropic from "@anthropic-ai/sdk"
const mock = new LLMock({ port: 0, host: "127.0.0.1" })
await mock.start()
for (const n of [1,2,3,4,5,6,8]) mock.onMessage(`trunc${n}`, { content: "Hello world this is a long text to truncate" }, { truncateAfterChunks: n, chunkSize: 5 })
mock.onMessage("full", { content: "Hello world" , usage: { input_tokens: 7, output_tokens: 3 }}, { chunkSize: 5 })
const c = new Anthropic({ apiKey: "k", baseURL: mock.url, maxRetries: 0 })
for (const m of ["full","trunc1","trunc2","trunc3","trunc4","trunc5","trunc6","trunc8"]) {
  console.log("==", m)
  try {
  const s = await c.messages.create({ model: "m", max_tokens: 10, stream: true, messages: [{ role: "user", content: m }] })
  for await (const ev of s) console.log(JSON.stringify(ev)) } catch (e: any) { console.log("ERR", e.constructor.name, e.message, e.cause?.message) }
}
console.log(JSON.stringify(mock.getRequests().map(r => ({ path: r.path, body: r.body, status: r.response }))))
await mock.stop()
