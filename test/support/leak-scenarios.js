'use strict'
// Leak scenarios, shared by test/leaks.test.js (small runs, in `npm test`)
// and scripts/stress.js (the million-task runs, `npm run test:stress`).
//
// A scenario runs in its own process with --expose-gc (this file, run as
// `node --expose-gc test/support/leak-scenarios.js <scenario> <ops>`), prints one
// JSON line, and check() judges it:
//   - the addon is at rest before and after: binding.debugCounts()
//     (waiters, gates, uv handles, named gates, pools, pool waiters, pool
//     timers) is zero but for the env's doorbell, and the doorbell is as
//     it was: no native object is left behind, however small the run;
//   - the JS heap is back within HEAP_TOLERANCE of a warmed-up baseline;
//   - the memory outside the JS heap is back within NATIVE_TOLERANCE
//     (not under AddressSanitizer, whose quarantine keeps freed memory).
// The counts are exact at any size; the heap and memory checks need
// volume to see a small per-operation leak, which is what the stress runs
// (1,000,000 operations) give them.
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')

const MB = 1024 * 1024
// Tolerances, measured then set with headroom (each run prints its
// figures). Measured on the 2-vCPU development machine, Node 20, 1M
// operations: heapUsed +0.00..0.24 MB, RSS -0.4..+0.6 MB after a warm-up
// that lets V8 grow its heap to the workload's working size (without it,
// RSS stays 5-20 MB up from pages V8 keeps, with heapUsed back at baseline:
// not a leak, and stable from the third round on).
const HEAP_TOLERANCE = 1 * MB
const NATIVE_TOLERANCE = 6 * MB
// How long the child waits for collected objects' finalizers (a leak never
// gets there; a slow finalizer takes a few turns).
const QUIESCE_MS = 5000

const SCENARIOS = ['limiter', 'pool', 'timeouts']

// The addon at rest: no waiter, gate, pool or timer alive; at most the
// env's doorbell open (a named gate opens it and it stays for the env's
// life).
function atRest(c) {
  return (
    c.waiters === 0 &&
    c.gates === 0 &&
    c.namedGates === 0 &&
    c.pools === 0 &&
    c.poolWaiters === 0 &&
    c.poolTimers === 0 &&
    c.uvHandles <= 1
  )
}

function fmt(bytes) {
  return (bytes / MB).toFixed(2) + ' MB'
}

/** Runs one scenario in a fresh process; returns its JSON report. */
function runScenario(scenario, ops, { timeout = 120000 } = {}) {
  assert.ok(SCENARIOS.includes(scenario), `unknown scenario ${scenario}`)
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, scenario, String(ops)], {
    encoding: 'utf8',
    timeout
  })
  assert.equal(r.signal, null, `${scenario}: killed by ${r.signal}\n${r.stderr}`)
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** One line that says what a run measured. */
function describe(scenario, out) {
  return (
    `${scenario}: ${out.ops} operations in ${out.ms} ms; heap ${fmt(out.heapDelta)}, ` +
    `rss ${fmt(out.rssDelta)}, outside the heap ${fmt(out.nativeDelta)} ` +
    `(peak rss +${fmt(out.rssPeak - out.rssBase)}); native ${JSON.stringify(out.after.counts)} ` +
    `(at rest: baseline after ${out.before.ms} ms, end after ${out.after.ms} ms)`
  )
}

/** Throws (an AssertionError) unless the run left nothing behind. */
function check(out) {
  assert.ok(
    atRest(out.before.counts),
    `the warm-up left native objects behind: ${JSON.stringify(out.before.counts)}`
  )
  assert.ok(
    atRest(out.after.counts),
    `native objects left behind: ${JSON.stringify(out.after.counts)}`
  )
  assert.equal(out.after.counts.uvHandles, out.before.counts.uvHandles, 'uv handles left open')
  assert.ok(out.heapDelta < HEAP_TOLERANCE, `heap grew by ${fmt(out.heapDelta)}`)
  // Under AddressSanitizer (npm run test:sanitize) freed memory sits in a
  // 256 MB quarantine, so RSS says nothing there; heap and native counts
  // still do.
  if (process.env.SLUICE_SANITIZE !== '1') {
    assert.ok(
      out.nativeDelta < NATIVE_TOLERANCE,
      `memory outside the JS heap grew by ${fmt(out.nativeDelta)} (rss ${fmt(out.rssDelta)})`
    )
  }
}

module.exports = { SCENARIOS, runScenario, check, describe, atRest }

// ----------------------------------------------------------------- child --

if (require.main === module) {
  const [scenario, ops] = process.argv.slice(2)
  child(scenario, Number(ops)).then(
    (out) => {
      console.log(JSON.stringify(out))
    },
    (err) => {
      console.error(err)
      process.exit(1)
    }
  )
}

async function child(scenario, ops) {
  assert.ok(SCENARIOS.includes(scenario), `unknown scenario ${scenario}`)
  assert.ok(Number.isInteger(ops) && ops > 0, `operations: a positive integer, got ${ops}`)
  assert.equal(typeof globalThis.gc, 'function', 'run with --expose-gc')
  const { binding } = require('../../lib/binding.js')
  const pLimit = require('../../lib/p-limit.js')
  const { Semaphore, TimeoutError } = require('../../lib/index.js')
  const { createPool } = require('../../lib/generic-pool.js')
  const immediate = () => new Promise((resolve) => setImmediate(resolve))
  let rssPeak = 0

  async function settle() {
    for (let i = 0; i < 4; i++) {
      await immediate()
      globalThis.gc()
    }
    await immediate()
  }
  // Collects and waits (at most QUIESCE_MS) until binding.debugCounts() is
  // at rest; returns the counts then and the time it took.
  async function quiesce() {
    const t0 = Date.now()
    let counts = binding.debugCounts()
    while (!atRest(counts) && Date.now() - t0 < QUIESCE_MS) {
      globalThis.gc()
      await new Promise((resolve) => setTimeout(resolve, 10))
      counts = binding.debugCounts()
    }
    return { counts, ms: Date.now() - t0 }
  }
  function measure() {
    const m = process.memoryUsage()
    return { heap: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss }
  }
  const sample = () => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss())
  }

  async function limiterTasks(n) {
    // Half through a plain limiter (tasks queue: 16 at a time), half
    // through a named one, in batches.
    const limit = pLimit(16)
    const shared = pLimit({ concurrency: 16, name: 'leaks-test' })
    const task = async (i) => i
    const BATCH = Math.min(10000, n / 2)
    let done = 0
    for (; done < n; done += BATCH) {
      const l = done % (2 * BATCH) === 0 ? limit : shared
      const all = new Array(BATCH)
      for (let i = 0; i < BATCH; i++) all[i] = l(task, i)
      const results = await Promise.all(all)
      assert.equal(results[BATCH - 1], BATCH - 1)
      if (done % 100000 === 0) sample()
    }
    assert.equal(
      limit.activeCount + limit.pendingCount + shared.activeCount + shared.pendingCount,
      0
    )
    // clearQueue with tasks queued, and a semaphore's acquire/release
    const l = pLimit(1)
    for (let i = 0; i < 1000; i++) l(task, i)
    assert.equal(l.pendingCount, 999)
    l.clearQueue()
    assert.equal(l.pendingCount, 0)
    const sem = new Semaphore(4)
    for (let i = 0; i < 10000; i++) {
      await sem.acquire()
      sem.release()
    }
    assert.equal(sem.available, 4)
  }

  async function poolCycles(n) {
    let id = 0
    const pool = createPool(
      { create: async () => ({ id: id++ }), destroy: async () => {} },
      { max: 8, min: 2, evictionRunIntervalMillis: 50, acquireTimeoutMillis: 60000 }
    )
    // 16 clients on 8 resources: half the acquires queue.
    const per = n / 16
    let destroyed = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < per; i++) {
          const r = await pool.acquire(i % 3)
          if (i % 1000 === 999) {
            destroyed++
            await pool.destroy(r)
          } else await pool.release(r)
          if (i % 20000 === 0) sample()
        }
      })
    )
    // Every resource created is either destroyed or in the pool: none lost.
    assert.equal(pool.size, id - destroyed, `${id} created, ${destroyed} destroyed`)
    assert.ok(pool.size <= 8)
    const used = await pool.use((r) => r.id)
    assert.equal(typeof used, 'number')
    await pool.drain()
    await pool.clear()
    assert.deepEqual([pool.size, pool.borrowed, pool.pending], [0, 0, 0])
  }

  async function timeoutsAndAborts(n) {
    // Semaphore: n/4 timeouts, n/4 aborts (half with a long timer too).
    const half = n / 2
    const sem = new Semaphore(1)
    await sem.acquire()
    const all = []
    const acs = []
    for (let i = 0; i < half; i++) {
      if (i % 2 === 0) {
        all.push(
          sem.acquire(1, { timeout: 1 + (i % 5) }).then(
            () => 'granted',
            (e) => (e instanceof TimeoutError ? 'timeout' : e)
          )
        )
      } else {
        const ac = new AbortController()
        acs.push(ac)
        all.push(
          sem.acquire(1, { signal: ac.signal, timeout: i % 4 === 1 ? 60000 : 0 }).then(
            () => 'granted',
            (e) => e.name
          )
        )
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (const ac of acs) ac.abort()
    const semResults = await Promise.all(all)
    assert.equal(semResults.filter((r) => r === 'timeout').length, half / 2)
    assert.equal(semResults.filter((r) => r === 'AbortError').length, half / 2)
    sem.release()
    assert.equal(sem.available, 1)
    sample()

    // Pool: n/4 acquire timeouts, n/4 aborts, on a pool whose one
    // resource is held.
    const pool = createPool(
      { create: async () => ({}), destroy: async () => {} },
      { max: 1, acquireTimeoutMillis: 30 }
    )
    const held = await pool.acquire()
    const pAll = []
    const pAcs = []
    for (let i = 0; i < half; i++) {
      if (i % 2 === 0) {
        pAll.push(
          pool.acquire().then(
            () => 'granted',
            (e) => e.name
          )
        )
      } else {
        const ac = new AbortController()
        pAcs.push(ac)
        pAll.push(
          pool.acquire(0, { signal: ac.signal }).then(
            () => 'granted',
            (e) => e.name
          )
        )
      }
    }
    for (const ac of pAcs) ac.abort()
    const poolResults = await Promise.all(pAll)
    assert.equal(poolResults.filter((r) => r === 'TimeoutError').length, half / 2)
    assert.equal(poolResults.filter((r) => r === 'AbortError').length, half / 2)
    await pool.release(held)
    await pool.drain()
    await pool.clear()
    sample()
  }

  const run = { limiter: limiterTasks, pool: poolCycles, timeouts: timeoutsAndAborts }[scenario]
  // Warm up until V8's heap has grown to the workload's working size (it
  // keeps the pages it grew into: heapTotal, hence RSS, stays up after a GC
  // although heapUsed goes back), code is compiled and the native slabs and
  // lists are at their working size; then the baseline.
  if (scenario === 'timeouts') {
    for (let i = 0; i < 4; i++) {
      await run(ops)
      await settle()
    }
  } else {
    await run(Math.min(ops, 200000))
  }
  await settle()
  // The baseline: the addon at rest (nothing of it alive but the env's
  // doorbell, if a named gate opened it). Objects the warm-up dropped go
  // once the GC has found them and their finalizers have run, a few turns
  // later; CI once took a baseline that still counted a warm-up semaphore,
  // collected during the measured run (after < before), so a baseline is
  // now only taken at rest.
  const before = await quiesce()
  const base = measure()
  rssPeak = base.rss
  const t0 = Date.now()
  await run(ops)
  const ms = Date.now() - t0
  await settle()
  // A leak never reaches rest; a slow finalizer does.
  const after = await quiesce()
  const end = measure()
  return {
    ops,
    ms,
    before,
    after,
    heapDelta: end.heap - base.heap,
    rssDelta: end.rss - base.rss,
    // Memory outside V8's heap (native allocations, the addon's included):
    // RSS less the heap V8 has reserved. Node 24's V8 keeps the pages its
    // heap grew into (heapTotal +96 MB with heapUsed back at baseline), which
    // raw RSS would count as a leak.
    nativeDelta: end.rss - end.heapTotal - (base.rss - base.heapTotal),
    rssBase: base.rss,
    rssPeak
  }
}
