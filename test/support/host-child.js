'use strict'
// A process of test/host.test.js and test/model-host.test.js: one role, given
// as argv[2], with its options as JSON in argv[3]. It reports on stdout, one
// line per event, or over the IPC channel when it has one (role `driven`).
const fs = require('node:fs')
const { Semaphore } = require('../../lib/index.js')
const pLimit = require('../../lib/p-limit.js')

const role = process.argv[2]
const opts = JSON.parse(process.argv[3] || '{}')
const say = (line) => fs.writeSync(1, line + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Waits for one line on stdin (the parent's go).
function go() {
  return new Promise((resolve) => {
    process.stdin.once('data', () => {
      process.stdin.destroy()
      resolve()
    })
  })
}

const roles = {
  // pLimit over the host: `tasks` tasks, each logging its start and end to
  // an O_APPEND file (one write each: atomic), so the parent can measure
  // the concurrency across processes without asking sluice.
  async limit() {
    const limit = pLimit({ concurrency: opts.concurrency, name: opts.name, scope: 'host' })
    const fd = fs.openSync(opts.log, 'a')
    say('ready')
    await go()
    await Promise.all(
      Array.from({ length: opts.tasks }, (_, i) =>
        limit(async () => {
          fs.writeSync(fd, `S ${process.pid} ${i}\n`)
          await sleep(i % 3)
          fs.writeSync(fd, `E ${process.pid} ${i}\n`)
        })
      )
    )
    say('done')
  },

  // Takes `n` permits and holds them until killed.
  async hold() {
    const sem = new Semaphore(opts.permits, { name: opts.name, scope: 'host' })
    await sem.acquire(opts.n)
    say('held')
    if (opts.exit) process.stdin.once('data', () => process.exit(0))
    else setInterval(() => {}, 1 << 30)
  },

  // Waits for `n` permits, says when it has them, releases and exits.
  async wait() {
    const sem = new Semaphore(opts.permits, { name: opts.name, scope: 'host' })
    const p = sem.acquire(opts.n, { priority: opts.priority || 0, timeout: opts.timeout || 0 })
    say(`queued ${sem.pending}`)
    await p
    say('got')
    if (opts.log) fs.appendFileSync(opts.log, `${opts.id}\n`)
    if (opts.hold) await sleep(opts.hold)
    sem.release(opts.n)
  },

  // Random acquires and releases until killed.
  async chaos() {
    const sem = new Semaphore(opts.permits, { name: opts.name, scope: 'host' })
    say('ready')
    for (;;) {
      const n = 1 + Math.floor(Math.random() * 2)
      const priority = Math.floor(Math.random() * 3)
      const ac = new AbortController()
      const t = Math.random() < 0.2 ? setTimeout(() => ac.abort(), Math.random() * 5) : undefined
      try {
        await sem.acquire(n, { priority, signal: ac.signal })
      } catch {
        continue // aborted
      } finally {
        clearTimeout(t)
      }
      await sleep(Math.random() * 3)
      sem.release(n)
    }
  },

  // Opens, takes every permit, checks that there is none more, reports.
  async all() {
    const sem = new Semaphore(opts.permits, { name: opts.name, scope: 'host' })
    await sem.acquire(opts.permits, { timeout: opts.timeout })
    const extra = sem.tryAcquire(1)
    say(`all ${sem.available} ${extra}`)
    sem.release(opts.permits)
  },

  // Holds one permit, then waits on the gate it holds itself: nothing else
  // can let it in, so the process must exit by itself.
  async selfwait() {
    const sem = new Semaphore(1, { name: opts.name, scope: 'host' })
    await sem.acquire()
    sem.acquire().then(() => say('never'))
    say('waiting')
  },

  // Prints the error of opening a host gate (another user's tests).
  async open() {
    try {
      const sem = new Semaphore(opts.permits, { name: opts.name, scope: 'host' })
      say(`opened ${sem.permits}`)
    } catch (err) {
      say(`error ${err.code} ${err.message}`)
    }
  },

  // Commands over IPC, for the model test: each message is one operation;
  // every outcome of a waiter is sent back as it happens.
  async driven() {
    const sems = new Map()
    const aborts = new Map()
    const sem = (name, permits) => {
      if (!sems.has(name)) sems.set(name, new Semaphore(permits, { name, scope: 'host' }))
      return sems.get(name)
    }
    process.on('message', (m) => {
      const s = sem(m.name, m.permits)
      const reply = (r) => process.send({ seq: m.seq, ...r })
      try {
        switch (m.op) {
          case 'acquire': {
            const ac = new AbortController()
            aborts.set(m.id, ac)
            s.acquire(m.n, { priority: m.priority, signal: ac.signal }).then(
              () => process.send({ event: 'granted', id: m.id }),
              (err) =>
                process.send({
                  event: err.name === 'AbortError' ? 'aborted' : 'refused',
                  id: m.id,
                  message: err.message
                })
            )
            return reply({ ok: true })
          }
          case 'abort':
            aborts.get(m.id).abort()
            return reply({ ok: true })
          case 'release':
            s.release(m.n)
            return reply({ ok: true })
          case 'tryAcquire':
            return reply({ ok: s.tryAcquire(m.n) })
          case 'setPermits':
            s.permits = m.permits
            return reply({ ok: true })
          case 'counts':
            return reply({ available: s.available, pending: s.pending, permits: s.permits })
        }
      } catch (err) {
        reply({ error: err.message })
      }
    })
    process.send({ ready: true })
  }
}

roles[role]().catch((err) => {
  say(`error ${err && err.stack}`)
  process.exitCode = 1
})
