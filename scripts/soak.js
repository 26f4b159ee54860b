'use strict'
// Soak test (npm run soak; not in CI): 8 worker threads hammer one shared
// limit (pLimit with a name) and one shared semaphore (Semaphore with a
// name), each with a pool of its own, while workers are terminated and
// restarted at random. Prints operations done, invariant violations (must
// be 0) and RSS over time.
//
//   node scripts/soak.js [--seconds N] [--workers N]     (default 60 s, 8)
//
// Invariants:
// - At most LIMIT tasks of the shared limit run at once, and at most
//   SEM_PERMITS permits of the shared semaphore are held at once, across
//   every thread. Each worker counts what it holds in its own slot of a
//   SharedArrayBuffer; whoever starts a task sums the slots. What the live
//   workers hold must never exceed the limit. A terminated worker cannot
//   clear its slot (the main thread clears it once the worker has exited),
//   so an excess that counts a dying worker's slot is reported as
//   "ambiguous" (its permits may already be back), not as a violation.
// - Each worker's pool never has more than `max` resources, never lends one
//   resource twice, and its counts stay consistent.
// - At the end, with every worker gone, every permit of both shared gates
//   is available and nothing is queued.
const { Worker, isMainThread, workerData } = require('node:worker_threads')

const LIMIT_NAME = 'sluice-soak-limit'
const SEM_NAME = 'sluice-soak-sem'
const LIMIT = 4
const SEM_PERMITS = 6
const MAX_WORKERS = 64

// Shared counters (Int32): per worker slot, tasks held and permits held;
// then globals.
const SLOT_LIMIT = 0
const SLOT_SEM = MAX_WORKERS
const DYING = 2 * MAX_WORKERS
const G_VIOLATIONS = 3 * MAX_WORKERS
const G_AMBIGUOUS = G_VIOLATIONS + 1
const G_POOL_VIOLATIONS = G_VIOLATIONS + 2
const G_SEM_VIOLATIONS = G_VIOLATIONS + 3 // G_VIOLATIONS counts the limit's
const G_POOL_TWICE = G_VIOLATIONS + 4
const G_POOL_SIZE = G_VIOLATIONS + 5
const G_NO_SNAPSHOT = G_VIOLATIONS + 6
const VERSION = 1 << 8
const VALUE_MASK = VERSION - 1
const NINT = G_VIOLATIONS + 8

if (isMainThread) main()
else worker()

function arg(name, def) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : def
}

function main() {
  const pLimit = require('../lib/p-limit.js')
  const { Semaphore } = require('../lib/index.js')
  const seconds = arg('--seconds', 60)
  const nworkers = Math.min(arg('--workers', 8), MAX_WORKERS)
  const ints = new Int32Array(new SharedArrayBuffer(NINT * 4))
  const ops = new BigInt64Array(new SharedArrayBuffer(8 * 4)) // [limit, sem, pool, errors]
  // The main thread opens both gates first (setting their permits) and
  // keeps them open for the whole run.
  const limit = pLimit({ concurrency: LIMIT, name: LIMIT_NAME })
  const sem = new Semaphore(SEM_PERMITS, { name: SEM_NAME })
  const workers = new Array(nworkers)
  let restarts = 0
  let crashes = 0
  let stopping = false
  const t0 = Date.now()

  function start(slot) {
    const w = new Worker(__filename, {
      workerData: { slot, ints: ints.buffer, ops: ops.buffer, seed: Math.random() }
    })
    workers[slot] = w
    w.on('error', (err) => {
      crashes++
      console.error(`worker ${slot} error:`, err)
    })
    w.on('exit', () => {
      // Exiting without being terminated is a crash (a worker exits only
      // on an unexpected error).
      if (Atomics.load(ints, DYING + slot) === 0 && !stopping) {
        crashes++
        console.error(`worker ${slot} exited on its own`)
      }
      // Its permits went back to the gates during its teardown: clear its
      // slots (a new version, value 0), then it is no longer dying.
      for (const base of [SLOT_LIMIT, SLOT_SEM]) {
        const old = Atomics.load(ints, base + slot)
        Atomics.store(ints, base + slot, ((old >>> 8) + 1) << 8)
      }
      Atomics.store(ints, DYING + slot, 0)
      if (workers[slot] === w) workers[slot] = undefined
      if (!stopping) start(slot)
    })
  }
  for (let i = 0; i < nworkers; i++) start(i)

  // Terminate a random worker every 50-500 ms.
  let killer
  const killOne = () => {
    const slot = Math.floor(Math.random() * nworkers)
    const w = workers[slot]
    if (w !== undefined && Atomics.load(ints, DYING + slot) === 0) {
      Atomics.store(ints, DYING + slot, 1)
      restarts++
      w.terminate()
    }
    killer = setTimeout(killOne, 50 + Math.random() * 450)
  }
  killer = setTimeout(killOne, 200)

  const violationCount = () =>
    Atomics.load(ints, G_VIOLATIONS) +
    Atomics.load(ints, G_SEM_VIOLATIONS) +
    Atomics.load(ints, G_POOL_VIOLATIONS)
  const rss = []
  const fmtMB = (b) => (b / 1048576).toFixed(1)
  const report = () => {
    const s = ((Date.now() - t0) / 1000).toFixed(0)
    const r = process.memoryUsage.rss()
    rss.push(r)
    const total = ops[0] + ops[1] + ops[2]
    console.log(
      `${s.padStart(4)} s  ops ${String(total).padStart(10)} (limit ${ops[0]}, sem ${ops[1]}, pool ${ops[2]})  ` +
        `violations ${violationCount()}  ` +
        `ambiguous ${Atomics.load(ints, G_AMBIGUOUS)}  restarts ${restarts}  rss ${fmtMB(r)} MB`
    )
  }
  console.log(
    `soak: ${nworkers} workers, ${seconds} s; shared limit ${LIMIT}, shared semaphore ${SEM_PERMITS} permits, a pool per worker`
  )
  const reporter = setInterval(report, 5000)

  setTimeout(async () => {
    stopping = true
    clearTimeout(killer)
    clearInterval(reporter)
    // Every worker is dying from here on (their teardowns return permits
    // while the others still run).
    for (let i = 0; i < nworkers; i++) Atomics.store(ints, DYING + i, 1)
    await Promise.all(workers.filter(Boolean).map((w) => w.terminate()))
    // Teardown hands permits back through the gate; give the main thread's
    // doorbell a moment.
    await new Promise((resolve) => setTimeout(resolve, 100))
    report()
    const endLimit = { active: limit.activeCount, pending: limit.pendingCount }
    const endSem = { available: sem.available, pending: sem.pending }
    let violations = violationCount()
    const endOk =
      endLimit.active === 0 &&
      endLimit.pending === 0 &&
      endSem.available === SEM_PERMITS &&
      endSem.pending === 0
    if (!endOk) violations++
    const total = ops[0] + ops[1] + ops[2]
    console.log('')
    console.log(
      `operations      ${total} in ${seconds} s (limit tasks ${ops[0]}, semaphore acquires ${ops[1]}, pool cycles ${ops[2]}; ` +
        `expected rejections ${ops[3]})`
    )
    console.log(`restarts        ${restarts} workers terminated and restarted, ${crashes} crashed`)
    console.log(
      `at the end      limit active ${endLimit.active} pending ${endLimit.pending}; semaphore available ${endSem.available}/${SEM_PERMITS} pending ${endSem.pending}`
    )
    console.log(
      `rss             min ${fmtMB(Math.min(...rss))} MB, max ${fmtMB(Math.max(...rss))} MB, last ${fmtMB(rss[rss.length - 1])} MB`
    )
    console.log(
      `ambiguous       ${Atomics.load(ints, G_AMBIGUOUS)} (an excess only counting a terminated worker's stale slot); ` +
        `${Atomics.load(ints, G_NO_SNAPSHOT)} checks without a consistent snapshot`
    )
    console.log(
      `violations      ${violations} (shared limit ${Atomics.load(ints, G_VIOLATIONS)}, shared semaphore ${Atomics.load(ints, G_SEM_VIOLATIONS)}, ` +
        `pools: lent twice ${Atomics.load(ints, G_POOL_TWICE)}, counts ${Atomics.load(ints, G_POOL_SIZE)}; end state ${endOk ? 'ok' : 'WRONG'})`
    )
    process.exit(violations === 0 && crashes === 0 ? 0 : 1)
  }, seconds * 1000)
}

function worker() {
  const pLimit = require('../lib/p-limit.js')
  const { Semaphore } = require('../lib/index.js')
  const { createPool } = require('../lib/generic-pool.js')
  const { slot } = workerData
  const ints = new Int32Array(workerData.ints)
  const ops = new BigInt64Array(workerData.ops)
  const limit = pLimit({ name: LIMIT_NAME })
  const sem = new Semaphore(undefined, { name: SEM_NAME })
  let rnd = Math.floor(workerData.seed * 2 ** 31) || 1
  const random = () => {
    rnd ^= rnd << 13
    rnd ^= rnd >>> 17
    rnd ^= rnd << 5
    return (rnd >>> 0) / 4294967296
  }
  const pause = () =>
    random() < 0.5
      ? new Promise((resolve) => setImmediate(resolve))
      : new Promise((resolve) => setTimeout(resolve, random() < 0.9 ? 0 : 1))

  // Sums a counter over the slots, from a consistent snapshot (two equal
  // collects of the versioned slots: nothing moved in between). What live
  // workers hold must never exceed the limit: a violation. A dying worker's
  // slot may be stale (its permits already returned by its teardown, the
  // slot cleared only when the main thread sees it exit), so an excess that
  // needs it is only "ambiguous".
  const snap1 = new Int32Array(2 * MAX_WORKERS)
  const snap2 = new Int32Array(2 * MAX_WORKERS)
  function collect(base, out) {
    for (let i = 0; i < MAX_WORKERS; i++) {
      out[i] = Atomics.load(ints, base + i)
      out[MAX_WORKERS + i] = Atomics.load(ints, DYING + i)
    }
  }
  function checkHeld(base, max, counter) {
    for (let attempt = 0; attempt < 8; attempt++) {
      collect(base, snap1)
      collect(base, snap2)
      let same = true
      for (let i = 0; i < snap1.length; i++)
        if (snap1[i] !== snap2[i]) {
          same = false
          break
        }
      if (!same) continue
      let live = 0
      let dying = 0
      for (let i = 0; i < MAX_WORKERS; i++) {
        const v = snap1[i] & VALUE_MASK
        if (snap1[MAX_WORKERS + i] !== 0) dying += v
        else live += v
      }
      if (live > max) Atomics.add(ints, counter, 1)
      else if (live + dying > max) Atomics.add(ints, G_AMBIGUOUS, 1)
      return
    }
    Atomics.add(ints, G_NO_SNAPSHOT, 1)
  }
  // A slot is a value (low 8 bits) and a version bumped on every change,
  // updated in one atomic add.
  const hold = (base, n) => Atomics.add(ints, base + slot, VERSION + n)
  const unhold = (base, n) => Atomics.add(ints, base + slot, VERSION - n)

  async function limitLoop() {
    for (;;) {
      await limit(async () => {
        hold(SLOT_LIMIT, 1)
        checkHeld(SLOT_LIMIT, LIMIT, G_VIOLATIONS)
        await pause()
        unhold(SLOT_LIMIT, 1)
      })
      Atomics.add(ops, 0, 1n)
    }
  }

  async function semLoop() {
    for (;;) {
      const n = random() < 0.7 ? 1 : 2
      const options = { priority: Math.floor(random() * 3) }
      let ac
      if (random() < 0.1) options.timeout = 1 + Math.floor(random() * 5)
      if (random() < 0.1) {
        ac = new AbortController()
        options.signal = ac.signal
        setTimeout(() => ac.abort(), Math.floor(random() * 3))
      }
      try {
        await sem.acquire(n, options)
      } catch (err) {
        if (err.name !== 'TimeoutError' && err.name !== 'AbortError') throw err
        Atomics.add(ops, 3, 1n)
        continue
      }
      hold(SLOT_SEM, n)
      checkHeld(SLOT_SEM, SEM_PERMITS, G_SEM_VIOLATIONS)
      await pause()
      unhold(SLOT_SEM, n)
      sem.release(n)
      Atomics.add(ops, 1, 1n)
    }
  }

  let id = 0
  const pool = createPool(
    {
      create: async () => {
        if (random() < 0.02) throw new Error('create failed')
        return { id: id++ }
      },
      destroy: async () => {},
      validate: async () => random() > 0.02
    },
    {
      max: 4,
      min: 1,
      priorityRange: 3,
      testOnBorrow: random() < 0.5,
      acquireTimeoutMillis: 50,
      evictionRunIntervalMillis: 5,
      idleTimeoutMillis: 20
    }
  )
  pool.on('factoryCreateError', () => {})
  const lent = new Set()
  const poolViolation = (kind) => {
    Atomics.add(ints, G_POOL_VIOLATIONS, 1)
    Atomics.add(ints, kind, 1)
  }

  async function poolLoop() {
    for (;;) {
      let r
      try {
        r = await pool.acquire(Math.floor(random() * 3))
      } catch (err) {
        if (err.name !== 'TimeoutError') throw err
        Atomics.add(ops, 3, 1n)
        continue
      }
      if (lent.has(r)) poolViolation(G_POOL_TWICE)
      lent.add(r)
      if (pool.size > 4 || pool.borrowed > 4 || pool.borrowed < 1) poolViolation(G_POOL_SIZE)
      await pause()
      lent.delete(r)
      if (random() < 0.05) await pool.destroy(r)
      else await pool.release(r)
      Atomics.add(ops, 2, 1n)
    }
  }

  const fail = (err) => {
    console.error(`worker ${slot}:`, err)
    process.exit(1)
  }
  for (let i = 0; i < 6; i++) limitLoop().catch(fail)
  for (let i = 0; i < 6; i++) semLoop().catch(fail)
  for (let i = 0; i < 6; i++) poolLoop().catch(fail)
}
