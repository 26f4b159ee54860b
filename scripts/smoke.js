'use strict'
// A smoke test of an installed sluice, through the package's own entry
// points: a limiter, a pool, and a named gate shared with a worker thread.
// scripts/check-prebuilds.js and scripts/check-install.js copy it into a
// fresh app (beside node_modules/sluice) and run it there, on every Node and
// platform they can (also under qemu and wine, so: no shell, no child
// processes). Prints one line: `smoke: ok <platform>-<arch> node <version>
// <addon file>` with the .node file that was loaded, relative to the
// package; exits non-zero (with the error) otherwise.
const path = require('node:path')
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')

if (!isMainThread) {
  // The worker: attach to the main thread's gate, wait for its permit.
  const { Semaphore } = require('sluice')
  const sem = new Semaphore(undefined, { name: workerData.name })
  const granted = sem.acquire()
  parentPort.postMessage({ waiting: sem.pending })
  granted.then(() => {
    parentPort.postMessage({ granted: true })
    sem.release()
  })
  return
}

// A hung check is a failure, not a stuck CI run (qemu is slow: 60 s).
const guard = setTimeout(() => fail(new Error('timed out')), 60_000)
guard.unref()

function fail(err) {
  console.log(`smoke: FAILED: ${(err && err.stack) || err}`)
  process.exit(1)
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`)
}

async function limiter() {
  const pLimit = require('sluice/p-limit')
  const limit = pLimit(2)
  let running = 0
  let most = 0
  const task = (i) =>
    limit(async () => {
      running++
      most = Math.max(most, running)
      await new Promise((resolve) => setTimeout(resolve, 5))
      running--
      return i * 2
    })
  const out = await Promise.all([1, 2, 3, 4, 5].map(task))
  check(out.join() === '2,4,6,8,10', `limiter results ${out}`)
  check(most === 2, `limiter ran ${most} at once, limit 2`)
  check(limit.activeCount === 0 && limit.pendingCount === 0, 'limiter idle at the end')
}

async function pool() {
  const genericPool = require('sluice/generic-pool')
  let made = 0
  let destroyed = 0
  const p = genericPool.createPool(
    { create: async () => ({ id: ++made }), destroy: async () => void destroyed++ },
    { max: 2, acquireTimeoutMillis: 5000 }
  )
  const a = await p.acquire()
  const b = await p.acquire()
  const third = p.acquire() // waits: max 2
  check(p.pending === 1, `pool pending ${p.pending}, expected 1`)
  await p.release(a)
  const c = await third
  check(c === a, 'the released resource goes to the waiter')
  await p.release(b)
  await p.release(c)
  await p.drain()
  await p.clear()
  check(made === 2 && destroyed === 2, `pool made ${made}, destroyed ${destroyed}`)
}

async function namedGate() {
  const { Semaphore } = require('sluice')
  const name = `sluice-smoke-${process.pid}`
  const sem = new Semaphore(1, { name })
  await sem.acquire() // the main thread holds the only permit
  const worker = new Worker(__filename, { workerData: { name } })
  // Listened for from the start: when the main thread is slow, Node
  // delivers the worker's last messages and then 'exit' in one go.
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const messages = []
  const granted = new Promise((resolve, reject) => {
    worker.on('message', (m) => {
      messages.push(m)
      if (m.waiting !== undefined) sem.release() // hand the permit over
      if (m.granted) resolve()
    })
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`worker exited (${code}) before its grant`)))
  })
  await granted
  check(messages[0].waiting === 1, `the worker saw ${messages[0].waiting} waiting, expected 1`)
  await exited
  // The worker released on its way out: the permit is back here.
  check(sem.tryAcquire(), 'the permit came back from the worker')
  sem.release()
}

async function main() {
  await limiter()
  await pool()
  await namedGate()
  const root = path.dirname(require.resolve('sluice/package.json'))
  const addon = require(require.resolve('node-gyp-build', { paths: [root] })).path(root)
  console.log(
    `smoke: ok ${process.platform}-${process.arch} node ${process.version} ${path
      .relative(root, addon)
      .split(path.sep)
      .join('/')}`
  )
}

main().catch(fail)
