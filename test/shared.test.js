'use strict'
// One limit for the whole process: named gates shared by worker threads.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Worker } = require('node:worker_threads')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { pLimit, limitFunction, Semaphore } = require('../lib/index.js')
const { binding } = require('../lib/binding.js')

const LIB = path.join(__dirname, '..', 'lib', 'index.js')
let seq = 0
const uniqueName = (label) => `sluice-test-${process.pid}-${label}-${++seq}`

// Runs `body` (a function source) in a worker with `data`; resolves with its
// posted message, rejects with its error.
function runWorker(body, data) {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      const sluice = require(${JSON.stringify(LIB)})
      ;(${body})(sluice, workerData).then(v => parentPort.postMessage(v), e => { throw e })
    `,
      { eval: true, workerData: data }
    )
    w.once('message', resolve)
    w.once('error', reject)
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited ${code}`))
    })
  })
}

// A task that records the concurrency seen across threads in shared memory.
const tracked = `async (cur) => {
  const n = Atomics.add(cur, 0, 1) + 1
  for (;;) { const m = Atomics.load(cur, 1); if (n <= m || Atomics.compareExchange(cur, 1, m, n) === m) break }
  await new Promise(r => setTimeout(r, 1))
  Atomics.sub(cur, 0, 1)
}`

test('workers and the main thread share one limit: never exceeded, reached, all done', async () => {
  const name = uniqueName('limit')
  const C = 3
  const cur = new Int32Array(new SharedArrayBuffer(8))
  const limit = pLimit({ concurrency: C, name })
  const task = eval(tracked) // eslint-disable-line no-eval
  const workers = Array.from({ length: 4 }, () =>
    runWorker(
      `async ({ pLimit }, { name, sab }) => {
    const cur = new Int32Array(sab)
    const task = ${tracked}
    const limit = pLimit({ name })
    await Promise.all(Array.from({ length: 40 }, () => limit(task, cur)))
    return 40
  }`,
      { name, sab: cur.buffer }
    )
  )
  const mine = Array.from({ length: 40 }, () => limit(task, cur))
  const counts = await Promise.all(workers)
  await Promise.all(mine)
  assert.deepEqual(counts, [40, 40, 40, 40])
  assert.equal(cur[1], C, 'the shared limit is reached and never exceeded')
  assert.equal(cur[0], 0)
  assert.equal(limit.activeCount, 0)
  assert.equal(limit.pendingCount, 0)
})

test('a shared semaphore: the count any thread reads is the whole gate', async () => {
  const name = uniqueName('sem')
  const sem = new Semaphore(2, { name })
  await sem.acquire()
  const other = await runWorker(
    `async ({ Semaphore }, { name }) => {
    const sem = new Semaphore(undefined, { name })
    const seen = [sem.permits, sem.available]
    await sem.acquire()
    seen.push(sem.available)
    sem.release()
    return seen
  }`,
    { name }
  )
  assert.deepEqual(other, [2, 1, 0])
  assert.equal(sem.available, 1)
  sem.release()
  assert.equal(sem.available, 2)
})

test('a release in one thread wakes a waiter in another', async () => {
  const name = uniqueName('wake')
  const sem = new Semaphore(1, { name })
  await sem.acquire()
  const waiting = runWorker(
    `async ({ Semaphore }, { name }) => {
    const sem = new Semaphore(undefined, { name })
    await sem.acquire()
    sem.release()
    return 'got it'
  }`,
    { name }
  )
  // The worker is queued behind us: wait until the gate shows it.
  while (sem.pending === 0) await new Promise((r) => setTimeout(r, 2))
  sem.release()
  assert.equal(await waiting, 'got it')
  assert.equal(sem.available, 1)
})

test('across threads a permit goes to the longest waiter of the highest priority', async () => {
  const name = uniqueName('prio')
  const sem = new Semaphore(1, { name })
  await sem.acquire()
  // Who got the permit first, recorded where both threads see it at once.
  const seq = new Int32Array(new SharedArrayBuffer(12))
  const low = sem.acquire(1, { priority: 0 }).then(() => {
    Atomics.store(seq, 1 + Atomics.add(seq, 0, 1), 1)
    sem.release()
  })
  const worker = runWorker(
    `async ({ Semaphore }, { name, sab }) => {
    const seq = new Int32Array(sab)
    const sem = new Semaphore(undefined, { name })
    await sem.acquire(1, { priority: 5 })
    Atomics.store(seq, 1 + Atomics.add(seq, 0, 1), 2)
    sem.release()
    return 'done'
  }`,
    { name, sab: seq.buffer }
  )
  while (sem.pending < 2) await new Promise((r) => setTimeout(r, 2))
  sem.release()
  await Promise.all([low, worker])
  assert.deepEqual(
    [seq[1], seq[2]],
    [2, 1],
    "the worker's priority 5 waiter first, then main's priority 0"
  )
})

test('the first opener sets the permits; a different number is a RangeError; none attaches', () => {
  const name = uniqueName('open')
  const a = pLimit({ concurrency: 4, name })
  assert.throws(() => pLimit({ concurrency: 5, name }), {
    name: 'RangeError',
    message: /exists with 4 permits/
  })
  const b = pLimit({ name })
  assert.equal(b.concurrency, 4)
  const c = pLimit({ concurrency: 4, name })
  b.concurrency = 6 // changes it for everyone
  assert.equal(a.concurrency, 6)
  assert.equal(c.concurrency, 6)
  assert.throws(() => pLimit({ name: uniqueName('missing') }), {
    name: 'TypeError',
    message: /first opener must give/
  })
  assert.throws(() => pLimit({ concurrency: 2, name: 42 }), {
    name: 'TypeError',
    message: /`name`/
  })
  assert.throws(() => pLimit({ concurrency: 2, name: '' }), {
    name: 'RangeError',
    message: /`name`/
  })
  assert.throws(() => new Semaphore(1, { name: {} }), {
    name: 'TypeError',
    message: /options.name/
  })
  assert.throws(() => new Semaphore(1, 'x'), { name: 'TypeError', message: /options/ })
})

test('limitFunction shares by name too', async () => {
  const name = uniqueName('fn')
  let running = 0
  let max = 0
  const work = async () => {
    running++
    max = Math.max(max, running)
    await new Promise((r) => setTimeout(r, 1))
    running--
  }
  const f = limitFunction(work, { concurrency: 2, name })
  const limit = pLimit({ name })
  await Promise.all([
    ...Array.from({ length: 10 }, () => f()),
    ...Array.from({ length: 10 }, () => limit(work))
  ])
  assert.equal(max, 2)
})

test('names do not collide with unnamed gates, and each name is its own gate', async () => {
  const name = uniqueName('iso')
  const shared = pLimit({ concurrency: 1, name })
  const unnamed = pLimit(1)
  const other = pLimit({ concurrency: 1, name: name + '-other' })
  let release
  shared(
    () =>
      new Promise((r) => {
        release = r
      })
  )
  await null
  assert.equal(shared.activeCount, 1)
  assert.equal(unnamed.activeCount, 0)
  assert.equal(other.activeCount, 0)
  await unnamed(() => 'runs')
  await other(() => 'runs too')
  release()
})

test('clearQueue on a shared limit clears only the tasks queued through it', async () => {
  const name = uniqueName('clear')
  const a = pLimit({ concurrency: 1, name })
  const b = pLimit({ name })
  let release
  a(
    () =>
      new Promise((r) => {
        release = r
      })
  )
  let aSettled = false
  a(() => 'a').finally(() => {
    aSettled = true
  })
  const fromB = b(() => 'b')
  assert.equal(a.pendingCount, 2, 'pendingCount is the whole gate')
  a.clearQueue()
  assert.equal(a.pendingCount, 1)
  assert.equal(b.pendingCount, 1)
  await null // the running task starts one microtask after limit()
  release()
  assert.equal(await fromB, 'b')
  await new Promise((r) => setTimeout(r, 10))
  assert.equal(aSettled, false, 'the cleared task never settles, as in p-limit')
})

test('100 workers terminated while holding and while waiting leave every permit available', async () => {
  const name = uniqueName('term')
  const P = 5
  const sem = new Semaphore(P, { name })
  const workers = []
  for (let i = 0; i < 100; i++) {
    const w = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      const { Semaphore } = require(${JSON.stringify(LIB)})
      const sem = new Semaphore(undefined, { name: workerData })
      parentPort.postMessage('ready')
      sem.acquire().then(() => parentPort.postMessage('holding'))
      sem.acquire(2).then(() => parentPort.postMessage('holding more'))
      setInterval(() => {}, 1000)
    `,
      { eval: true, workerData: name }
    )
    workers.push(new Promise((resolve) => w.once('message', () => resolve(w))))
    if (workers.length % 10 === 0) {
      // Terminate in batches while others hold and wait.
      const batch = await Promise.all(workers.splice(0))
      await new Promise((r) => setTimeout(r, 5))
      await Promise.all(batch.map((w) => w.terminate()))
    }
  }
  assert.equal(sem.pending, 0, 'no waiter of a dead thread is left queued')
  assert.equal(sem.available, P, 'every permit is back')
  // And the gate still works for the living.
  await sem.acquire(P)
  sem.release(P)
})

test('the addon works when only workers load it, one after another', () => {
  const script = `
    const { Worker } = require('node:worker_threads')
    const run = i => new Promise((resolve, reject) => {
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads')
        const { pLimit, Semaphore } = require(${JSON.stringify(LIB)})
        const limit = pLimit({ concurrency: 1, name: 'only-workers' })
        const sem = new Semaphore(2, { name: 'only-workers-sem-' + ${'${i}'} })
        limit(async () => 'x').then(v => parentPort.postMessage(v + limit.concurrency + sem.permits))
      \`, { eval: true })
      w.once('message', resolve); w.once('error', reject)
    })
    ;(async () => { const out = []; for (let i = 0; i < 5; i++) out.push(await run(i)); console.log(out.join(',')) })()
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'x12,x12,x12,x12,x12')
})

test('a thread waiting on a shared gate stays alive until granted, and exits after', () => {
  const script = `
    const { Worker } = require('node:worker_threads')
    const { Semaphore } = require(${JSON.stringify(LIB)})
    const sem = new Semaphore(1, { name: 'alive' })
    sem.acquire().then(() => {
      const w = new Worker(\`
        const { Semaphore } = require(${JSON.stringify(LIB)})
        const sem = new Semaphore(undefined, { name: 'alive' })
        sem.acquire().then(() => { console.log('worker granted'); sem.release() })
      \`, { eval: true })
      setTimeout(() => { console.log('main releases'); sem.release() }, 50)
      w.on('exit', c => console.log('worker exit ' + c))
    })
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'main releases\nworker granted\nworker exit 0')
})

test('named gates are freed when their last opener is collected', async () => {
  const before = binding.debugCounts().namedGates
  ;(() => {
    for (let i = 0; i < 50; i++) pLimit({ concurrency: 1, name: uniqueName('gc') })
  })()
  assert.ok(binding.debugCounts().namedGates >= before + 50)
  if (typeof global.gc !== 'function') {
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        `
      const { pLimit } = require(${JSON.stringify(LIB)})
      const { binding } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'binding.js'))})
      ;(() => { for (let i = 0; i < 50; i++) pLimit({ concurrency: 1, name: 'g' + i }) })()
      const mid = binding.debugCounts().namedGates
      // Finalizers run a few turns after the GC that found the objects: wait
      // (at most 5 s) for the count to reach 0; a leak never does.
      const t0 = Date.now()
      ;(function poll () {
        gc()
        const n = binding.debugCounts().namedGates
        if (n === 0 || Date.now() - t0 > 5000) console.log(mid, n)
        else setTimeout(poll, 10)
      })()
    `
      ],
      { encoding: 'utf8' }
    )
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), '50 0')
  }
})
