'use strict'
// Regression tests for the gate bugs of issue 9, one per bug, each seen to
// fail before its fix. Most run in a child process, because they need
// --expose-gc, worker threads that are terminated, or a process that must
// exit on its own.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { Semaphore } = require('../lib/index.js')

const LIB = path.join(__dirname, '..', 'lib')

// Runs `source` (a CommonJS script; `LIB` names lib/) in a child process.
function runChild(source, args = [], timeout = 30000) {
  const prelude = `const LIB = ${JSON.stringify(LIB)};\n`
  return spawnSync(process.execPath, [...args, '-e', prelude + source], {
    encoding: 'utf8',
    timeout
  })
}

function assertChildOk(r) {
  assert.equal(r.signal, null, `killed by ${r.signal}\n${r.stdout}\n${r.stderr}`)
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`)
}

// Polls gc() until `done()` holds, for up to 5 s (finalizers run after GC,
// on a later turn).
const AT_REST = `
  async function atRest (done) {
    for (let i = 0; i < 500; i++) {
      globalThis.gc()
      await new Promise((resolve) => setTimeout(resolve, 10))
      if (done()) return true
    }
    return false
  }
`

test('bug 1: a semaphore dropped with a queued acquire on a shared gate lives until the grant, and its permits come back', () => {
  // Before: the handle was freed with the grant on its env's ready queue:
  // heap-use-after-free under ASan, a crash or a stuck gate otherwise.
  const r = runChild(
    `
    const { Worker } = require('node:worker_threads')
    const { Semaphore } = require(LIB + '/index.js')
    const { binding } = require(LIB + '/binding.js')
    ${AT_REST}
    async function round (i) {
      const name = 'uaf-' + i
      const worker = new Worker(\`
        const { parentPort, workerData } = require('node:worker_threads')
        const { Semaphore } = require(workerData.lib + '/index.js')
        const sem = new Semaphore(1, { name: workerData.name })
        sem.acquire().then(() => parentPort.postMessage('held'))
        parentPort.on('message', () => { sem.release(); parentPort.postMessage('released') })
      \`, { eval: true, workerData: { lib: LIB, name } })
      await new Promise((resolve) => worker.once('message', resolve))
      let granted = false
      ;(() => {
        const dropped = new Semaphore(undefined, { name })
        dropped.acquire().then(() => { granted = true })
      })()
      globalThis.gc()
      await new Promise((resolve) => setImmediate(resolve))
      globalThis.gc()
      worker.postMessage('release')
      await new Promise((resolve) => worker.once('message', resolve))
      const seen = await atRest(() => granted)
      if (!seen) throw new Error('round ' + i + ': the dropped semaphore was never granted')
      // Its permit comes back once it is collected.
      const probe = new Semaphore(undefined, { name })
      if (!(await atRest(() => probe.available === 1))) throw new Error('round ' + i + ': permit lost, available ' + probe.available)
      await worker.terminate()
    }
    ;(async () => {
      for (let i = 0; i < 8; i++) await round(i)
      console.log('ok')
    })().catch((e) => { console.error(e); process.exit(1) })
  `,
    ['--expose-gc'],
    60000
  )
  assertChildOk(r)
  assert.equal(r.stdout.trim(), 'ok')
})

test('bug 2: a timeout asked for after synchronous work counts from the request, not from the loop turn', async () => {
  // Before: 50 ms of busy work, then timeout 30 fired after < 1 ms.
  const sem = new Semaphore(0)
  // A fresh loop turn (libuv caches the time at its start), then 50 ms of
  // synchronous work before the acquire.
  await new Promise((resolve) => setImmediate(resolve))
  const until = performance.now() + 50
  while (performance.now() < until);
  const t0 = performance.now()
  await assert.rejects(sem.acquire(1, { timeout: 30 }), { name: 'TimeoutError' })
  const waited = performance.now() - t0
  assert.ok(waited >= 25, `the 30 ms timeout fired after ${waited.toFixed(1)} ms`)
})

test('bug 3: a terminated worker gives back every permit it holds, also beyond 2^32', () => {
  const r = runChild(`
    const { Worker } = require('node:worker_threads')
    const { Semaphore } = require(LIB + '/index.js')
    const name = 'big-' + process.pid
    const sem = new Semaphore(1e10, { name })
    const worker = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads')
      const { Semaphore } = require(workerData.lib + '/index.js')
      const sem = new Semaphore(undefined, { name: workerData.name })
      Promise.all([sem.acquire(2 ** 32 - 1), sem.acquire(2 ** 32 - 1)]).then(() => parentPort.postMessage('held'))
      setInterval(() => {}, 1000) // alive until terminated
    \`, { eval: true, workerData: { lib: LIB, name } })
    worker.once('message', async () => {
      console.log('during ' + sem.available)
      await worker.terminate()
      console.log('after ' + sem.available)
    })
  `)
  assertChildOk(r)
  assert.deepEqual(r.stdout.trim().split('\n'), [
    `during ${1e10 - 2 * (2 ** 32 - 1)}`,
    `after ${1e10}`
  ])
})

test('bug 4: a script waiting on its own named gate exits, as with p-limit', () => {
  // Before: the doorbell kept the loop alive for a waiter nobody else could
  // ever grant: the process never exited.
  for (const source of [
    `const pLimit = require(LIB + '/p-limit.js')
     const limit = pLimit({ concurrency: 1, name: 'own' })
     limit(() => new Promise(() => {}))
     limit(() => console.log('never'))
     console.log('queued ' + limit.pendingCount)`,
    `const { Semaphore } = require(LIB + '/index.js')
     const a = new Semaphore(1, { name: 'own2' })
     const b = new Semaphore(undefined, { name: 'own2' })
     a.acquire().then(() => b.acquire()).then(() => console.log('never'))
     setTimeout(() => console.log('queued ' + b.pending), 5)`
  ]) {
    const r = runChild(source, [], 10000)
    assert.equal(r.signal, null, `did not exit: ${r.stdout}${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'queued 1')
  }
})

test('bug 4: a waiter of another thread that can never let ours in keeps nothing alive', () => {
  // Found by the adversarial round: main waits on permits only it holds
  // (or on a paused gate) while a worker, unref'd, waits behind it; nothing
  // could ever grant main's waiter, so the process must exit.
  for (const paused of [false, true]) {
    const r = runChild(
      `
      const { Worker } = require('node:worker_threads')
      const { Semaphore } = require(LIB + '/index.js')
      const name = 'behind-' + process.pid
      const s = new Semaphore(${paused ? 0 : 1}, { name })
      if (!${paused}) s.acquire()
      s.acquire().then(() => console.log('never'))
      const w = new Worker(\`
        const { workerData, parentPort } = require('node:worker_threads')
        const { Semaphore } = require(workerData.lib + '/index.js')
        new Semaphore(undefined, { name: workerData.name }).acquire().then(() => console.log('never'))
        parentPort.postMessage('queued')
      \`, { eval: true, workerData: { lib: LIB, name } })
      w.unref()
      w.once('message', () => console.log('queued ' + s.pending))
    `,
      [],
      10000
    )
    assert.equal(r.signal, null, `did not exit (paused: ${paused}): ${r.stdout}${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
    // The worker may have exited already (nothing could grant its waiter
    // either), taking its waiter with it: 1 or 2 queued.
    assert.match(r.stdout.trim(), /^queued [12]$/)
  }
})

test('bug 4: a thread waiting on a gate another thread holds stays alive until it is granted', () => {
  const r = runChild(`
    const { Worker } = require('node:worker_threads')
    const { Semaphore } = require(LIB + '/index.js')
    const name = 'alive-' + process.pid
    const sem = new Semaphore(1, { name })
    const worker = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads')
      const { Semaphore } = require(workerData.lib + '/index.js')
      const sem = new Semaphore(undefined, { name: workerData.name })
      sem.acquire().then(() => {
        parentPort.postMessage('held')
        setTimeout(() => sem.release(), 200)
      })
    \`, { eval: true, workerData: { lib: LIB, name } })
    worker.unref() // only the doorbell may keep this process alive now
    worker.once('message', () => {
      sem.acquire().then(() => { console.log('granted'); sem.release() })
    })
  `)
  assertChildOk(r)
  assert.equal(r.stdout.trim(), 'granted')
})

test('bug 5: lowering the permits rejects the waiters that can no longer fit, and unblocks the rest', async () => {
  const sem = new Semaphore(4)
  await sem.acquire(4)
  const big = sem.acquire(4)
  const small = sem.acquire(1)
  sem.permits = 3
  await assert.rejects(big, {
    name: 'RangeError',
    message: /Cannot acquire 4 permits: the gate has only 3/
  })
  assert.equal(sem.pending, 1)
  sem.release(4)
  await small
  assert.equal(sem.available, 2)
  sem.release(1)
})

test('bug 7: a throwing addEventListener leaves nothing queued', () => {
  const sem = new Semaphore(0)
  const ac = new AbortController()
  ac.signal.addEventListener = () => {
    throw new Error('listener refused')
  }
  assert.throws(() => sem.acquire(1, { signal: ac.signal }), /listener refused/)
  assert.equal(sem.pending, 0)
  sem.permits = 1
  assert.equal(sem.tryAcquire(), true)
})

test('bug 8: names are compared with their length: "a\\0b", "a\\0c" and "a" are three gates', () => {
  const a = new Semaphore(1, { name: 'nul\u0000b' })
  const b = new Semaphore(2, { name: 'nul\u0000c' })
  const c = new Semaphore(3, { name: 'nul' })
  assert.deepEqual([a.permits, b.permits, c.permits], [1, 2, 3])
  assert.equal(new Semaphore(undefined, { name: 'nul\u0000c' }).permits, 2)
  assert.throws(() => new Semaphore(1, { name: 'x'.repeat(1024) }), RangeError)
  assert.equal(new Semaphore(1, { name: 'y'.repeat(1023) }).permits, 1)
  // Lone surrogates would become U+FFFD in UTF-8 and collide: refused.
  for (const name of ['q\ud800', 'q\udfff', '\udc00x']) {
    assert.throws(() => new Semaphore(1, { name }), {
      name: 'RangeError',
      message: /well-formed/
    })
  }
  assert.equal(new Semaphore(4, { name: 'q\ufffd' }).permits, 4)
  assert.equal(new Semaphore(5, { name: 'q\ud83d\ude00' }).permits, 5)
})

test('a fake AbortSignal is a TypeError that names options.signal, and nothing is queued', () => {
  const sem = new Semaphore(0)
  const fake = Object.create(AbortSignal.prototype)
  assert.throws(() => sem.acquire(1, { signal: fake }), {
    name: 'TypeError',
    message: /options\.signal/
  })
  assert.equal(sem.pending, 0)
})

test('bug 9: semaphores and limiters dropped with queued work are collected, deferreds and all', () => {
  // Before: every queued waiter kept its napi_deferred (and through it the
  // task and its closure) forever: +20 MB per 100k waiters, +77 MB for the
  // limiters.
  const r = runChild(
    `
    const { Semaphore } = require(LIB + '/index.js')
    const pLimit = require(LIB + '/p-limit.js')
    const { binding } = require(LIB + '/binding.js')
    ${AT_REST}
    const heap = () => { globalThis.gc(); return process.memoryUsage().heapUsed }
    ;(async () => {
      const before = heap()
      for (let i = 0; i < 100; i++) {
        const sem = new Semaphore(0)
        for (let j = 0; j < 1000; j++) sem.acquire().then(() => console.log('never'))
        const limit = pLimit(1)
        limit(() => new Promise(() => {}))
        const big = new Array(1000).fill(i)
        for (let j = 0; j < 1000; j++) limit(() => big)
      }
      const rest = await atRest(() => {
        const c = binding.debugCounts()
        return c.gates === 0 && c.waiters === 0
      })
      const c = binding.debugCounts()
      const grown = (heap() - before) / 1e6
      console.log(JSON.stringify({ rest, gates: c.gates, waiters: c.waiters, grown }))
    })()
  `,
    ['--expose-gc'],
    60000
  )
  assertChildOk(r)
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1))
  assert.equal(out.rest, true, r.stdout)
  assert.equal(out.waiters, 0)
  assert.ok(
    out.grown < 5,
    `the heap grew by ${out.grown.toFixed(1)} MB after dropping 200k waiters`
  )
})

test('bug 9: a dropped semaphore whose waiter has a timeout lives until the timeout rejects it', () => {
  const r = runChild(
    `
    const { Semaphore } = require(LIB + '/index.js')
    ;(() => {
      new Semaphore(0).acquire(1, { timeout: 50 }).catch((e) => console.log(e.name))
    })()
    globalThis.gc()
    setTimeout(() => globalThis.gc(), 10)
  `,
    ['--expose-gc']
  )
  assertChildOk(r)
  assert.equal(r.stdout.trim(), 'TimeoutError')
})

test('bug 9: a dropped limiter whose running task settles later still runs its queued tasks', () => {
  // The limiter is held through its running task only; GC runs while it
  // works, and between the grant and the start of the next task.
  const r = runChild(
    `
    const pLimit = require(LIB + '/p-limit.js')
    ;(() => {
      const limit = pLimit(1)
      limit(() => new Promise((resolve) => setTimeout(resolve, 30)))
      for (let i = 0; i < 3; i++) limit(() => { globalThis.gc(); console.log('ran ' + i) })
    })()
    const t = setInterval(() => globalThis.gc(), 1)
    setTimeout(() => clearInterval(t), 200)
  `,
    ['--expose-gc']
  )
  assertChildOk(r)
  assert.equal(r.stdout.trim(), 'ran 0\nran 1\nran 2')
})

test('bug 10: the waiter slab gives its memory back after a burst', () => {
  const r = runChild(
    `
    const pLimit = require(LIB + '/p-limit.js')
    const { binding } = require(LIB + '/binding.js')
    const limit = pLimit(1)
    limit(() => new Promise(() => {}))
    for (let i = 0; i < 300000; i++) limit(() => {})
    const during = binding.debugCounts().waiterChunks
    limit.clearQueue()
    setImmediate(() => {
      console.log(during + ' ' + binding.debugCounts().waiterChunks)
    })
  `
  )
  assertChildOk(r)
  const [during, after] = r.stdout.trim().split(' ').map(Number)
  assert.ok(during >= 290, `${during} chunks during the burst`)
  assert.ok(after <= 2, `${after} chunks of 1024 waiters kept after the burst`)
})
