'use strict'
// Redis faults, each on a private redis-server: a restart that loses every
// key while processes hold and wait, CLIENT PAUSE, and Redis unreachable.
// Each scenario runs with ioredis and with node-redis.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Semaphore } = require('../lib/index.js')
const { KINDS, connect, disconnect, raw, uniqueName, keys } = require('./support/redis.js')
const { startRedis, redisMissing } = require('./support/services.js')

const skip = redisMissing() ? `no redis-server to start a private one: ${redisMissing()}` : false

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function until(pred, ms = 10000, what = 'the condition') {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await pred()) return
    } catch {
      // Redis may be down for a moment.
    }
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`)
    await sleep(20)
  }
}

for (const kind of KINDS) {
  test(
    `${kind}: Redis restarts (every key lost) while one holds and one waits: the holder re-registers, the waiter re-queues, nothing is granted twice`,
    { skip, timeout: 60000 },
    async () => {
      const server = await startRedis()
      const name = uniqueName('restart')
      const ca = await connect(kind, server.url)
      const cb = await connect(kind, server.url)
      const probe = await connect(kind, server.url)
      const a = new Semaphore(1, { name, redis: ca, leaseMillis: 1000 })
      await a.ready
      const b = new Semaphore(undefined, { name, redis: cb, leaseMillis: 1000 })
      const lost = []
      a.on('leaseLost', (e) => lost.push(e))
      b.on('leaseLost', (e) => lost.push(e))
      try {
        await b.ready
        const t1 = await a.acquire()
        let granted = null
        const waiting = b.acquire(1).then((t) => (granted = t))
        // Observed at once: if a step below fails, close() rejects it.
        waiting.catch(() => {})
        await until(async () => Number(await raw(probe, 'ZCARD', keys(name).queue)) === 1)
        await server.restart()
        // The gate comes back: the holder's permit counted, the waiter queued.
        const restarted = Date.now()
        await until(
          async () =>
            Number(await raw(probe, 'HGET', keys(name).meta, 'used')) === 1 &&
            Number(await raw(probe, 'ZCARD', keys(name).queue)) === 1,
          30000,
          'the gate re-created with the holder and the waiter'
        ).catch(async (err) => {
          const K = keys(name)
          const state = {
            after: Date.now() - restarted,
            meta: await raw(probe, 'HGETALL', K.meta).catch((e) => e.message),
            queue: await raw(probe, 'ZRANGE', K.queue, '0', '-1').catch((e) => e.message),
            held: await raw(probe, 'HGETALL', K.held).catch((e) => e.message),
            leases: await raw(probe, 'ZRANGE', K.leases, '0', '-1', 'WITHSCORES').catch(
              (e) => e.message
            ),
            time: await raw(probe, 'TIME').catch((e) => e.message),
            aHeld: a.held,
            bPending: b.pending
          }
          throw new Error(`${err.message}: ${JSON.stringify(state)}`)
        })
        // Past the grace period, the waiter still waits: the one permit is a's.
        await sleep(1500)
        assert.equal(granted, null, 'the waiter was not granted while the holder still holds')
        assert.equal(Number(await raw(probe, 'HGET', keys(name).meta, 'used')), 1)
        a.release()
        const t2 = await waiting
        assert.ok(t2 > t1, 'fencing tokens still increase after the gate was lost')
        assert.deepEqual(lost, [])
        b.release()
      } finally {
        await a.close()
        await b.close()
        for (const c of [ca, cb, probe]) await disconnect(c)
        await server.stop()
      }
    }
  )

  test(
    `${kind}: CLIENT PAUSE stalls the gate; it resumes with nothing lost`,
    { skip, timeout: 60000 },
    async () => {
      const server = await startRedis()
      const name = uniqueName('pause')
      const ca = await connect(kind, server.url)
      const cb = await connect(kind, server.url)
      const a = new Semaphore(1, { name, redis: ca, leaseMillis: 5000 })
      await a.ready
      const b = new Semaphore(undefined, { name, redis: cb, leaseMillis: 5000 })
      const lost = []
      a.on('leaseLost', (e) => lost.push(e))
      b.on('leaseLost', (e) => lost.push(e))
      try {
        await a.acquire()
        await b.ready
        const waiting = b.acquire(1, { timeout: 15000 })
        await until(async () => Number(await raw(ca, 'ZCARD', keys(name).queue)) === 1)
        await raw(ca, 'CLIENT', 'PAUSE', '1500', 'ALL')
        const paused = Date.now()
        a.release()
        await waiting
        const took = Date.now() - paused
        assert.ok(took >= 1000, `granted ${took} ms into a 1500 ms pause`)
        assert.ok(took < 8000, `granted ${took} ms after the pause began`)
        assert.deepEqual(lost, [])
        b.release()
      } finally {
        await a.close()
        await b.close()
        await disconnect(ca)
        await disconnect(cb)
        await server.stop()
      }
    }
  )

  test(
    `${kind}: Redis unreachable: acquire waits until its timeout, then says Redis is unreachable; works again when Redis is back`,
    { skip, timeout: 60000 },
    async () => {
      const server = await startRedis()
      const name = uniqueName('down')
      const c = await connect(kind, server.url)
      const s = new Semaphore(1, { name, redis: c, leaseMillis: 1000 })
      try {
        await s.ready
        await server.kill()
        const t0 = Date.now()
        const err = await s.acquire(1, { timeout: 500 }).then(
          () => null,
          (e) => e
        )
        const took = Date.now() - t0
        assert.ok(err, 'rejected')
        assert.equal(err.name, 'RedisUnreachableError')
        assert.match(err.message, /Redis is unreachable/)
        assert.ok(took >= 450 && took < 5000, `rejected after ${took} ms`)
        await server.start()
        // The gate is re-created (with a grace of one lease) and works.
        const token = await s.acquire(1, { timeout: 15000 })
        assert.equal(typeof token, 'number')
        s.release()
      } finally {
        await s.close()
        await disconnect(c)
        await server.stop()
      }
    }
  )
}
