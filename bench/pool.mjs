// Resource pools: generic-pool 3.9.0, tarn 3.1.2 and sluice/generic-pool, max 10
// resources (created up front, so creation is not timed). One child process
// per library (`--child <name>`). Usage: node bench/pool.mjs
import { Bench } from 'tinybench'
import { loadSluice, timeRuns, runChild, childMain, printTable, fmt, ratio, isChild, childArgs } from './harness.mjs'

const MAX = 10
const SERIAL_BATCH = 100 // acquire/release cycles per tinybench iteration
const CLIENTS = 1000
const CYCLES = 20 // per client in (b)
// (c): W clients call acquire() at once, each releases as soon as it gets a
// resource, so the wait queue drains from W to 0. W=100k runs on the already
// warm pool and stops after 10 s of timed runs (tarn's queue is O(W) per op).
const WAITERS = [1_000, 10_000, 100_000]
const WAITER_RUNS = {
  1000: { warmup: 5, runs: 15 },
  10000: { warmup: 2, runs: 5 },
  100000: { warmup: 0, runs: 3, budgetMs: 10_000 }
}

const factory = { create: async () => ({}), destroy: async () => {} }

// name -> async () => { acquire(): Promise<r>, release(r) }
const LIBS = {
  'generic-pool': async () => {
    const { createPool } = await import('generic-pool')
    return createPool(factory, { max: MAX, min: 0 })
  },
  tarn: async () => {
    const { Pool } = await import('tarn')
    const pool = new Pool({ ...factory, min: 0, max: MAX })
    return { acquire: () => pool.acquire().promise, release: (r) => pool.release(r) }
  },
  'sluice/generic-pool': async () => loadSluice('generic-pool').createPool(factory, { max: MAX, min: 0 })
}

const clients = (pool, n, cycles) => {
  const client = async () => {
    for (let k = 0; k < cycles; k++) pool.release(await pool.acquire())
  }
  const ps = []
  for (let i = 0; i < n; i++) ps.push(client())
  return Promise.all(ps)
}

async function child (name) {
  const pool = await LIBS[name]()
  const warm = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()))
  warm.forEach((r) => pool.release(r))

  // (a) serial loop, tinybench statistics over batches of SERIAL_BATCH cycles
  const bench = new Bench({ time: 1000, warmupTime: 250, throws: true })
  bench.add('serial', () => clients(pool, 1, SERIAL_BATCH))
  await bench.run()
  const { latency } = bench.tasks[0].result
  const serial = { opsPerSec: SERIAL_BATCH * 1000 / latency.p50, rme: latency.rme }

  // (b) CLIENTS concurrent clients x CYCLES cycles each
  const conc = await timeRuns(() => clients(pool, CLIENTS, CYCLES), { warmup: 3, runs: 9 })
  const concurrent = { opsPerSec: CLIENTS * CYCLES * 1e9 / conc.median, spread: conc.spread }

  // (c) ns per acquire/release cycle with W clients contending for MAX resources
  const waiting = {}
  for (const w of WAITERS) {
    const r = await timeRuns(() => clients(pool, w, 1), WAITER_RUNS[w])
    waiting[w] = { ns: r.median / w, runs: r.runs }
  }
  return { serial, concurrent, waiting }
}

function main () {
  const res = Object.fromEntries(Object.keys(LIBS).map((name) => [name, runChild('./pool.mjs', [name])]))
  const base = res['generic-pool']
  const rows = (pick, extra) => Object.entries(res).map(([name, r]) => r.error
    ? { library: name, error: r.error }
    : { library: name, 'ops/s': fmt(pick(r).opsPerSec), 'speed vs generic-pool': base.error ? '-' : ratio(pick(r).opsPerSec / pick(base).opsPerSec), ...extra(pick(r)) })
  printTable(`Pool (a): serial \`r = await acquire(); release(r)\`, max ${MAX} (tinybench p50 of ${SERIAL_BATCH}-cycle batches)`,
    rows((r) => r.serial, (s) => ({ rme: `±${s.rme.toFixed(1)}%` })))
  printTable(`Pool (b): ${fmt(CLIENTS)} concurrent clients x ${CYCLES} acquire/release cycles on ${MAX} resources (median of 9 runs)`,
    rows((r) => r.concurrent, (s) => ({ 'run spread': `${(s.spread * 100).toFixed(0)}%` })))
  printTable(`Pool (c): ns per acquire/release while W queued clients drain through ${MAX} resources (median of 15 / 5 / 3 runs)`,
    Object.entries(res).map(([name, r]) => {
      if (r.error) return { library: name, error: r.error }
      const cells = WAITERS.map((w) => {
        const { ns, runs } = r.waiting[w]
        return fmt(ns) + (runs < WAITER_RUNS[w].runs ? ` (${runs} run${runs > 1 ? 's' : ''})` : '')
      })
      const v = WAITERS.map((w) => r.waiting[w].ns)
      return { library: name, ...Object.fromEntries(WAITERS.map((w, i) => [`W=${fmt(w)}`, cells[i]])), 'max/min': ratio(Math.max(...v) / Math.min(...v)) }
    }), ['max/min near 1.00x means per-operation cost does not grow with the number of waiters;',
    '"(n runs)" = stopped early by the 10 s budget'])
}

if (isChild) childMain(() => child(childArgs[0]))
else main()
