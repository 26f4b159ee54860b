// Resource pools: generic-pool 3.9.0, tarn 3.1.2 and sluice/generic-pool, max 10
// resources (created up front, so creation is not timed). One child process
// per library (`--child main <name>`) for (a), (b) and the burst (d), and one
// per library, W and round (`--child steady <name> <W>`) for (c).
// Usage: node bench/pool.mjs
//
// (c) is what "flat from 1,000 to 100,000 waiting clients" means: W clients
// each loop `r = await acquire(); release(r)`, so W - 10 acquires are queued
// the whole time. After a warm-up of K cycles, WINDOWS windows of K cycles
// are timed; the figure is the amortised ns per cycle (GC included). A
// window also ends after budgetMs (tarn's wait queue is an array: shift() is
// O(W)), is then the last one, and says how many cycles it covered. Rounds
// interleave the libraries, so load from other processes hits them alike;
// median over rounds.
// The "JS reference" row is no library: a dozen lines of JS with an amortised
// O(1) array queue, there to show what V8 itself charges for W suspended
// clients and their pending promises at each W.
// (d) is the old burst figure: W clients call acquire() once, at the same
// time, and the queue drains; it mostly measures V8's GC of W live promises.
import { Bench } from 'tinybench'
import {
  loadSluice,
  timeRuns,
  runChild,
  childMain,
  printTable,
  fmt,
  ratio,
  isChild,
  childArgs,
  steadyMeter,
  summarizeWindows,
  steadyRounds,
  steadyRows,
  printSteadyCpuGc,
  pct,
  RefQueue
} from './harness.mjs'

const MAX = 10
const SERIAL_BATCH = 100 // acquire/release cycles per tinybench iteration
const CLIENTS = 1000
const CYCLES = 20 // per client in (b)
const WAITERS = [1_000, 10_000, 100_000]
// (c) steady state
const STEADY = { K: 200_000, warmup: 100_000, windows: 2, rounds: 3, budgetMs: 1_500 }
// (d) burst: W clients call acquire() at once, each releases as soon as it
// gets a resource, so the wait queue drains from W to 0. W=100k runs on the
// already warm pool and stops after 3 s of timed runs. Not run for tarn at
// W=100k: its array queue makes one drain O(W^2), ~20 s on this machine.
const WAITER_RUNS = {
  1000: { warmup: 3, runs: 9 },
  10000: { warmup: 1, runs: 3 },
  100000: { warmup: 0, runs: 3, budgetMs: 3_000 }
}
const BURST_SKIP = { tarn: [100_000] }

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
    return {
      acquire: () => pool.acquire().promise,
      release: (r) => pool.release(r),
      get pending() {
        return pool.numPendingAcquires()
      }
    }
  },
  'sluice/generic-pool': async () =>
    loadSluice('generic-pool').createPool(factory, { max: MAX, min: 0 })
}

const clients = (pool, n, cycles) => {
  const client = async () => {
    for (let k = 0; k < cycles; k++) pool.release(await pool.acquire())
  }
  const ps = []
  for (let i = 0; i < n; i++) ps.push(client())
  return Promise.all(ps)
}

// The reference pool: resources on a stack, waiters' resolve functions in a FIFO.
class RefPool {
  constructor(n) {
    this.free = Array.from({ length: n }, () => ({}))
    this.queue = new RefQueue()
  }
  get pending() {
    return this.queue.size
  }
  acquire() {
    return this.free.length
      ? Promise.resolve(this.free.pop())
      : new Promise((resolve) => this.queue.push(resolve))
  }
  release(r) {
    if (this.queue.size) this.queue.shift()(r)
    else this.free.push(r)
  }
}
const STEADY_LIBS = { ...LIBS, 'JS reference (not a library)': async () => new RefPool(MAX) }

async function newPool(name) {
  const pool = await STEADY_LIBS[name]()
  const warm = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()))
  warm.forEach((r) => pool.release(r))
  return pool
}

// (c): W clients loop acquire -> release until the meter is done. A client
// that sees the meter done keeps its resource, so once all MAX are kept the
// remaining W - MAX acquires just stay queued and the child can report.
async function steadyChild(name, w) {
  const pool = await newPool(name)
  const { K, warmup, windows, budgetMs } = STEADY
  const meter = steadyMeter({ warmup, K, windows, budgetMs })
  let pendingAtEnd = -1
  const client = async () => {
    for (;;) {
      const r = await pool.acquire()
      if (!meter.tick()) {
        if (pendingAtEnd < 0) pendingAtEnd = pool.pending
        return
      }
      pool.release(r)
    }
  }
  for (let i = 0; i < w; i++) client()
  const ws = await meter.done
  return { ...summarizeWindows(ws), pendingAtEnd }
}

async function child(name) {
  const pool = await newPool(name)

  // (a) serial loop, tinybench statistics over batches of SERIAL_BATCH cycles
  const bench = new Bench({ time: 1000, warmupTime: 250, throws: true })
  bench.add('serial', () => clients(pool, 1, SERIAL_BATCH))
  await bench.run()
  const { latency } = bench.tasks[0].result
  const serial = { opsPerSec: (SERIAL_BATCH * 1000) / latency.p50, rme: latency.rme }

  // (b) CLIENTS concurrent clients x CYCLES cycles each
  const conc = await timeRuns(() => clients(pool, CLIENTS, CYCLES), { warmup: 3, runs: 9 })
  const concurrent = { opsPerSec: (CLIENTS * CYCLES * 1e9) / conc.median, spread: conc.spread }

  // (d) burst: ns per acquire/release cycle while W clients drain through MAX resources
  const waiting = {}
  for (const w of WAITERS) {
    if (BURST_SKIP[name]?.includes(w)) continue
    const r = await timeRuns(() => clients(pool, w, 1), WAITER_RUNS[w])
    waiting[w] = { ns: r.median / w, runs: r.runs }
  }
  return { serial, concurrent, waiting }
}

function main() {
  const res = Object.fromEntries(
    Object.keys(LIBS).map((name) => [name, runChild('./pool.mjs', ['main', name])])
  )

  // (c): rounds x W x libraries, one fresh child each.
  const names = Object.keys(STEADY_LIBS)
  const steady = steadyRounds('./pool.mjs', names, WAITERS, STEADY.rounds, (r, w) =>
    Math.abs(r.pendingAtEnd - (w - MAX)) > MAX
      ? `${r.pendingAtEnd} acquires were queued, not ${w - MAX}`
      : ''
  )

  const base = res['generic-pool']
  const rows = (pick, extra) =>
    Object.entries(res).map(([name, r]) =>
      r.error
        ? { library: name, error: r.error }
        : {
            library: name,
            'ops/s': fmt(pick(r).opsPerSec),
            'speed vs generic-pool': base.error
              ? '-'
              : ratio(pick(r).opsPerSec / pick(base).opsPerSec),
            ...extra(pick(r))
          }
    )
  printTable(
    `Pool (a): serial \`r = await acquire(); release(r)\`, max ${MAX} (tinybench p50 of ${SERIAL_BATCH}-cycle batches)`,
    rows(
      (r) => r.serial,
      (s) => ({ rme: `±${s.rme.toFixed(1)}%` })
    )
  )
  printTable(
    `Pool (b): ${fmt(CLIENTS)} concurrent clients x ${CYCLES} acquire/release cycles on ${MAX} resources (median of 9 runs)`,
    rows(
      (r) => r.concurrent,
      (s) => ({ 'run spread': pct(s.spread) })
    )
  )

  const cellRows = (pick) => steadyRows(steady, names, WAITERS, pick)
  const short = (c) => (c.minWindowOps < STEADY.K ? ` [${fmt(c.minWindowOps)}]` : '')
  printTable(
    `Pool (c) flatness, steady state: ns per acquire/release cycle with W clients looping on ${MAX} resources (W - ${MAX} queued; ${STEADY.windows} x ${fmt(STEADY.K)} cycles timed after ${fmt(STEADY.warmup)} warm-up; median of ${STEADY.rounds} rounds, fresh process each)`,
    cellRows((cells, v) => ({
      ...Object.fromEntries(
        WAITERS.map((w, i) => [
          `W=${fmt(w)}`,
          `${fmt(v[i])} (${pct(cells[i].spread)})${short(cells[i])}`
        ])
      ),
      'largest/smallest': ratio(Math.max(...v) / Math.min(...v))
    })),
    [
      'ns = amortised over the timed windows (total time / cycles), GC included; (x%) = spread (max-min)/median over the rounds;',
      `[n] = a window stopped by the ${STEADY.budgetMs / 1000} s budget after n cycles (and no further window); largest/smallest near 1.00x = flat (target: sluice within 1.50x)`,
      'JS reference = a minimal JS pool with an O(1) queue: its growth is what V8 charges for W waiting async clients, not a queue'
    ]
  )
  printSteadyCpuGc(cellRows, WAITERS, {
    col: (w) => `W=${fmt(w)}`,
    per: 'per cycle',
    unit: 'ns per cycle',
    digits: 0
  })

  printTable(
    `Pool (d) flatness, burst (includes GC of W live promises): ns per cycle while W clients that called acquire() at once drain through ${MAX} resources (median of ${WAITER_RUNS[1000].runs} / ${WAITER_RUNS[10000].runs} / ${WAITER_RUNS[100000].runs} runs)`,
    Object.entries(res).map(([name, r]) => {
      if (r.error) return { library: name, error: r.error }
      const cells = WAITERS.map((w) => {
        if (!r.waiting[w]) return 'not run'
        const { ns, runs } = r.waiting[w]
        return fmt(ns) + (runs < WAITER_RUNS[w].runs ? ` (${runs} run${runs > 1 ? 's' : ''})` : '')
      })
      const v = WAITERS.filter((w) => r.waiting[w]).map((w) => r.waiting[w].ns)
      return {
        library: name,
        ...Object.fromEntries(WAITERS.map((w, i) => [`W=${fmt(w)}`, cells[i]])),
        'largest/smallest':
          ratio(Math.max(...v) / Math.min(...v)) + (v.length < WAITERS.length ? ' (of run)' : '')
      }
    }),
    [
      'all W promises are alive at once, so this grows with W for any library, pure JS included;',
      `"(n runs)" = stopped early by the ${WAITER_RUNS[100000].budgetMs / 1000} s budget; "not run" = tarn at 100k: its array queue makes a drain O(W^2), see (c)`
    ]
  )
}

if (isChild)
  childMain(() =>
    childArgs[0] === 'steady'
      ? steadyChild(childArgs[1], Number(childArgs[2]))
      : child(childArgs[1])
  )
else main()
