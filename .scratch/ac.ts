const N = 200000
for (let r = 0; r < 4; r++) {
  let t = process.cpuUsage()
  let x: unknown
  for (let i = 0; i < N; i++) x = new AbortController()
  let u = process.cpuUsage(t)
  const ac = (u.user + u.system) / N
  t = process.cpuUsage()
  for (let i = 0; i < N; i++) { const c = new AbortController(); x = c.signal }
  u = process.cpuUsage(t)
  const acs = (u.user + u.system) / N
  t = process.cpuUsage()
  for (let i = 0; i < N; i++) { const c = new AbortController(); c.abort() }
  u = process.cpuUsage(t)
  console.log(`new AbortController ${ac.toFixed(2)}µs, +signal ${acs.toFixed(2)}µs, +abort ${((u.user+u.system)/N).toFixed(2)}µs`, typeof x)
}
