'use strict'
// sluice/pg-pool under faults, on a real PostgreSQL: backends killed idle and
// busy, a server restart (a private server), connects to listeners that never
// answer or answer late, and the cap on backends under 1,000 concurrent
// queries. Then pg-pool's bugs that sluice fixes: each fix is checked on
// sluice and shown to fail on the real pg-pool 3.14 (the same scenario).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const Pool = require('../lib/pg-pool.js')

const NO_PG = process.env.PGPORT
  ? false
  : 'no PostgreSQL here: PGPORT is not set (npm test starts one when PostgreSQL is installed)'

const { Client } = NO_PG ? {} : require('pg')
const PgPool = NO_PG ? undefined : require('pg-pool')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// SLUICE_PG_NATIVE=1 runs the file with pg-native clients (libpq handles).
const NativeClient = process.env.SLUICE_PG_NATIVE ? require('pg').native.Client : undefined
// pg-native's end() waits for a connect in progress, so only libpq's own
// connect_timeout (pg passes floor(connectionTimeoutMillis / 1000) s, at
// least 2 s for libpq) ends a connect to a silent listener: the native run
// uses a 1 s timeout (the caller is rejected at 1 s all the same).
const withClient = (options) => (NativeClient ? { ...options, Client: NativeClient } : options)
const T = NativeClient ? 1000 : 200

// Waits for `cond()` (polled), failing after `ms`.
async function until(cond, ms = 10000, what = 'condition') {
  const t0 = Date.now()
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

async function admin(env) {
  const c = new Client(
    env
      ? { host: env.PGHOST, port: Number(env.PGPORT), user: env.PGUSER, database: env.PGDATABASE }
      : undefined
  )
  await c.connect()
  return c
}

async function backends(adminClient, appName) {
  const r = await adminClient.query(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [appName]
  )
  return r.rows[0].n
}

const pid = async (client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid

test(
  'the server kills an idle backend: error event, client removed, the pool goes on',
  { skip: NO_PG },
  async () => {
    const a = await admin()
    const pool = new Pool(withClient({ max: 2 }))
    try {
      const errors = []
      pool.on('error', (err, client) => errors.push({ err, client }))
      const c = await pool.connect()
      const p = await pid(c)
      c.release()
      assert.equal(pool.idleCount, 1)
      await a.query('SELECT pg_terminate_backend($1)', [p])
      await until(() => errors.length === 1, 10000, 'the error event')
      assert.equal(errors[0].client, c)
      assert.equal(errors[0].err.client, c)
      await until(() => pool.totalCount === 0, 10000, 'the removal')
      const r = await pool.query('SELECT 1 AS x')
      assert.equal(r.rows[0].x, 1)
      assert.equal(pool.totalCount, 1)
    } finally {
      await pool.end()
      await a.end()
    }
  }
)

test(
  'the server kills a busy backend: the query fails, the client is removed, the pool goes on',
  { skip: NO_PG },
  async () => {
    const a = await admin()
    const pool = new Pool(withClient({ max: 1, application_name: 'sluice_busy' }))
    pool.on('error', () => {})
    try {
      const c = await pool.connect()
      const p = await pid(c)
      c.on('error', () => {}) // its holder's to handle, as with pg-pool
      const q = c.query('SELECT pg_sleep(30)')
      q.catch(() => {}) // asserted below, once the backend is killed
      await until(
        async () =>
          (
            await a.query(
              "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'",
              [p]
            )
          ).rowCount === 1
      )
      await a.query('SELECT pg_terminate_backend($1)', [p])
      await assert.rejects(q)
      c.release(new Error('backend gone'))
      await until(() => pool.totalCount === 0)
      // pool.query on a busy backend killed mid-query: rejected, removed too.
      const p2 = pool.query('SELECT pg_sleep(30)')
      p2.catch(() => {})
      // Not the first backend: killed, it can linger in pg_stat_activity
      // with its pg_sleep while it exits, and killing only that one left
      // p2 to run its 30 s (seen once on a loaded machine).
      let p2pid
      await until(async () => {
        const { rows } = await a.query(
          "SELECT pid FROM pg_stat_activity WHERE application_name = 'sluice_busy' AND pid <> $1 AND query LIKE '%pg_sleep%'",
          [p]
        )
        p2pid = rows.length === 1 ? rows[0].pid : undefined
        return p2pid !== undefined
      })
      await a.query('SELECT pg_terminate_backend($1)', [p2pid])
      await assert.rejects(p2)
      await until(() => pool.totalCount === 0)
      assert.equal((await pool.query('SELECT 2 AS x')).rows[0].x, 2)
    } finally {
      await pool.end()
      await a.end()
    }
  }
)

test(
  'the server restarts: idle clients error and go, a busy query fails, then the pool serves again',
  { skip: NO_PG, timeout: 60000 },
  async () => {
    const { startPostgres } = require('./support/services.js')
    const server = await startPostgres()
    const env = server.env
    const pool = new Pool(
      withClient({
        max: 3,
        host: env.PGHOST,
        port: Number(env.PGPORT),
        user: env.PGUSER,
        database: env.PGDATABASE
      })
    )
    const errors = []
    pool.on('error', (err) => errors.push(err))
    try {
      const cs = await Promise.all([pool.connect(), pool.connect(), pool.connect()])
      // A checked-out client's errors are its holder's to handle (as with pg-pool).
      cs[0].on('error', () => {})
      const busy = cs[0].query('SELECT pg_sleep(30)')
      busy.catch(() => {})
      cs[1].release()
      cs[2].release()
      assert.equal(pool.idleCount, 2)
      server.restart()
      await assert.rejects(busy)
      cs[0].release(new Error('server restarted'))
      await until(() => errors.length === 2 && pool.totalCount === 0, 20000, 'idle clients removed')
      // The server is back: new clients.
      const r = await pool.query('SELECT 3 AS x')
      assert.equal(r.rows[0].x, 3)
      assert.equal(pool.totalCount, 1)
    } finally {
      await pool.end()
      server.stop()
    }
  }
)

// A TCP listener on 127.0.0.1 that accepts and never answers, or answers late
// (after `delay` ms, it relays to the real server).
async function listener(delay) {
  const sockets = new Set()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
    if (delay === undefined) return
    s.pause()
    setTimeout(() => {
      if (s.destroyed) return
      const up = net.connect(Number(process.env.PGPORT), '127.0.0.1')
      up.on('error', () => s.destroy())
      s.on('close', () => up.destroy())
      up.on('close', () => s.destroy())
      s.pipe(up).pipe(s)
      s.resume()
    }, delay)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(resolve))
    }
  }
}

test(
  'connectionTimeoutMillis against a listener that never answers: rejected in time, nothing kept',
  { skip: NO_PG },
  async () => {
    const l = await listener()
    const pool = new Pool(
      withClient({ host: '127.0.0.1', port: l.port, connectionTimeoutMillis: T, max: 2 })
    )
    try {
      const t0 = Date.now()
      await assert.rejects(pool.connect(), {
        message: 'Connection terminated due to connection timeout'
      })
      assert.ok(Date.now() - t0 < 5000, 'rejected within the timeout (generous bound)')
      await until(() => pool.totalCount === 0, 10000, 'the aborted connect to settle')
      // A queued caller behind two stuck connects times out too.
      const a = pool.connect()
      const b = pool.connect()
      const c = pool.connect()
      assert.equal(pool.waitingCount, 1)
      const results = await Promise.allSettled([a, b, c])
      assert.deepEqual(
        results.slice(0, 2).map((r) => r.reason && r.reason.message),
        [
          'Connection terminated due to connection timeout',
          'Connection terminated due to connection timeout'
        ]
      )
      // The queued caller times out in the queue, or, if an aborted connect
      // settled first and made room, in a connect of its own: both are the
      // same deadline.
      assert.match(
        results[2].reason.message,
        /^(timeout exceeded when trying to connect|Connection terminated due to connection timeout)$/
      )
      await until(() => pool.totalCount === 0, 10000, 'the aborted connects to settle')
    } finally {
      await pool.end()
      await l.close()
    }
  }
)

test(
  'connectionTimeoutMillis against a listener that answers late: rejected in time, no backend left behind',
  { skip: NO_PG },
  async () => {
    const a = await admin()
    const l = await listener(3 * T)
    const app = 'sluice_late'
    const pool = new Pool(
      withClient({
        host: '127.0.0.1',
        port: l.port,
        connectionTimeoutMillis: T,
        application_name: app
      })
    )
    try {
      await assert.rejects(pool.connect(), {
        message: 'Connection terminated due to connection timeout'
      })
      await sleep(3 * T + 500)
      await until(() => pool.totalCount === 0, 10000, 'the late connect to settle')
      assert.equal(await backends(a, app), 0)
    } finally {
      await pool.end()
      await l.close()
      await a.end()
    }
  }
)

test(
  '1,000 concurrent queries through max: 10 never open more than 10 backends',
  { skip: NO_PG },
  async () => {
    const a = await admin()
    const app = 'sluice_cap'
    const pool = new Pool(withClient({ max: 10, application_name: app }))
    let peak = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await backends(a, app))
        await sleep(5)
      }
    })()
    try {
      let maxTotal = 0
      const pids = new Set()
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          pool.query('SELECT $1::int AS i, pg_backend_pid() AS pid', [i]).then((r) => {
            maxTotal = Math.max(maxTotal, pool.totalCount)
            pids.add(r.rows[0].pid)
            return r.rows[0].i
          })
        )
      )
      assert.deepEqual(
        results,
        Array.from({ length: 1000 }, (_, i) => i)
      )
      assert.ok(maxTotal <= 10, `totalCount reached ${maxTotal}`)
      assert.ok(pids.size <= 10, `${pids.size} distinct backends`)
      peak = Math.max(peak, await backends(a, app))
      assert.ok(peak > 0 && peak <= 10, `pg_stat_activity peak ${peak}`)
    } finally {
      sampling = false
      await sampler
      await pool.end()
      await a.end()
    }
  }
)

// ------------------------------------------------------------------ fixes --

// A pg Client whose connect starts late, as in pg-pool #3543's reproduction
// (a slow DNS lookup, a busy event loop): the connect timeout fires before
// the connection exists, and it completes afterwards.
class LateClient extends (Client || Object) {
  connect(cb) {
    setTimeout(() => super.connect(cb), 500)
  }
}

async function lateConnect(Impl) {
  const a = await admin()
  const app = `late_${Impl === Pool ? 's' : 'p'}`
  const pool = new Impl({ max: 1, connectionTimeoutMillis: 150, application_name: app }, LateClient)
  pool.on('error', () => {})
  try {
    const t0 = Date.now()
    let outcome
    try {
      const c = await pool.connect()
      outcome = `resolved after ${Date.now() - t0} ms`
      c.release()
    } catch (err) {
      outcome = err.message
    }
    await sleep(900)
    return { outcome, backends: await backends(a, app), total: pool.totalCount }
  } finally {
    await pool.end().catch(() => {})
    await a.end()
  }
}

test(
  'fix #3543: a connect that completes after connectionTimeoutMillis is rejected in time and its connection closed',
  { skip: NO_PG },
  async () => {
    const s = await lateConnect(Pool)
    assert.deepEqual(s, {
      outcome: 'Connection terminated due to connection timeout',
      backends: 0,
      total: 0
    })
    const p = await lateConnect(PgPool)
    assert.notDeepEqual(p, s, 'pg-pool 3.14 has the bug this fixes')
  }
)

// A socket whose connect never completes and that ignores destroy(): the
// abort does not reach the connect (pg-pool #3197: a DNS lookup stuck, the
// timer finds nothing to tear down, connect() hangs).
function stuckStream() {
  const { Duplex } = require('node:stream')
  const s = new Duplex({
    read() {},
    write(chunk, enc, cb) {
      cb()
    }
  })
  s.connect = () => {}
  s.setNoDelay = () => {}
  s.setKeepAlive = () => {}
  s.destroy = () => s
  return s
}

async function stuckConnect(Impl) {
  const pool = new Impl({ connectionTimeoutMillis: 150, stream: stuckStream }, Client)
  const t0 = Date.now()
  const outcome = await Promise.race([
    pool.connect().then(
      () => 'resolved',
      (err) => err.message
    ),
    sleep(2000).then(() => 'still waiting after 2 s')
  ])
  return { outcome, inTime: Date.now() - t0 < 1500 }
}

test(
  'fix #3197: connectionTimeoutMillis is respected even when the connect ignores the abort',
  { skip: NO_PG },
  async () => {
    const s = await stuckConnect(Pool)
    assert.deepEqual(s, {
      outcome: 'Connection terminated due to connection timeout',
      inTime: true
    })
    const p = await stuckConnect(PgPool)
    assert.deepEqual(p, { outcome: 'still waiting after 2 s', inTime: false }, 'pg-pool 3.14 hangs')
  }
)

async function prefill(Impl) {
  const a = await admin()
  const app = `prefill_${Impl === Pool ? 's' : 'p'}`
  const pool = new Impl({ min: 3, max: 5, prefill: true, application_name: app }, Client)
  let errors = 0
  pool.on('error', () => errors++)
  const settled = () => pool.totalCount === 3 && pool.idleCount === 3
  try {
    // pg-pool gets 300 ms to show it opens nothing.
    await until(settled, Impl === Pool ? 10000 : 300).catch(() => {})
    const first = { total: pool.totalCount, idle: pool.idleCount, backends: await backends(a, app) }
    if (first.idle === 0) return { first }
    // A lost client is replaced.
    await a.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid = (SELECT min(pid) FROM pg_stat_activity WHERE application_name = $1)',
      [app]
    )
    await until(() => errors === 1, 10000, 'the error event')
    await until(settled, 10000, 'the replacement')
    return { first, after: { total: pool.totalCount, backends: await backends(a, app) } }
  } finally {
    await pool.end()
    await a.end()
  }
}

test(
  'fix #3009/#1869: prefill: true opens min clients at once and replaces lost ones (min alone still only a floor)',
  { skip: NO_PG },
  async () => {
    const s = await prefill(Pool)
    assert.deepEqual(s, {
      first: { total: 3, idle: 3, backends: 3 },
      after: { total: 3, backends: 3 }
    })
    assert.deepEqual(
      await prefill(PgPool),
      { first: { total: 0, idle: 0, backends: 0 } },
      'pg-pool never pre-fills'
    )
    // Without prefill, min means what it means to pg-pool: nothing is opened.
    const pool = new Pool({ min: 3 })
    await sleep(50)
    assert.equal(pool.totalCount, 0)
    await pool.end()
  }
)

async function releaseErrAfterRelease(Impl) {
  const pool = new Impl({ max: 1 }, Client)
  try {
    const c = await pool.connect()
    c.release()
    let threw
    try {
      c.release(new Error('broken'))
    } catch (err) {
      threw = err.message
    }
    await sleep(50)
    return { threw, idle: pool.idleCount, total: pool.totalCount }
  } finally {
    await pool.end()
  }
}

test(
  'fix (double release): release(err) after release() still throws, and the client it calls broken is removed',
  { skip: NO_PG },
  async () => {
    const msg = 'Release called on client which has already been released to the pool.'
    assert.deepEqual(await releaseErrAfterRelease(Pool), { threw: msg, idle: 0, total: 0 })
    assert.deepEqual(
      await releaseErrAfterRelease(PgPool),
      { threw: msg, idle: 1, total: 1 },
      'pg-pool keeps the broken client idle for the next caller'
    )
  }
)

async function useAfterRelease(Impl) {
  const pool = new Impl({ max: 1 }, Client)
  try {
    const c = await pool.connect()
    c.release()
    const promise = await c.query('SELECT 1 AS x').then(
      (r) => `ran: ${r.rows[0].x}`,
      (err) => err.message
    )
    const callback = await new Promise((resolve) =>
      c.query('SELECT 1 AS x', (err, r) => resolve(err ? err.message : `ran: ${r.rows[0].x}`))
    )
    // Checked out again, it works.
    const d = await pool.connect()
    const again = (await d.query('SELECT 2 AS x')).rows[0].x
    d.release()
    return { promise, callback, again }
  } finally {
    await pool.end()
  }
}

test(
  'fix (use after release): a released client refuses queries while it sits idle in the pool',
  { skip: NO_PG },
  async () => {
    const msg =
      'Client was released to the pool: check out a client with pool.connect() before using it'
    assert.deepEqual(await useAfterRelease(Pool), { promise: msg, callback: msg, again: 2 })
    assert.deepEqual(await useAfterRelease(PgPool), {
      promise: 'ran: 1',
      callback: 'ran: 1',
      again: 2
    })
  }
)

async function endWithWaiters(Impl) {
  const pool = new Impl({ max: 1 }, Client)
  const c = await pool.connect()
  let waiter = 'pending'
  pool.connect().then(
    () => (waiter = 'resolved'),
    (err) => (waiter = err.message)
  )
  const ended = pool.end()
  c.release()
  await ended
  await sleep(100)
  return { waiter, waitingCount: pool.waitingCount }
}

test(
  'fix: end() tells callers still queued instead of leaving them waiting for ever',
  { skip: NO_PG },
  async () => {
    assert.deepEqual(await endWithWaiters(Pool), {
      waiter: 'Cannot use a pool after calling end on the pool',
      waitingCount: 0
    })
    assert.deepEqual(await endWithWaiters(PgPool), { waiter: 'pending', waitingCount: 1 })
  }
)

test(
  'fix (#2439): an idle client error with no error listener is a warning, not a crash',
  { skip: NO_PG },
  () => {
    const script = path.join(__dirname, 'support', 'pg-idle-error.js')
    const run = (impl) =>
      spawnSync(process.execPath, [script, impl], {
        encoding: 'utf8',
        env: process.env,
        timeout: 30000
      })
    const s = run('sluice')
    assert.equal(s.status, 0, s.stderr)
    assert.match(s.stdout, /survived: total=0/)
    assert.match(s.stderr, /SLUICE_PG_IDLE_CLIENT_ERROR|terminating connection/)
    const p = run('pg-pool')
    assert.notEqual(p.status, 0, 'pg-pool crashes the process')
  }
)

test(
  'allowExitOnIdle: the process exits while a client sits idle; without it, it stays',
  { skip: NO_PG },
  () => {
    const script = path.join(__dirname, 'support', 'pg-exit-on-idle.js')
    const run = (arg) =>
      spawnSync(process.execPath, [script, arg], {
        encoding: 'utf8',
        env: process.env,
        timeout: 3000
      })
    const allow = run('allow')
    assert.equal(allow.signal, null, 'exited by itself')
    assert.equal(allow.status, 0, allow.stderr)
    assert.match(allow.stdout, /queried 1, idle 1/)
    const keep = run('keep')
    assert.equal(keep.signal, 'SIGTERM', 'still alive after 3 s: killed')
    assert.match(keep.stdout, /queried 1, idle 1/)
  }
)

// A Client without a server, for the tests of misbehaving user code.
class FakeClient extends require('node:events').EventEmitter {
  constructor() {
    super()
    this._queryable = true
  }
  connect(cb) {
    setImmediate(cb)
  }
  end(cb) {
    this._ending = true
    if (cb) setImmediate(cb)
  }
}

// A Client class that misbehaves in connect: throws from its constructor or
// from connect(), or calls back twice. Each connect() settles once, the
// counts stay right and the pool goes on (no crash, no slot lost).
test('a Client that throws or calls back twice from connect', async () => {
  const kinds = {
    ctorThrows: class extends FakeClient {
      constructor() {
        super()
        throw new Error('ctor')
      }
    },
    connectThrows: class extends FakeClient {
      connect() {
        throw new Error('connect')
      }
    },
    okThenErr: class extends FakeClient {
      connect(cb) {
        setImmediate(cb)
        setTimeout(() => cb(new Error('late')), 5)
      }
    },
    errThenOk: class extends FakeClient {
      connect(cb) {
        setImmediate(() => cb(new Error('first')))
        setTimeout(cb, 5)
      }
    }
  }
  const outcome = async (p) => {
    try {
      const c = await p.connect()
      await sleep(20) // the second callback comes meanwhile
      c.release()
      return 'ok'
    } catch (err) {
      return err.message
    }
  }
  for (const [name, Client] of Object.entries(kinds)) {
    const pool = new Pool({ max: 1, connectionTimeoutMillis: 5000 }, Client)
    const connects = []
    pool.on('connect', (c) => connects.push(c))
    const got = [await outcome(pool), await outcome(pool)]
    await sleep(20)
    const want = {
      ctorThrows: ['ctor', 'ctor'],
      connectThrows: ['connect', 'connect'],
      okThenErr: ['ok', 'ok'],
      errThenOk: ['first', 'first']
    }[name]
    assert.deepEqual(got, want, name)
    assert.equal(connects.length, name === 'okThenErr' ? 1 : 0, `${name}: connect events`)
    assert.equal(pool.totalCount, name === 'okThenErr' ? 1 : 0, `${name}: totalCount`)
    await pool.end()
    assert.equal(pool.totalCount, 0, name)
  }
})

// verify that calls back twice or throws: each connect() settles once, with
// the first answer (a throw is a failed check), and later callers are all
// served (a second answer used to free the caller's token twice, so two
// later callers shared it and one of them was never served).
test('verify that calls back twice or throws', async () => {
  let n = 0
  const pool = new Pool(
    {
      max: 3,
      verify: (client, cb) => {
        if (++n === 2) throw new Error('verify threw')
        cb()
        cb(new Error('second answer'))
      }
    },
    FakeClient
  )
  const first = await pool.connect()
  await assert.rejects(pool.connect(), /verify threw/)
  const served = []
  const callers = [1, 2, 3, 4].map((i) =>
    pool.connect().then((c) => {
      served.push(i)
      setImmediate(() => c.release())
    })
  )
  first.release()
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`not all served: ${served}, waiting ${pool.waitingCount}`)),
      5000
    )
  })
  await Promise.race([Promise.all(callers), timeout]).finally(() => clearTimeout(timer))
  assert.deepEqual(served.toSorted(), [1, 2, 3, 4])
  await pool.end()
  assert.equal(pool.totalCount, 0)
})

// A pool listener that throws: its error reaches the application, and the
// pool goes on (pg-pool loses the client: the caller waits for ever, or a
// released client stays counted and is never lent again).
test('a listener that throws does not lose the client or the caller', () => {
  const script = path.join(__dirname, 'support', 'pg-listener-throws.js')
  for (const event of ['connect', 'acquire', 'release', 'remove']) {
    const r = spawnSync(process.execPath, [script, event], { encoding: 'utf8', timeout: 30000 })
    assert.equal(r.status, 0, `${event}: ${r.stdout}${r.stderr}`)
    const how = event === 'release' ? 'release threw' : 'uncaught'
    assert.equal(r.stdout.trim(), `served, ended=true; ${how} ${event} listener`, event)
  }
})
