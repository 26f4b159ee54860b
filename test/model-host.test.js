'use strict'
// Model-based test of scope: 'host': random operations from three processes
// on one host-wide Semaphore, each step checked against the gate model of
// the in-process gate (test/support/gate-model.js).
//
// Grants cross processes asynchronously (a release in one process wakes a
// waiter in another through its helper thread and doorbell), so after
// every step the test waits until the processes' reports match the model,
// and fails with the difference if they do not within a few seconds. The
// order of grants is decided under the segment's lock at the release, so
// the outcome the model predicts is exact, not just eventual: a wrong
// waiter granted, a permit lost or doubled, shows up as a difference.
//
// Seeds: fixed (test/support/model-seeds.js); SLUICE_MODEL_SEED adds one.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { fork } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { GateModel } = require('./support/gate-model.js')
const { modelSeeds } = require('./support/model-seeds.js')

const CHILD = path.join(__dirname, 'support', 'host-child.js')
const { seeds: SEEDS } = modelSeeds([0x4051, 0x4052, 0x4053, 0x4054])
const STEPS = 250
const PROCS = 3
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// mulberry32: a small seeded PRNG.
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function driven() {
  const child = fork(CHILD, ['driven', '{}'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const replies = new Map()
  const status = new Map() // id -> 'granted' | 'aborted' | 'refused'
  let seq = 0
  let ready
  const started = new Promise((resolve) => (ready = resolve))
  child.on('message', (m) => {
    if (m.ready) ready()
    else if (m.event) status.set(m.id, m.event)
    else {
      replies.get(m.seq)(m)
      replies.delete(m.seq)
    }
  })
  return {
    child,
    status,
    started,
    call(msg) {
      return new Promise((resolve) => {
        replies.set(++seq, resolve)
        child.send({ ...msg, seq })
      })
    }
  }
}

async function run(seed, t) {
  const rand = prng(seed)
  const pick = (n) => Math.floor(rand() * n)
  const name = `model-host-${process.pid}-${seed}`
  const permits = 1 + pick(3)
  const m = new GateModel(permits)
  const procs = Array.from({ length: PROCS }, driven)
  const held = new Array(PROCS).fill(0)
  const owner = new Map() // waiter id -> process
  const counted = new Set()
  const ran = {}
  try {
    await Promise.all(procs.map((p) => p.started))
    // The first opener creates it with `permits`; the others attach.
    for (const p of procs) await p.call({ op: 'counts', name, permits })
    let id = 0
    for (let step = 0; step < STEPS; step++) {
      const k = pick(PROCS)
      const p = procs[k]
      const r = rand()
      let op
      if (r < 0.4) {
        op = 'acquire'
        const w = { id: ++id, n: 1 + pick(2), priority: pick(3), timeout: 0 }
        owner.set(w.id, k)
        m.acquire(w)
        await p.call({ op, name, id: w.id, n: w.n, priority: w.priority })
      } else if (r < 0.55) {
        const queued = m.queue.filter((w) => owner.get(w.id) === k)
        if (queued.length === 0) continue
        op = 'abort'
        const w = queued[pick(queued.length)]
        m.remove(w.id, 'aborted')
        await p.call({ op, name, id: w.id })
      } else if (r < 0.85) {
        if (held[k] === 0) continue
        op = 'release'
        const n = 1 + pick(held[k])
        held[k] -= n
        m.release(n, Infinity)
        await p.call({ op, name, n })
      } else if (r < 0.95) {
        op = 'tryAcquire'
        const n = 1 + pick(2)
        const expect = m.tryTake(n)
        if (expect) held[k] += n
        const got = await p.call({ op, name, n })
        assert.equal(got.ok, expect, `step ${step}: tryAcquire(${n}) in process ${k}`)
      } else {
        op = 'setPermits'
        const to = 1 + pick(4)
        m.setPermits(to)
        m.dispatch()
        await p.call({ op, name, permits: to })
      }
      ran[op] = (ran[op] || 0) + 1
      // Newly granted waiters hold permits in their process.
      for (const gid of m.idsWith('granted')) {
        if (!counted.has(gid)) {
          counted.add(gid)
          held[owner.get(gid)] += m.waiter.get(gid).n
        }
      }
      // Wait for the processes to agree with the model.
      const want = new Map()
      for (const [wid, s] of m.status) if (s !== 'queued') want.set(wid, s)
      const end = Date.now() + 5000
      let diff
      for (;;) {
        diff = []
        for (const [wid, s] of want) {
          const got = procs[owner.get(wid)].status.get(wid)
          if (got !== s) diff.push(`waiter ${wid}: model ${s}, process ${got}`)
        }
        for (const [k2, p2] of procs.entries()) {
          for (const [wid, s] of p2.status) {
            if (owner.get(wid) === k2 && !want.has(wid))
              diff.push(`waiter ${wid}: model queued, process ${s}`)
          }
        }
        if (diff.length === 0) break
        if (Date.now() > end) break
        await sleep(2)
      }
      assert.deepEqual(diff, [], `seed ${seed}, step ${step} (${op} in process ${k})`)
      const c = await procs[pick(PROCS)].call({ op: 'counts', name })
      assert.deepEqual(
        { available: c.available, pending: c.pending, permits: c.permits },
        { available: m.available, pending: m.pending, permits: m.permits },
        `seed ${seed}, step ${step}: counts`
      )
    }
    for (const s of m.status.values()) ran[`waiter ${s}`] = (ran[`waiter ${s}`] || 0) + 1
    t.diagnostic(`seed ${seed}: ${JSON.stringify(ran)}`)
    return ran
  } finally {
    // Killed: they cannot detach, so the file stays (the next opener would
    // recover it); remove it.
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => new Promise((resolve) => p.child.once('exit', resolve))))
    fs.rmSync(`/dev/shm/sluice-${process.geteuid()}-${name}`, { force: true })
  }
}

test(
  'Semaphore with scope "host" against the gate model, over three processes',
  { skip: process.platform === 'linux' ? false : "scope: 'host' is Linux-only for now" },
  async (t) => {
    const total = {}
    for (const seed of SEEDS) {
      const ran = await run(seed, t)
      for (const [k, v] of Object.entries(ran)) total[k] = (total[k] || 0) + v
    }
    // Every kind of step ran and every outcome happened: a generator that
    // stops producing a case fails here instead of checking less.
    for (const op of ['acquire', 'abort', 'release', 'tryAcquire', 'setPermits'])
      assert.ok(total[op] > 0, `no ${op} ever ran`)
    for (const s of ['granted', 'aborted', 'refused', 'queued'])
      assert.ok(total[`waiter ${s}`] > 0, `no waiter ever ended ${s}`)
  }
)
