'use strict'
// A fleet of processes on one Redis gate: the limit holds across processes
// (measured on Redis itself), a SIGKILLed holder's permits come back after
// its lease, FIFO across processes, and idle waiting costs Redis only lease
// renewals. Each scenario runs with ioredis and with node-redis.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Semaphore } = require('../lib/index.js')
const { KINDS, connect, disconnect, raw, uniqueName, keys, child } = require('./support/redis.js')
const { startRedis, redisMissing } = require('./support/services.js')

const URL = process.env.SLUICE_REDIS_URL
const skip = URL ? false : 'no Redis here: SLUICE_REDIS_URL is not set (npm test starts one)'
const skipPrivate = redisMissing()
  ? `no redis-server to start a private one: ${redisMissing()}`
  : false

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function until(pred, ms = 10000, what = 'the condition') {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`)
    await sleep(10)
  }
}

async function stopAll(children) {
  for (const ch of children) {
    if (ch.proc.exitCode === null && ch.proc.signalCode === null) ch.proc.kill('SIGKILL')
    await ch.exited
  }
}

for (const kind of KINDS) {
  test(
    `${kind}: 4 processes on a limit of 3 never exceed 3 at once, and reach it`,
    { skip, timeout: 60000 },
    async () => {
      const name = uniqueName('fleet')
      const counter = `${name}:active`
      const kids = [0, 1, 2, 3].map((id) =>
        child({
          kind,
          url: URL,
          name,
          permits: 3,
          mode: 'loop',
          tasks: 15,
          holdMs: 15,
          counter,
          id
        })
      )
      try {
        await Promise.all(kids.map((k) => k.waitFor((e) => e.ev === 'ready', 15000, 'ready')))
        for (const k of kids) k.send({ op: 'go' })
        const done = await Promise.all(
          kids.map((k) => k.waitFor((e) => e.ev === 'done', 30000, 'done'))
        )
        const max = Math.max(...done.map((e) => e.max))
        assert.equal(max, 3, `the most tasks at once, counted by INCR on Redis: ${max}`)
        for (const k of kids) assert.deepEqual(await k.exited, { code: 0, signal: null }, k.stderr)
      } finally {
        await stopAll(kids)
      }
      const c = await connect(kind, URL)
      try {
        assert.equal(Number(await raw(c, 'GET', counter)), 0)
        assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 0)
        assert.equal(
          Number(await raw(c, 'ZCARD', keys(name).leases)),
          0,
          'every process closed its lease'
        )
        await raw(c, 'DEL', counter)
      } finally {
        await disconnect(c)
      }
    }
  )

  test(
    `${kind}: a SIGKILLed holder's permits come back after its lease`,
    { skip, timeout: 60000 },
    async () => {
      const name = uniqueName('kill')
      const holder = child({
        kind,
        url: URL,
        name,
        permits: 2,
        mode: 'hold',
        n: 2,
        leaseMillis: 1000,
        id: 'h'
      })
      const c = await connect(kind, URL)
      let sem
      try {
        const held = await holder.waitFor((e) => e.ev === 'held', 15000, 'held')
        sem = new Semaphore(undefined, { name, redis: c, leaseMillis: 1000 })
        const waiting = sem.acquire(2)
        await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
        const killed = Date.now()
        holder.proc.kill('SIGKILL')
        const token = await waiting
        const took = Date.now() - killed
        assert.ok(token > held.token, 'the new grant has a higher fencing token')
        // leaseMillis (1000) plus one renewal interval (333): generous margin
        // for a loaded machine, but far below "never".
        assert.ok(took < 6000, `permits came back after ${took} ms`)
        sem.release(2)
      } finally {
        await stopAll([holder])
        if (sem) await sem.close()
        await disconnect(c)
      }
    }
  )

  test(
    `${kind}: a holder paused past its lease (SIGSTOP) loses its permit, learns it ('leaseLost'), and its release is a no-op`,
    { skip, timeout: 60000 },
    async () => {
      const name = uniqueName('stop')
      const holder = child({
        kind,
        url: URL,
        name,
        permits: 1,
        mode: 'hold',
        leaseMillis: 1000,
        id: 'h'
      })
      const c = await connect(kind, URL)
      let sem
      try {
        const held = await holder.waitFor((e) => e.ev === 'held', 15000, 'held')
        sem = new Semaphore(undefined, { name, redis: c, leaseMillis: 1000 })
        holder.proc.kill('SIGSTOP')
        const token = await sem.acquire(1, { timeout: 20000 })
        assert.ok(token > held.token)
        holder.proc.kill('SIGCONT')
        const lost = await holder.waitFor((e) => e.ev === 'leaseLost', 15000, 'leaseLost')
        assert.equal(lost.permits, 1)
        holder.send({ op: 'release' })
        await holder.waitFor((e) => e.ev === 'released', 15000, 'released')
        await sleep(100)
        assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 1, 'still only ours')
        sem.release()
        holder.send({ op: 'exit' })
        assert.equal((await holder.exited).code, 0, holder.stderr)
      } finally {
        holder.proc.kill('SIGCONT')
        await stopAll([holder])
        if (sem) await sem.close()
        await disconnect(c)
      }
    }
  )

  test(
    `${kind}: FIFO across processes, in the order Redis saw the requests`,
    { skip, timeout: 60000 },
    async () => {
      const name = uniqueName('fifo')
      const c = await connect(kind, URL)
      const sem = new Semaphore(1, { name, redis: c })
      await sem.ready
      const kids = ['A', 'B', 'C'].map((id) => child({ kind, url: URL, name, mode: 'wait', id }))
      try {
        await Promise.all(kids.map((k) => k.waitFor((e) => e.ev === 'ready', 15000, 'ready')))
        await sem.acquire()
        const asked = []
        for (let round = 0; round < 3; round++) {
          for (const k of [kids[2], kids[0], kids[1]]) {
            const tag = `${k.events[0].id}${round}`
            k.send({ op: 'acquire', tag, holdMs: 5 })
            asked.push(tag)
            const want = asked.length
            await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === want)
          }
        }
        sem.release()
        const grants = await Promise.all(
          asked.map((tag) =>
            kids
              .find((k) => k.events[0].id === tag[0])
              .waitFor((e) => e.ev === 'granted' && e.tag === tag, 15000, `grant ${tag}`)
          )
        )
        const byToken = [...grants].sort((a, b) => a.token - b.token).map((e) => e.tag)
        assert.deepEqual(byToken, asked)
        for (const k of kids) k.send({ op: 'exit' })
        for (const k of kids) assert.equal((await k.exited).code, 0, k.stderr)
      } finally {
        await stopAll(kids)
        await sem.close()
        await disconnect(c)
      }
    }
  )

  test(
    `${kind}: three processes waiting 3 s cost Redis a few commands, not hundreds`,
    { skip: skipPrivate, timeout: 60000 },
    async (t) => {
      const server = await startRedis()
      const name = uniqueName('idle')
      const c = await connect(kind, server.url)
      const sem = new Semaphore(1, { name, redis: c })
      await sem.ready
      const kids = [0, 1, 2].map((id) => child({ kind, url: server.url, name, mode: 'wait', id }))
      try {
        await Promise.all(kids.map((k) => k.waitFor((e) => e.ev === 'ready', 15000, 'ready')))
        await sem.acquire()
        for (const k of kids) k.send({ op: 'acquire', tag: `w${k.events[0].id}`, holdMs: 5 })
        await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 3)
        const calls = async () => {
          const info = String(await raw(c, 'INFO', 'commandstats'))
          let total = 0
          for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
            if (m[1] !== 'info') total += Number(m[2])
          }
          return total
        }
        const before = await calls()
        assert.ok(before > 0, 'INFO commandstats counts commands')
        await sleep(3000)
        const spent = (await calls()) - before
        t.diagnostic(`${spent} Redis commands in 3 s with 3 processes waiting`)
        // Lease renewals (every leaseMillis / 3 = 3.3 s by default) and the
        // ZCARD above; redis-semaphore's polling costs about 800/s here.
        assert.ok(spent <= 20, `${spent} commands in 3 s of waiting`)
        sem.release()
        await Promise.all(kids.map((k) => k.waitFor((e) => e.ev === 'granted', 15000, 'a grant')))
      } finally {
        await stopAll(kids)
        await sem.close()
        await disconnect(c)
        await server.stop()
      }
    }
  )
}

test(
  'examples/redis-fleet-limit.js: 4 processes, one limit of 3 in Redis, reached and never exceeded',
  { skip },
  async () => {
    const { spawnSync } = require('node:child_process')
    const path = require('node:path')
    const r = spawnSync(
      process.execPath,
      [path.join(__dirname, '..', 'examples', 'redis-fleet-limit.js')],
      {
        env: { ...process.env, REDIS_URL: URL },
        encoding: 'utf8',
        timeout: 60000
      }
    )
    assert.equal(r.signal, null, `killed (hung?): ${r.stdout}\n${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^4 processes, 40 calls$/m)
    assert.match(r.stdout, /^max concurrent calls across the fleet: 3 \(limit 3\)$/m)
    assert.equal(r.stderr, '')
  }
)
