'use strict'
// The differential runner for sluice/pg-pool against the real pg-pool 3.14
// (test/pg-pool.test.js): the same commands on both pools, against the same
// PostgreSQL, and one log per pool that must be identical.
//
// A command runs, then the runner waits until the pool is quiet (every
// operation either settled or waiting in the pool's queue, every client that
// left the pool's counts reported 'remove'), so each step compares a state
// that no longer depends on how fast the server answered. The log holds, in
// order: every pool event (clients named c1, c2... in the order of their
// 'connect' event), every settlement of an operation the test started
// (connect, query, end: its value or error message), every synchronous
// throw, and the counters at the end of each step.
const PgPool = require('pg-pool')
const SluicePool = require('../../lib/pg-pool.js')

const IMPLS = { 'pg-pool': PgPool, sluice: SluicePool }

// SLUICE_PG_NATIVE=1: pg-native clients (libpq connections) on both pools.
function defaultClient() {
  const pg = require('pg')
  return process.env.SLUICE_PG_NATIVE ? pg.native.Client : pg.Client
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Runner {
  constructor(Impl, options, Client) {
    this.log = []
    this.ids = new Map()
    this.nextId = 1
    this.held = []
    this.pending = 0
    this.connects = 0
    this.removes = 0
    this.ops = 0
    const pool = new Impl(options, Client || defaultClient())
    this.pool = pool
    pool.on('connect', (c) => {
      this.connects++
      this.log.push(`connect ${this.id(c)}`)
    })
    pool.on('acquire', (c) => this.log.push(`acquire ${this.id(c)}`))
    pool.on('release', (err, c) =>
      this.log.push(`release ${this.id(c)}${err ? ' ' + err.message : ''}`)
    )
    pool.on('remove', (c) => {
      this.removes++
      this.log.push(`remove ${this.id(c)}`)
    })
    pool.on('error', (err, c) => this.log.push(`error ${this.id(c)} ${err.message}`))
  }

  id(client) {
    if (!this.ids.has(client)) this.ids.set(client, `c${this.nextId++}`)
    return this.ids.get(client)
  }

  track(name, promise, fmt = (v) => v) {
    const n = ++this.ops
    this.pending++
    promise.then(
      (v) => {
        this.pending--
        this.log.push(`${name}#${n} ok ${fmt(v)}`)
      },
      (err) => {
        this.pending--
        this.log.push(`${name}#${n} err ${err.message}`)
      }
    )
    return n
  }

  counters() {
    const p = this.pool
    return `total=${p.totalCount} idle=${p.idleCount} waiting=${p.waitingCount} expired=${p.expiredCount} ending=${p.ending} ended=${p.ended}`
  }

  quietNow() {
    const p = this.pool
    return this.pending === p.waitingCount && this.connects - this.removes === p.totalCount
  }

  // Quiet for three polls in a row (a remove can trail its client's end by a
  // turn of the loop). Fails after `limit` ms: a step that never settles is a
  // hang, which is a finding, not a flake.
  async quiet(limit = 10000) {
    const t0 = Date.now()
    let n = 0
    while (n < 3) {
      await sleep(5)
      n = this.quietNow() ? n + 1 : 0
      if (Date.now() - t0 > limit) {
        throw new Error(`not quiet after ${limit} ms: pending=${this.pending} ${this.counters()}`)
      }
    }
  }

  connect() {
    this.track(
      'connect',
      this.pool.connect().then((c) => {
        this.held.push(c)
        return c
      }),
      (c) => this.id(c)
    )
  }

  connectCb() {
    const n = ++this.ops
    this.pending++
    this.pool.connect((err, client, done) => {
      this.pending--
      if (err) return this.log.push(`connectCb#${n} err ${err.message} done=${typeof done}`)
      this.held.push(client)
      this.log.push(`connectCb#${n} ok ${this.id(client)} done=${done === client.release}`)
    })
  }

  release(i, err) {
    if (this.held.length === 0) return this.log.push('release: nothing held')
    const [c] = this.held.splice(i % this.held.length, 1)
    try {
      c.release(err ? new Error('boom') : undefined)
    } catch (e) {
      this.log.push(`release threw ${e.message}`)
    }
  }

  query(sql = 'SELECT 1 AS x') {
    this.track('query', this.pool.query(sql), (r) =>
      r.rows.map((row) => JSON.stringify(row)).join()
    )
  }

  clientQuery(i) {
    if (this.held.length === 0) return this.log.push('clientQuery: nothing held')
    const c = this.held[i % this.held.length]
    this.track('clientQuery', c.query('SELECT 2 AS y'), (r) => r.rows[0].y)
  }

  end() {
    this.track('end', this.pool.end(), () => '')
  }

  // Releases everything held until nobody waits, then ends the pool. One
  // client at a time, quiet after each: released together, they could serve
  // two queued queries at once, on two backends, and the server decides
  // which answers first (the fuzz saw both orders on both pools).
  async shutdown() {
    for (let round = 0; round < 50; round++) {
      while (this.held.length > 0) {
        this.release(0, false)
        await this.quiet()
      }
      await this.quiet()
      if (this.held.length === 0 && this.pool.waitingCount === 0) break
    }
    this.end()
    await this.quiet()
    this.step('shutdown')
  }

  step(name) {
    this.log.push(`-- ${name}: ${this.counters()}`)
  }
}

// Runs `commands` (async functions of a Runner) on both pools side by side,
// each quiet after every command. `options` is an object, or a function
// making one per pool (hooks with state of their own). Returns
// { 'pg-pool': log, sluice: log }.
async function runBoth(options, commands, { Client } = {}) {
  const logs = {}
  await Promise.all(
    Object.entries(IMPLS).map(async ([name, Impl]) => {
      const opts = typeof options === 'function' ? options() : { ...options }
      const r = new Runner(Impl, opts, Client)
      try {
        for (let i = 0; i < commands.length; i++) {
          const label = await commands[i](r)
          await r.quiet()
          r.step(`${i} ${label || ''}`)
        }
        if (!r.pool.ending) await r.shutdown()
      } finally {
        logs[name] = r.log
        if (!r.pool.ending) r.pool.end().catch(() => {})
      }
    })
  )
  for (const name of Object.keys(logs)) logs[name] = normalize(logs[name])
  return logs
}

// Clients ended together report 'remove' in the order their sockets close,
// which the server decides, not the pool: a run of consecutive removes is
// compared as a set (sorted).
function normalize(log) {
  const out = []
  for (let i = 0; i < log.length;) {
    let j = i
    while (j < log.length && log[j].startsWith('remove ')) j++
    if (j > i) {
      out.push(...log.slice(i, j).sort())
      i = j
    } else out.push(log[i++])
  }
  return out
}

module.exports = { Runner, runBoth, IMPLS, sleep }
