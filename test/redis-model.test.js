'use strict'
// Model-based test of the Redis gate's Lua script (lib/redis/script.js):
// random sequences of acquire (with counts and priorities), cancel (abort or
// timeout), release, claims, lease expiry and permit changes from several
// simulated clients, run against Redis and against a plain-JS model of the
// gate, the whole Redis state compared with the model after every step:
// permits in use, each client's holding, the queue in order, the unclaimed
// grants, and the fencing tokens (one more per grant, in grant order).
// Each seed runs with ioredis and with node-redis.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fc = require('fast-check')
const { adapt } = require('../lib/redis/client.js')
const { KINDS, connect, disconnect, raw, uniqueName, keys } = require('./support/redis.js')
const { modelSeeds } = require('./support/model-seeds.js')

const URL = process.env.SLUICE_REDIS_URL
const skip = URL ? false : 'no Redis here: SLUICE_REDIS_URL is not set (npm test starts one)'
const { seeds } = modelSeeds([1, 2, 3])
// Clients "<process>.<stake id>": two in process m1, one in m2 and m3. A
// lease is a process's.
const CLIENTS = ['m1.1', 'm1.2', 'm2.1', 'm3.1']
const proc = (client) => client.slice(0, client.indexOf('.'))
const LEASE = 600000

const opArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('acquire'),
      c: fc.nat(3),
      n: fc.integer({ min: 1, max: 4 }),
      prio: fc.integer({ min: -1, max: 1 })
    })
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel'), pick: fc.nat(50) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('release'),
      c: fc.nat(3),
      n: fc.integer({ min: 1, max: 4 })
    })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('expire'), c: fc.nat(3), by: fc.nat(3) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('permits'), p: fc.integer({ min: 1, max: 6 }) })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('renew'), c: fc.nat(3) }) },
  // A client's object is gone (collected, its thread ended): the lead of its
  // process (the other client of m1) reaps it with the 'lease' op.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('gone'), c: fc.nat(1) }) }
)

class Model {
  constructor(permits) {
    this.permits = permits
    this.used = 0
    this.held = new Map() // client -> n
    this.queue = [] // { ticket, n, prio, seq }
    this.grants = new Map() // ticket -> { n, token }
    this.leased = new Set() // processes
    // Clients with anything in the gate since they were last told of a reap
    // (the script's `clients` hash), and those reaped and not told yet.
    this.registered = new Set()
    this.marked = new Set()
    this.seq = 0
    this.granted = [] // tickets in grant order
  }

  order() {
    this.queue.sort((a, b) => b.prio - a.prio || a.seq - b.seq)
  }

  fits(n) {
    return this.used + n <= this.permits
  }

  dispatch() {
    this.order()
    while (this.queue.length > 0 && this.fits(this.queue[0].n)) {
      const w = this.queue.shift()
      const client = w.ticket.slice(0, w.ticket.lastIndexOf('.'))
      this.used += w.n
      this.held.set(client, (this.held.get(client) || 0) + w.n)
      this.grants.set(w.ticket, { n: w.n })
      this.granted.push(w.ticket)
      this.registered.add(client)
    }
  }

  reap(client, mark = true) {
    this.used -= this.held.get(client) || 0
    this.held.delete(client)
    this.queue = this.queue.filter((w) => !w.ticket.startsWith(client + '.'))
    for (const t of [...this.grants.keys()]) if (t.startsWith(client + '.')) this.grants.delete(t)
    if (mark && this.registered.delete(client)) this.marked.add(client)
    this.registered.delete(client)
  }
}

for (const kind of KINDS) {
  for (const seed of seeds) {
    test(`${kind}: the Lua script against a model, seed ${seed}`, { skip }, async () => {
      const c = await connect(kind, URL)
      const adapter = adapt(c)
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 1, max: 5 }),
            fc.array(opArb, { minLength: 1, maxLength: 40 }),
            async (permits, ops) => {
              const name = uniqueName('model')
              const K = keys(name)
              const keyList = Object.values(K)
              const m = new Model(permits)
              const state = new Map(CLIENTS.map((id) => [id, { seq: 0, rseq: 0, claims: [] }]))
              const tickets = [] // every ticket made, for cancel to pick from
              let lastToken = 0
              const call = async (client, op, extra, createPermits = String(m.permits)) => {
                const s = state.get(client)
                const claims = s.claims.splice(0).join(' ')
                const reply = (
                  await adapter.run(keyList, [
                    op,
                    client,
                    String(LEASE),
                    '',
                    '0',
                    '0',
                    claims,
                    createPermits,
                    ...extra
                  ])
                ).map(String)
                return { status: reply[0], a: reply[1], b: reply[2], flags: reply[7] }
              }
              // A call's prelude reaps expired leases and, for most ops, gives
              // the caller a lease.
              // It returns whether the caller is told it was reaped (flag 'l').
              const prelude = (client, op) => {
                for (const q of [...m.leased]) {
                  if (!m.expired?.has(q)) continue
                  m.leased.delete(q)
                  for (const cl of CLIENTS) if (proc(cl) === q) m.reap(cl)
                }
                m.expired = new Set()
                if (op !== 'open') m.leased.add(proc(client))
                return m.marked.delete(client)
              }
              const claimGrants = (client) => {
                // The client learns of its grants (as from messages) and
                // claims them in its next call.
                for (const [t] of m.grants) {
                  if (t.startsWith(client + '.')) state.get(client).claims.push(t)
                }
              }
              const applyClaims = (client) => {
                for (const t of state.get(client).claims) m.grants.delete(t)
              }

              await call(CLIENTS[0], 'open', [String(permits)])
              m.expired = new Set()
              for (const step of ops) {
                const before = m.granted.length
                if (step.op === 'acquire') {
                  const client = CLIENTS[step.c]
                  const s = state.get(client)
                  const ticket = `${client}.${++s.seq}`
                  tickets.push(ticket)
                  applyClaims(client)
                  prelude(client, 'acquire')
                  const r = await call(client, 'acquire', [
                    ticket,
                    String(step.n),
                    String(step.prio),
                    '0'
                  ])
                  if (step.n > m.permits) {
                    assert.equal(r.status, 'toolarge')
                    m.dispatch()
                  } else {
                    m.queue.push({ ticket, n: step.n, prio: step.prio, seq: ++m.seq })
                    m.registered.add(client)
                    m.dispatch()
                    assert.equal(r.status, m.grants.has(ticket) ? 'granted' : 'queued')
                  }
                } else if (step.op === 'cancel') {
                  if (tickets.length === 0) continue
                  const ticket = tickets[step.pick % tickets.length]
                  const client = ticket.slice(0, ticket.lastIndexOf('.'))
                  applyClaims(client)
                  prelude(client, 'cancel')
                  const r = await call(client, 'cancel', [ticket])
                  const qi = m.queue.findIndex((w) => w.ticket === ticket)
                  if (qi >= 0) {
                    m.queue.splice(qi, 1)
                    assert.equal(r.status, 'removed')
                  } else if (m.grants.has(ticket)) {
                    const { n } = m.grants.get(ticket)
                    m.grants.delete(ticket)
                    m.used -= n
                    const h = m.held.get(client) - n
                    if (h > 0) m.held.set(client, h)
                    else m.held.delete(client)
                    assert.equal(r.status, 'released')
                  } else {
                    assert.equal(r.status, 'unknown')
                  }
                  m.dispatch()
                } else if (step.op === 'release') {
                  const client = CLIENTS[step.c]
                  const s = state.get(client)
                  claimGrants(client)
                  applyClaims(client)
                  prelude(client, 'release')
                  const h = m.held.get(client) || 0
                  const r = await call(client, 'release', [String(step.n), String(++s.rseq)])
                  const n = Math.min(h, step.n)
                  assert.equal(r.status, h < step.n ? 'short' : 'ok')
                  m.used -= n
                  if (h - n > 0) m.held.set(client, h - n)
                  else m.held.delete(client)
                  m.dispatch()
                } else if (step.op === 'expire') {
                  const client = CLIENTS[step.c]
                  if (!m.leased.has(proc(client))) continue
                  await raw(c, 'ZADD', K.leases, '0', proc(client))
                  m.expired.add(proc(client))
                  const by = CLIENTS[step.by]
                  applyClaims(by)
                  const told = prelude(by, 'renew')
                  const r = await call(by, 'renew', [])
                  assert.equal(r.flags.includes('l'), told, `flag l after ${JSON.stringify(step)}`)
                  m.dispatch()
                } else if (step.op === 'permits') {
                  applyClaims(CLIENTS[0])
                  prelude(CLIENTS[0], 'permits')
                  await call(CLIENTS[0], 'permits', [String(step.p)], String(step.p))
                  m.permits = step.p
                  m.queue = m.queue.filter((w) => w.n <= step.p)
                  m.dispatch()
                } else if (step.op === 'gone') {
                  const gone = CLIENTS[step.c]
                  const lead = CLIENTS[1 - step.c]
                  applyClaims(lead)
                  prelude(lead, 'lease')
                  const r = await call(lead, 'lease', ['1000', lead.split('.')[1]])
                  const had = m.registered.has(gone)
                  m.reap(gone, false)
                  state.get(gone).claims = []
                  assert.equal(r.a, had ? '1' : '0', `reaped after ${JSON.stringify(step)}`)
                  m.dispatch()
                } else if (step.op === 'renew') {
                  const client = CLIENTS[step.c]
                  applyClaims(client)
                  prelude(client, 'renew')
                  await call(client, 'renew', [])
                  m.dispatch()
                }
                // Compare the whole state.
                const meta = await raw(c, 'HGETALL', K.meta)
                const metaObj = Array.isArray(meta)
                  ? Object.fromEntries(
                      meta.reduce((a, v, i) => (i % 2 ? a : [...a, [v, meta[i + 1]]]), [])
                    )
                  : meta
                assert.equal(Number(metaObj.used), m.used, `used after ${JSON.stringify(step)}`)
                assert.equal(Number(metaObj.permits), m.permits)
                assert.ok(m.used >= 0)
                const held = await raw(c, 'HGETALL', K.held)
                const heldPairs = Array.isArray(held) ? held : Object.entries(held).flat()
                const heldMap = new Map()
                for (let i = 0; i < heldPairs.length; i += 2) {
                  if (!String(heldPairs[i]).includes('#'))
                    heldMap.set(String(heldPairs[i]), Number(heldPairs[i + 1]))
                }
                assert.deepEqual(heldMap, m.held, `held after ${JSON.stringify(step)}`)
                const queue = (await raw(c, 'ZRANGE', K.queue, '0', '-1')).map(
                  (x) => String(x).split(' ')[2]
                )
                m.order()
                assert.deepEqual(
                  queue,
                  m.queue.map((w) => w.ticket),
                  `queue after ${JSON.stringify(step)}`
                )
                const grants = await raw(c, 'HGETALL', K.grants)
                const grantPairs = Array.isArray(grants) ? grants : Object.entries(grants).flat()
                const grantTickets = []
                const tokenOf = new Map()
                for (let i = 0; i < grantPairs.length; i += 2) {
                  grantTickets.push(String(grantPairs[i]))
                  tokenOf.set(
                    String(grantPairs[i]),
                    Number(String(grantPairs[i + 1]).split(' ')[1])
                  )
                }
                assert.deepEqual(
                  grantTickets.sort(),
                  [...m.grants.keys()].sort(),
                  `grants after ${JSON.stringify(step)}`
                )
                // Tokens: one more per grant, in the model's grant order.
                for (const t of m.granted.slice(before)) {
                  assert.ok(tokenOf.has(t), `the grant of ${t} is recorded`)
                  const token = tokenOf.get(t)
                  if (lastToken !== 0) assert.equal(token, lastToken + 1, `token of ${t}`)
                  lastToken = token
                }
              }
              await raw(c, 'DEL', ...keyList)
            }
          ),
          { seed, numRuns: 200 }
        )
      } finally {
        await disconnect(c)
      }
    })
  }
}
