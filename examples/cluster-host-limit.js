'use strict'
// One limit for every process on the host: node:cluster workers that all
// call the same external service through one host-wide limit.
//
//   node examples/cluster-host-limit.js
//
// The primary process starts a small HTTP service on 127.0.0.1 (an
// ephemeral port) that counts how many requests it is serving at once, then
// forks 4 cluster workers. Each worker opens the same host-wide limit,
// pLimit({ concurrency: 3, name, scope: 'host' }), and makes its requests
// through it, so the service never sees more than 3 requests at once from
// all the workers together. A permit released in one process starts a
// request queued in another: no master process in the middle, no polling,
// no blocked thread. A worker killed with SIGKILL while it holds permits
// would have them returned to the others within a fraction of a second.
// Linux only for now.
const cluster = require('node:cluster')
const http = require('node:http')
const { pLimit } = require('../lib/index.js') // require('sluice')

const WORKERS = 4
const REQUESTS_PER_WORKER = 25
const LIMIT = 3

if (cluster.isPrimary)
  primary().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
else
  worker().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })

// ---------------------------------------------------------------- worker ---

async function worker() {
  const { url, name } = JSON.parse(process.env.EXAMPLE_CONFIG)
  // Every worker opens the same name with scope 'host': one gate for every
  // process of this user on the machine. The first opener sets the
  // concurrency; the others attach (with the same number, or none).
  const limit = pLimit({ concurrency: LIMIT, name, scope: 'host' })
  const agent = new http.Agent({ keepAlive: true, maxSockets: LIMIT })
  const results = await Promise.all(
    Array.from({ length: REQUESTS_PER_WORKER }, (_, i) =>
      limit(() => getJson(`${url}/item/${process.pid}-${i}`, agent))
    )
  )
  agent.destroy()
  process.send({ done: results.length })
  process.disconnect() // nothing else keeps the worker: it exits
}

function getJson(url, agent) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => {
          body += chunk
        })
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`))
          else resolve(JSON.parse(body))
        })
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

// --------------------------------------------------------------- primary ---

async function primary() {
  if (process.platform !== 'linux') {
    console.log("scope: 'host' is Linux-only for now")
    return
  }
  let inFlight = 0
  let maxInFlight = 0
  let served = 0
  const server = http.createServer((req, res) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    // A slow service: 5 to 15 ms per request.
    setTimeout(
      () => {
        served++
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ path: req.url }))
        inFlight--
      },
      5 + Math.random() * 10
    )
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}`
  // A name of this run's own (a real service would use a fixed one).
  const name = `example-api-${process.pid}`
  console.log(
    `service listening on ${url}; ${WORKERS} cluster workers x ${REQUESTS_PER_WORKER} requests through pLimit({ concurrency: ${LIMIT}, name, scope: 'host' })`
  )
  const t0 = Date.now()
  const done = await Promise.all(
    Array.from(
      { length: WORKERS },
      () =>
        new Promise((resolve, reject) => {
          const w = cluster.fork({ EXAMPLE_CONFIG: JSON.stringify({ url, name }) })
          let n = 0
          w.on('message', (m) => {
            n = m.done
          })
          w.on('exit', (code) =>
            code === 0 && n > 0
              ? resolve(n)
              : reject(new Error(`worker ${w.id} exited with code ${code}`))
          )
        })
    )
  )
  const total = done.reduce((a, b) => a + b, 0)
  console.log(`workers done in ${Date.now() - t0} ms`)
  await new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
  console.log(`total requests: ${total} (served: ${served})`)
  console.log(`max concurrent requests: ${maxInFlight} (limit ${LIMIT})`)
  if (maxInFlight > LIMIT || total !== WORKERS * REQUESTS_PER_WORKER) process.exitCode = 1
}
