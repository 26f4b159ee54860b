// Memory per PENDING task: N no-op tasks queued behind one never-settling task
// (concurrency 1), returned promises kept alive in an array. One child process
// per library (`--child <name>`, run with --expose-gc) so heaps don't mix.
// Usage: node bench/heap.mjs
import {
  loadSluice,
  runChild,
  childMain,
  printTable,
  fmt,
  median,
  isChild,
  childArgs
} from './harness.mjs'

const N = 200_000
const REPEATS = 3 // children per library; the table shows the median (rss varies run to run)
const task = async () => {}
// The blocker never settles, but its resolver stays reachable (as a real
// in-flight request's would), so GC cannot drop the limiter and its queue.
const alive = []
const never = () => new Promise((resolve) => alive.push(resolve))
const guarded = async (sema, fn) => {
  await sema.acquire()
  try {
    await fn()
  } finally {
    sema.release()
  }
}

// name -> async () => enqueue(fn) -> promise, on a fresh concurrency-1 limiter
const LIBS = {
  'p-limit': async () => {
    const { default: pLimit } = await import('p-limit')
    const limit = pLimit(1)
    return (fn) => limit(fn)
  },
  'sluice pLimit': async () => {
    const limit = loadSluice('p-limit').pLimit(1)
    return (fn) => limit(fn)
  },
  'async-sema': async () => {
    const { Sema } = await import('async-sema')
    const s = new Sema(1)
    return (fn) => guarded(s, fn)
  },
  'sluice Semaphore': async () => {
    const s = new (loadSluice('index').Semaphore)(1)
    return (fn) => guarded(s, fn)
  },
  'p-queue': async () => {
    const { default: PQueue } = await import('p-queue')
    const q = new PQueue({ concurrency: 1 })
    return (fn) => q.add(fn)
  },
  '@henrygd/queue': async () => {
    const { newQueue } = await import('@henrygd/queue')
    const q = newQueue(1)
    return (fn) => q.add(fn)
  },
  'bare pending Promise (floor)': async () => () => new Promise(() => {})
}

const settle = () => new Promise((resolve) => setImmediate(resolve))
const snapshot = async () => {
  await settle()
  globalThis.gc()
  globalThis.gc()
  return process.memoryUsage()
}

async function child(name) {
  const make = LIBS[name]
  // Warm up the code paths on a throwaway limiter, so compiled code and
  // lazily created internals are not billed to the measured tasks.
  const warm = await make()
  for (let i = 0; i < 1000; i++) warm(task)
  await settle()

  const enqueue = await make()
  alive.push(enqueue)
  const keep = []
  for (let i = 0; i <= N; i++) keep.push(0) // array storage allocated before baseline
  const before = await snapshot()
  keep[N] = enqueue(never)
  for (let i = 0; i < N; i++) keep[i] = enqueue(task)
  const after = await snapshot()
  const per = (k) => (after[k] - before[k]) / N
  return {
    heapUsed: per('heapUsed'),
    external: per('external'),
    rss: per('rss'),
    kept: keep.length + alive.length
  }
}

function main() {
  const rows = Object.keys(LIBS).map((name) => {
    const runs = Array.from({ length: REPEATS }, () => runChild('./heap.mjs', [name]))
    const bad = runs.find((r) => r.error)
    const r =
      bad ||
      Object.fromEntries(
        ['heapUsed', 'external', 'rss'].map((k) => [k, median(runs.map((x) => x[k]))])
      )
    return r.error
      ? { library: name, error: r.error }
      : {
          library: name,
          'heapUsed B/task': fmt(r.heapUsed, 1),
          'external B/task': fmt(r.external, 1),
          'rss B/task': fmt(r.rss, 1)
        }
  })
  printTable(
    `Memory per pending task: ${fmt(N)} tasks queued behind a never-settling one (concurrency 1, after gc; median of ${REPEATS} processes)`,
    rows,
    [
      'heapUsed = V8 JS heap only; rss = whole process (JS heap pages + native malloc), so it is where native queue memory shows up.',
      'The returned promise each caller keeps is included (floor row = that promise alone); the array holding them is allocated before the baseline.'
    ]
  )
}

if (isChild) childMain(() => child(childArgs[0]))
else main()
