// pg's Pool: pg-pool 3.14.0 against sluice/pg-pool, side by side on the same
// PostgreSQL (PG* from the environment, or a throwaway server started here
// when PostgreSQL is installed). One child process per library, scenario
// and round; rounds interleave the libraries so load from other processes
// hits them alike; the figure is the median over rounds.
//   (a) connect() + release() on warm idle clients, 1 caller and 100
//       concurrent callers (max 10): ns per cycle;
//   (b) pool.query('SELECT 1'), max 10, 1,000 concurrent callers (each
//       round: 1,000 calls at once, repeated): queries/s and p50/p99
//       latency of one call (from the call to its result);
//   (c) heap per waiting connect(): max 1, its client held, N callers
//       queued (bytes, after a full GC, per waiter).
// Usage: node bench/pg-pool.mjs
import { createRequire } from 'node:module'
import {
  loadSluice,
  runChild,
  childMain,
  printTable,
  fmt,
  ratio,
  isChild,
  childArgs,
  median
} from './harness.mjs'

const require = createRequire(import.meta.url)
const ROUNDS = 3
const CYCLES = { 1: 100_000, 100: 100_000 }
const QUERY_CALLERS = 1000
const QUERY_BATCHES = 5
const WAITERS = 20_000

const LIBS = {
  'pg-pool': () => require('pg-pool'),
  'sluice/pg-pool': () => loadSluice('pg-pool')
}

function newPool(name, options) {
  const Pool = LIBS[name]()
  const pool = new Pool(options, require('pg').Client)
  pool.on('error', () => {})
  return pool
}

// Opens `n` clients and leaves them idle.
async function warm(pool, n) {
  const cs = await Promise.all(Array.from({ length: n }, () => pool.connect()))
  for (const c of cs) c.release()
}

async function cycles(name, callers) {
  const pool = newPool(name, { max: 10 })
  await warm(pool, Math.min(callers, 10))
  const total = CYCLES[callers]
  const per = total / callers
  const run = async (k) => {
    for (let i = 0; i < k; i++) (await pool.connect()).release()
  }
  await Promise.all(Array.from({ length: callers }, () => run(Math.ceil(per / 10)))) // warm-up
  const t0 = process.hrtime.bigint()
  await Promise.all(Array.from({ length: callers }, () => run(per)))
  const ns = Number(process.hrtime.bigint() - t0) / total
  await pool.end()
  return { ns }
}

async function queries(name) {
  const pool = newPool(name, { max: 10 })
  await warm(pool, 10)
  const lat = []
  const batch = async () => {
    await Promise.all(
      Array.from({ length: QUERY_CALLERS }, async () => {
        const t = process.hrtime.bigint()
        await pool.query('SELECT 1')
        lat.push(Number(process.hrtime.bigint() - t))
      })
    )
  }
  await batch() // warm-up
  lat.length = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < QUERY_BATCHES; i++) await batch()
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  lat.sort((a, b) => a - b)
  await pool.end()
  return {
    qps: (QUERY_CALLERS * QUERY_BATCHES) / s,
    p50: lat[Math.floor(lat.length * 0.5)] / 1e6,
    p99: lat[Math.floor(lat.length * 0.99)] / 1e6
  }
}

async function heap(name) {
  const pool = newPool(name, { max: 1 })
  const held = await pool.connect()
  const waiting = []
  globalThis.gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < WAITERS; i++) waiting.push(pool.connect().then((c) => c.release()))
  globalThis.gc()
  const bytes = (process.memoryUsage().heapUsed - before) / WAITERS
  const queued = pool.waitingCount
  held.release()
  await Promise.all(waiting)
  await pool.end()
  return { bytes, queued }
}

async function child([scenario, name, arg]) {
  if (scenario === 'cycles') return cycles(name, Number(arg))
  if (scenario === 'queries') return queries(name)
  return heap(name)
}

function collect(scenario, arg) {
  const out = Object.fromEntries(Object.keys(LIBS).map((n) => [n, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of Object.keys(LIBS))
      out[name].push(runChild('./pg-pool.mjs', [scenario, name, arg ?? '']))
  }
  const res = {}
  for (const [name, rs] of Object.entries(out)) {
    const err = rs.find((x) => x.error)
    if (err) {
      res[name] = err
      continue
    }
    res[name] = {}
    for (const k of Object.keys(rs[0])) res[name][k] = median(rs.map((x) => x[k]))
  }
  return res
}

async function main() {
  let server
  if (!process.env.PGPORT) {
    const services = require('../test/support/services.js')
    const why = services.postgresMissing()
    if (why) {
      console.log(`pg-pool benchmark skipped: no PostgreSQL (${why})`)
      return
    }
    server = await services.startPostgres()
    Object.assign(process.env, server.env)
  }
  try {
    const base = 'pg-pool'
    const rows = []
    for (const callers of [1, 100]) {
      const r = collect('cycles', callers)
      for (const [name, v] of Object.entries(r)) {
        rows.push(
          v.error
            ? { library: `${name}, ${callers} caller(s)`, error: v.error }
            : {
                library: `${name}, ${callers} caller(s)`,
                'ns/cycle': fmt(v.ns),
                'vs pg-pool': ratio(r[base].ns / v.ns)
              }
        )
      }
    }
    printTable('(a) connect() + release() on warm idle clients, max 10', rows, [
      `median of ${ROUNDS} rounds; ratio > 1: faster than pg-pool`
    ])

    const q = collect('queries')
    printTable(
      `(b) pool.query('SELECT 1'), max 10, ${fmt(QUERY_CALLERS)} concurrent callers x ${QUERY_BATCHES}`,
      Object.entries(q).map(([name, v]) =>
        v.error
          ? { library: name, error: v.error }
          : {
              library: name,
              'queries/s': fmt(v.qps),
              'vs pg-pool': ratio(v.qps / q[base].qps),
              'p50 ms': fmt(v.p50, 1),
              'p99 ms': fmt(v.p99, 1),
              'p99 vs pg-pool': ratio(q[base].p99 / v.p99)
            }
      ),
      ['ratios > 1: more queries/s, lower p99 than pg-pool']
    )

    const h = collect('heap')
    printTable(
      `(c) heap per waiting connect(), ${fmt(WAITERS)} waiters`,
      Object.entries(h).map(([name, v]) =>
        v.error
          ? { library: name, error: v.error }
          : {
              library: name,
              'bytes/waiter': fmt(v.bytes),
              'vs pg-pool': ratio(h[base].bytes / v.bytes),
              waitingCount: fmt(v.queued)
            }
      ),
      ['ratio > 1: less heap than pg-pool']
    )
  } finally {
    if (server) server.stop()
  }
}

if (isChild) childMain(() => child(childArgs))
else main()
