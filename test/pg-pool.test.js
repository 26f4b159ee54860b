'use strict'
// sluice/pg-pool against the real pg-pool 3.14 (devDependency), on the same
// PostgreSQL: the same scenarios on both pools, compared step by step (see
// test/support/pg-diff.js), then a fuzzed sequence. The server comes from
// PG* (npm test starts one); without one, the file skips with one line.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fc = require('fast-check')
const Pool = require('../lib/pg-pool.js')

const NO_PG = process.env.PGPORT
  ? false
  : 'no PostgreSQL here: PGPORT is not set (npm test starts one when PostgreSQL is installed)'

// Bad input needs no server: a fake Client class.
class FakeClient {}

test('constructor: bad options are TypeError/RangeError naming the option', () => {
  assert.throws(() => new Pool('x', FakeClient), {
    name: 'TypeError',
    message: /`options` to be an object/
  })
  assert.throws(() => new Pool({ max: -1 }, FakeClient), {
    name: 'RangeError',
    message: /options.max/
  })
  assert.throws(() => new Pool({ max: 'lots' }, FakeClient), {
    name: 'RangeError',
    message: /options.max/
  })
  assert.throws(() => new Pool({ max: Infinity }, FakeClient), {
    name: 'RangeError',
    message: /options.max/
  })
  assert.throws(() => new Pool({ max: {} }, FakeClient), {
    name: 'TypeError',
    message: /options.max/
  })
  assert.throws(() => new Pool({ idleTimeoutMillis: -5 }, FakeClient), {
    name: 'RangeError',
    message: /options.idleTimeoutMillis/
  })
  assert.throws(() => new Pool({ connectionTimeoutMillis: NaN }, FakeClient), {
    name: 'RangeError',
    message: /options.connectionTimeoutMillis/
  })
  assert.throws(() => new Pool({ maxUses: [] }, FakeClient), {
    name: 'TypeError',
    message: /options.maxUses/
  })
  assert.throws(() => new Pool({ onConnect: 1 }, FakeClient), {
    name: 'TypeError',
    message: /options.onConnect/
  })
  assert.throws(() => new Pool({ verify: 'x' }, FakeClient), {
    name: 'TypeError',
    message: /options.verify/
  })
  assert.throws(() => new Pool({ prefill: 1 }, FakeClient), {
    name: 'TypeError',
    message: /options.prefill/
  })
  assert.throws(() => new Pool({ Client: 5 }), { name: 'TypeError', message: /Client/ })
  assert.throws(() => new Pool({}, FakeClient).connect(5), {
    name: 'TypeError',
    message: /callback/
  })
  const ended = new Pool({}, FakeClient)
  assert.throws(() => ended.end(5), { name: 'TypeError', message: /`callback`/ })
  assert.equal(ended.ending, false, 'a bad end() callback leaves the pool as it was')
  ended.end(() => {})
  assert.throws(() => ended.connect('x'), { name: 'TypeError', message: /`callback`/ })
  assert.throws(() => ended.end('x'), { name: 'TypeError', message: /`callback`/ })
})

test('constructor: null, false and empty options are unset, as pg-pool reads them', () => {
  for (const v of [null, false, '']) {
    const p = new Pool(
      {
        max: v,
        min: v,
        idleTimeoutMillis: v,
        connectionTimeoutMillis: v,
        maxUses: v,
        maxLifetimeSeconds: v
      },
      FakeClient
    )
    assert.equal(p.options.max, 10, String(v))
    assert.equal(p.options.maxUses, Infinity, String(v))
    // pg-pool runs no idle timer for these (the default is for undefined only).
    assert.equal(p.options.idleTimeoutMillis, v, String(v))
  }
})

test("constructor: pg-pool's defaults and parsing, password hidden", () => {
  const p = new Pool({ password: 'secret', poolSize: 3, maxUses: 0, min: 0 }, FakeClient)
  assert.equal(p.options.max, 3)
  assert.equal(p.options.maxUses, Infinity)
  assert.equal(p.options.idleTimeoutMillis, 10000)
  assert.equal(p.options.maxLifetimeSeconds, 0)
  assert.equal(p.options.allowExitOnIdle, false)
  assert.equal(p.options.password, 'secret')
  assert.equal(Object.keys(p.options).includes('password'), false)
  assert.equal(new Pool({}, FakeClient).options.max, 10)
  // pool.options as pg-pool fills it in (numeric strings stay strings).
  for (const opts of [
    { max: '4', min: '1', maxUses: '3', maxLifetimeSeconds: '2', idleTimeoutMillis: '50' },
    { poolSize: 3, max: 0, maxUses: 0, allowExitOnIdle: 0, idleTimeoutMillis: null },
    { max: 0.5 },
    {}
  ]) {
    assert.deepEqual(
      { ...new Pool(opts, FakeClient).options },
      { ...new (require('pg-pool'))(opts, FakeClient).options },
      JSON.stringify(opts)
    )
  }
  assert.equal(new Pool({ Client: FakeClient }).Client, FakeClient)
  assert.equal(new Pool().Client, require('pg').Client)
  for (const k of ['totalCount', 'idleCount', 'waitingCount', 'expiredCount']) assert.equal(p[k], 0)
  assert.equal(p.ending, false)
  assert.equal(p.ended, false)
})

test('end() and query() promises settle in the same order as pg-pool', async () => {
  const orders = []
  for (const Impl of [require('pg-pool'), Pool]) {
    const order = []
    const p = new Impl({}, FakeClient)
    const tick = (name) => Promise.resolve().then(() => order.push(name))
    p.end().then(() => order.push('end1')) // no clients: ended at once
    tick('a')
    p.end().catch(() => order.push('end2'))
    tick('b')
    p.query('SELECT 1').catch(() => order.push('query')) // after end
    tick('c')
    await new Promise((resolve) => setTimeout(resolve, 20))
    orders.push(order)
  }
  assert.deepEqual(orders[1], orders[0])
})

test('connect() and query() promises settle in the same order as pg-pool', async () => {
  // Connects and queries answer on the next turn of the loop, in call order.
  const { EventEmitter } = require('node:events')
  class LoopClient extends EventEmitter {
    _queryable = true
    connect(cb) {
      setImmediate(cb)
    }
    query(text, values, cb) {
      setImmediate(() => (text === 'bad' ? cb(new Error('bad')) : cb(undefined, text)))
    }
    end(cb) {
      setImmediate(cb)
    }
  }
  const orders = []
  for (const Impl of [require('pg-pool'), Pool]) {
    const order = []
    const p = new Impl({ max: 2 }, LoopClient)
    const tick = (name) => setImmediate(() => Promise.resolve().then(() => order.push(name)))
    p.connect().then((c) => {
      order.push('connect')
      setImmediate(() => c.release())
    })
    tick('a')
    p.query('ok').then(() => order.push('query'))
    tick('b')
    await new Promise((resolve) => setTimeout(resolve, 20))
    p.query('bad').catch(() => order.push('bad'))
    p.connect().then((c) => {
      order.push('connect2')
      c.release()
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    // A waiting caller served by a release, against a promise settled then.
    const held = await p.connect()
    const held2 = await p.connect()
    p.connect().then((c) => {
      order.push('waiter')
      c.release()
    })
    held.release()
    Promise.resolve().then(() => order.push('after release'))
    held2.release()
    await new Promise((resolve) => setTimeout(resolve, 20))
    await p.end()
    orders.push(order)
  }
  assert.deepEqual(orders[1], orders[0])
})

const { runBoth, sleep } = NO_PG ? {} : require('./support/pg-diff.js')

async function same(options, commands, extra) {
  const logs = await runBoth(options, commands, extra)
  assert.deepEqual(logs.sluice, logs['pg-pool'])
  return logs.sluice
}

test(
  'walk-through: max 2, two out, a third waits, the first released goes to it',
  { skip: NO_PG },
  async () => {
    const log = await same({ max: 2 }, [
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.release(0),
      (r) => r.release(0),
      (r) => r.release(0)
    ])
    assert.ok(log.includes('-- 2 : total=2 idle=0 waiting=1 expired=0 ending=false ended=false'))
    assert.ok(log.includes('connect#3 ok c1'), 'the third gets the first connection back')
  }
)

test(
  'LIFO idle reuse, pool.query, query errors remove the client, events in order',
  { skip: NO_PG },
  async () => {
    await same({ max: 3 }, [
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.release(1),
      (r) => r.release(0),
      (r) => r.release(0),
      (r) => r.connect(),
      (r) => r.query(),
      (r) => r.query('SELECT * FROM no_such_table'),
      (r) => r.clientQuery(0),
      (r) => r.release(0, true),
      (r) => r.query("SELECT 'a' AS s, 2 AS n")
    ])
  }
)

test(
  'connect(cb) gives (err, client, done); double release throws; end twice; connect after end',
  { skip: NO_PG },
  async () => {
    const log = await same({ max: 1 }, [
      (r) => r.connectCb(),
      (r) => {
        const c = r.held[0]
        r.release(0)
        try {
          c.release()
        } catch (e) {
          r.log.push(`second release: ${e.message}`)
        }
      },
      (r) => r.end(),
      (r) => r.end(),
      (r) => r.connect(),
      (r) => r.query()
    ])
    assert.ok(
      log.some((l) => l.includes('Release called on client which has already been released'))
    )
    assert.ok(log.some((l) => l.includes('Cannot use a pool after calling end on the pool')))
    assert.ok(log.some((l) => l.includes('Called end on pool more than once')))
  }
)

test('a function as the query text is refused', { skip: NO_PG }, async () => {
  await same({}, [
    (r) =>
      new Promise((resolve) =>
        r.pool.query((err) => {
          r.log.push(`cb ${err.message}`)
          resolve()
        })
      )
  ])
})

test(
  "connectionTimeoutMillis: a queued caller times out with pg-pool's message",
  { skip: NO_PG },
  async () => {
    const log = await same({ max: 1, connectionTimeoutMillis: 150 }, [
      (r) => r.connect(),
      (r) => r.connect(),
      () => sleep(500),
      (r) => r.connect(),
      (r) => r.release(0)
    ])
    assert.ok(log.some((l) => l.endsWith('err timeout exceeded when trying to connect')))
  }
)

test(
  'connect(cb) refused by the queue timeout: (err) with no done, as pg-pool',
  { skip: NO_PG },
  async () => {
    const seen = []
    for (const Impl of [require('pg-pool'), Pool]) {
      const pool = new Impl({ max: 1, connectionTimeoutMillis: 100 }, require('pg').Client)
      const held = await pool.connect()
      const args = await new Promise((resolve) => pool.connect((...a) => resolve(a)))
      seen.push([args[0].message, typeof args[1], typeof args[2]])
      held.release()
      await pool.end()
    }
    assert.deepEqual(seen[0], ['timeout exceeded when trying to connect', 'undefined', 'undefined'])
    assert.deepEqual(seen[1], seen[0])
  }
)

test('idleTimeoutMillis removes idle clients down to min, not below', { skip: NO_PG }, async () => {
  const log = await same({ max: 3, min: 1, idleTimeoutMillis: 100 }, [
    (r) => r.connect(),
    (r) => r.connect(),
    (r) => r.connect(),
    (r) => {
      r.release(0)
      r.release(0)
      r.release(0)
    },
    () => sleep(600),
    (r) => r.connect()
  ])
  assert.ok(log.includes('-- 4 : total=1 idle=1 waiting=0 expired=0 ending=false ended=false'))
})

test('maxUses: a client used that many times is removed on release', { skip: NO_PG }, async () => {
  await same({ max: 1, maxUses: 2 }, [
    (r) => r.query(),
    (r) => r.query(),
    (r) => r.query(),
    (r) => r.connect(),
    (r) => r.release(0),
    (r) => r.query()
  ])
})

test(
  'maxLifetimeSeconds: idle clients go at expiry, busy ones count as expired until released',
  { skip: NO_PG },
  async () => {
    const log = await same({ max: 2, maxLifetimeSeconds: 0.4 }, [
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.release(1),
      () => sleep(900),
      (r) => r.release(0),
      (r) => r.connect()
    ])
    assert.ok(log.includes('-- 3 : total=1 idle=0 waiting=0 expired=1 ending=false ended=false'))
  }
)

test(
  'onConnect runs before the client is handed out; a rejection fails the caller',
  { skip: NO_PG },
  async () => {
    const options = () => {
      let n = 0
      const onConnect = async (client) => {
        n++
        if (n % 4 === 2) throw new Error('hook failed')
        await client.query('SET application_name = sluice_test')
      }
      return { max: 2, onConnect }
    }
    await same(options, [
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.query('SHOW application_name'),
      (r) => r.release(0)
    ])
  }
)

test(
  'verify runs once per new client; an error fails the caller and removes the client',
  { skip: NO_PG },
  async () => {
    const options = () => {
      let n = 0
      const verify = (client, cb) => {
        n++
        client.query('SELECT 1', (err) =>
          cb(err || (n % 4 === 2 ? new Error('not verified') : undefined))
        )
      }
      return { max: 2, verify }
    }
    await same(options, [
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.connect(),
      (r) => r.release(0)
    ])
  }
)

test(
  'fuzz: connect/release/release(err)/query/end, with and without timeouts',
  { skip: NO_PG },
  async () => {
    const command = fc.oneof(
      { weight: 4, arbitrary: fc.constant({ t: 'connect' }) },
      { weight: 1, arbitrary: fc.constant({ t: 'connectCb' }) },
      {
        weight: 4,
        arbitrary: fc.record({ t: fc.constant('release'), i: fc.nat(3), err: fc.boolean() })
      },
      { weight: 2, arbitrary: fc.constant({ t: 'query' }) },
      { weight: 1, arbitrary: fc.constant({ t: 'badquery' }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('clientQuery'), i: fc.nat(3) }) },
      { weight: 1, arbitrary: fc.constant({ t: 'sleep' }) }
    )
    const scenario = fc.record({
      max: fc.integer({ min: 1, max: 3 }),
      min: fc.constantFrom(undefined, 0, 1),
      maxUses: fc.constantFrom(undefined, 2, 3),
      timeout: fc.constantFrom(0, 0, 3000),
      commands: fc.array(command, { minLength: 1, maxLength: 10 })
    })
    const run = (r, c, timeout) => {
      switch (c.t) {
        case 'connect':
          return r.connect()
        case 'connectCb':
          return r.connectCb()
        case 'release':
          return r.release(c.i, c.err)
        case 'query':
          return r.query()
        case 'badquery':
          return r.query('SELECT 1/0')
        case 'clientQuery':
          return r.clientQuery(c.i)
        case 'sleep':
          // Lets queued callers time out (the timeout and a margin).
          return timeout ? sleep(timeout + 600) : null
      }
      return null
    }
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const options = { max: s.max, min: s.min, maxUses: s.maxUses }
        if (s.timeout) options.connectionTimeoutMillis = s.timeout
        // The steps between two sleeps take far less than the timeout, even on
        // a loaded machine, so a queued caller times out during a sleep on both
        // pools, never between two steps on one of them only.
        const commands = s.commands.map((c) => async (r) => {
          await run(r, c, s.timeout)
          return c.t
        })
        const logs = await runBoth(options, commands)
        assert.deepEqual(logs.sluice, logs['pg-pool'])
      }),
      {
        numRuns: Number(process.env.SLUICE_FUZZ_RUNS) || 12,
        // A fixed seed in npm test, as the model tests (this one found the
        // missing `done` of a queue timeout in CI); SLUICE_FUZZ_SEED=random
        // explores, SLUICE_FUZZ_SEED=<n> replays.
        seed:
          process.env.SLUICE_FUZZ_SEED === 'random'
            ? undefined
            : Number(process.env.SLUICE_FUZZ_SEED) || 906943636,
        endOnFailure: true,
        verbose: true,
        // The two logs' diff in the report (as a cause, the test runner
        // left it out): a failure that does not come back must be readable.
        includeErrorInReport: true
      }
    )
  }
)
