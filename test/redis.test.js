'use strict'
// Redis-backed gates in one process: the API, tokens, order, abort and
// timeout, tryAcquire, close, a lapsed lease, NOSCRIPT, bad input. Each
// scenario runs with ioredis and with node-redis. Two gate objects on the
// same name act as two members of a fleet (each is its own client in Redis;
// they share their process's one lease). Needs SLUICE_REDIS_URL (npm test
// starts a server).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Semaphore, pLimit } = require('../lib/index.js')
const {
  KINDS,
  connect,
  disconnect,
  raw,
  uniqueName,
  keys,
  sleep,
  until
} = require('./support/redis.js')

const URL = process.env.SLUICE_REDIS_URL
const skip = URL ? false : 'no Redis here: SLUICE_REDIS_URL is not set (npm test starts one)'

for (const kind of KINDS) {
  const it = (title, fn) =>
    test(`${kind}: ${title}`, { skip }, async () => {
      const c = await connect(kind, URL)
      const made = []
      const sem = (permits, opts) => {
        const s = new Semaphore(permits, { redis: c, ...opts })
        made.push(s)
        return s
      }
      try {
        await fn({ c, sem })
      } finally {
        for (const s of made) await s.close()
        await disconnect(c)
      }
    })

  it('objects of one process with different leases: the shorter lease does not lapse between renewals', async ({
    c,
    sem
  }) => {
    const name = uniqueName('mixed-lease')
    // The long lease's agent renews every 2 s; the short lease must be kept
    // alive anyway (before the fix its own calls cut the process's lease to
    // 600 ms, and the next renewal found it lapsed).
    const long = sem(2, { name, leaseMillis: 6000 })
    let lost = 0
    long.on('leaseLost', () => lost++)
    await long.acquire()
    // Made while the agent already renews at the long lease's pace.
    const short = sem(undefined, { name, leaseMillis: 600 })
    short.on('leaseLost', () => lost++)
    await short.acquire()
    await sleep(2500)
    await long.refresh()
    await short.refresh()
    assert.equal(lost, 0, 'no lease lost')
    assert.equal(long.held + short.held, 2)
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 2)
    long.release()
    short.release()
  })

  it('acquire resolves with increasing fencing tokens; counts come from Redis', async ({
    c,
    sem
  }) => {
    const name = uniqueName('basic')
    const a = sem(3, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    const t1 = await a.acquire()
    const t2 = await b.acquire(2)
    assert.equal(typeof t1, 'number')
    assert.ok(t2 > t1, 'tokens increase')
    assert.equal(a.held, 1)
    assert.equal(b.held, 2)
    assert.equal(b.available, 0)
    assert.equal(b.permits, 3)
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 3)
    const waiting = a.acquire()
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    b.release()
    const t3 = await waiting
    assert.ok(t3 > t2)
    a.release(2)
    b.release()
    await until(async () => Number(await raw(c, 'HGET', keys(name).meta, 'used')) === 0)
    await b.refresh()
    assert.equal(b.available, 3)
    assert.equal(b.pending, 0)
  })

  it('FIFO within a priority, higher priority first, across gate objects', async ({ c, sem }) => {
    const name = uniqueName('order')
    const holder = sem(1, { name })
    const others = [sem(undefined, { name }), sem(undefined, { name }), sem(undefined, { name })]
    await Promise.all([holder.ready, ...others.map((s) => s.ready)])
    await holder.acquire()
    const order = []
    const asks = [
      [0, 0],
      [1, 0],
      [2, 0],
      [0, 5],
      [1, 0],
      [2, 5]
    ]
    const promises = []
    for (const [i, priority] of asks) {
      const tag = `${i}/${priority}/${promises.length}`
      promises.push(
        others[i].acquire(1, { priority }).then(() => {
          order.push(tag)
          others[i].release()
        })
      )
      // Redis has it queued before the next is asked.
      const want = promises.length
      await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === want)
    }
    holder.release()
    await Promise.all(promises)
    assert.deepEqual(order, ['0/5/3', '2/5/5', '0/0/0', '1/0/1', '2/0/2', '1/0/4'])
  })

  it('a timed-out or aborted waiter leaves the queue and loses no permit', async ({ c, sem }) => {
    const name = uniqueName('cancel')
    const a = sem(1, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    await a.acquire()
    await assert.rejects(b.acquire(1, { timeout: 100 }), { name: 'TimeoutError' })
    const ac = new AbortController()
    const aborted = b.acquire(1, { signal: ac.signal })
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    ac.abort(new Error('stop'))
    await assert.rejects(aborted, /stop/)
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 0)
    const pre = new AbortController()
    pre.abort(new Error('already'))
    await assert.rejects(b.acquire(1, { signal: pre.signal }), /already/)
    a.release()
    // The permit went nowhere: taken at once.
    assert.equal(typeof (await b.tryAcquire()), 'number')
    b.release()
  })

  it('a timeout above 2^31-1 ms does not fire at once (setTimeout would make it 1 ms)', async ({
    c,
    sem
  }) => {
    const name = uniqueName('longtimeout')
    const a = sem(1, { name })
    await a.acquire()
    let settled = false
    const p = a.acquire(1, { timeout: 3e9 }).finally(() => (settled = true))
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    await sleep(100)
    assert.equal(settled, false)
    a.release()
    assert.equal(typeof (await p), 'number')
    a.release()
  })

  it('a waiter cancelled just as it is granted gives the permit back, once', async ({ c, sem }) => {
    const name = uniqueName('race')
    const a = sem(1, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    for (let i = 0; i < 20; i++) {
      await a.acquire()
      const ac = new AbortController()
      const p = b.acquire(1, { signal: ac.signal })
      await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
      a.release()
      // Abort somewhere around the grant.
      await sleep(i % 3)
      ac.abort(new Error('late'))
      const won = await p.then(
        () => true,
        () => false
      )
      if (won) b.release()
      await until(async () => Number(await raw(c, 'HGET', keys(name).meta, 'used')) === 0)
    }
    assert.equal(typeof (await a.tryAcquire()), 'number')
    a.release()
  })

  it('tryAcquire takes free permits, and never jumps the queue', async ({ c, sem }) => {
    const name = uniqueName('try')
    const a = sem(2, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    assert.equal(typeof (await a.tryAcquire(2)), 'number')
    assert.equal(await b.tryAcquire(), false)
    const waiting = b.acquire(2)
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    a.release()
    // One permit is free, but a waiter is first.
    assert.equal(await a.tryAcquire(), false)
    a.release()
    await waiting
    b.release(2)
  })

  it('a close() whose call to Redis is lost still gives the permits back while the process renews its lease', async ({
    c,
    sem
  }) => {
    const name = uniqueName('lostclose')
    const a = sem(2, { name, leaseMillis: 600 })
    // b keeps the process busy, so its lease is renewed and never lapses:
    // only a close that reaches Redis frees what a held.
    const b = sem(undefined, { name, leaseMillis: 600 })
    await a.acquire()
    await b.acquire()
    const key = kind === 'ioredis' ? 'call' : 'sendCommand'
    const orig = c[key]
    let closes = 0
    c[key] = function (...args) {
      if (args.flat().includes('close') && ++closes === 1) {
        return Promise.reject(new Error('connection lost (test)'))
      }
      return orig.apply(this, args)
    }
    try {
      await a.close()
      await until(
        async () => Number(await raw(c, 'HGET', keys(name).meta, 'used')) === 1,
        5000,
        "a's permit back in Redis"
      )
    } finally {
      c[key] = orig
    }
    assert.equal(b.held, 1)
    b.release()
  })

  it('close() releases what it holds and rejects its waiters; others go on', async ({ c, sem }) => {
    const name = uniqueName('close')
    const a = sem(2, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    await a.acquire(2)
    const waiting = a.acquire()
    const other = b.acquire(2)
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 2)
    const rejected = assert.rejects(waiting, { code: 'ERR_SLUICE_CLOSED' })
    await a.close()
    await rejected
    await other
    await assert.rejects(a.acquire(), { code: 'ERR_SLUICE_CLOSED' })
    // One lease for the process (both objects' threads share it); a's
    // client is gone from Redis, b's is there.
    assert.equal(Number(await raw(c, 'ZCARD', keys(name).leases)), 1, 'one lease per process')
    assert.equal(Number(await raw(c, 'HLEN', keys(name).clients)), 1, 'only b is a client')
    b.release(2)
    await b[Symbol.asyncDispose]()
    assert.equal(Number(await raw(c, 'HLEN', keys(name).clients)), 0)
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 0)
  })

  it('first opener sets the permits; a different number or a missing gate is a RangeError', async ({
    sem
  }) => {
    const name = uniqueName('named')
    const a = sem(2, { name })
    await a.ready
    await assert.rejects(sem(3, { name }).ready, /has 2 permits in Redis, not 3/)
    await assert.rejects(sem(3, { name }).acquire(), RangeError)
    await sem(2, { name }).ready
    await assert.rejects(sem(undefined, { name: uniqueName('none') }).ready, /No gate named/)
    await assert.rejects(a.acquire(3), RangeError)
  })

  it('setting permits changes them for the fleet and grants who now fits', async ({ c, sem }) => {
    const name = uniqueName('permits')
    const a = sem(1, { name })
    const b = sem(undefined, { name })
    await Promise.all([a.ready, b.ready])
    await a.acquire()
    const waiting = b.acquire()
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    await b.setPermits(2)
    await waiting
    await a.refresh()
    assert.equal(a.permits, 2)
    // Lowering below a queued request refuses it.
    const big = b.acquire(2)
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    await a.setPermits(1)
    await assert.rejects(big, /can never be granted/)
    a.release()
    b.release()
  })

  it('a lapsed lease: its permits go to the next waiter, leaseLost is emitted, its release is a no-op', async ({
    c,
    sem
  }) => {
    const name = uniqueName('lease')
    const a = sem(1, { name, leaseMillis: 300 })
    const b = sem(undefined, { name, leaseMillis: 300 })
    await Promise.all([a.ready, b.ready])
    const t1 = await a.acquire()
    const lost = new Promise((resolve) => a.once('leaseLost', resolve))
    const waiting = b.acquire()
    // As if the process had been paused past its lease: Redis expires it.
    // Both objects are of this process, so b's waiter is reaped too, and
    // queues again (at the back of an empty queue).
    await until(async () => Number(await raw(c, 'ZCARD', keys(name).queue)) === 1)
    const [member] = await raw(c, 'ZRANGE', keys(name).leases, '0', '0')
    assert.ok(member)
    await raw(c, 'ZADD', keys(name).leases, '0', member)
    const t2 = await waiting
    assert.ok(t2 > t1, 'the new holder has a higher token')
    const info = await lost
    assert.equal(info.permits, 1)
    a.release() // a no-op, not a double release
    await sleep(50)
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 1)
    assert.throws(() => a.release(), RangeError)
    b.release()
  })

  it('a loop busy twice for less than the lease, with a renewal unread between, keeps the lease', async ({
    c,
    sem
  }) => {
    const spin = (ms) => {
      for (const end = Date.now() + ms; Date.now() < end;);
    }
    const s = sem(1, { name: uniqueName('busy'), leaseMillis: 1000 })
    let lost = 0
    s.on('leaseLost', () => lost++)
    await s.acquire()
    // The next renewal is sent, then the loop is busy 500 ms before its reply
    // is read (an interval tick comes meanwhile), then busy 600 ms more.
    const key = kind === 'ioredis' ? 'call' : 'sendCommand'
    const orig = c[key]
    let armed = true
    c[key] = function (...args) {
      const p = orig.apply(this, args)
      if (armed && args.flat().includes('lease')) {
        armed = false
        // ioredis has written the command by now, node-redis writes it in a
        // setImmediate queued before this one: either way before the spin.
        if (kind === 'ioredis') spin(500)
        else setImmediate(() => spin(500))
        p.then(() => setTimeout(() => spin(600), 0))
      }
      return p
    }
    try {
      await until(() => !armed, 5000, 'a renewal')
      await sleep(1500)
    } finally {
      c[key] = orig
    }
    assert.equal(lost, 0)
    assert.equal(s.held, 1)
    s.release()
  })

  it('a release that is the first call after Redis lost the gate counts what is still held', async ({
    c,
    sem
  }) => {
    const name = uniqueName('lostrel')
    const a = sem(2, { name, leaseMillis: 300 })
    const b = sem(undefined, { name, leaseMillis: 300 })
    await Promise.all([a.ready, b.ready])
    await a.acquire(2)
    await raw(c, 'DEL', ...Object.values(keys(name)))
    a.release(1)
    await until(async () => (await raw(c, 'HGET', keys(name).meta, 'used')) !== null)
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 1)
    // Past the grace of the re-created gate: b must still not get 2.
    assert.equal(await b.acquire(2, { timeout: 700 }).catch((e) => e.name), 'TimeoutError')
    a.release(1)
    assert.equal(typeof (await b.acquire(2)), 'number')
    b.release(2)
  })

  it('a release whose reply was lost, retried after Redis lost the gate and a renewal re-created it, applies once', async ({
    c,
    sem
  }) => {
    const name = uniqueName('lostreply')
    const a = sem(2, { name, leaseMillis: 300 })
    await a.acquire(2)
    const key = kind === 'ioredis' ? 'call' : 'sendCommand'
    const orig = c[key]
    let releases = 0
    c[key] = function (...args) {
      const p = orig.apply(this, args)
      if (!args.flat().includes('release') || ++releases > 1) return p
      // Applied, then Redis loses the gate, then the reply is lost; a
      // renewal re-creates the gate before the release is sent again.
      return p.then(async () => {
        await raw(c, 'DEL', ...Object.values(keys(name)))
        await sleep(400)
        throw new Error('connection lost (test)')
      })
    }
    try {
      a.release(1)
      await until(() => releases >= 2, 5000, 'the retried release')
      await sleep(100)
    } finally {
      c[key] = orig
    }
    assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 1)
    a.release(1)
    await until(async () => Number(await raw(c, 'HGET', keys(name).meta, 'used')) === 0)
  })

  it('NOSCRIPT (a restart or Redis 7.4 evicting scripts) falls back to EVAL', async ({
    c,
    sem
  }) => {
    const name = uniqueName('noscript')
    const a = sem(1, { name })
    await a.acquire()
    a.release()
    await raw(c, 'SCRIPT', 'FLUSH')
    await a.acquire()
    a.release()
  })

  it('pLimit({ concurrency, name, redis }) limits across limiters and counts from Redis', async ({
    c
  }) => {
    const name = uniqueName('plimit')
    const l1 = pLimit({ concurrency: 2, name, redis: c })
    const l2 = pLimit({ name, redis: c })
    try {
      let active = 0
      let max = 0
      const task = async (x) => {
        active++
        max = Math.max(max, active)
        await sleep(5)
        active--
        return x * 2
      }
      const results = await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => l1(task, i)),
        ...Array.from({ length: 10 }, (_, i) => l2(task, i))
      ])
      assert.equal(max, 2)
      assert.equal(results[9], 18)
      assert.deepEqual(await l2.map([1, 2], (x) => x + 1), [2, 3])
      assert.equal(l2.concurrency, 2)
      await assert.rejects(
        l1(() => {
          throw new Error('sync')
        }),
        /sync/
      )
      assert.equal(l1.localActiveCount, 0)
      assert.equal(l1.localPendingCount, 0)
    } finally {
      await l1.close()
      await l2.close()
    }
  })
}

test('bad input: TypeError/RangeError naming the argument', { skip }, async () => {
  const c = await connect('ioredis', URL)
  try {
    assert.throws(() => new Semaphore(1, { redis: {}, name: 'x' }), /options\.redis/)
    // Look-alikes: the shape checks, not a crash inside.
    const calls = { call() {}, defineCommand() {} }
    assert.throws(() => new Semaphore(1, { redis: calls, name: 'x' }), /options\.redis/)
    const dup = { sendCommand() {}, duplicate() {}, on() {} }
    assert.throws(() => new Semaphore(1, { redis: dup, name: 'x' }), /options\.redis/)
    assert.throws(() => new Semaphore(1, { redis: c }), /options\.name/)
    assert.throws(() => new Semaphore(1, { redis: c, name: '' }), RangeError)
    assert.throws(() => new Semaphore(-1, { redis: c, name: 'x' }), /permits/)
    assert.throws(() => new Semaphore(1, { redis: c, name: 'x', leaseMillis: 5 }), /leaseMillis/)
    assert.throws(() => new Semaphore(1, { redis: c, name: 'x', leaseMillis: '1' }), TypeError)
    assert.throws(() => pLimit({ concurrency: 0, redis: c, name: 'x' }), /concurrency/)
    assert.throws(() => pLimit({ concurrency: 1, redis: 5, name: 'x' }), /redis/)
    const s = new Semaphore(1, { redis: c, name: uniqueName('bad') })
    assert.throws(() => s.acquire(0), /`n`/)
    assert.throws(() => s.acquire(1, { priority: 1.5 }), /priority/)
    assert.throws(() => s.acquire(1, { signal: {} }), /signal/)
    assert.throws(() => s.acquire(1, { timeout: -1 }), /timeout/)
    assert.throws(() => s.release(1), RangeError)
    assert.throws(() => (s.permits = -1), /permits/)
    await s.close()
  } finally {
    await disconnect(c)
  }
})

test(
  'a limiter closed while a task runs: the task ends with its own result, waiters reject',
  { skip },
  async () => {
    const c = await connect('node-redis', URL)
    try {
      const limit = pLimit({ concurrency: 1, name: uniqueName('closerun'), redis: c })
      let finish
      const gate = new Promise((r) => (finish = r))
      const running = limit(async () => {
        await gate
        return 'done'
      })
      const queued = limit(() => 'never')
      const rejected = assert.rejects(queued, { code: 'ERR_SLUICE_CLOSED' })
      await until(() => limit.localActiveCount === 1 && limit.localPendingCount === 1)
      const closing = limit.close()
      await rejected
      finish()
      assert.equal(await running, 'done')
      await closing
    } finally {
      await disconnect(c)
    }
  }
)

test(
  'a process that quits its client exits without close(); one with a waiter stays until granted',
  { skip },
  async () => {
    const { spawn } = require('node:child_process')
    // One process per client kind: the first takes and keeps a permit, quits
    // its client; the second waits for a permit the parent holds, with its
    // client unref'd, and must not exit before it is granted.
    const script = (kind, name, mode) => `
      const { Semaphore } = require(${JSON.stringify(require.resolve('../lib/index.js'))})
      const { connect } = require(${JSON.stringify(require.resolve('./support/redis.js'))})
      ;(async () => {
        const c = await connect(${JSON.stringify(kind)}, ${JSON.stringify(URL)})
        const s = new Semaphore(1, { redis: c, name: ${JSON.stringify(name)} })
        if (${JSON.stringify(mode)} === 'hold') {
          await s.acquire()
          await c.quit()
          return
        }
        if (c.stream) c.stream.unref()
        else c.unref()
        process.stdout.write('waiting\\n')
        await s.acquire()
        process.stdout.write('granted\\n')
        s.release()
        await c.quit()
      })()`
    const run = (src, onOut) =>
      new Promise((resolve) => {
        const p = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        p.stdout.setEncoding('utf8').on('data', (d) => {
          out += d
          if (onOut) onOut(out)
        })
        const kill = setTimeout(() => p.kill('SIGKILL'), 15000)
        p.on('exit', (code, signal) => {
          clearTimeout(kill)
          resolve({ code, signal, out })
        })
      })
    const c = await connect('ioredis', URL)
    try {
      for (const kind of KINDS) {
        const held = await run(script(kind, uniqueName('exit'), 'hold'))
        assert.deepEqual([held.code, held.signal], [0, null], `${kind}: exits after quit`)
        const name = uniqueName('keepalive')
        const holder = new Semaphore(1, { redis: c, name })
        await holder.acquire()
        let released = false
        const waited = await run(script(kind, name, 'wait'), (out) => {
          if (out.includes('waiting') && !released) {
            released = true
            setTimeout(() => holder.release(), 500)
          }
        })
        await holder.close()
        assert.deepEqual([waited.code, waited.signal, waited.out], [0, null, 'waiting\ngranted\n'])
      }
    } finally {
      await disconnect(c)
    }
  }
)

test(
  'a name of 512 characters works whatever its UTF-8 length; 513 is a RangeError',
  { skip },
  async () => {
    const c = await connect('ioredis', URL)
    const name = '€'.repeat(511) + uniqueName('').slice(-1) // 512 characters, 1,534 bytes
    const sem = new Semaphore(1, { name, redis: c })
    try {
      assert.equal(typeof (await sem.acquire()), 'number')
      assert.equal(Number(await raw(c, 'HGET', keys(name).meta, 'used')), 1)
      sem.release()
      assert.throws(() => new Semaphore(1, { name: name + 'x', redis: c }), RangeError)
    } finally {
      await sem.close()
      await disconnect(c)
    }
  }
)
