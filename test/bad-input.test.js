'use strict'
// Bad input across the whole public surface: every function and constructor
// fed wrong types, out-of-range numbers and missing arguments answers with a
// TypeError/RangeError naming the argument (where the API validates; where
// it follows p-limit/generic-pool, with their answer), never a crash or a
// hang. Re-entrant calls from inside callbacks (factory functions, event
// listeners, tasks, abort handlers) work. And the pool's raw binding, fed
// garbage in a child process, refuses a bad config or pump with a
// TypeError/RangeError, never crashes it, and leaves a pool that works (the
// gates' raw binding is covered in test/semaphore.test.js).
const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const pLimit = require('../lib/p-limit.js')
const { limitFunction } = pLimit
const { Semaphore } = require('../lib/index.js')
const { createPool, Pool } = require('../lib/generic-pool.js')

const JUNK = [
  'x',
  '',
  {},
  [],
  null,
  true,
  NaN,
  -1,
  0,
  0.5,
  1.5,
  2 ** 32,
  2 ** 53,
  1e300,
  Infinity,
  -Infinity,
  -0,
  Symbol('s'),
  1n,
  () => 1,
  new Date(0)
]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// Settles as `promise`, or rejects after `ms` if it has not (a hang); the
// timer is cleared either way, so it never holds the process afterwards.
function within(promise, ms, what) {
  let timer
  const hang = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hangs`)), ms)
  })
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer))
}
const show = (v) =>
  typeof v === 'symbol'
    ? v.toString()
    : typeof v === 'bigint'
      ? v + 'n'
      : typeof v === 'function'
        ? 'fn'
        : (JSON.stringify(v) ?? String(v))

// Calls fn; it must return, or throw a TypeError/RangeError whose message
// names `name`. Returns 'threw' or 'returned'.
function typed(label, name, fn) {
  try {
    const r = fn()
    if (r instanceof Promise) r.catch(() => {}) // accepted input: not the point here
  } catch (e) {
    assert.ok(
      e instanceof TypeError || e instanceof RangeError,
      `${label}: threw ${e && e.constructor && e.constructor.name}: ${e && e.message}`
    )
    assert.ok(
      e.message.includes(name),
      `${label}: the message does not name \`${name}\`: ${e.message}`
    )
    return 'threw'
  }
  return 'returned'
}
function mustThrow(label, name, fn) {
  assert.equal(typed(label, name, fn), 'threw', `${label}: did not throw`)
}
const validConcurrency = (v) => (Number.isInteger(v) || v === Infinity) && v > 0
const validCount = (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffffffff

describe('p-limit', () => {
  test('pLimit, limitFunction, concurrency: every junk value', () => {
    for (const v of [...JUNK, undefined]) {
      if (validConcurrency(v)) continue
      mustThrow(`pLimit(${show(v)})`, 'concurrency', () => pLimit(v))
      mustThrow(`pLimit({concurrency: ${show(v)}})`, 'concurrency', () =>
        pLimit({ concurrency: v })
      )
      mustThrow(`limitFunction(f, ${show(v)})`, 'concurrency', () => limitFunction(() => {}, v))
      const limit = pLimit(2)
      mustThrow(`concurrency = ${show(v)}`, 'concurrency', () => {
        limit.concurrency = v
      })
      assert.equal(limit.concurrency, 2)
    }
    for (const v of JUNK) {
      if (typeof v === 'boolean') continue
      mustThrow(`rejectOnClear ${show(v)}`, 'rejectOnClear', () =>
        pLimit({ concurrency: 1, rejectOnClear: v })
      )
    }
    for (const v of JUNK) {
      if (typeof v === 'string' && v !== '') continue
      mustThrow(`name ${show(v)}`, 'name', () => pLimit({ concurrency: 1, name: v }))
    }
    mustThrow('pLimit()', 'concurrency', () => pLimit())
  })

  test('limit(non-function) and map(junk) reject, and the limiter goes on', async () => {
    const limit = pLimit(1)
    for (const v of JUNK) {
      if (typeof v === 'function') continue
      await assert.rejects(limit(v), TypeError)
    }
    for (const v of [null, undefined]) {
      await assert.rejects(
        limit.map(v, (x) => x),
        TypeError
      )
    }
    await assert.rejects(limit.map([1, 2], 'not a function'), TypeError)
    assert.equal(limit.activeCount, 0)
    assert.equal(limit.pendingCount, 0)
    assert.equal(await limit((x) => x * 2, 21), 42)
  })

  test('re-entrant: clearQueue, limit(), concurrency changes from inside tasks', async () => {
    const limit = pLimit({ concurrency: 1, rejectOnClear: true })
    const log = []
    const first = limit(async () => {
      limit.clearQueue() // clears the two queued below
      limit.concurrency = 3
      const inner = limit(() => 'inner')
      log.push(limit.pendingCount)
      return inner
    })
    const cleared = [limit(() => 'a'), limit(() => 'b')].map((p) => p.catch((e) => e.name))
    assert.equal(await first, 'inner')
    assert.deepEqual(await Promise.all(cleared), ['AbortError', 'AbortError'])
    const nested = await limit(() => limit(() => limit(() => 'deep')))
    assert.equal(nested, 'deep')
    assert.equal(limit.activeCount, 0)
  })
})

describe('Semaphore', () => {
  test('constructor, methods and setters: every junk value', async () => {
    for (const v of [...JUNK, undefined]) {
      const validPermits =
        typeof v === 'number' && (v === Infinity || (Number.isInteger(v) && v >= 0))
      if (!validPermits) mustThrow(`new Semaphore(${show(v)})`, 'permits', () => new Semaphore(v))
      if (v !== undefined && !(v !== null && typeof v === 'object')) {
        mustThrow(`new Semaphore(1, ${show(v)})`, 'options', () => new Semaphore(1, v))
      }
    }
    const sem = new Semaphore(2)
    const open = new Semaphore(Infinity) // options that pass take a permit at once
    for (const v of JUNK) {
      if (!validCount(v)) {
        mustThrow(`acquire(${show(v)})`, '`n`', () => sem.acquire(v))
        mustThrow(`tryAcquire(${show(v)})`, '`n`', () => sem.tryAcquire(v))
        mustThrow(`release(${show(v)})`, '`n`', () => sem.release(v))
      }
      if (!(typeof v === 'number' && (v === Infinity || (Number.isInteger(v) && v >= 0)))) {
        mustThrow(`permits = ${show(v)}`, 'permits', () => {
          sem.permits = v
        })
      }
      if (!(typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) {
        mustThrow(`priority ${show(v)}`, 'priority', () => open.acquire(1, { priority: v }))
      }
      if (!(typeof v === 'number' && v >= 0 && v <= 0xffffffff)) {
        mustThrow(`timeout ${show(v)}`, 'timeout', () => open.acquire(1, { timeout: v }))
      }
      mustThrow(`signal ${show(v)}`, 'signal', () => sem.acquire(1, { signal: v }))
      if (v !== null && typeof v === 'object') continue
      mustThrow(`acquire(1, ${show(v)})`, 'options', () => sem.acquire(1, v))
      if (typeof v !== 'function') await assert.rejects(sem.use(v), TypeError)
    }
    mustThrow('release more than held', 'release', () => sem.release(1))
    assert.equal(sem.available, 2)
    assert.equal(sem.pending, 0)
  })

  test('re-entrant: release, acquire and permits changes from abort handlers and grants', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const ac = new AbortController()
    ac.signal.addEventListener('abort', () => {
      // Inside the abort: the waiter being aborted is still queued here.
      sem.permits = 2
      sem.release()
    })
    const aborted = sem.acquire(1, { signal: ac.signal })
    const other = sem.acquire(1).then(() => {
      // A grant's continuation releases and takes again.
      sem.release()
      assert.equal(sem.tryAcquire(), true)
      return 'other'
    })
    ac.abort() // the listener runs first (added first), the waiter is granted by it
    assert.equal(
      await aborted.then(
        () => 'granted',
        (e) => e.name
      ),
      'granted'
    )
    assert.equal(await other, 'other')
    sem.release(2)
    assert.equal(sem.available, 2)
  })
})

describe('generic-pool', () => {
  const factory = () => ({ create: async () => ({}), destroy: async () => {} })

  test('createPool/Pool: factory and the strict options, every junk value', async () => {
    for (const v of JUNK) {
      if (typeof v === 'function') continue
      assert.throws(() => createPool(v), TypeError, `factory ${show(v)}`)
      assert.throws(() => new Pool(v, {}), TypeError)
      assert.throws(() => createPool({ create: v, destroy() {} }), {
        name: 'TypeError',
        message: /create/
      })
      assert.throws(() => createPool({ create() {}, destroy: v }), {
        name: 'TypeError',
        message: /destroy/
      })
      if (v !== undefined)
        assert.throws(() => createPool({ create() {}, destroy() {}, validate: v }), {
          name: 'TypeError',
          message: /validate/
        })
    }
    for (const name of ['maxUses', 'maxLifetimeMillis', 'leakDetectionMillis']) {
      for (const v of JUNK) {
        if (
          typeof v === 'number' &&
          v > 0 &&
          (name !== 'maxUses' || Number.isInteger(v) || v === Infinity)
        )
          continue
        mustThrow(`${name} ${show(v)}`, name, () => createPool(factory(), { [name]: v }))
      }
    }
    for (const v of JUNK) {
      if (typeof v === 'boolean') continue
      mustThrow(`propagateCreateError ${show(v)}`, 'propagateCreateError', () =>
        createPool(factory(), { propagateCreateError: v })
      )
    }
    mustThrow('priorityRange 2^21', 'priorityRange', () =>
      createPool(factory(), { priorityRange: 2 ** 21 })
    )
    mustThrow('Promise {}', 'Promise', () => createPool(factory(), { Promise: {} }))
    assert.throws(() => createPool(factory(), { testOnBorrow: true }), {
      name: 'TypeError',
      message: /validate/
    })
  })

  test("generic-pool's own options take junk without crashing (its parsing quirks)", async () => {
    const names = [
      'max',
      'min',
      'maxWaitingClients',
      'fifo',
      'priorityRange',
      'autostart',
      'evictionRunIntervalMillis',
      'numTestsPerEvictionRun',
      'softIdleTimeoutMillis',
      'idleTimeoutMillis',
      'destroyTimeoutMillis',
      'testOnBorrow'
    ]
    for (const name of names) {
      for (const v of JUNK) {
        if (typeof v === 'symbol' || typeof v === 'bigint') continue // parseInt/Number of these throw, as in generic-pool
        if (name === 'priorityRange' && typeof v === 'number' && v > 2 ** 20) continue
        if ((name === 'max' || name === 'min') && typeof v === 'number' && v > 100) continue // would create that many
        let pool
        try {
          pool = createPool(factory(), { [name]: v })
        } catch (e) {
          assert.ok(e instanceof TypeError || e instanceof RangeError, `${name} ${show(v)}: ${e}`)
          continue
        }
        const r = await within(pool.acquire(), 2000, `${name} ${show(v)}: acquire`)
        await pool.release(r)
        await pool.drain()
        await pool.clear()
      }
    }
  })

  test('methods: every junk value', async () => {
    const pool = createPool(factory(), { max: 2 })
    for (const v of JUNK) {
      // priority: coerced as generic-pool does (+priority | 0), so a symbol
      // or a bigint is the engine's TypeError from that coercion, as there
      if (typeof v === 'symbol' || typeof v === 'bigint') {
        assert.throws(() => pool.acquire(v), TypeError)
      } else {
        await pool.release(await pool.acquire(v))
      }
      if (v === null || (v !== undefined && typeof v !== 'object')) {
        assert.throws(() => pool.acquire(0, v), { name: 'TypeError', message: /options/ })
      } else {
        await pool.release(await pool.acquire(0, v))
      }
      if (!(v instanceof AbortSignal)) {
        assert.throws(() => pool.acquire(0, { signal: v }), {
          name: 'TypeError',
          message: /signal/
        })
      }
      await assert.rejects(pool.release(v), /Resource not currently part of this pool/)
      await assert.rejects(pool.destroy(v), /Resource not currently part of this pool/)
      assert.equal(pool.isBorrowedResource(v), false)
      if (typeof v !== 'function')
        await assert.rejects(pool.use(v), { name: 'TypeError', message: /fn/ })
    }
    await assert.rejects(pool.release(), /Resource not currently part of this pool/)
    const stats = pool.stats()
    assert.equal(stats.borrowed, 0)
    assert.equal(stats.pending, 0)
    await pool.drain()
    await pool.clear()
  })

  test('re-entrant: release inside create, acquire inside factoryCreateError and leak listeners, drain inside destroy, clear inside validate', async () => {
    let n = 0
    let pool
    let held
    let failNext = 1
    const log = []
    pool = createPool(
      {
        create: async () => {
          if (held !== undefined) {
            // release a borrowed resource from inside a create
            const h = held
            held = undefined
            await pool.release(h)
            log.push('released in create')
          }
          if (failNext > 0) {
            failNext--
            throw new Error('create failed')
          }
          return { id: n++ }
        },
        destroy: async (r) => {
          if (r.id === 0 && !pool.draining) log.push('destroy ' + r.id)
        },
        validate: async (r) => {
          pool.clear().then(() => log.push('cleared in validate'))
          return true
        }
      },
      { max: 3, testOnBorrow: true, leakDetectionMillis: 20 }
    )
    pool.once('factoryCreateError', () => {
      log.push('createError')
      // acquire from inside the listener
      pool.acquire().then((r) => {
        log.push('acquired in createError ' + r.id)
        pool.release(r)
      })
    })
    pool.once('leak', (r) => {
      log.push('leak ' + r.id)
      pool.acquire().then((x) => {
        log.push('acquired in leak')
        pool.release(x)
      })
      pool.release(r)
    })
    const a = await pool.acquire()
    held = a
    const b = await pool.acquire() // its create releases `a` first
    await sleep(60) // b leaks; the leak listener acquires and releases it
    await pool.release(b).catch(() => {}) // may have been released by the listener
    await sleep(20)
    const drainer = createPool(
      {
        create: async () => ({}),
        destroy: async () => {
          drainer.drain()
        } // drain from inside destroy
      },
      { max: 1 }
    )
    const d = await drainer.acquire()
    await drainer.destroy(d)
    await within(drainer.drain(), 2000, 'drain')
    await drainer.clear()
    await within(pool.drain(), 2000, 'drain')
    await pool.clear()
    assert.ok(log.includes('createError'), log.join(', '))
    assert.ok(
      log.some((l) => l.startsWith('acquired in createError')),
      log.join(', ')
    )
    assert.ok(log.includes('released in create'), log.join(', '))
    assert.ok(
      log.some((l) => l.startsWith('leak')),
      log.join(', ')
    )
    assert.ok(log.includes('acquired in leak'), log.join(', '))
    assert.ok(log.includes('cleared in validate'), log.join(', '))
    assert.equal(pool.size, 0)
  })
})

test("the pool's raw binding refuses a bad config or pump with TypeError/RangeError, survives garbage, and the pool still works after it", () => {
  const BINDING = path.join(__dirname, '..', 'lib', 'binding.js')
  const GENERIC_POOL = path.join(__dirname, '..', 'lib', 'generic-pool.js')
  const r = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '-e',
      `
    const { binding, protocol } = require(${JSON.stringify(BINDING)})
    const JUNK = ['x', '', {}, [], null, undefined, true, NaN, -1, 0, 0.5, 1.5, 2 ** 31, 2 ** 32, -(2 ** 31) - 1,
      2 ** 53, 1e300, Infinity, -Infinity, -0, Symbol('s'), 1n, () => 1, new Float64Array(18), new Int32Array(18)]
    let calls = 0
    const untyped = [] // a bad config or pump must be refused with TypeError/RangeError
    const attempt = (label, fn) => {
      calls++
      try { return fn() } catch (e) {
        if (!(e instanceof Error)) { console.error(label + ': threw a non-error'); process.exit(2) }
      }
    }
    const refused = (label, fn) => {
      calls++
      try { fn() } catch (e) {
        if (!(e instanceof TypeError || e instanceof RangeError)) untyped.push(label + ': ' + e)
        return
      }
      untyped.push(label + ': accepted')
    }
    const good = () => {
      const c = new Float64Array(protocol.poolConfig.COUNT) // its length grows with the core
      c[0] = 2; c[1] = 0; c[2] = NaN; c[3] = 1; c[6] = 1; c[10] = 3; c[12] = 30000; c[16] = 10; c[17] = 1000
      return c
    }
    // pool(config, pump): a config is a Float64Array of the right length,
    // a pump a function; anything else is refused.
    refused('pool()', () => binding.pool())
    for (const v of JUNK) {
      if (!(v instanceof Float64Array)) refused('pool(' + String(v) + ', pump)', () => binding.pool(v, () => {}))
      if (typeof v !== 'function') refused('pool(config, ' + String(v) + ')', () => binding.pool(good(), v))
    }
    refused('short config', () => binding.pool(new Float64Array(3), () => {}))
    // Garbage values in a well-formed config (min kept small: min is how
    // many resources the pool creates at once, by design).
    for (let field = 0; field < 18; field++) {
      if (field === 1) continue
      for (const v of [NaN, -1, 0, 0.5, 2 ** 31, 2 ** 53, 1e300, Infinity, -Infinity]) {
        const c = good()
        c[field] = v
        const p = attempt('config field ' + field + ' = ' + v, () => binding.pool(c, () => {}))
        if (!p) continue
        const [acquire, release, ctl] = p
        attempt('start', () => ctl(10))
        attempt('acquire', () => acquire(0, 1))
        attempt('drain', () => ctl(6))
      }
    }
    // The functions of a live pool with junk arguments: whatever they
    // refuse, they refuse with a TypeError or a RangeError.
    const typed = (label, fn) => {
      calls++
      try { return fn() } catch (e) {
        if (!(e instanceof TypeError || e instanceof RangeError)) untyped.push(label + ': ' + e)
      }
    }
    const events = []
    const [acquire, release, ctl] = binding.pool(good(), () => events.push('pump'))
    ctl(10)
    for (const a of JUNK) {
      typed('acquire(junk)', () => acquire(a, 1))
      typed('acquire(0, junk)', () => acquire(0, a))
      typed('acquire(junk, junk)', () => acquire(a, a))
      typed('release(junk)', () => release(a))
      typed('ctl(junk)', () => ctl(a))
      for (let op = -1; op <= 15; op++) {
        typed('ctl(op, junk)', () => ctl(op, a))
        typed('ctl(op, junk, junk)', () => ctl(op, a, a))
        typed('ctl(op, slot, junk)', () => ctl(op, 0, a))
        typed('ctl(op, huge)', () => ctl(op, 2 ** 31 - 1, 2 ** 31 - 1))
      }
    }
    typed('acquire()', () => acquire())
    typed('release()', () => release())
    typed('ctl()', () => ctl())
    // Reports for slots in the wrong state are refused, not obeyed.
    for (let op = 0; op <= 5; op++) for (let s = 0; s < 40; s++) attempt('report', () => ctl(op, s, 1))
    setTimeout(async () => {
      globalThis.gc()
      // After all that, in the same process, a pool works: two resources
      // lent, a third acquire queued and served by the first release, in
      // order, and everything destroyed at the end.
      const { createPool } = require(${JSON.stringify(GENERIC_POOL)})
      let n = 0
      const destroyed = []
      const pool = createPool({ create: async () => ({ id: n++ }), destroy: async (r) => { destroyed.push(r.id) } }, { max: 2 })
      const a = await pool.acquire()
      const b = await pool.acquire()
      const third = pool.acquire()
      const queued = [pool.size, pool.borrowed, pool.pending]
      await pool.release(a)
      const c = await third
      await pool.release(b)
      await pool.release(c)
      await pool.drain()
      await pool.clear()
      const out = { calls: calls > 1000, untyped, queued, served: [a.id, b.id, c.id], destroyed: destroyed.sort(), after: [pool.size, pool.borrowed, pool.pending] }
      console.log(JSON.stringify(out))
      // Exit explicitly: pools left with queued waiters and a (garbage,
      // long) acquire timeout keep the loop alive, as they should.
      process.exit(0)
    }, 20)
  `
    ],
    { encoding: 'utf8', timeout: 60000 }
  )
  assert.equal(r.signal, null, r.stderr)
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  assert.deepEqual(out, {
    calls: true,
    untyped: [],
    queued: [2, 2, 1],
    served: [0, 1, 0],
    destroyed: [0, 1],
    after: [0, 0, 0]
  })
})

test('scope with redis is a TypeError that names both (a Redis gate is fleet-wide)', () => {
  const redis = {}
  for (const scope of ['host', 'process']) {
    assert.throws(
      () => new Semaphore(1, { name: 'both', redis, scope }),
      (err) =>
        err instanceof TypeError &&
        /options\.scope/.test(err.message) &&
        /options\.redis/.test(err.message)
    )
    assert.throws(
      () => pLimit({ concurrency: 1, name: 'both', redis, scope }),
      (err) =>
        err instanceof TypeError &&
        /options\.scope/.test(err.message) &&
        /options\.redis/.test(err.message)
    )
  }
})

test('a Redis gate name that is not well-formed or starts with } is a RangeError naming it', async () => {
  const Redis = require('ioredis')
  // Never connects: the options are checked before any command.
  const redis = new Redis({ lazyConnect: true, host: '127.0.0.1', port: 1 })
  try {
    for (const name of ['a\uD800b', '}x', '}']) {
      assert.throws(
        () => new Semaphore(1, { name, redis }),
        (err) => err instanceof RangeError && /options\.name/.test(err.message)
      )
      assert.throws(
        () => pLimit({ concurrency: 1, name, redis }),
        (err) => err instanceof RangeError && /name/.test(err.message)
      )
    }
  } finally {
    redis.disconnect()
  }
})
