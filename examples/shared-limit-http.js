'use strict'
// One limit for the whole process: worker_threads that all call the same
// external service through one shared limit.
//
//   node examples/shared-limit-http.js
//
// The main thread starts a small HTTP service on 127.0.0.1 (an ephemeral
// port) that counts how many requests it is serving at once, then starts 4
// worker_threads. Each worker opens the same named limit,
// pLimit({ concurrency: 3, name: 'api' }), and makes its requests through it,
// so the service never sees more than 3 requests at once from the whole
// process, however many workers there are. A permit released in one worker
// starts a request queued in another, without polling and without blocking
// any thread. When every worker is done the server is closed and the process
// exits by itself.
const http = require('node:http')
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const { pLimit } = require('../lib/index.js') // require('sluice')

const WORKERS = 4
const REQUESTS_PER_WORKER = 25
const LIMIT = 3

if (isMainThread)
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
else
  worker().catch((err) => {
    throw err
  })

// ---------------------------------------------------------------- worker ---

async function worker() {
  const { url, id } = workerData
  // Every worker opens the same name: one gate for the whole process. The
  // first opener sets the concurrency; the others attach to it (they may
  // name the same number, or none).
  const limit = pLimit({ concurrency: LIMIT, name: 'api' })
  // Never more than LIMIT requests from this worker either: that many sockets.
  const agent = new http.Agent({ keepAlive: true, maxSockets: LIMIT })
  const callService = (i) => getJson(`${url}/item/${id}-${i}`, agent)
  const results = await Promise.all(
    Array.from({ length: REQUESTS_PER_WORKER }, (_, i) => limit(callService, i))
  )
  agent.destroy() // the idle keep-alive sockets would keep this worker alive
  parentPort.postMessage({ id, done: results.length })
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

// ------------------------------------------------------------------ main ---

async function main() {
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
  console.log(
    `service listening on ${url}; ${WORKERS} workers x ${REQUESTS_PER_WORKER} requests through pLimit({ concurrency: ${LIMIT}, name: 'api' })`
  )

  const t0 = Date.now()
  const reports = await Promise.all(
    Array.from(
      { length: WORKERS },
      (_, id) =>
        new Promise((resolve, reject) => {
          const w = new Worker(__filename, { workerData: { url, id } })
          let report
          w.once('message', (m) => {
            report = m
          })
          w.once('error', reject)
          w.once('exit', (code) =>
            code === 0 && report
              ? resolve(report)
              : reject(new Error(`worker ${id} exited with code ${code}`))
          )
        })
    )
  )
  const total = reports.reduce((n, r) => n + r.done, 0)
  console.log(
    `workers done in ${Date.now() - t0} ms: ${reports.map((r) => `worker ${r.id} ${r.done}`).join(', ')}`
  )

  // Closes the listener; Node 20 also closes the idle keep-alive connections.
  await new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
  console.log(`total requests: ${total} (served: ${served})`)
  console.log(`max concurrent requests: ${maxInFlight} (limit ${LIMIT})`)
  if (maxInFlight > LIMIT || total !== WORKERS * REQUESTS_PER_WORKER) process.exitCode = 1
}
