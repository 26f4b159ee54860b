// Limiter benchmarks. Each library runs in its own child process
// (`--child main <name>`, `--child steady <name> <N>`) so JIT state and heaps
// don't mix. Usage: node bench/limiter.mjs
//
// 1. Throughput: N = 100,000 no-op async tasks at concurrency 8 through
//    Promise.all, every library.
// 2. Flatness, steady state (what "per-task cost flat from 10,000 to
//    1,000,000 queued" means): a limiter of concurrency 8 is filled with
//    N + 8 tasks, and every time a task finishes a new one is added, so
//    N tasks are pending the whole time. After a warm-up of K tasks,
//    WINDOWS windows of K tasks are timed; the figure is the amortised ns per
//    task over them (GC included). One fresh child per (library, N) per
//    round; rounds interleave the libraries so that load from other processes
//    hits them alike; median over rounds. The "JS reference" row is no
//    library: a dozen lines of JS with an amortised O(1) array queue, there to
//    show what V8 itself charges for N pending promises at each N.
// 3. Flatness, burst: N tasks submitted at once and drained by Promise.all.
//    This mostly measures V8's GC of N promises that are all alive at once
//    (they leave the young generation above ~10k), not the queue operations.
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

const N = 100_000
const CONCURRENCY = 8
const FLAT_SIZES = [10_000, 100_000, 1_000_000]
const FLAT_LIBS = ['sluice pLimit', 'p-limit']
const MAIN_RUNS = { warmup: 2, runs: 9 }
const SMALL_RUNS = { warmup: 5, runs: 15 } // burst, 10k tasks
const BIG_RUNS = { warmup: 0, runs: 1 } // burst, 1M tasks (JIT already warm): ~3-5 s per run for p-limit on a slow 2-core VM
const STEADY = { K: 200_000, warmup: 100_000, windows: 2, rounds: 3, budgetMs: 5_000 }

const task = async () => {}
const guarded = async (sema) => {
  // the documented async-sema pattern
  await sema.acquire()
  try {
    await task()
  } finally {
    sema.release()
  }
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
    return (n) => {
      const limit = pLimit(CONCURRENCY)
      return all(n, () => limit(task))
    }
  },
  'p-limit': async () => {
    const { default: pLimit } = await import('p-limit')
    return (n) => {
      const limit = pLimit(CONCURRENCY)
      return all(n, () => limit(task))
    }
  },
  'p-queue': async () => {
    const { default: PQueue } = await import('p-queue')
    return (n) => {
      const q = new PQueue({ concurrency: CONCURRENCY })
      return all(n, () => q.add(task))
    }
  },
  'async-sema': async () => {
    const { Sema } = await import('async-sema')
    return (n) => {
      const s = new Sema(CONCURRENCY)
      return all(n, () => guarded(s))
    }
  },
  '@henrygd/queue': async () => {
    const { newQueue } = await import('@henrygd/queue')
    return (n) => {
      const q = newQueue(CONCURRENCY)
      return all(n, () => q.add(task))
    }
  },
  'sluice Semaphore': async () => {
    const { Semaphore } = loadSluice('index')
    return (n) => {
      const s = new Semaphore(CONCURRENCY)
      return all(n, () => guarded(s))
    }
  },
  'JS, p-limit timing (reference)': async () => (n) => {
    const limit = exactRefLimit(CONCURRENCY)
    return all(n, () => limit(task))
  },
  'Promise.all (no limit)': async () => (n) => all(n, task)
}

// A minimal JS limiter with p-limit's exact observable timing (the same
// promise shape: a "go" promise per task whose reaction, registered in the
// caller's context, runs fn through an async wrapper; the slot freed one tick
// after the result settles). Not a library: it shows what that timing costs
// in promises alone, the floor a native gate cannot go below.
function exactRefLimit(concurrency) {
  const queue = []
  let head = 0
  let active = 0
  const call = async (fn) => fn()
  const done = () => {
    active--
    if (head < queue.length) {
      active++
      const go = queue[head]
      queue[head++] = undefined
      go()
    }
  }
  const run = (fn) => {
    const result = call(fn)
    result.then(done, done)
    return result
  }
  return (fn) => {
    let go
    if (active < concurrency && head === queue.length) {
      active++
      go = Promise.resolve()
    } else go = new Promise((resolve) => queue.push(resolve))
    return go.then(() => run(fn))
  }
}

// The reference limiter: FIFO, at most `concurrency` running, the slot freed
// before the caller's await resumes (as p-limit); nothing else.
function refLimit(concurrency) {
  const queue = new RefQueue()
  let active = 0
  const next = () => {
    active--
    if (queue.size) {
      active++
      queue.shift()()
    }
  }
  const run = (fn, resolve) => {
    const p = (async () => fn())()
    p.then(next, next)
    resolve(p)
  }
  const limit = (fn) =>
    new Promise((resolve) => {
      if (active < concurrency) {
        active++
        run(fn, resolve)
      } else queue.push(() => run(fn, resolve))
    })
  Object.defineProperty(limit, 'pendingCount', { get: () => queue.size })
  limit.clearQueue = () => queue.clear()
  return limit
}

// Steady state: name -> async () => pLimit
const STEADY_LIBS = {
  'sluice pLimit': async () => loadSluice('p-limit').pLimit,
  'p-limit': async () => (await import('p-limit')).default,
  'JS reference (not a library)': async () => refLimit
}

async function steadyChild(name, n) {
  const pLimit = await STEADY_LIBS[name]()
  const limit = pLimit(CONCURRENCY)
  const { K, warmup, windows, budgetMs } = STEADY
  const meter = steadyMeter({ warmup, K, windows, budgetMs })
  let pendingAtEnd = 0
  const onDone = () => {
    if (meter.tick()) limit(task).then(onDone)
    else if (limit.pendingCount) {
      pendingAtEnd = limit.pendingCount
      limit.clearQueue()
    }
  }
  for (let i = 0; i < n + CONCURRENCY; i++) limit(task).then(onDone)
  const ws = await meter.done
  return { ...summarizeWindows(ws), pendingAtEnd }
}

async function mainChild(name) {
  const batch = await LIBS[name]()
  const main = await timeRuns(() => batch(N), MAIN_RUNS)
  const out = { nsPerTask: main.median / N, spread: main.spread }
  if (FLAT_LIBS.includes(name)) {
    out.flat = {}
    for (const n of FLAT_SIZES) {
      const r = n === N ? main : await timeRuns(() => batch(n), n > N ? BIG_RUNS : SMALL_RUNS)
      out.flat[n] = { ns: r.median / n, spread: r.spread, runs: r.runs }
    }
  }
  return out
}

function main() {
  const res = Object.fromEntries(
    Object.keys(LIBS).map((name) => [name, runChild('./limiter.mjs', ['main', name])])
  )

  // Steady state: rounds x sizes x libraries, one fresh child each.
  const names = Object.keys(STEADY_LIBS)
  const steady = steadyRounds('./limiter.mjs', names, FLAT_SIZES, STEADY.rounds, (r, n) =>
    Math.abs(r.pendingAtEnd - n) > CONCURRENCY ? `queue was ${r.pendingAtEnd}, not ${n}` : ''
  )

  const base = res['p-limit'].nsPerTask
  printTable(
    `Limiter: ${fmt(N)} no-op async tasks, concurrency ${CONCURRENCY}, Promise.all (median of ${MAIN_RUNS.runs} runs after ${MAIN_RUNS.warmup} warm-up, fresh process per library)`,
    Object.entries(res).map(([name, r]) =>
      r.error
        ? { library: name, error: r.error }
        : {
            library: name,
            'ns/task': fmt(r.nsPerTask, 1),
            'tasks/s': fmt(1e9 / r.nsPerTask),
            'speed vs p-limit': ratio(base / r.nsPerTask),
            'run spread': pct(r.spread)
          }
    ),
    [
      'speed vs p-limit = p-limit ns/task / this ns/task (>1 is faster); run spread = (max-min)/median of the timed runs'
    ]
  )

  const cellRows = (pick) => steadyRows(steady, names, FLAT_SIZES, pick)
  printTable(
    `Limiter flatness, steady state: ns/task with N tasks kept pending (concurrency ${CONCURRENCY}; ${STEADY.windows} x ${fmt(STEADY.K)} tasks timed after ${fmt(STEADY.warmup)} warm-up; median of ${STEADY.rounds} rounds, fresh process each)`,
    cellRows((cells, v) => ({
      ...Object.fromEntries(
        FLAT_SIZES.map((n, i) => [
          `N=${fmt(n)}`,
          `${fmt(v[i], 1)} (${pct(cells[i].spread)})${cells[i].minWindowOps < STEADY.K ? ` [${fmt(cells[i].minWindowOps)}]` : ''}`
        ])
      ),
      'largest/smallest': ratio(Math.max(...v) / Math.min(...v))
    })),
    [
      'ns/task = amortised over the timed windows (total time / tasks), GC included; (x%) = spread (max-min)/median over the rounds',
      'largest/smallest near 1.00x means per-task cost does not grow with the queue (target: sluice within 1.50x)',
      `[n] = a window stopped by the ${STEADY.budgetMs / 1000} s budget after n tasks (and no further window)`,
      'JS reference = a minimal JS limiter with an O(1) queue: its growth is what V8 charges for N pending promises, not a queue'
    ]
  )
  printSteadyCpuGc(cellRows, FLAT_SIZES, {
    col: (n) => `N=${fmt(n)}`,
    per: 'per task',
    unit: 'ns/task',
    digits: 1,
    gcNotes: [
      'tasks pending for N completions outlive the young generation above ~10k, so every library pays promotion and old-generation GC there'
    ]
  })

  printTable(
    `Limiter flatness, burst (includes GC of N live promises): ns/task for N tasks submitted at once and drained by Promise.all (median of ${SMALL_RUNS.runs} / ${MAIN_RUNS.runs} / ${BIG_RUNS.runs} runs)`,
    FLAT_LIBS.map((name) => {
      const r = res[name]
      if (r.error) return { library: name, error: r.error }
      const v = FLAT_SIZES.map((n) => r.flat[n].ns)
      const cell = (n, i) =>
        `${fmt(v[i], 1)} (${r.flat[n].runs > 1 ? pct(r.flat[n].spread) : '1 run'})`
      return {
        library: name,
        ...Object.fromEntries(FLAT_SIZES.map((n, i) => [`N=${fmt(n)}`, cell(n, i)])),
        'largest/smallest': ratio(Math.max(...v) / Math.min(...v))
      }
    }),
    [
      'all N promises stay alive until the queue drains, so this grows with N for any library, pure JS included; (x%) = run spread'
    ]
  )
}

if (isChild)
  childMain(() =>
    childArgs[0] === 'steady'
      ? steadyChild(childArgs[1], Number(childArgs[2]))
      : mainChild(childArgs[1])
  )
else main()
