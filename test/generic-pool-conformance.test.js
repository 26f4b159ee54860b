'use strict'

// Conformance suite: the SAME cases run against every implementation listed in
// `impls`. The reference is generic-pool 3.9.0 (devDependency); `sluice` is the
// drop-in replacement at lib/generic-pool.js (`require('sluice/generic-pool')`),
// exporting { createPool, Pool, TimeoutError }. Every case that is not guarded
// by `if (name !== 'generic-pool')` must pass against generic-pool 3.9.0.
//
// Behaviour source: generic-pool 3.9.0 itself (node_modules/generic-pool/lib/*.js)
// and its issue tracker (coopernurse/node-pool). Several cases are ports of upstream
// test/generic-pool-test.js (coopernurse/node-pool).
//
// Sluice-only API asserted by the guarded cases (sluice is written to this):
//   createPool(factory, opts) throws TypeError when opts.testOnBorrow === true
//     and factory.validate is not a function.
//   opts.propagateCreateError: boolean (default false). true: when create()
//     fails, the first (oldest, highest-priority) waiter is rejected with that
//     very error; remaining waiters are served by later (retried) creates.
//   create() failures are retried with a backoff (first retry within ~50 ms,
//     never a microtask loop); `min` is refilled after failed creates.
//   A validate() that rejects (or throws) counts as invalid.
//   use(fn): fn may return a plain value; a synchronous throw rejects use()
//     with that error and destroys the resource.
//   create() resolving to null/undefined or to an object already in the pool:
//     emitted as 'factoryCreateError' (an Error), not added, create retried.
//   opts.maxUses: integer >= 1. A resource that has been acquired maxUses times
//     is destroyed (not put back) when it is released.
//   opts.maxLifetimeMillis: a resource older than this (since creation) is never
//     handed out again: idle ones are destroyed (at the latest when they would be
//     dispatched), borrowed ones are destroyed when released.
//   pool.acquire(priority?, { signal }?): when `signal` aborts (or is already
//     aborted) the returned promise rejects with `signal.reason` (identity) and
//     the request leaves the queue.
//   pool.stats(): returns a plain object with numeric size, available,
//     borrowed, pending equal to the corresponding properties.
//   opts.leakDetectionMillis: when a resource stays borrowed longer than this,
//     the pool emits 'leak' with (resource) as its argument.
//   TimeoutError: exported class; acquire timeouts are instances of it.
//   clear() removes the destroyed idle resources from the available list.

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { EventEmitter } = require('node:events')

const impls = [['generic-pool', require('generic-pool')]]
let sluice
try {
  sluice = require('../lib/generic-pool.js')
} catch (e) {
  if (e.code !== 'MODULE_NOT_FOUND') throw e
}
if (sluice) impls.push(['sluice', sluice])

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// Lets every pending microtask (and one round of the event loop) run.
const tick = () => new Promise((resolve) => setImmediate(resolve))

const TEST_OPTS = { timeout: 5000 }

function counts(pool) {
  return {
    size: pool.size,
    available: pool.available,
    borrowed: pool.borrowed,
    pending: pool.pending,
    spare: pool.spareResourceCapacity
  }
}

// A factory that counts calls. create resolves with {id} (ids start at 0),
// after `delay` ms if given, otherwise on the microtask queue.
function makeFactory({ delay = 0, destroyDelay = 0, validate } = {}) {
  const f = {
    nextId: 0,
    created: [],
    destroyed: [],
    validated: [],
    create() {
      const r = { id: f.nextId++ }
      f.created.push(r)
      return delay ? sleep(delay).then(() => r) : Promise.resolve(r)
    },
    destroy(r) {
      f.destroyed.push(r)
      return destroyDelay ? sleep(destroyDelay) : Promise.resolve()
    }
  }
  if (validate) {
    f.validate = (r) => {
      f.validated.push(r)
      return validate(r)
    }
  }
  return f
}

// A factory whose creates are settled by hand.
function manualFactory() {
  const f = {
    nextId: 0,
    calls: [],
    destroyed: [],
    create() {
      return new Promise((resolve, reject) => {
        const id = f.nextId++
        f.calls.push({ id, resolve: () => resolve({ id }), reject })
      })
    },
    destroy(r) {
      f.destroyed.push(r)
      return Promise.resolve()
    }
  }
  return f
}

function waitEvent(emitter, name, ms = 1000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(name, onEvent)
      reject(new Error(`event '${name}' not emitted within ${ms} ms`))
    }, ms)
    function onEvent(...args) {
      clearTimeout(timer)
      resolve(args)
    }
    emitter.once(name, onEvent)
  })
}

// Rejects if `promise` has not settled within `ms` (so that a wrong
// implementation fails the case instead of hanging the run).
function within(promise, ms = 1000) {
  let timer
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms)
  })
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer))
}

async function waitFor(predicate, ms = 1000, step = 10) {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await sleep(step)
  }
}

// Records unhandled rejections while `fn` runs (and a little after).
async function withUnhandledRejectionWatch(fn) {
  const seen = []
  const onUnhandled = (reason) => seen.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    await fn()
    await sleep(20)
  } finally {
    process.removeListener('unhandledRejection', onUnhandled)
  }
  return seen
}

async function shutdown(pool) {
  await pool.drain()
  await pool.clear()
}

const isTimeoutError = (err) =>
  err instanceof Error && err.name === 'TimeoutError' && err.message === 'ResourceRequest timed out'

// ---------------------------------------------------------------- cases

for (const [name, gp] of impls) {
  const { createPool } = gp

  describe(`${name}: exports and factory validation`, () => {
    test('exports createPool and Pool; a pool is an EventEmitter', TEST_OPTS, async () => {
      assert.equal(typeof gp.createPool, 'function')
      assert.equal(typeof gp.Pool, 'function')
      const pool = createPool(makeFactory())
      assert.ok(pool instanceof gp.Pool)
      assert.ok(pool instanceof EventEmitter)
      await shutdown(pool)
    })

    test('factory TypeErrors are thrown synchronously by createPool', TEST_OPTS, () => {
      const noop = () => {}
      assert.throws(() => createPool({ destroy: noop }), {
        name: 'TypeError',
        message: 'factory.create must be a function'
      })
      assert.throws(() => createPool({ create: 'x', destroy: noop }), {
        name: 'TypeError',
        message: 'factory.create must be a function'
      })
      assert.throws(() => createPool({ create: noop }), {
        name: 'TypeError',
        message: 'factory.destroy must be a function'
      })
      assert.throws(() => createPool({ create: noop, destroy: noop, validate: true }), {
        name: 'TypeError',
        message: 'factory.validate must be a function'
      })
    })

    test('validate: undefined is accepted', TEST_OPTS, async () => {
      const pool = createPool({ create: async () => ({}), destroy: () => {}, validate: undefined })
      await shutdown(pool)
    })
  })

  describe(`${name}: option parsing and defaults`, () => {
    test('max and min defaults are 1 and 0', TEST_OPTS, async () => {
      const pool = createPool(makeFactory())
      assert.equal(pool.max, 1)
      assert.equal(pool.min, 0)
      const pool2 = createPool(makeFactory(), {})
      assert.equal(pool2.max, 1)
      assert.equal(pool2.min, 0)
      await shutdown(pool)
      await shutdown(pool2)
    })

    test('max is parseInt(max, 10), NaN -> 1, then at least 1', TEST_OPTS, async () => {
      const cases = [
        [0, 1],
        [Infinity, 1], // parseInt('Infinity') is NaN
        [2.7, 2],
        ['5', 5],
        ['abc', 1],
        [[], 1],
        [-3, 1],
        [null, 1],
        [undefined, 1]
      ]
      for (const [input, expected] of cases) {
        const pool = createPool(makeFactory(), { max: input, autostart: false })
        assert.equal(pool.max, expected, `max ${String(input)}`)
        assert.equal(pool.spareResourceCapacity, expected, `spare for max ${String(input)}`)
      }
    })

    test('max: Infinity really means 1 (only one resource is created)', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { max: Infinity })
      const ps = [pool.acquire(), pool.acquire(), pool.acquire()]
      assert.equal(f.created.length, 1)
      assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 0, pending: 3, spare: 0 })
      for (const p of ps) pool.release(await p)
      await shutdown(pool)
    })

    test('max: 2.7 creates at most 2 resources', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { max: 2.7 })
      const ps = [1, 2, 3, 4, 5].map(() => pool.acquire())
      assert.equal(f.created.length, 2)
      assert.equal(pool.size, 2)
      for (const p of ps) pool.release(await p)
      assert.equal(f.created.length, 2)
      await shutdown(pool)
    })

    test('min is parseInt, NaN -> 0, clamped to max, negatives kept', TEST_OPTS, async () => {
      const cases = [
        [{ min: 'asf', max: [] }, 0, 1],
        [{ min: 5, max: 3 }, 3, 3],
        [{ min: -2, max: 3 }, -2, 3],
        [{ min: 1.9, max: 3 }, 1, 3],
        [{ min: '2', max: 3 }, 2, 3],
        [{ min: 2 }, 1, 1] // max defaults to 1, min clamped
      ]
      for (const [opts, min, max] of cases) {
        const pool = createPool(makeFactory(), { ...opts, autostart: false })
        assert.equal(pool.min, min, JSON.stringify(opts))
        assert.equal(pool.max, max, JSON.stringify(opts))
      }
    })

    test('min clamped to max creates exactly max resources at start', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { min: 5, max: 3 })
      assert.equal(f.created.length, 3)
      assert.equal(pool.size, 3)
      await tick()
      assert.equal(pool.available, 3)
      await shutdown(pool)
    })

    test('negative min creates nothing', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { min: -2, max: 3 })
      assert.equal(pool.min, -2)
      await tick()
      assert.equal(f.created.length, 0)
      assert.equal(pool.size, 0)
      const r = await pool.acquire()
      await pool.destroy(r) // _ensureMinimum with a negative min creates nothing
      await tick()
      assert.equal(f.created.length, 1)
      assert.equal(pool.size, 0)
      await shutdown(pool)
    })

    test('maxWaitingClients 0 is honoured', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1, maxWaitingClients: 0 })
      // spare capacity: queued even with maxWaitingClients 0
      const r = await pool.acquire()
      // no spare capacity, nothing available, pending 0 >= 0 -> rejected
      await assert.rejects(pool.acquire(), {
        name: 'Error',
        message: 'max waitingClients count exceeded'
      })
      assert.equal(pool.pending, 0)
      pool.release(r)
      // a resource is available: accepted again
      const r2 = await pool.acquire()
      assert.equal(r2, r)
      pool.release(r2)
      await shutdown(pool)
    })

    test(
      'maxWaitingClients N counts waiters, including one whose create is in flight',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1, maxWaitingClients: 2 })
        const p1 = pool.acquire() // spare 1 -> create
        const p2 = pool.acquire() // pending 1 < 2
        const p3 = pool.acquire() // pending 2 >= 2 -> rejected
        assert.equal(pool.pending, 2)
        await assert.rejects(p3, { message: 'max waitingClients count exceeded' })
        assert.equal(pool.pending, 2)
        const r1 = await p1
        assert.equal(pool.pending, 1)
        const p4 = pool.acquire() // pending 1 < 2
        const p5 = pool.acquire() // pending 2 -> rejected
        await assert.rejects(p5, { message: 'max waitingClients count exceeded' })
        pool.release(r1)
        pool.release(await p2)
        pool.release(await p4)
        assert.equal(f.created.length, 1)
        await shutdown(pool)
      }
    )

    test('maxWaitingClients NaN means no limit', TEST_OPTS, async () => {
      for (const mwc of [NaN, 'abc']) {
        const pool = createPool(makeFactory(), { max: 1, maxWaitingClients: mwc })
        const ps = []
        for (let i = 0; i < 10; i++) ps.push(pool.acquire().then((r) => pool.release(r)))
        assert.equal(pool.pending, 10)
        await Promise.all(ps)
        assert.equal(pool.pending, 0)
        await shutdown(pool)
      }
    })

    test('fifo true (default): oldest idle resource is dispatched first', TEST_OPTS, async () => {
      for (const opts of [{ max: 2 }, { max: 2, fifo: true }, { max: 2, fifo: 'false' }]) {
        const pool = createPool(makeFactory(), opts)
        const a = await pool.acquire()
        const b = await pool.acquire()
        assert.deepEqual([a.id, b.id], [0, 1])
        pool.release(a)
        pool.release(b)
        const next = await pool.acquire()
        assert.equal(next, a, JSON.stringify(opts))
        pool.release(next)
        await shutdown(pool)
      }
    })

    test('fifo false: most recently released resource is dispatched first', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 2, fifo: false })
      const a = await pool.acquire()
      const b = await pool.acquire()
      pool.release(a)
      pool.release(b)
      const next = await pool.acquire()
      assert.equal(next, b)
      const next2 = await pool.acquire()
      assert.equal(next2, a)
      pool.release(next)
      pool.release(next2)
      await shutdown(pool)
    })

    test(
      'priorityRange: none/undefined = 0 (highest), out of range or negative = lowest, FIFO within a slot',
      TEST_OPTS,
      async () => {
        const pool = createPool(makeFactory(), { max: 1, priorityRange: 3 })
        const holder = await pool.acquire()
        const order = []
        const mk = (label, ...args) =>
          pool.acquire(...args).then((r) => {
            order.push(label)
            pool.release(r)
          })
        const ps = [
          mk('low', 2),
          mk('none'),
          mk('mid', 1),
          mk('oor', 7),
          mk('neg', -1),
          mk('high', 0),
          mk('undef', undefined),
          mk('mid2', 1)
        ]
        assert.equal(pool.pending, 8)
        pool.release(holder)
        await Promise.all(ps)
        assert.deepEqual(order, ['none', 'high', 'undef', 'mid', 'mid2', 'low', 'oor', 'neg'])
        await shutdown(pool)
      }
    )

    test('default priorityRange 1: priorities are ignored, FIFO', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1 })
      const holder = await pool.acquire()
      const order = []
      const ps = [5, 0, 3, -1].map((prio) =>
        pool.acquire(prio).then((r) => {
          order.push(prio)
          pool.release(r)
        })
      )
      pool.release(holder)
      await Promise.all(ps)
      assert.deepEqual(order, [5, 0, 3, -1])
      await shutdown(pool)
    })

    test('supports priority on borrow (upstream port)', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1, priorityRange: 2 })
      const seen = []
      const ops = []
      for (let i = 0; i < 10; i++)
        ops.push(
          pool.acquire(1).then((r) => {
            seen.push('low')
            pool.release(r)
          })
        )
      for (let i = 0; i < 10; i++)
        ops.push(
          pool.acquire(0).then((r) => {
            seen.push('high')
            pool.release(r)
          })
        )
      await Promise.all(ops)
      // the resource created for the first (low) request goes to the highest
      // priority waiter when it arrives: resources are not tied to requests
      assert.deepEqual(seen, [...Array(10).fill('high'), ...Array(10).fill('low')])
      await shutdown(pool)
    })

    test(
      'autostart true (default) creates min resources synchronously in createPool',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { min: 2, max: 3 })
        assert.equal(f.created.length, 2)
        assert.deepEqual(counts(pool), { size: 2, available: 0, borrowed: 0, pending: 0, spare: 1 })
        await tick()
        assert.deepEqual(counts(pool), { size: 2, available: 2, borrowed: 0, pending: 0, spare: 1 })
        await shutdown(pool)
      }
    )

    test(
      'autostart false: nothing created until the first acquire starts the pool',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { min: 2, max: 3, autostart: false })
        await tick()
        assert.equal(f.created.length, 0)
        assert.equal(pool.size, 0)
        const p = pool.acquire()
        // start() -> ensureMinimum creates 2; the waiter is covered by those
        assert.equal(f.created.length, 2)
        assert.deepEqual(counts(pool), { size: 2, available: 0, borrowed: 0, pending: 1, spare: 1 })
        const r = await p
        await tick()
        assert.deepEqual(counts(pool), { size: 2, available: 1, borrowed: 1, pending: 0, spare: 1 })
        pool.release(r)
        await shutdown(pool)
      }
    )

    test(
      'autostart false: start() creates min, a second start() is a no-op',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { min: 1, max: 2, autostart: false })
        assert.equal(f.created.length, 0)
        assert.equal(pool.start(), undefined)
        assert.equal(f.created.length, 1)
        assert.equal(pool.size, 1)
        pool.start()
        assert.equal(f.created.length, 1)
        await tick()
        assert.equal(pool.available, 1)
        // acquire does not start again either
        const r = await pool.acquire()
        assert.equal(f.created.length, 1)
        pool.release(r)
        await shutdown(pool)
      }
    )

    test(
      'acquireTimeoutMillis rejects with TimeoutError; the late resource is kept idle',
      TEST_OPTS,
      async () => {
        const f = makeFactory({ delay: 60 })
        const pool = createPool(f, { max: 1, acquireTimeoutMillis: 20 })
        const p = pool.acquire()
        assert.equal(pool.pending, 1)
        await assert.rejects(p, (err) => {
          assert.ok(err instanceof Error)
          assert.equal(err.name, 'TimeoutError')
          assert.equal(err.message, 'ResourceRequest timed out')
          return true
        })
        assert.equal(pool.pending, 0)
        assert.equal(pool.size, 1) // the create is still in flight
        await sleep(70)
        assert.deepEqual(counts(pool), { size: 1, available: 1, borrowed: 0, pending: 0, spare: 0 })
        await shutdown(pool)
      }
    )

    test(
      'acquireTimeoutMillis: only the timed-out waiter leaves the queue',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        // The deadlines 150 ms apart, each 150 ms from the other step: a
        // loaded machine can stall the loop that long on either side (with
        // 30 ms and 10 ms, a stall over 10 ms at p1's deadline put p2's past
        // too, and sluice rightly rejected both in one pass).
        const pool = createPool(f, { max: 1, acquireTimeoutMillis: 300 })
        const holder = await pool.acquire()
        const p1 = pool.acquire()
        const p1Result = assert.rejects(p1, isTimeoutError)
        await sleep(150)
        const p2 = pool.acquire() // times out 150 ms after p1
        assert.equal(pool.pending, 2)
        await p1Result
        assert.equal(pool.pending, 1)
        pool.release(holder)
        const r = await p2
        assert.equal(r, holder)
        pool.release(r)
        await shutdown(pool)
      }
    )

    test('acquireTimeoutMillis 0 means no timeout', TEST_OPTS, async () => {
      const pool = createPool(makeFactory({ delay: 40 }), { max: 1, acquireTimeoutMillis: 0 })
      const r = await pool.acquire()
      assert.equal(r.id, 0)
      pool.release(r)
      await shutdown(pool)
    })

    test(
      "destroyTimeoutMillis emits factoryDestroyError 'destroy timed out'",
      TEST_OPTS,
      async () => {
        const destroyed = []
        const pool = createPool(
          {
            create: async () => ({}),
            destroy: (r) => {
              destroyed.push(r)
              return new Promise(() => {}) // never settles
            }
          },
          { max: 1, destroyTimeoutMillis: 20 }
        )
        const r = await pool.acquire()
        const ev = waitEvent(pool, 'factoryDestroyError', 1000)
        const ret = pool.destroy(r)
        assert.deepEqual(counts(pool), { size: 0, available: 0, borrowed: 0, pending: 0, spare: 1 })
        assert.equal(await ret, undefined)
        assert.deepEqual(destroyed, [r])
        const [err] = await ev
        assert.ok(err instanceof Error)
        assert.equal(err.message, 'destroy timed out')
        await shutdown(pool)
      }
    )

    test(
      'evictionRunIntervalMillis 0 (default): idle resources are never evicted',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1, idleTimeoutMillis: 1 })
        pool.release(await pool.acquire())
        await sleep(40)
        assert.equal(f.destroyed.length, 0)
        assert.equal(pool.available, 1)
        await shutdown(pool)
      }
    )

    test('idleTimeoutMillis 0 is replaced by the 30000 default', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { max: 1, idleTimeoutMillis: 0, evictionRunIntervalMillis: 10 })
      pool.release(await pool.acquire())
      await sleep(50)
      assert.equal(f.destroyed.length, 0)
      assert.equal(pool.available, 1)
      await shutdown(pool)
    })

    test('softIdleTimeoutMillis 0 is replaced by -1 (no soft eviction)', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, {
        max: 2,
        softIdleTimeoutMillis: 0,
        evictionRunIntervalMillis: 10
      })
      const a = await pool.acquire()
      const b = await pool.acquire()
      pool.release(a)
      pool.release(b)
      await sleep(50)
      assert.equal(f.destroyed.length, 0)
      assert.equal(pool.available, 2)
      await shutdown(pool)
    })

    for (const [numTests, expectedBatches] of [
      [2, [2, 2, 1]],
      [undefined, [3, 2]], // default 3
      [0, [3, 2]], // 0 -> 3
      [5, [5]]
    ]) {
      test(
        `numTestsPerEvictionRun ${numTests}: evicts ${expectedBatches.join('+')} per run`,
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const batches = []
          let inBatch = false
          const destroy = f.destroy
          f.destroy = (r) => {
            if (!inBatch) {
              inBatch = true
              batches.push(0)
              setImmediate(() => {
                inBatch = false
              })
            }
            batches[batches.length - 1]++
            return destroy(r)
          }
          const opts = { max: 5, idleTimeoutMillis: 1, evictionRunIntervalMillis: 10 }
          if (numTests !== undefined) opts.numTestsPerEvictionRun = numTests
          const pool = createPool(f, opts)
          const rs = await Promise.all([1, 2, 3, 4, 5].map(() => pool.acquire()))
          for (const r of rs) pool.release(r)
          await waitFor(() => f.destroyed.length === 5)
          assert.deepEqual(batches, expectedBatches)
          assert.equal(pool.size, 0)
          assert.equal(pool.available, 0)
          await shutdown(pool)
        }
      )
    }

    // generic-pool's eviction iterator keeps its cursor between runs; once the
    // resource under it has left the idle list, the next run starts over at
    // the head. A resource created later in the same place (sluice reuses
    // slots) must not resume the old cursor. Found by the model test.
    test(
      'the eviction cursor starts over after its resource was evicted (fifo false)',
      TEST_OPTS,
      async () => {
        const f = manualFactory()
        const pool = createPool(f, {
          max: 2,
          min: 2,
          fifo: false,
          idleTimeoutMillis: 1,
          evictionRunIntervalMillis: 10
        })
        await tick()
        assert.equal(f.calls.length, 2)
        f.calls[0].resolve() // id 0 idle, id 1 still creating
        await waitFor(() => f.destroyed.length === 1) // id 0 evicted, id 2 created
        assert.equal(f.calls.length, 3)
        const borrowed = pool.acquire()
        f.calls[1].resolve()
        const r1 = await borrowed
        assert.equal(r1.id, 1)
        await pool.destroy(r1) // id 3 created for min
        assert.equal(f.calls.length, 4)
        f.calls[2].resolve()
        f.calls[3].resolve() // idle, newest first: [3, 2]
        await waitFor(() => f.destroyed.length === 4)
        assert.deepEqual(
          f.destroyed.map((r) => r.id),
          [0, 1, 3, 2]
        )
        await pool.drain()
        for (const c of f.calls.slice(4)) c.resolve() // the creates for min
        await pool.clear()
      }
    )

    test('softIdleTimeoutMillis evicts idle resources but keeps min', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, {
        min: 2,
        max: 4,
        softIdleTimeoutMillis: 10,
        evictionRunIntervalMillis: 10
      })
      const rs = await Promise.all([1, 2, 3, 4].map(() => pool.acquire()))
      assert.equal(f.created.length, 4)
      for (const r of rs) pool.release(r)
      assert.equal(pool.available, 4)
      await waitFor(() => f.destroyed.length >= 2)
      await sleep(50)
      assert.equal(f.destroyed.length, 2)
      assert.equal(f.created.length, 4) // nothing recreated
      assert.deepEqual(counts(pool), { size: 2, available: 2, borrowed: 0, pending: 0, spare: 2 })
      await shutdown(pool)
    })

    test('idleTimeoutMillis (hard) evicts below min, and min is recreated', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, {
        min: 2,
        max: 2,
        idleTimeoutMillis: 20,
        evictionRunIntervalMillis: 10
      })
      await sleep(120)
      assert.ok(f.destroyed.length >= 2, `destroyed ${f.destroyed.length}`)
      assert.equal(f.created.length - f.destroyed.length, 2)
      assert.equal(pool.size, 2)
      const r = await pool.acquire()
      assert.ok(r.id > 1, `id ${r.id}`)
      pool.release(r)
      await shutdown(pool)
    })
  })

  describe(`${name}: properties and synchronous counts`, () => {
    test('[verified] snapshot {2,0,0,3,0} then {2,0,2,1,0}', TEST_OPTS, async () => {
      const f = manualFactory()
      const pool = createPool(f, { max: 2 })
      assert.deepEqual(counts(pool), { size: 0, available: 0, borrowed: 0, pending: 0, spare: 2 })
      const p1 = pool.acquire()
      assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 0, pending: 1, spare: 1 })
      const p2 = pool.acquire()
      const p3 = pool.acquire()
      assert.equal(f.calls.length, 2)
      assert.deepEqual(counts(pool), { size: 2, available: 0, borrowed: 0, pending: 3, spare: 0 })
      f.calls[0].resolve()
      f.calls[1].resolve()
      await tick()
      assert.deepEqual(counts(pool), { size: 2, available: 0, borrowed: 2, pending: 1, spare: 0 })
      const r1 = await p1
      const r2 = await p2
      assert.deepEqual([r1.id, r2.id], [0, 1])
      // release hands r1 to the third waiter synchronously
      assert.equal(await pool.release(r1), undefined)
      assert.deepEqual(counts(pool), { size: 2, available: 0, borrowed: 2, pending: 0, spare: 0 })
      const r3 = await p3
      assert.equal(r3, r1)
      pool.release(r2)
      assert.deepEqual(counts(pool), { size: 2, available: 1, borrowed: 1, pending: 0, spare: 0 })
      pool.release(r3)
      assert.deepEqual(counts(pool), { size: 2, available: 2, borrowed: 0, pending: 0, spare: 0 })
      assert.equal(f.calls.length, 2)
      await shutdown(pool)
    })

    test(
      'size and available across acquire/release (upstream getPoolSize/availableObjectsCount)',
      TEST_OPTS,
      async () => {
        const pool = createPool(makeFactory(), { max: 2 })
        assert.equal(pool.size, 0)
        assert.equal(pool.available, 0)
        const a = await pool.acquire()
        assert.equal(pool.size, 1)
        assert.equal(pool.available, 0)
        const b = await pool.acquire()
        assert.equal(pool.size, 2)
        assert.equal(pool.available, 0)
        pool.release(a)
        assert.equal(pool.available, 1)
        pool.release(b)
        assert.equal(pool.available, 2)
        const c = await pool.acquire()
        assert.equal(pool.size, 2)
        assert.equal(pool.available, 1)
        pool.release(c)
        assert.equal(pool.available, 2)
        await shutdown(pool)
      }
    )

    test(
      'size includes in-flight creates and excludes resources being destroyed',
      TEST_OPTS,
      async () => {
        const f = manualFactory()
        let finishDestroy
        f.destroy = () =>
          new Promise((resolve) => {
            finishDestroy = resolve
          })
        const pool = createPool(f, { max: 3 })
        const p = pool.acquire()
        assert.equal(pool.size, 1)
        assert.equal(pool.spareResourceCapacity, 2)
        f.calls[0].resolve()
        const r = await p
        pool.destroy(r)
        // destroy has not settled yet, but the resource no longer counts
        assert.deepEqual(counts(pool), { size: 0, available: 0, borrowed: 0, pending: 0, spare: 3 })
        finishDestroy()
        await shutdown(pool)
      }
    )

    test('max and min getters report the parsed config', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: '4', min: '1' })
      assert.equal(pool.max, 4)
      assert.equal(pool.min, 1)
      await shutdown(pool)
    })
  })

  describe(`${name}: methods`, () => {
    test(
      'release: returns a promise of undefined, updates counts synchronously',
      TEST_OPTS,
      async () => {
        const pool = createPool(makeFactory(), { max: 1 })
        const r = await pool.acquire()
        assert.equal(pool.available, 0)
        assert.equal(pool.borrowed, 1)
        const ret = pool.release(r)
        assert.ok(ret instanceof Promise)
        assert.equal(pool.available, 1)
        assert.equal(pool.borrowed, 0)
        assert.equal(await ret, undefined)
        await shutdown(pool)
      }
    )

    test(
      "release of a foreign object and double release reject 'Resource not currently part of this pool'",
      TEST_OPTS,
      async () => {
        const pool = createPool(makeFactory(), { max: 1 })
        const r = await pool.acquire()
        await assert.rejects(pool.release({}), {
          name: 'Error',
          message: 'Resource not currently part of this pool'
        })
        await assert.rejects(pool.release(undefined), {
          message: 'Resource not currently part of this pool'
        })
        assert.equal(pool.available, 0)
        assert.equal(pool.borrowed, 1)
        await pool.release(r)
        assert.equal(pool.available, 1)
        assert.equal(pool.borrowed, 0)
        await assert.rejects(pool.release(r), {
          message: 'Resource not currently part of this pool'
        })
        assert.equal(pool.available, 1)
        assert.equal(pool.borrowed, 0)
        assert.equal(pool.size, 1)
        await shutdown(pool)
      }
    )

    test('release to a waiting client (upstream port)', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1 })
      const seen = []
      const p1 = pool.acquire().then((r) => {
        seen.push([pool.available, pool.borrowed, pool.pending])
        pool.release(r)
      })
      const p2 = pool.acquire().then((r) => {
        seen.push([pool.available, pool.borrowed, pool.pending])
        pool.release(r)
      })
      await Promise.all([p1, p2])
      assert.deepEqual(seen, [
        [0, 1, 1],
        [0, 1, 0]
      ])
      await shutdown(pool)
    })

    test(
      'destroy: calls factory.destroy, counts drop synchronously, resource no longer borrowed',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 2 })
        const a = await pool.acquire()
        const b = await pool.acquire()
        const ret = pool.destroy(a)
        assert.deepEqual(f.destroyed, [a])
        assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 1, pending: 0, spare: 1 })
        assert.equal(pool.isBorrowedResource(a), false)
        assert.equal(await ret, undefined)
        await assert.rejects(pool.destroy(a), {
          message: 'Resource not currently part of this pool'
        })
        await assert.rejects(pool.destroy({}), {
          message: 'Resource not currently part of this pool'
        })
        pool.release(b)
        // destroying an idle (released) resource is refused too
        await assert.rejects(pool.destroy(b), {
          message: 'Resource not currently part of this pool'
        })
        assert.deepEqual(f.destroyed, [a])
        assert.deepEqual(counts(pool), { size: 1, available: 1, borrowed: 0, pending: 0, spare: 1 })
        // a destroyed resource is never handed out again
        const c = await pool.acquire()
        assert.equal(c, b)
        const d = await pool.acquire()
        assert.notEqual(d, a)
        assert.equal(d.id, 2)
        pool.release(c)
        pool.release(d)
        await shutdown(pool)
      }
    )

    test('destroy re-dispenses to a waiting client', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { max: 1 })
      const r0 = await pool.acquire()
      const p = pool.acquire()
      assert.equal(pool.pending, 1)
      pool.destroy(r0)
      assert.equal(f.created.length, 2)
      assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 0, pending: 1, spare: 0 })
      const r1 = await p
      assert.equal(r1.id, 1)
      pool.release(r1)
      await shutdown(pool)
    })

    test('destroy below min recreates min', TEST_OPTS, async () => {
      const f = makeFactory()
      const pool = createPool(f, { min: 1, max: 2 })
      const r = await pool.acquire()
      assert.equal(f.created.length, 1)
      pool.destroy(r)
      assert.equal(f.created.length, 2)
      assert.equal(pool.size, 1)
      await tick()
      assert.equal(pool.available, 1)
      await shutdown(pool)
    })

    test('isBorrowedResource', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1 })
      const r = await pool.acquire()
      assert.equal(pool.isBorrowedResource(r), true)
      assert.equal(pool.isBorrowedResource({}), false)
      assert.equal(pool.isBorrowedResource(undefined), false)
      pool.release(r)
      assert.equal(pool.isBorrowedResource(r), false)
      await shutdown(pool)
    })

    test(
      'use(fn): resolves with the result of fn and releases the resource',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1 })
        let inside
        const result = await pool.use(async (r) => {
          inside = [pool.borrowed, pool.isBorrowedResource(r)]
          return r.id + 41
        })
        assert.equal(result, 41)
        assert.deepEqual(inside, [1, true])
        assert.deepEqual(counts(pool), { size: 1, available: 1, borrowed: 0, pending: 0, spare: 0 })
        assert.equal(f.destroyed.length, 0)
        await shutdown(pool)
      }
    )

    test(
      'use(fn): a rejection from fn rejects use() and destroys the resource',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1 })
        const boom = new Error('boom')
        await assert.rejects(
          pool.use(() => Promise.reject(boom)),
          (err) => err === boom
        )
        assert.equal(f.destroyed.length, 1)
        assert.equal(f.destroyed[0].id, 0)
        assert.deepEqual(counts(pool), { size: 0, available: 0, borrowed: 0, pending: 0, spare: 1 })
        await shutdown(pool)
      }
    )

    test('use(fn, priority) passes the priority to acquire', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 1, priorityRange: 2 })
      const holder = await pool.acquire()
      const order = []
      const u = pool.use(async () => {
        order.push('use-low')
      }, 1)
      const a = pool.acquire(0).then((r) => {
        order.push('acquire-high')
        pool.release(r)
      })
      pool.release(holder)
      await Promise.all([u, a])
      assert.deepEqual(order, ['acquire-high', 'use-low'])
      await shutdown(pool)
    })

    test('ready() resolves once available >= min', TEST_OPTS, async () => {
      const pool = createPool(makeFactory({ delay: 10 }), { min: 2, max: 3 })
      assert.equal(pool.available, 0)
      assert.equal(await pool.ready(), undefined)
      assert.equal(pool.available, 2)
      await shutdown(pool)
    })

    test('ready() with min 0 resolves at once', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 3 })
      await pool.ready()
      assert.equal(pool.size, 0)
      await shutdown(pool)
    })

    test(
      'drain(): serves queued waiters, rejects new acquires, resolves after every loan is returned',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1 })
        const r0 = await pool.acquire()
        const p1 = pool.acquire()
        const p2 = pool.acquire()
        let drained = false
        const d = pool.drain().then((v) => {
          drained = true
          return v
        })
        await assert.rejects(pool.acquire(), {
          name: 'Error',
          message: 'pool is draining and cannot accept work'
        })
        assert.equal(pool.pending, 2)
        pool.release(r0)
        const r1 = await p1
        assert.equal(r1, r0)
        await tick()
        assert.equal(drained, false)
        pool.release(r1)
        const r2 = await p2
        assert.equal(r2, r0)
        await tick()
        assert.equal(drained, false)
        pool.release(r2)
        assert.equal(await d, undefined)
        assert.equal(drained, true)
        // idle resources are not destroyed by drain
        assert.deepEqual(counts(pool), { size: 1, available: 1, borrowed: 0, pending: 0, spare: 0 })
        assert.equal(f.destroyed.length, 0)
        await assert.rejects(pool.acquire(), { message: 'pool is draining and cannot accept work' })
        await pool.clear()
        assert.deepEqual(f.destroyed, [r0])
        assert.equal(pool.size, 0)
      }
    )

    test(
      'drain(): queued waiters are served even when resources must still be created',
      TEST_OPTS,
      async () => {
        const f = makeFactory({ delay: 10 })
        const pool = createPool(f, { max: 2 })
        const ps = [pool.acquire(), pool.acquire(), pool.acquire()]
        const d = pool.drain()
        assert.equal(pool.pending, 3)
        const ids = []
        await Promise.all(
          ps.map((p) =>
            p.then((r) => {
              ids.push(r.id)
              setTimeout(() => pool.release(r), 5)
            })
          )
        )
        await d
        assert.equal(ids.length, 3)
        assert.deepEqual([...new Set(ids)].sort(), [0, 1])
        assert.equal(f.created.length, 2)
        assert.deepEqual(counts(pool), { size: 2, available: 2, borrowed: 0, pending: 0, spare: 0 })
        await pool.clear()
      }
    )

    test(
      'drain(): with nothing outstanding resolves; min is no longer maintained',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { min: 1, max: 1 })
        const r = await pool.acquire()
        const d = pool.drain()
        pool.destroy(r)
        assert.equal(f.created.length, 1)
        assert.equal(pool.size, 0)
        await d
        await tick()
        assert.equal(f.created.length, 1)
        assert.equal(pool.size, 0)
        await pool.clear()
        // drain of an empty pool
        const pool2 = createPool(makeFactory())
        assert.equal(await pool2.drain(), undefined)
        await pool2.clear()
      }
    )

    test('drain then clear (upstream tests drain port)', TEST_OPTS, async () => {
      const pool = createPool(makeFactory(), { max: 2 })
      let acquired = 0
      const ops = []
      for (let i = 0; i < 5; i++) {
        ops.push(
          pool.acquire().then((r) => {
            acquired++
            setTimeout(() => pool.release(r), 10)
          })
        )
      }
      assert.notEqual(acquired, 5)
      await Promise.all(ops)
      await pool.drain()
      assert.equal(acquired, 5)
      await pool.clear()
      await assert.rejects(pool.acquire(), Error)
    })

    test(
      'clear(): destroys idle resources only, leaves borrowed ones, resolves undefined',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 3 })
        const rs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()])
        pool.release(rs[0])
        pool.release(rs[1])
        assert.equal(await pool.clear(), undefined)
        assert.deepEqual(f.destroyed, [rs[0], rs[1]])
        assert.equal(pool.size, 1)
        assert.equal(pool.borrowed, 1)
        assert.equal(pool.isBorrowedResource(rs[2]), true)
        assert.equal(f.created.length, 3)
        pool.release(rs[2])
        await shutdown(pool)
      }
    )

    test(
      'clear(): without drain recreates min ([verified] min 2 -> 4 creates, size 2)',
      TEST_OPTS,
      async () => {
        const f = makeFactory()
        const pool = createPool(f, { min: 2, max: 2 })
        await tick()
        assert.equal(pool.available, 2)
        await pool.clear()
        assert.equal(f.destroyed.length, 2)
        assert.equal(f.created.length, 4)
        assert.equal(pool.size, 2)
        await tick()
        assert.equal(pool.size, 2)
        await pool.drain()
        await pool.clear()
      }
    )

    test('clear(): waits for in-flight creates, then destroys them', TEST_OPTS, async () => {
      const f = makeFactory({ delay: 20 })
      const pool = createPool(f, { min: 1, max: 1 })
      assert.equal(f.created.length, 1)
      const d = pool.drain() // stop min being maintained
      await d
      await pool.clear()
      assert.deepEqual(f.destroyed, [f.created[0]])
      assert.equal(pool.size, 0)
    })
  })

  describe(`${name}: events`, () => {
    test(
      'factoryCreateError: rejected creates are emitted and retried (upstream port)',
      TEST_OPTS,
      async () => {
        let calls = 0
        const pool = createPool(
          {
            create() {
              calls++
              if (calls <= 3) return Promise.reject(new Error(`create failed ${calls}`))
              return Promise.resolve({ id: calls })
            },
            destroy() {}
          },
          { max: 1 }
        )
        const errors = []
        pool.on('factoryCreateError', (err) => errors.push(err))
        const r = await pool.acquire()
        assert.equal(r.id, 4)
        assert.deepEqual(
          errors.map((e) => e.message),
          ['create failed 1', 'create failed 2', 'create failed 3']
        )
        assert.ok(errors.every((e) => e instanceof Error))
        assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 1, pending: 0, spare: 0 })
        pool.release(r)
        await shutdown(pool)
      }
    )

    test(
      'factoryCreateError: a create rejecting later (deferred) is also retried',
      TEST_OPTS,
      async () => {
        let calls = 0
        const pool = createPool(
          {
            create() {
              calls++
              const n = calls
              return new Promise((resolve, reject) =>
                setTimeout(() => (n <= 2 ? reject(new Error('later')) : resolve({ id: n })), 5)
              )
            },
            destroy() {}
          },
          { max: 1 }
        )
        let errorCount = 0
        pool.on('factoryCreateError', () => errorCount++)
        const r = await pool.acquire()
        assert.equal(r.id, 3)
        assert.equal(errorCount, 2)
        assert.equal(pool.pending, 0)
        pool.release(r)
        await shutdown(pool)
      }
    )

    test(
      "create errors without a listener are dropped (no 'error' event, no crash)",
      TEST_OPTS,
      async () => {
        let calls = 0
        const pool = createPool(
          {
            create: () =>
              ++calls === 1 ? Promise.reject(new Error('x')) : Promise.resolve({ id: calls }),
            destroy() {}
          },
          { max: 1 }
        )
        const seen = await withUnhandledRejectionWatch(async () => {
          const r = await pool.acquire()
          assert.equal(r.id, 2)
          pool.release(r)
        })
        assert.deepEqual(seen, [])
        await shutdown(pool)
      }
    )

    test(
      'factoryDestroyError: a rejected destroy is emitted with its error',
      TEST_OPTS,
      async () => {
        const boom = new Error('destroy failed')
        const pool = createPool(
          { create: async () => ({}), destroy: () => Promise.reject(boom) },
          { max: 1 }
        )
        const r = await pool.acquire()
        const ev = waitEvent(pool, 'factoryDestroyError', 1000)
        await pool.destroy(r)
        const [err] = await ev
        assert.equal(err, boom)
        assert.equal(pool.size, 0)
        await shutdown(pool)
      }
    )
  })

  describe(`${name}: validation (testOnBorrow)`, () => {
    test(
      'testOnBorrow: a resource that fails validation is destroyed and replaced',
      TEST_OPTS,
      async () => {
        const f = makeFactory({ validate: (r) => Promise.resolve(r.id !== 0) })
        const pool = createPool(f, { max: 1, testOnBorrow: true })
        const r = await pool.acquire()
        assert.equal(r.id, 1)
        assert.deepEqual(
          f.destroyed.map((x) => x.id),
          [0]
        )
        assert.deepEqual(
          f.validated.map((x) => x.id),
          [0, 1]
        )
        assert.deepEqual(counts(pool), { size: 1, available: 0, borrowed: 1, pending: 0, spare: 0 })
        pool.release(r)
        const again = await pool.acquire()
        assert.equal(again, r)
        assert.deepEqual(
          f.validated.map((x) => x.id),
          [0, 1, 1]
        )
        pool.release(again)
        await shutdown(pool)
      }
    )

    test('validate is not called unless testOnBorrow === true', TEST_OPTS, async () => {
      for (const testOnBorrow of [undefined, false, 'yes', 1]) {
        const f = makeFactory({ validate: () => Promise.resolve(false) })
        const pool = createPool(f, { max: 1, testOnBorrow })
        const r = await pool.acquire()
        pool.release(r)
        pool.release(await pool.acquire())
        assert.equal(f.validated.length, 0, String(testOnBorrow))
        assert.equal(f.destroyed.length, 0)
        await shutdown(pool)
      }
    })

    test('only === false is invalid (other falsy values are valid)', TEST_OPTS, async () => {
      for (const verdict of [undefined, null, 0, '']) {
        const f = makeFactory({ validate: () => Promise.resolve(verdict) })
        const pool = createPool(f, { max: 1, testOnBorrow: true })
        const r = await pool.acquire()
        assert.equal(r.id, 0, String(verdict))
        assert.equal(f.destroyed.length, 0)
        pool.release(r)
        await shutdown(pool)
      }
    })
  })

  // ------------------------------------------------------------------
  // Sluice-only: generic-pool 3.9.0 bugs that sluice deliberately fixes,
  // and sluice additions. Never run against generic-pool.
  // ------------------------------------------------------------------
  if (name !== 'generic-pool') {
    describe(`${name}: fixes and additions (sluice only)`, () => {
      // node-pool#175/#183/#273: an already-rejected create() loops in microtasks forever
      test(
        'already-rejected create(): no event-loop starvation, backoff, acquire timeout still fires',
        TEST_OPTS,
        async () => {
          let calls = 0
          const pool = createPool(
            {
              create: () => {
                calls++
                return Promise.reject(new Error('boom'))
              },
              destroy() {}
            },
            { max: 1, acquireTimeoutMillis: 100 }
          )
          let errors = 0
          pool.on('factoryCreateError', () => errors++)
          let timerFired = false
          setTimeout(() => {
            timerFired = true
          }, 20)
          await assert.rejects(
            pool.acquire(),
            (err) => err instanceof Error && err.name === 'TimeoutError'
          )
          assert.equal(timerFired, true)
          assert.ok(errors >= 2, `expected several create retries, got ${errors}`)
          assert.ok(errors < 1000, `expected a backoff, got ${errors} errors in 100 ms`)
          assert.equal(pool.pending, 0)
          await shutdown(pool)
        }
      )

      // node-pool#175/#183: create errors never reach the waiter (tarn-style propagateCreateError)
      test(
        'propagateCreateError: true rejects the first waiter with the create error',
        TEST_OPTS,
        async () => {
          const boom = new Error('boom')
          let calls = 0
          const pool = createPool(
            {
              create: () => (++calls === 1 ? Promise.reject(boom) : Promise.resolve({ id: calls })),
              destroy() {}
            },
            { max: 1, propagateCreateError: true, acquireTimeoutMillis: 100 }
          )
          pool.on('factoryCreateError', () => {})
          const p1 = pool.acquire()
          const p2 = pool.acquire()
          await assert.rejects(within(p1), (err) => err === boom)
          const r = await within(p2)
          assert.equal(r.id, 2)
          assert.equal(pool.pending, 0)
          pool.release(r)
          await shutdown(pool)
        }
      )

      // node-pool#305: _ensureMinimum is not called after a failed create
      test('min is refilled after failed creates once create succeeds', TEST_OPTS, async () => {
        let calls = 0
        const pool = createPool(
          {
            create: () =>
              ++calls <= 3 ? Promise.reject(new Error('down')) : Promise.resolve({ id: calls }),
            destroy() {}
          },
          { min: 2, max: 2 }
        )
        let errors = 0
        pool.on('factoryCreateError', () => errors++)
        await waitFor(() => pool.available === 2, 2000)
        assert.equal(errors, 3)
        assert.deepEqual(counts(pool), { size: 2, available: 2, borrowed: 0, pending: 0, spare: 0 })
        await shutdown(pool)
      })

      // node-pool#195: a rejecting validate is an unhandled rejection (crash on Node >= 15)
      test(
        'a validate that rejects counts as invalid: destroyed, no unhandledRejection, served by another resource',
        TEST_OPTS,
        async () => {
          const f = makeFactory({
            validate: (r) =>
              r.id === 0 ? Promise.reject(new Error('validate boom')) : Promise.resolve(true)
          })
          const pool = createPool(f, { max: 1, testOnBorrow: true })
          let r
          const seen = await withUnhandledRejectionWatch(async () => {
            r = await within(pool.acquire())
          })
          assert.deepEqual(seen, [])
          assert.equal(r.id, 1)
          assert.deepEqual(
            f.destroyed.map((x) => x.id),
            [0]
          )
          assert.deepEqual(counts(pool), {
            size: 1,
            available: 0,
            borrowed: 1,
            pending: 0,
            spare: 0
          })
          pool.release(r)
          await shutdown(pool)
        }
      )

      // node-pool#296: use(fn) with a non-thenable result throws and leaks the resource
      test('use(fn): fn returning a plain value releases the resource', TEST_OPTS, async () => {
        const f = makeFactory()
        const pool = createPool(f, { max: 1 })
        const result = await pool.use((r) => r.id + 7)
        assert.equal(result, 7)
        assert.deepEqual(counts(pool), { size: 1, available: 1, borrowed: 0, pending: 0, spare: 0 })
        assert.equal(f.destroyed.length, 0)
        await shutdown(pool)
      })

      // node-pool#296: use(fn) with a synchronously throwing fn leaks the resource
      test(
        'use(fn): fn throwing synchronously rejects with that error and destroys the resource',
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const pool = createPool(f, { max: 1 })
          const boom = new Error('sync boom')
          const p = pool.use(() => {
            throw boom
          })
          await assert.rejects(within(p), (err) => err === boom)
          assert.equal(f.destroyed.length, 1)
          assert.deepEqual(counts(pool), {
            size: 0,
            available: 0,
            borrowed: 0,
            pending: 0,
            spare: 1
          })
          await shutdown(pool)
        }
      )

      // generic-pool 3.9: testOnBorrow without validate emits a TypeError and the acquire hangs forever
      test(
        'testOnBorrow: true without validate throws a TypeError at createPool',
        TEST_OPTS,
        () => {
          assert.throws(
            () => createPool({ create: async () => ({}), destroy() {} }, { testOnBorrow: true }),
            TypeError
          )
        }
      )

      // node-pool#293: create() resolving to null leaks a slot (size 2, borrowed 1)
      test(
        'create() resolving to null/undefined: factoryCreateError, waiter served by a retry, counts consistent',
        TEST_OPTS,
        async () => {
          let calls = 0
          const f = {
            create() {
              calls++
              if (calls === 1) return Promise.resolve(null)
              if (calls === 2) return Promise.resolve(undefined)
              return Promise.resolve({ id: calls })
            },
            destroy() {}
          }
          const pool = createPool(f, { max: 1 })
          const errors = []
          pool.on('factoryCreateError', (err) => errors.push(err))
          const r = await within(pool.acquire())
          assert.equal(r.id, 3)
          assert.equal(errors.length, 2)
          assert.ok(errors.every((e) => e instanceof Error))
          assert.deepEqual(counts(pool), {
            size: 1,
            available: 0,
            borrowed: 1,
            pending: 0,
            spare: 0
          })
          await pool.release(r)
          assert.deepEqual(counts(pool), {
            size: 1,
            available: 1,
            borrowed: 0,
            pending: 0,
            spare: 0
          })
          await shutdown(pool)
        }
      )

      // node-pool#293: create() returning the same object twice leaks a slot
      test(
        'create() returning an object already in the pool: factoryCreateError, served by a retry, counts consistent',
        TEST_OPTS,
        async () => {
          const shared = { id: 'shared' }
          let calls = 0
          const f = {
            create() {
              calls++
              return Promise.resolve(calls <= 2 ? shared : { id: calls })
            },
            destroy() {}
          }
          const pool = createPool(f, { max: 2 })
          const errors = []
          pool.on('factoryCreateError', (err) => errors.push(err))
          const [a, b] = await within(Promise.all([pool.acquire(), pool.acquire()]))
          assert.notEqual(a, b)
          assert.ok(a === shared || b === shared)
          assert.ok(errors.length >= 1)
          assert.ok(errors.every((e) => e instanceof Error))
          assert.deepEqual(counts(pool), {
            size: 2,
            available: 0,
            borrowed: 2,
            pending: 0,
            spare: 0
          })
          await pool.release(a)
          await pool.release(b)
          assert.deepEqual(counts(pool), {
            size: 2,
            available: 2,
            borrowed: 0,
            pending: 0,
            spare: 0
          })
          await shutdown(pool)
        }
      )

      // node-pool#217: clear() leaves destroyed resources in the available list (and dispenses them)
      test(
        'clear(): destroyed idle resources leave the available list and are never handed out',
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const pool = createPool(f, { max: 2 })
          const a = await pool.acquire()
          const b = await pool.acquire()
          pool.release(a)
          pool.release(b)
          await pool.clear()
          assert.deepEqual(counts(pool), {
            size: 0,
            available: 0,
            borrowed: 0,
            pending: 0,
            spare: 2
          })
          const c = await pool.acquire()
          assert.ok(c !== a && c !== b)
          pool.release(c)
          await shutdown(pool)
        }
      )

      // addition (node-pool#255): maxUses
      test(
        'maxUses: a resource is destroyed after being acquired maxUses times',
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const pool = createPool(f, { max: 1, maxUses: 2 })
          const ids = []
          for (let i = 0; i < 5; i++) {
            const r = await pool.acquire()
            ids.push(r.id)
            await pool.release(r)
            await tick()
          }
          assert.deepEqual(ids, [0, 0, 1, 1, 2])
          assert.deepEqual(
            f.destroyed.map((x) => x.id),
            [0, 1]
          )
          await shutdown(pool)
        }
      )

      // addition (node-pool#76/#133): maxLifetimeMillis
      test(
        'maxLifetimeMillis: an expired idle resource is not handed out again',
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const pool = createPool(f, { max: 1, maxLifetimeMillis: 30 })
          const r0 = await pool.acquire()
          await pool.release(r0)
          await sleep(60)
          const r1 = await pool.acquire()
          assert.equal(r1.id, 1)
          assert.ok(f.destroyed.includes(r0))
          await pool.release(r1)
          await shutdown(pool)
        }
      )

      test(
        'maxLifetimeMillis: an expired borrowed resource is destroyed on release',
        TEST_OPTS,
        async () => {
          const f = makeFactory()
          const pool = createPool(f, { max: 1, maxLifetimeMillis: 30 })
          const r0 = await pool.acquire()
          await sleep(50)
          await pool.release(r0)
          await sleep(10)
          assert.ok(f.destroyed.includes(r0))
          assert.equal(pool.isBorrowedResource(r0), false)
          const r1 = await pool.acquire()
          assert.equal(r1.id, 1)
          await pool.release(r1)
          await shutdown(pool)
        }
      )

      // addition: acquire(priority, { signal })
      test(
        'acquire(priority, {signal}): abort while waiting rejects with signal.reason',
        TEST_OPTS,
        async () => {
          const pool = createPool(makeFactory(), { max: 1 })
          const holder = await pool.acquire()
          const ac = new AbortController()
          const p = pool.acquire(0, { signal: ac.signal })
          assert.equal(pool.pending, 1)
          const reason = new Error('caller gave up')
          ac.abort(reason)
          await assert.rejects(within(p), (err) => err === reason)
          assert.equal(pool.pending, 0)
          pool.release(holder)
          // the aborted waiter does not get the resource
          assert.deepEqual(counts(pool), {
            size: 1,
            available: 1,
            borrowed: 0,
            pending: 0,
            spare: 0
          })
          await shutdown(pool)
        }
      )

      test(
        'acquire(priority, {signal}): default abort reason, already-aborted signal, never-aborted signal',
        TEST_OPTS,
        async () => {
          const pool = createPool(makeFactory(), { max: 1 })
          const holder = await pool.acquire()
          const ac = new AbortController()
          const p = pool.acquire(undefined, { signal: ac.signal })
          ac.abort()
          await assert.rejects(within(p), (err) => err === ac.signal.reason)
          const pre = AbortSignal.abort(new Error('pre-aborted'))
          await assert.rejects(
            within(pool.acquire(0, { signal: pre })),
            (err) => err === pre.reason
          )
          assert.equal(pool.pending, 0)
          pool.release(holder)
          const ok = await pool.acquire(0, { signal: new AbortController().signal })
          assert.equal(ok, holder)
          pool.release(ok)
          await shutdown(pool)
        }
      )

      // addition: stats()
      test('stats() returns numeric size/available/borrowed/pending', TEST_OPTS, async () => {
        const pool = createPool(makeFactory(), { max: 1 })
        const holder = await pool.acquire()
        const p = pool.acquire()
        const s = pool.stats()
        assert.equal(typeof s, 'object')
        for (const k of ['size', 'available', 'borrowed', 'pending'])
          assert.equal(typeof s[k], 'number', k)
        assert.equal(s.size, 1)
        assert.equal(s.available, 0)
        assert.equal(s.borrowed, 1)
        assert.equal(s.pending, 1)
        pool.release(holder)
        pool.release(await p)
        const s2 = pool.stats()
        assert.deepEqual([s2.size, s2.available, s2.borrowed, s2.pending], [1, 1, 0, 0])
        await shutdown(pool)
      })

      // addition (node-pool#133): leak detection
      test(
        'leak: emitted with (resource) when borrowed longer than leakDetectionMillis',
        TEST_OPTS,
        async () => {
          const pool = createPool(makeFactory(), { max: 1, leakDetectionMillis: 20 })
          const leaks = []
          pool.on('leak', (res) => leaks.push(res))
          pool.release(await pool.acquire()) // a short borrow is not a leak
          await sleep(40)
          assert.equal(leaks.length, 0)
          const r = await pool.acquire()
          await waitFor(() => leaks.length > 0, 1000)
          assert.equal(leaks[0], r)
          pool.release(r)
          await shutdown(pool)
        }
      )

      // addition: TimeoutError is exported (generic-pool 3.9.0 does not export it)
      test(
        'TimeoutError is exported and acquire timeouts are instances of it',
        TEST_OPTS,
        async () => {
          assert.equal(typeof gp.TimeoutError, 'function')
          const pool = createPool(
            { create: () => new Promise(() => {}), destroy() {} },
            { max: 1, acquireTimeoutMillis: 10 }
          )
          await assert.rejects(
            pool.acquire(),
            (err) => err instanceof gp.TimeoutError && isTimeoutError(err)
          )
          await pool.drain()
        }
      )
    })
  }
}
