'use strict'
// Regression tests for the pool bugs of issue 9, one or more per bug. Each
// failed against the code before its fix (see the commit that added it).
//
// Timing: only lower bounds on elapsed time (timers never fire early), with
// margins for the loop clock's millisecond truncation, so a loaded machine
// can only make them pass more slowly, never fail.
const { after, before, describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')
const path = require('node:path')

const { createPool, TimeoutError } = require('../lib/generic-pool.js')
const genericPool = require('generic-pool')

const LIB = path.join(__dirname, '..', 'lib', 'generic-pool.js')
const BINDING = path.join(__dirname, '..', 'lib', 'binding.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function makeFactory(extra = {}) {
  let id = 0
  return {
    create: () => Promise.resolve({ id: id++ }),
    destroy: () => Promise.resolve(),
    ...extra
  }
}

// Synchronous work that keeps the loop from turning (a busy server).
function busy(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

// 'pending' if `p` has not settled within `ms`.
function within(p, ms) {
  return Promise.race([
    p.then(
      (v) => ({ value: v }),
      (err) => ({ error: err })
    ),
    sleep(ms).then(() => 'pending')
  ])
}

// The pool's own timers (leak, destroy timeout, evictor) are unref'd, as
// generic-pool's are: keep the loop alive while the tests wait on them.
let keepAlive
before(() => {
  keepAlive = setInterval(() => {}, 1000)
})
after(() => clearInterval(keepAlive))

async function shutdown(pool) {
  await pool.drain()
  await pool.clear()
}

// A deadline asked for after 50 ms of synchronous work counts from the
// call, not from the loop's cached time (issue 9, bug 2). Each case checks
// the elapsed time from the call that sets the deadline; a bound of 25 ms
// for a 30 ms deadline leaves room for the clock's ms truncation.
describe('deadlines count from a fresh clock after busy work', () => {
  test('acquireTimeoutMillis', async () => {
    const pool = createPool(makeFactory(), { max: 1, acquireTimeoutMillis: 30 })
    const held = await pool.acquire()
    busy(50)
    const t0 = performance.now()
    const err = await pool.acquire().then(
      () => null,
      (e) => e
    )
    const elapsed = performance.now() - t0
    assert.ok(err instanceof TimeoutError, String(err))
    assert.ok(elapsed >= 25, `rejected after ${elapsed.toFixed(2)} ms, asked for 30`)
    pool.release(held)
    await shutdown(pool)
  })

  test('leakDetectionMillis', async () => {
    const pool = createPool(makeFactory(), { max: 1, leakDetectionMillis: 30 })
    pool.release(await pool.acquire())
    busy(50)
    const t0 = performance.now()
    const leaked = new Promise((resolve) => pool.once('leak', () => resolve(performance.now())))
    const r = await pool.acquire()
    const elapsed = (await leaked) - t0
    assert.ok(elapsed >= 25, `leak reported after ${elapsed.toFixed(2)} ms, asked for 30`)
    pool.release(r)
    await shutdown(pool)
  })

  test('destroyTimeoutMillis', async () => {
    const pool = createPool(makeFactory({ destroy: () => new Promise(() => {}) }), {
      max: 1,
      destroyTimeoutMillis: 30
    })
    const r = await pool.acquire()
    busy(50)
    const t0 = performance.now()
    const failed = new Promise((resolve) =>
      pool.once('factoryDestroyError', (err) => resolve([err, performance.now()]))
    )
    pool.destroy(r)
    const [err, t1] = await failed
    assert.match(err.message, /destroy timed out/)
    assert.ok(t1 - t0 >= 25, `destroy timed out after ${(t1 - t0).toFixed(2)} ms, asked for 30`)
    await pool.drain()
  })

  test('idleTimeoutMillis (the idle stamp of a release)', async () => {
    let destroyed
    const gone = new Promise((resolve) => {
      destroyed = resolve
    })
    const pool = createPool(
      makeFactory({
        destroy: () => {
          destroyed(performance.now())
          return Promise.resolve()
        }
      }),
      { max: 1, idleTimeoutMillis: 30, evictionRunIntervalMillis: 5, numTestsPerEvictionRun: 1 }
    )
    const r = await pool.acquire()
    busy(50)
    const t0 = performance.now()
    pool.release(r)
    const elapsed = (await gone) - t0
    assert.ok(elapsed >= 25, `evicted ${elapsed.toFixed(2)} ms after its release, idle timeout 30`)
    await shutdown(pool)
  })

  test('the create retry backoff (10 ms after a failure)', async () => {
    const calls = []
    let fail = true
    const pool = createPool(
      {
        create: () => {
          calls.push(performance.now())
          return fail ? Promise.reject(new Error('no')) : Promise.resolve({})
        },
        destroy: () => Promise.resolve()
      },
      { max: 1 }
    )
    pool.on('factoryCreateError', () => {
      if (calls.length >= 2) fail = false
    })
    await sleep(1)
    busy(50)
    const r = await pool.acquire()
    assert.ok(calls.length >= 2)
    const gap = calls[1] - calls[0]
    assert.ok(gap >= 8, `retried ${gap.toFixed(2)} ms after the failed create, backoff 10`)
    pool.release(r)
    await shutdown(pool)
  })
})

// Coerce and validate every argument before any state changes (issue 9,
// bug 6): a valueOf may re-enter the pool.
describe('re-entrant argument coercion', () => {
  // generic-pool: the nested acquire is queued first (the outer one is
  // queued once its priority is known), and each gets a resource in turn.
  async function reentrantPriority(mod) {
    const pool = mod.createPool(makeFactory(), { max: 1 })
    const held = await pool.acquire()
    const order = []
    let inner
    const priority = {
      valueOf() {
        inner = pool.acquire().then((r) => {
          order.push('inner')
          return r
        })
        return 0
      }
    }
    const outer = pool.acquire(priority).then((r) => {
      order.push('outer')
      return r
    })
    assert.equal(pool.pending, 2)
    pool.release(held)
    const a = await within(Promise.race([inner, outer]), 1000)
    assert.notEqual(a, 'pending')
    pool.release(a.value)
    const both = await within(Promise.all([inner, outer]), 1000)
    assert.notEqual(both, 'pending', 'an acquire never settled')
    assert.equal(both.value[0], both.value[1])
    pool.release(both.value[0])
    assert.equal(pool.available, 1)
    assert.equal(pool.borrowed, 0)
    await shutdown(pool)
    return order
  }

  test('a priority whose valueOf calls acquire(): two waiters, each served', async () => {
    const expected = await reentrantPriority(genericPool)
    assert.deepEqual(await reentrantPriority({ createPool }), expected)
  })

  test('a priority whose valueOf throws: nothing is queued, the error is thrown', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const held = await pool.acquire()
    assert.throws(
      () =>
        pool.acquire({
          valueOf() {
            throw new Error('bad priority')
          }
        }),
      /bad priority/
    )
    assert.throws(() => pool.acquire(Symbol('p')), TypeError)
    assert.equal(pool.pending, 0)
    pool.release(held)
    assert.equal(pool.available, 1)
    await shutdown(pool)
  })

  test('while draining, a priority is not coerced (generic-pool checks draining first)', async () => {
    for (const mod of [genericPool, { createPool }]) {
      const pool = mod.createPool(makeFactory(), { max: 1 })
      const drained = pool.drain()
      let coerced = 0
      const p = pool.acquire({
        valueOf() {
          coerced++
          return 0
        }
      })
      assert.ok(p instanceof Promise)
      await assert.rejects(p, { message: 'pool is draining and cannot accept work' })
      assert.equal(coerced, 0)
      await drained
      await pool.clear()
    }
  })

  test('an options.signal getter that calls acquire() queues two distinct waiters', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const held = await pool.acquire()
    let inner
    const ac = new AbortController()
    const options = {
      get signal() {
        if (inner === undefined) inner = pool.acquire()
        return ac.signal
      }
    }
    const outer = pool.acquire(0, options)
    assert.equal(pool.pending, 2)
    pool.release(held)
    const first = await within(inner, 1000)
    assert.notEqual(first, 'pending')
    ac.abort()
    await assert.rejects(outer, { name: 'AbortError' })
    pool.release(first.value)
    assert.equal(pool.available, 1)
    assert.equal(pool.pending, 0)
    await shutdown(pool)
  })

  test('a Promise option whose constructor calls acquire(): each waiter keeps its own promise', async () => {
    let pool
    let inner
    let armed = false
    class ReentrantPromise extends Promise {
      constructor(executor) {
        super(executor)
        if (armed) {
          armed = false
          inner = pool.acquire()
        }
      }
    }
    pool = createPool(makeFactory(), { max: 1, Promise: ReentrantPromise })
    const held = await pool.acquire()
    armed = true
    const outer = pool.acquire()
    assert.ok(inner !== undefined)
    assert.equal(pool.pending, 2)
    pool.release(held)
    const a = await within(Promise.race([inner, outer]), 1000)
    assert.notEqual(a, 'pending')
    pool.release(a.value)
    const both = await within(Promise.all([inner, outer]), 1000)
    assert.notEqual(both, 'pending', 'an acquire never settled')
    pool.release(both.value[0])
    assert.equal(pool.available, 1)
    await shutdown(pool)
  })
})

// A synchronous throw after queueing must not leave a waiter queued (issue
// 9, bug 7).
describe('abort signal registration', () => {
  test('a signal whose addEventListener throws: acquire throws and nothing is queued', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const held = await pool.acquire()
    const ac = new AbortController()
    ac.signal.addEventListener = () => {
      throw new Error('no listeners today')
    }
    assert.throws(() => pool.acquire(0, { signal: ac.signal }), /no listeners today/)
    assert.equal(pool.pending, 0)
    pool.release(held)
    // The resource goes back to the pool, not to a waiter nobody holds.
    assert.equal(pool.available, 1)
    assert.equal(pool.borrowed, 0)
    await shutdown(pool)
  })

  test('a signal aborted by its own addEventListener rejects with its reason, queueing nothing', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const held = await pool.acquire()
    const ac = new AbortController()
    const add = ac.signal.addEventListener
    ac.signal.addEventListener = function (...args) {
      add.apply(this, args)
      ac.abort(new Error('changed my mind'))
    }
    await assert.rejects(pool.acquire(0, { signal: ac.signal }), /changed my mind/)
    assert.equal(pool.pending, 0)
    pool.release(held)
    assert.equal(pool.available, 1)
    await shutdown(pool)
  })

  // In a child process: the error is rethrown asynchronously, as an uncaught
  // exception, which node:test would count against this file.
  test('a signal whose removeEventListener throws: the grant still settles, the error is rethrown', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { createPool } = require(${JSON.stringify(LIB)})
      const log = []
      process.on('uncaughtException', (err) => log.push('uncaught ' + err.message))
      ;(async () => {
        const pool = createPool({ create: async () => ({}), destroy: async () => {} }, { max: 1 })
        const held = await pool.acquire()
        const ac = new AbortController()
        ac.signal.removeEventListener = () => { throw new Error('sticky') }
        const p = pool.acquire(0, { signal: ac.signal })
        pool.release(held)
        const got = await Promise.race([p, new Promise((resolve) => setTimeout(resolve, 1000, 'pending'))])
        log.push(got === held ? 'granted' : String(got))
        await new Promise((resolve) => setTimeout(resolve, 5))
        pool.release(held)
        log.push('available ' + pool.available)
        console.log(JSON.stringify(log))
      })()
    `
      ],
      { encoding: 'utf8', timeout: 30000 }
    )
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()), [
      'granted',
      'uncaught sticky',
      'available 1'
    ])
  })
})

// A dropped pool is collected even with queued acquires (issue 9, bug 9):
// C holds the pool's JS only while a callback of C's own could still need
// it.
test('3,000 pools dropped with a borrowed resource and queued acquires are collected', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '-e',
      `
    const { binding } = require(${JSON.stringify(BINDING)})
    const { createPool } = require(${JSON.stringify(LIB)})
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
    async function rest () {
      let c
      for (let i = 0; i < 500; i++) {
        global.gc()
        await sleep(10)
        c = binding.debugCounts()
        if (c.pools === 0 && c.poolWaiters === 0 && c.poolTimers === 0) break
      }
      global.gc()
      return c
    }
    ;(async () => {
      await rest()
      const heapBefore = process.memoryUsage().heapUsed
      const rssBefore = process.memoryUsage().rss
      // One function per pool, so that no suspended frame of this one keeps
      // the last pool in a register.
      async function dropOne (i) {
        const pool = createPool({ create: async () => ({ i }), destroy: async () => {} }, { max: 1 })
        await pool.acquire()
        for (let j = 0; j < 3; j++) pool.acquire().catch(() => {})
      }
      for (let i = 0; i < 3000; i++) await dropOne(i)
      const peak = binding.debugCounts()
      const counts = await rest()
      const heapAfter = process.memoryUsage().heapUsed
      console.log(JSON.stringify({ peak, counts, heapBefore, heapAfter, rssBefore, rssAfter: process.memoryUsage().rss }))
      process.exit(0)
    })()
  `
    ],
    { encoding: 'utf8', timeout: 120000 }
  )
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  const growth = (out.heapAfter - out.heapBefore) / 1048576
  const detail = JSON.stringify({ ...out, growthMB: growth.toFixed(2) })
  assert.ok(out.peak.pools >= 3000 && out.peak.poolWaiters >= 9000, detail)
  assert.equal(out.counts.pools, 0, detail)
  assert.equal(out.counts.poolWaiters, 0, detail)
  assert.equal(out.counts.poolTimers, 0, detail)
  assert.ok(growth < 5, detail)
})

// The same once the reason C held the pool ends quietly: a create retry
// (backoff) whose waiter timed out, firing with nothing left to do.
test('pools dropped after a create retry with nothing left to do are collected', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '-e',
      `
    const { binding } = require(${JSON.stringify(BINDING)})
    const { createPool } = require(${JSON.stringify(LIB)})
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
    // In a function of its own: a suspended async frame would keep the last
    // pool in a register.
    function make (n) {
      for (let i = 0; i < n; i++) {
        const pool = createPool({ create: () => Promise.reject(new Error('no')), destroy: async () => {} },
          { max: 1, acquireTimeoutMillis: 5 })
        pool.on('factoryCreateError', () => {})
        pool.acquire().catch(() => {})
      }
    }
    ;(async () => {
      make(200)
      const peak = binding.debugCounts().pools
      await sleep(50) // the waiters time out (5 ms), then the retries fire (10 ms)
      let c
      for (let i = 0; i < 300; i++) {
        global.gc()
        await sleep(10)
        c = binding.debugCounts()
        if (c.pools === 0) break
      }
      console.log(JSON.stringify({ peak, pools: c.pools, poolTimers: c.poolTimers }))
      process.exit(0)
    })()
  `
    ],
    { encoding: 'utf8', timeout: 60000 }
  )
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  assert.deepEqual(out, { peak: 200, pools: 0, poolTimers: 0 })
})

// generic-pool's refusals, decided in C (issue 9, structure 4): a rejected
// promise of the pool's Promise class, with generic-pool's messages.
describe('refusals', () => {
  for (const mod of [
    ['generic-pool', genericPool],
    ['sluice', { createPool }]
  ]) {
    test(`${mod[0]}: draining and maxWaitingClients reject with the pool's Promise`, async () => {
      class MyPromise extends Promise {}
      const pool = mod[1].createPool(makeFactory(), {
        max: 1,
        maxWaitingClients: 1,
        Promise: MyPromise
      })
      const held = await pool.acquire()
      const waiting = pool.acquire()
      const full = pool.acquire()
      assert.ok(full instanceof MyPromise)
      await assert.rejects(full, { message: 'max waitingClients count exceeded' })
      const drained = pool.drain()
      const late = pool.acquire()
      assert.ok(late instanceof MyPromise)
      await assert.rejects(late, { message: 'pool is draining and cannot accept work' })
      pool.release(held)
      pool.release(await waiting)
      await drained
      await pool.clear()
    })
  }
})
