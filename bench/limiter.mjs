// Limiter throughput: N no-op async tasks at concurrency 8 through Promise.all.
// Each library runs in its own child process (`--child <name>`) so JIT state
// and heaps don't mix. Usage: node bench/limiter.mjs
import { loadSluice, timeRuns, runChild, childMain, printTable, fmt, ratio, isChild, childArgs } from './harness.mjs'

const N = 100_000
const CONCURRENCY = 8
const FLAT_SIZES = [10_000, 100_000, 1_000_000]
const FLAT_LIBS = ['sluice pLimit', 'p-limit']
const MAIN_RUNS = { warmup: 2, runs: 9 }
const SMALL_RUNS = { warmup: 5, runs: 15 } // 10k tasks
const BIG_RUNS = { warmup: 0, runs: 5 } // 1M tasks (JIT already warm): ~3-5 s per run for p-limit on a slow 2-core VM

const task = async () => {}
const guarded = async (sema) => { // the documented async-sema pattern
  await sema.acquire()
  try { await task() } finally { sema.release() }
}
const all = (n, start) => {
  const ps = []
  for (let i = 0; i < n; i++) ps.push(start())
  return Promise.all(ps)
}

// name -> async () => (n) => Promise for one batch of n tasks on a fresh limiter
const LIBS = {
  'sluice pLimit': async () => {
    const { pLimit } = loadSluice('p-limit')
    return (n) => { const limit = pLimit(CONCURRENCY); return all(n, () => limit(task)) }
  },
  'p-limit': async () => {
    const { default: pLimit } = await import('p-limit')
    return (n) => { const limit = pLimit(CONCURRENCY); return all(n, () => limit(task)) }
  },
  'p-queue': async () => {
    const { default: PQueue } = await import('p-queue')
    return (n) => { const q = new PQueue({ concurrency: CONCURRENCY }); return all(n, () => q.add(task)) }
  },
  'async-sema': async () => {
    const { Sema } = await import('async-sema')
    return (n) => { const s = new Sema(CONCURRENCY); return all(n, () => guarded(s)) }
  },
  '@henrygd/queue': async () => {
    const { newQueue } = await import('@henrygd/queue')
    return (n) => { const q = newQueue(CONCURRENCY); return all(n, () => q.add(task)) }
  },
  'sluice Semaphore': async () => {
    const { Semaphore } = loadSluice('index')
    return (n) => { const s = new Semaphore(CONCURRENCY); return all(n, () => guarded(s)) }
  },
  'Promise.all (no limit)': async () => (n) => all(n, task)
}

async function child (name) {
  const batch = await LIBS[name]()
  const main = await timeRuns(() => batch(N), MAIN_RUNS)
  const out = { nsPerTask: main.median / N, spread: main.spread }
  if (FLAT_LIBS.includes(name)) {
    out.flat = {}
    for (const n of FLAT_SIZES) {
      const r = n === N ? main : await timeRuns(() => batch(n), n > N ? BIG_RUNS : SMALL_RUNS)
      out.flat[n] = r.median / n
    }
  }
  return out
}

function main () {
  const res = Object.fromEntries(Object.keys(LIBS).map((name) => [name, runChild('./limiter.mjs', [name])]))
  const base = res['p-limit'].nsPerTask
  printTable(`Limiter: ${fmt(N)} no-op async tasks, concurrency ${CONCURRENCY}, Promise.all (median of ${MAIN_RUNS.runs} runs after ${MAIN_RUNS.warmup} warm-up, fresh process per library)`,
    Object.entries(res).map(([name, r]) => r.error
      ? { library: name, error: r.error }
      : { library: name, 'ns/task': fmt(r.nsPerTask, 1), 'tasks/s': fmt(1e9 / r.nsPerTask), 'speed vs p-limit': ratio(base / r.nsPerTask), 'run spread': `${(r.spread * 100).toFixed(0)}%` }),
    ['speed vs p-limit = p-limit ns/task / this ns/task (>1 is faster); run spread = (max-min)/median of the timed runs'])
  printTable(`Limiter flatness: ns/task by number of queued tasks, concurrency 8 (median of ${SMALL_RUNS.runs} / ${MAIN_RUNS.runs} / ${BIG_RUNS.runs} runs)`,
    FLAT_LIBS.map((name) => {
      const r = res[name]
      if (r.error) return { library: name, error: r.error }
      const v = FLAT_SIZES.map((n) => r.flat[n])
      return { library: name, ...Object.fromEntries(FLAT_SIZES.map((n, i) => [fmt(n), fmt(v[i], 1)])), 'max/min': ratio(Math.max(...v) / Math.min(...v)) }
    }), ['max/min near 1.00x means per-task cost does not grow with queue length (GC makes 10k, which stays in the young generation, cheaper for everyone)'])
}

if (isChild) childMain(() => child(childArgs[0]))
else main()
