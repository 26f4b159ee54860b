'use strict'
// sluice/generic-pool beyond the conformance suite: bad input, the safe
// behaviours, the additions, event batching, worker teardown and process
// exit. Timers are 10-100 ms.
const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const path = require('node:path')
const { EventEmitter } = require('node:events')

const gp = require('../lib/generic-pool.js')
const { createPool, Pool, TimeoutError } = gp

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const tick = () => new Promise((resolve) => setImmediate(resolve))
const LIB = path.join(__dirname, '..', 'lib', 'generic-pool.js')

function makeFactory(extra = {}) {
  const f = {
    nextId: 0,
    created: [],
    destroyed: [],
    create() {
      const r = { id: f.nextId++ }
      f.created.push(r)
      return Promise.resolve(r)
    },
    destroy(r) {
      f.destroyed.push(r)
      return Promise.resolve()
    },
    ...extra
  }
  return f
}

async function shutdown(pool) {
  await pool.drain()
  await pool.clear()
}

async function waitFor(predicate, ms = 1000) {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await sleep(5)
  }
}

describe('exports', () => {
  test('CommonJS and ESM entry points, and the main entry', async () => {
    assert.equal(typeof createPool, 'function')
    assert.equal(typeof Pool, 'function')
    assert.equal(typeof TimeoutError, 'function')
    const esm = await import('../lib/generic-pool.mjs')
    assert.equal(esm.createPool, createPool)
    assert.equal(esm.Pool, Pool)
    assert.equal(esm.TimeoutError, TimeoutError)
    const main = require('../lib/index.js')
    assert.equal(main.createPool, createPool)
    assert.equal(main.Pool, Pool)
  })

  test("new Pool with generic-pool's signature and with (factory, options)", async () => {
    const a = new Pool(class {}, class {}, class {}, makeFactory(), { max: 3 })
    const b = new Pool(makeFactory(), { max: 4 })
    assert.ok(a instanceof EventEmitter)
    assert.equal(a.max, 3)
    assert.equal(b.max, 4)
    await shutdown(a)
    await shutdown(b)
  })
})

describe('bad input', () => {
  test('factory', () => {
    for (const factory of [undefined, null, 5, 'x']) {
      assert.throws(() => createPool(factory), TypeError)
    }
  })

  test('additions are validated strictly, naming the option', () => {
    const f = makeFactory()
    assert.throws(() => createPool(f, { maxUses: 0 }), { name: 'RangeError', message: /maxUses/ })
    assert.throws(() => createPool(f, { maxUses: 1.5 }), { name: 'RangeError', message: /maxUses/ })
    assert.throws(() => createPool(f, { maxUses: '2' }), { name: 'TypeError', message: /maxUses/ })
    assert.throws(() => createPool(f, { maxLifetimeMillis: -1 }), {
      name: 'RangeError',
      message: /maxLifetimeMillis/
    })
    assert.throws(() => createPool(f, { leakDetectionMillis: NaN }), {
      name: 'RangeError',
      message: /leakDetectionMillis/
    })
    assert.throws(() => createPool(f, { propagateCreateError: 'yes' }), {
      name: 'TypeError',
      message: /propagateCreateError/
    })
    assert.throws(() => createPool(f, { priorityRange: 2 ** 21 }), {
      name: 'RangeError',
      message: /priorityRange/
    })
    assert.throws(() => createPool(f, { Promise: 5 }), { name: 'TypeError', message: /Promise/ })
    assert.throws(() => createPool(f, { testOnBorrow: true }), {
      name: 'TypeError',
      message: /validate/
    })
  })

  test('acquire options and use(fn)', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    assert.throws(() => pool.acquire(0, 5), { name: 'TypeError', message: /options/ })
    assert.throws(() => pool.acquire(0, null), { name: 'TypeError', message: /options/ })
    assert.throws(() => pool.acquire(0, { signal: {} }), { name: 'TypeError', message: /signal/ })
    await assert.rejects(pool.use('nope'), { name: 'TypeError', message: /fn/ })
    assert.deepEqual([pool.size, pool.borrowed, pool.pending], [0, 0, 0])
    await shutdown(pool)
  })

  test("an invalid acquireTimeoutMillis throws generic-pool's Error from acquire()", async () => {
    for (const acquireTimeoutMillis of [-5, 'abc']) {
      const pool = createPool(makeFactory(), { acquireTimeoutMillis })
      assert.throws(() => pool.acquire(), {
        name: 'Error',
        message: 'delay must be a positive int'
      })
      assert.equal(pool.pending, 0)
      await shutdown(pool)
    }
  })

  test('odd values for generic-pool options do not crash', async () => {
    const pool = createPool(makeFactory(), {
      max: {},
      min: Symbol.iterator === undefined ? 0 : 'x',
      idleTimeoutMillis: 'soon',
      softIdleTimeoutMillis: 'later',
      numTestsPerEvictionRun: 'many',
      evictionRunIntervalMillis: 10,
      destroyTimeoutMillis: 'x',
      priorityRange: -4,
      fifo: 'yes',
      testOnReturn: true
    })
    const r = await pool.acquire(1e12)
    await pool.release(r)
    await sleep(30) // the evictor runs with NaN settings: evicts nothing
    assert.equal(pool.available, 1)
    await shutdown(pool)
  })

  test('release/destroy/isBorrowedResource of anything else', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    for (const v of [undefined, null, 0, 'x', {}, Symbol('s')]) {
      await assert.rejects(pool.release(v), { message: 'Resource not currently part of this pool' })
      await assert.rejects(pool.destroy(v), { message: 'Resource not currently part of this pool' })
      assert.equal(pool.isBorrowedResource(v), false)
    }
    await shutdown(pool)
  })
})

describe('safe behaviour', () => {
  test('drain() waits for every queued client when the last one leaves the queue first (abort)', async () => {
    const pool = createPool({ create: async () => ({}), destroy: async () => {} }, { max: 1 })
    const r = await pool.acquire()
    const first = pool.acquire()
    const ac = new AbortController()
    const last = pool.acquire(0, { signal: ac.signal })
    let drained = false
    const drain = pool.drain().then(() => {
      drained = true
    })
    ac.abort()
    await assert.rejects(last, { name: 'AbortError' })
    await tick()
    assert.equal(drained, false, 'a client still waits')
    pool.release(r)
    const r2 = await first
    await tick()
    assert.equal(drained, false, 'its resource is still out')
    pool.release(r2)
    await drain
    assert.equal(drained, true)
    await pool.clear()
  })

  test('a create that throws synchronously is a failed create, retried; acquire does not throw', async () => {
    let calls = 0
    const pool = createPool(
      {
        create() {
          if (++calls === 1) throw new Error('sync boom')
          return { id: calls }
        },
        destroy() {}
      },
      { max: 1 }
    )
    const errors = []
    pool.on('factoryCreateError', (e) => errors.push(e.message))
    const r = await pool.acquire()
    assert.equal(r.id, 2)
    assert.deepEqual(errors, ['sync boom'])
    pool.release(r)
    await shutdown(pool)
  })

  test('createPool with min > 0 and a throwing create does not throw', async () => {
    const pool = createPool(
      {
        create() {
          throw new Error('down')
        },
        destroy() {}
      },
      { min: 2, max: 2 }
    )
    pool.on('factoryCreateError', () => {})
    assert.equal(pool.size, 2) // in flight until the failure is reported
    await tick()
    assert.equal(pool.size, 0)
    await shutdown(pool)
  })

  test('a destroy that throws synchronously emits factoryDestroyError; counts stay right', async () => {
    const pool = createPool(
      {
        create: async () => ({}),
        destroy() {
          throw new Error('d')
        }
      },
      { max: 1 }
    )
    const seen = []
    pool.on('factoryDestroyError', (e) => seen.push(e.message))
    const r = await pool.acquire()
    assert.equal(await pool.destroy(r), undefined)
    await tick()
    assert.deepEqual(seen, ['d'])
    assert.deepEqual(pool.stats().destroying, 0)
    assert.equal(pool.size, 0)
    await shutdown(pool)
  })

  test('a validate that throws synchronously is invalid and emits factoryValidateError', async () => {
    const f = makeFactory({
      validate: (r) => {
        if (r.id === 0) throw new Error('v')
        return true
      }
    })
    const pool = createPool(f, { max: 1, testOnBorrow: true })
    const seen = []
    pool.on('factoryValidateError', (e) => seen.push(e.message))
    const r = await pool.acquire()
    assert.equal(r.id, 1)
    assert.deepEqual(seen, ['v'])
    assert.deepEqual(
      f.destroyed.map((x) => x.id),
      [0]
    )
    pool.release(r)
    await shutdown(pool)
  })

  test('create failures back off: a burst of rejected creates is a handful of calls, not thousands', async () => {
    let calls = 0
    const pool = createPool(
      {
        create: () => {
          calls++
          return Promise.reject(new Error('x'))
        },
        destroy() {}
      },
      { max: 3, acquireTimeoutMillis: 80 }
    )
    pool.on('factoryCreateError', () => {})
    const ps = [pool.acquire(), pool.acquire(), pool.acquire()]
    for (const p of ps) await assert.rejects(p, TimeoutError)
    assert.ok(calls >= 3 && calls < 60, `calls ${calls}`)
    await shutdown(pool)
  })

  test('ready() resolves once failing creates recover (min refilled with backoff)', async () => {
    let calls = 0
    const pool = createPool(
      {
        create: () =>
          ++calls <= 2 ? Promise.reject(new Error('not yet')) : Promise.resolve({ id: calls }),
        destroy() {}
      },
      { min: 2, max: 2 }
    )
    pool.on('factoryCreateError', () => {})
    await pool.ready()
    assert.equal(pool.available, 2)
    await shutdown(pool)
  })

  test('use(fn) after fn released the resource itself does not raise an unhandled rejection', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const unhandled = []
    const onUnhandled = (e) => unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    try {
      assert.equal(
        await pool.use((r) => {
          pool.release(r)
          return 1
        }),
        1
      )
      await assert.rejects(
        pool.use((r) => {
          pool.destroy(r)
          throw new Error('after destroy')
        }),
        /after destroy/
      )
      await sleep(10)
    } finally {
      process.removeListener('unhandledRejection', onUnhandled)
    }
    assert.deepEqual(unhandled, [])
    await shutdown(pool)
  })

  test('a resource of 0 or a string is fine; only null/undefined are refused', async () => {
    let n = 0
    const pool = createPool({ create: () => n++, destroy() {} }, { max: 2 })
    const a = await pool.acquire()
    const b = await pool.acquire()
    assert.deepEqual([a, b], [0, 1])
    assert.equal(pool.isBorrowedResource(0), true)
    pool.release(a)
    pool.release(b)
    await shutdown(pool)
  })

  test('a throwing event listener does not break the pool (rethrown asynchronously)', async () => {
    const { stdout, status } = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { createPool } = require(${JSON.stringify(LIB)})
      let calls = 0
      const pool = createPool({ create: () => (++calls === 1 ? Promise.reject(new Error('c')) : Promise.resolve({ calls })), destroy () {} })
      pool.on('factoryCreateError', () => { throw new Error('listener') })
      process.on('uncaughtException', (e) => console.log('uncaught', e.message))
      pool.acquire().then((r) => { console.log('got', r.calls); pool.release(r); return pool.drain() }).then(() => pool.clear())
    `
      ],
      { encoding: 'utf8', timeout: 5000 }
    )
    assert.equal(status, 0)
    assert.match(stdout, /uncaught listener/)
    assert.match(stdout, /got 2/)
  })
})

describe('additions', () => {
  test('leak is emitted once per borrow', async () => {
    const pool = createPool(makeFactory(), { max: 1, leakDetectionMillis: 10 })
    const leaks = []
    pool.on('leak', (r) => leaks.push(r))
    const r = await pool.acquire()
    await sleep(50)
    assert.deepEqual(leaks, [r])
    pool.release(r)
    const r2 = await pool.acquire()
    await waitFor(() => leaks.length === 2)
    pool.release(r2)
    await shutdown(pool)
  })

  test('maxLifetimeMillis: the evictor also removes expired idle resources, min is refilled', async () => {
    const f = makeFactory()
    const pool = createPool(f, {
      min: 1,
      max: 1,
      maxLifetimeMillis: 20,
      evictionRunIntervalMillis: 10
    })
    await waitFor(() => f.destroyed.length >= 1)
    await waitFor(() => pool.available === 1)
    assert.ok(f.created.length >= 2)
    await shutdown(pool)
  })

  test('maxUses: 1 destroys every resource on release', async () => {
    const f = makeFactory()
    const pool = createPool(f, { max: 1, maxUses: 1 })
    for (let i = 0; i < 3; i++) await pool.release(await pool.acquire())
    assert.equal(f.created.length, 3)
    assert.equal(f.destroyed.length, 3)
    await shutdown(pool)
  })

  test('stats() has every count', async () => {
    const pool = createPool(makeFactory(), { max: 2, min: 1 })
    assert.deepEqual(pool.stats(), {
      size: 1,
      available: 0,
      borrowed: 0,
      pending: 0,
      spareResourceCapacity: 1,
      creating: 1,
      validating: 0,
      destroying: 0,
      max: 2,
      min: 1
    })
    await shutdown(pool)
  })

  test('AbortSignal: aborting after the grant changes nothing', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const ac = new AbortController()
    const r = await pool.acquire(0, { signal: ac.signal })
    ac.abort()
    assert.equal(pool.isBorrowedResource(r), true)
    const ac2 = new AbortController()
    const p = pool.acquire(0, { signal: ac2.signal })
    pool.release(r)
    assert.equal(await p, r)
    ac2.abort()
    pool.release(r)
    assert.equal(pool.available, 1)
    await shutdown(pool)
  })

  test('the Promise option is used for returned promises', async () => {
    class MyPromise extends Promise {}
    const pool = createPool(makeFactory(), { max: 1, Promise: MyPromise })
    const p = pool.acquire()
    assert.ok(p instanceof MyPromise)
    const r = await p
    assert.ok(pool.release(r) instanceof MyPromise)
    assert.ok(pool.drain() instanceof MyPromise)
    await pool.clear()
  })

  test('propagateCreateError with priorities rejects the highest-priority waiter', async () => {
    const boom = new Error('boom')
    let calls = 0
    const pool = createPool(
      {
        create: () => (++calls === 1 ? Promise.reject(boom) : Promise.resolve({ calls })),
        destroy() {}
      },
      { max: 1, priorityRange: 2, propagateCreateError: true }
    )
    pool.on('factoryCreateError', () => {})
    const low = pool.acquire(1)
    const high = pool.acquire(0)
    await assert.rejects(high, (e) => e === boom)
    const r = await low
    assert.equal(r.calls, 2)
    pool.release(r)
    await shutdown(pool)
  })
})

describe('batches larger than the event window', () => {
  test('600 creates at start (min 600)', async () => {
    const f = makeFactory()
    const pool = createPool(f, { min: 600, max: 600 })
    assert.equal(f.created.length, 600)
    await pool.ready()
    assert.equal(pool.available, 600)
    await shutdown(pool)
    assert.equal(f.destroyed.length, 600)
  })

  test('700 waiters time out in one timer callback', async () => {
    const pool = createPool(
      { create: () => new Promise(() => {}), destroy() {} },
      { max: 1, acquireTimeoutMillis: 20 }
    )
    const ps = []
    for (let i = 0; i < 700; i++) ps.push(pool.acquire())
    const results = await Promise.allSettled(ps)
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof TimeoutError))
    assert.equal(pool.pending, 0)
    await pool.drain()
  })

  test('100,000 waiters on one resource are served in order', async () => {
    const pool = createPool(makeFactory(), { max: 1 })
    const order = []
    const ps = []
    for (let i = 0; i < 100000; i++)
      ps.push(
        pool.acquire().then((r) => {
          order.push(i)
          pool.release(r)
        })
      )
    assert.equal(pool.pending, 100000)
    await Promise.all(ps)
    assert.equal(order.length, 100000)
    assert.ok(order.every((v, i) => v === i))
    await shutdown(pool)
  })

  test('a create that re-enters the pool keeps events in order', async () => {
    let inner
    let entered = false
    const pool = createPool(
      {
        create() {
          if (!entered) {
            entered = true
            inner = pool.acquire() // re-entrant acquire from inside the pump
          }
          return Promise.resolve({})
        },
        destroy() {}
      },
      { max: 2 }
    )
    const a = await pool.acquire()
    const b = await inner
    assert.notEqual(a, b)
    pool.release(a)
    pool.release(b)
    await shutdown(pool)
  })
})

describe('process and threads', () => {
  test('an idle pool with min > 0 and an evictor does not keep the process alive', () => {
    const t0 = Date.now()
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { createPool } = require(${JSON.stringify(LIB)})
      const pool = createPool({ create: async () => ({}), destroy: async () => {} },
        { min: 2, max: 4, evictionRunIntervalMillis: 10, idleTimeoutMillis: 60000, leakDetectionMillis: 100, destroyTimeoutMillis: 100 })
      pool.acquire().then((r) => { console.log('acquired'); pool.release(r) })
    `
      ],
      { encoding: 'utf8', timeout: 10000 }
    )
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /acquired/)
    assert.ok(Date.now() - t0 < 5000)
  })

  test('a waiter with an acquire timeout keeps the process alive until it times out', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { createPool } = require(${JSON.stringify(LIB)})
      const pool = createPool({ create: () => new Promise(() => {}), destroy () {} }, { acquireTimeoutMillis: 50 })
      pool.acquire().catch((e) => console.log(e.name))
    `
      ],
      { encoding: 'utf8', timeout: 10000 }
    )
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /TimeoutError/)
  })

  test('a served or aborted waiter leaves no timer keeping the process alive', () => {
    const t0 = Date.now()
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { createPool } = require(${JSON.stringify(LIB)})
      const pool = createPool({ create: async () => ({}), destroy: async () => {} }, { max: 1, acquireTimeoutMillis: 60000 })
      ;(async () => {
        const a = await pool.acquire()
        const ac = new AbortController()
        const p = pool.acquire(0, { signal: ac.signal }).catch(() => 'aborted')
        ac.abort()
        console.log(await p)
        const q = pool.acquire()
        pool.release(a)
        pool.release(await q)
        console.log('done')
      })()
    `
      ],
      { encoding: 'utf8', timeout: 10000 }
    )
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /aborted\ndone/)
    assert.ok(Date.now() - t0 < 5000)
  })

  test('pools that are dropped are collected and close their timers', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        `
      const { binding } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'binding.js'))})
      const { createPool } = require(${JSON.stringify(LIB)})
      const before = binding.debugCounts().uvHandles
      ;(async () => {
        for (let i = 0; i < 200; i++) {
          const pool = createPool({ create: async () => ({}), destroy: async () => {} }, { max: 2 })
          pool.release(await pool.acquire())
        }
        for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)) }
        console.log(JSON.stringify({ before, after: binding.debugCounts().uvHandles }))
      })()
    `
      ],
      { encoding: 'utf8', timeout: 20000 }
    )
    assert.equal(r.status, 0, r.stderr)
    const { before, after } = JSON.parse(r.stdout.trim().split('\n').pop())
    assert.ok(after - before < 50, `uv handles ${before} -> ${after}`)
  })

  const workerSource = (mode) => `
    const { parentPort } = require('node:worker_threads')
    const { createPool } = require(${JSON.stringify(LIB)})
    const pool = createPool({ create: async () => ({}), destroy: async () => {} },
      { min: 1, max: 2, acquireTimeoutMillis: 60000, evictionRunIntervalMillis: 10, leakDetectionMillis: 20, destroyTimeoutMillis: 50 })
    pool.acquire().then(async (a) => {
      await pool.acquire()
      pool.acquire() // waits, with a ref'd timeout
      pool.acquire(0, { signal: new AbortController().signal })
      parentPort.postMessage('holding')
      if (${JSON.stringify(mode)} === 'exit') setTimeout(() => process.exit(0), 5)
    })
  `

  for (const mode of ['terminate', 'exit']) {
    test(`a worker holding and waiting on a pool can ${mode} without crashing the process`, async () => {
      for (let i = 0; i < 3; i++) {
        const w = new Worker(workerSource(mode), { eval: true })
        // Listen for the exit from the start: the worker exits 5 ms after
        // its message, which a slow main thread may handle later than that.
        const exited = new Promise((resolve) => w.once('exit', resolve))
        await new Promise((resolve, reject) => {
          w.once('message', resolve)
          w.once('error', reject)
        })
        if (mode === 'terminate') await w.terminate()
        else await exited
      }
      // The process is still fine and its own pools still work.
      const pool = createPool(makeFactory(), { max: 1 })
      pool.release(await pool.acquire())
      await shutdown(pool)
    })
  }

  test('a worker terminated while a create is in flight', async () => {
    const w = new Worker(
      `
      const { parentPort } = require('node:worker_threads')
      const { createPool } = require(${JSON.stringify(LIB)})
      const pool = createPool({ create: () => new Promise((r) => setTimeout(() => r({}), 200)), destroy () {} }, { max: 1 })
      pool.acquire()
      parentPort.postMessage('waiting')
    `,
      { eval: true }
    )
    await new Promise((resolve) => w.once('message', resolve))
    await w.terminate()
  })
})

test('a max that parses to Infinity (a numeric string too long for a double) is a RangeError, not an endless create loop', () => {
  const { createPool } = require('../lib/generic-pool.js')
  const factory = { create: () => ({}), destroy: () => {} }
  assert.throws(() => createPool(factory, { max: '9'.repeat(400), min: '9'.repeat(400) }), {
    name: 'RangeError',
    message: /`max`/
  })
  // generic-pool's own quirk is kept: the number Infinity parses to NaN, so max is 1.
  const pool = createPool(factory, { max: Infinity, autostart: false })
  assert.equal(pool.max, 1)
})
