'use strict'
// Model-based tests of the gate: random sequences of operations on a
// Semaphore and on a p-limit limiter, each step checked against a plain-JS
// reference model of the gate (permits, permits in use, a priority queue
// that is FIFO within a priority and blocks behind its head).
//
// After every step (microtasks drained, the event loop NOT entered, so no
// timer can fire in between) the real object must agree with the model:
// the same waiters granted, aborted and timed out (sets, so no permit is
// lost or handed out twice and order is respected: a wrong waiter granted
// shows up as a difference), every count equal, and never more permits in
// use than the limit allows at the moment of a grant.
//
// Timeouts: waiters with a short timeout (1-3 ms) fire only in an explicit
// `advance` step, which sleeps past every short deadline: all of them fire
// there, in the order of their deadlines, and nowhere else (the loop is
// entered only there). Waiters with a long timeout (an hour) exercise the
// timer's set-up and tear-down on grant, abort, clear and permits changes.
//
// Seeds: fixed ones, printed (test/support/model-seeds.js); SLUICE_MODEL_SEED=<n>
// adds one (to replay), SLUICE_MODEL_SEED=random explores, and
// SLUICE_MODEL_SCALE=<x> runs more or fewer sequences. A failure prints the
// shrunk command sequence and the seed/path to replay it.
//
// Each model (semaphore, p-limit) runs in a child process of its own, both
// at once: this file, with SLUICE_MODEL_GATE_CHILD=<model>, runs the model's
// seeds and prints what it ran. There no test runner is loaded: node:test's
// async hook, which tracks every promise to report activity after a test,
// took ~40% of the CPU of these promise-heavy sequences.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fc = require('fast-check')
const { modelSeeds } = require('./support/model-seeds.js')
const { GateModel } = require('./support/gate-model.js')
const { Semaphore, TimeoutError } = require('../lib/index.js')
const pLimit = require('../lib/p-limit.js')
const { binding } = require('../lib/binding.js')

const SCALE = Number(process.env.SLUICE_MODEL_SCALE || 1)
const { seeds: SEEDS, extra: EXTRA_SEED } = modelSeeds([0x51c1, 0x51c2, 0x51c3, 0x51c4])
const LONG = 3600 * 1000
const CHILD = process.env.SLUICE_MODEL_GATE_CHILD

// Drains microtasks without entering the event loop: promise chains settle,
// timers cannot fire.
async function flush() {
  for (let i = 0; i < 24; i++) await null
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const immediate = () => new Promise((resolve) => setImmediate(resolve))

// The model: test/support/gate-model.js (test/model-host.test.js uses it too).

let operations = 0
let sequences = 0
// What the sequences exercised: command runs by kind and the waiters'
// outcomes at the end of each sequence (as the model, which the real system
// matched, recorded them). Each property test asserts that every kind of
// command ran and every outcome happened: a generator that stops producing
// a case, or a precondition that is never met, fails the test instead of
// leaving a model test that checks less than it says.
const ran = new Map() // command class -> runs
const outcomes = new Map() // 'semaphore:granted', 'p-limit:cleared', ... -> waiters
const tally = (map, key) => map.set(key, (map.get(key) || 0) + 1)

// Follows a waiter's promise in the real system.
function follow(real, id, promise) {
  real.status.set(id, 'queued')
  promise.then(
    () => {
      real.status.set(id, 'granted')
    },
    (err) => {
      if (err instanceof TimeoutError) real.status.set(id, 'timedout')
      else if (err && err.name === 'AbortError') real.status.set(id, 'aborted')
      else if (err instanceof RangeError && /Cannot acquire/.test(err.message))
        real.status.set(id, 'refused')
      else real.status.set(id, 'error:' + (err && err.message))
    }
  )
}

function realIds(real, status) {
  const out = []
  for (const [id, s] of real.status) if (s === status) out.push(id)
  return out.sort((a, b) => a - b)
}

// ------------------------------------------------------------ semaphore --

function checkSemaphore(m, r) {
  const sem = r.sem
  assert.equal(sem.permits, m.permits, 'permits')
  assert.equal(sem.available, m.available, 'available')
  assert.equal(sem.pending, m.pending, 'pending')
  for (const s of ['granted', 'aborted', 'timedout', 'refused']) {
    assert.deepEqual(realIds(r, s), m.idsWith(s), s + ' waiters differ from the model')
  }
  assert.deepEqual(
    realIds(r, 'queued'),
    m.idsWith('queued'),
    'queued waiters differ from the model'
  )
  for (const [id, s] of r.status) assert.ok(!s.startsWith('error:'), `waiter ${id}: ${s}`)
  // Never over the limit: the model asserts that each of its grants fits,
  // and the real semaphore granted exactly the model's waiters.
}

class SemAcquire {
  constructor(n, priority, mode, timeout) {
    Object.assign(this, { n, priority, mode, timeout })
  }

  check() {
    return true
  }

  async run(m, r) {
    const id = r.nextId++
    const opts = {}
    if (this.priority !== 0 || this.mode !== 'plain') opts.priority = this.priority
    let ac
    if (this.mode === 'signal' || this.mode === 'both') {
      ac = new AbortController()
      opts.signal = ac.signal
      r.controllers.set(id, ac)
    }
    if (this.mode === 'timeout' || this.mode === 'both') opts.timeout = this.timeout
    const p = Object.keys(opts).length === 0 ? r.sem.acquire(this.n) : r.sem.acquire(this.n, opts)
    follow(r, id, p)
    m.acquire({ id, n: this.n, priority: this.priority, timeout: opts.timeout || 0 })
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return `acquire(${this.n}, {priority: ${this.priority}, ${this.mode}${this.mode === 'timeout' || this.mode === 'both' ? ' ' + this.timeout + 'ms' : ''}})`
  }
}

class SemAcquireAborted {
  check() {
    return true
  }
  async run(m, r) {
    const id = r.nextId++
    follow(r, id, r.sem.acquire(1, { signal: AbortSignal.abort() }))
    m.status.set(id, 'aborted')
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return 'acquire(1, {signal: aborted})'
  }
}

class SemAbort {
  constructor(k) {
    this.k = k
  }
  check() {
    return true
  }
  async run(m, r) {
    // The k-th waiter that has a signal, queued or not (aborting a granted
    // or settled one must change nothing).
    const ids = [...r.controllers.keys()]
    if (ids.length === 0) return
    const id = ids[this.k % ids.length]
    r.controllers.get(id).abort()
    r.controllers.delete(id)
    if (m.status.get(id) === 'queued') m.remove(id, 'aborted')
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return `abort(#${this.k})`
  }
}

class SemRelease {
  constructor(n) {
    this.n = n
  }
  check() {
    return true
  }
  async run(m, r) {
    if (this.n > m.inUse) {
      assert.throws(() => r.sem.release(this.n), RangeError)
    } else {
      r.sem.release(this.n)
      m.release(this.n, Infinity)
    }
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return `release(${this.n})`
  }
}

class SemTryAcquire {
  constructor(n) {
    this.n = n
  }
  check() {
    return true
  }
  async run(m, r) {
    assert.equal(r.sem.tryAcquire(this.n), m.tryTake(this.n), 'tryAcquire result')
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return `tryAcquire(${this.n})`
  }
}

class SemSetPermits {
  constructor(permits) {
    this.permits = permits
  }
  check() {
    return true
  }
  async run(m, r) {
    r.sem.permits = this.permits
    m.setPermits(this.permits)
    m.dispatch()
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return `permits = ${this.permits}`
  }
}

class SemAdvance {
  check(m) {
    return m.queue.some((w) => w.timeout > 0 && w.timeout < 100)
  }
  async run(m, r) {
    await sleep(5)
    await immediate()
    m.fireShortTimeouts()
    await flush()
    checkSemaphore(m, r)
  }

  toString() {
    return 'advance(5ms)'
  }
}

const semCommands = [
  fc
    .tuple(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: -2, max: 2 }),
      fc.constantFrom('plain', 'plain', 'signal', 'timeout', 'both'),
      fc.oneof(
        { weight: 3, arbitrary: fc.constant(LONG) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }
      )
    )
    .map(([n, p, mode, t]) => new SemAcquire(n, p, mode, t)),
  fc.constant(new SemAcquireAborted()),
  fc.nat(20).map((k) => new SemAbort(k)),
  fc.integer({ min: 1, max: 5 }).map((n) => new SemRelease(n)),
  fc.integer({ min: 1, max: 3 }).map((n) => new SemTryAcquire(n)),
  fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(Infinity)).map((p) => new SemSetPermits(p)),
  fc.constant(new SemAdvance())
].map((arb) => arb.map((c) => countOps(c)))

// Counts every command that actually runs against the real system.
function countOps(cmd) {
  const run = cmd.run
  if (!cmd.counted) {
    cmd.counted = true
    cmd.run = async function (m, r) {
      operations++
      tally(ran, this.constructor.name)
      return run.call(this, m, r)
    }
  }
  return cmd
}

async function runSemaphore(permits, cmds) {
  sequences++
  const model = new GateModel(permits)
  const real = { sem: new Semaphore(permits), status: new Map(), controllers: new Map(), nextId: 0 }
  try {
    await fc.asyncModelRun(() => ({ model, real }), cmds)
    for (const s of model.status.values()) tally(outcomes, 'semaphore:' + s)
  } finally {
    // Every waiter granted, so no timer is left armed (also after a failure).
    real.sem.permits = Infinity
    await flush()
  }
  assert.equal(real.sem.pending, 0)
  assert.deepEqual(realIds(real, 'queued'), [])
  const inUse = model.inUse + model.queue.reduce((s, w) => s + w.n, 0)
  if (inUse > 0) real.sem.release(inUse)
  real.sem.permits = 3
  assert.equal(real.sem.available, 3, 'every permit is back')
}

// -------------------------------------------------------------- p-limit --

function checkLimit(m, r) {
  const limit = r.limit
  assert.equal(limit.activeCount, m.inUse, 'activeCount')
  assert.equal(limit.pendingCount, m.pending, 'pendingCount')
  assert.equal(limit.concurrency, m.permits, 'concurrency')
  assert.deepEqual(
    [...r.started].sort((a, b) => a - b),
    m
      .idsWith('granted')
      .concat(m.idsWith('done'))
      .sort((a, b) => a - b),
    'started tasks differ from the model'
  )
  assert.deepEqual(realIds(r, 'aborted'), m.idsWith('cleared-rejected'), 'rejected on clear')
  for (const [id, s] of r.status) assert.ok(!s.startsWith('error:'), `task ${id}: ${s}`)
  assert.ok(r.overLimit === 0, 'a task started while the limit was reached')
}

class LimitAdd {
  check() {
    return true
  }
  async run(m, r) {
    const id = r.nextId++
    const p = r.limit(() => {
      // The permit was granted within the limit: at most `concurrency`
      // tasks hold one (more only after the limit was lowered, which never
      // preempts, and then no new task may start).
      if (r.running >= r.limit.concurrency) r.overLimit++
      r.running++
      r.started.add(id)
      return new Promise((resolve, reject) => r.deferred.set(id, { resolve, reject }))
    })
    r.status.set(id, 'queued')
    p.then(
      (v) => {
        r.status.set(id, 'done:' + v)
      },
      (err) => {
        r.status.set(
          id,
          err && err.name === 'AbortError'
            ? 'aborted'
            : err === 'task failed'
              ? 'done:failed'
              : 'error:' + err
        )
      }
    )
    m.acquire({ id, n: 1, priority: 0, timeout: 0 })
    await flush()
    checkLimit(m, r)
  }

  toString() {
    return 'limit(task)'
  }
}

class LimitFinish {
  constructor(k, ok) {
    Object.assign(this, { k, ok })
  }
  check(m) {
    return m.idsWith('granted').length > 0
  }
  async run(m, r) {
    const ids = m.idsWith('granted')
    const id = ids[this.k % ids.length]
    const d = r.deferred.get(id)
    r.deferred.delete(id)
    r.running--
    if (this.ok) d.resolve(id)
    else d.reject('task failed')
    m.status.set(id, 'done')
    m.release(1, 1) // p-limit's next(): one back, at most one started
    await flush()
    assert.equal(r.status.get(id), this.ok ? 'done:' + id : 'done:failed')
    checkLimit(m, r)
  }

  toString() {
    return `finish(#${this.k}, ${this.ok ? 'resolve' : 'reject'})`
  }
}

class LimitConcurrency {
  constructor(c) {
    this.c = c
  }
  check() {
    return true
  }
  async run(m, r) {
    r.limit.concurrency = this.c
    m.permits = this.c
    m.dispatch() // one microtask later, as p-limit
    await flush()
    checkLimit(m, r)
  }

  toString() {
    return `concurrency = ${this.c}`
  }
}

class LimitClear {
  check() {
    return true
  }
  async run(m, r) {
    r.limit.clearQueue()
    for (const w of m.queue) m.status.set(w.id, r.rejectOnClear ? 'cleared-rejected' : 'cleared')
    m.queue = []
    m.dispatch()
    await flush()
    checkLimit(m, r)
  }

  toString() {
    return 'clearQueue()'
  }
}

const limitCommands = [
  fc.constant(new LimitAdd()),
  fc.constant(new LimitAdd()),
  fc.tuple(fc.nat(10), fc.boolean()).map(([k, ok]) => new LimitFinish(k, ok)),
  fc.tuple(fc.nat(10), fc.boolean()).map(([k, ok]) => new LimitFinish(k, ok)),
  fc
    .oneof(fc.integer({ min: 1, max: 6 }), fc.constant(Infinity))
    .map((c) => new LimitConcurrency(c)),
  fc.constant(new LimitClear())
].map((arb) => arb.map((c) => countOps(c)))

async function runLimit(concurrency, rejectOnClear, cmds) {
  sequences++
  const model = new GateModel(concurrency)
  const real = {
    limit: pLimit({ concurrency, rejectOnClear }),
    rejectOnClear,
    status: new Map(),
    started: new Set(),
    deferred: new Map(),
    running: 0,
    overLimit: 0,
    nextId: 0
  }
  try {
    await fc.asyncModelRun(() => ({ model, real }), cmds)
    for (const s of model.status.values()) tally(outcomes, 'p-limit:' + s)
  } finally {
    // Clean up: drop what is queued, finish what runs.
    real.limit.clearQueue()
    for (const d of real.deferred.values()) d.resolve()
    await flush()
  }
  assert.equal(real.limit.activeCount, 0, 'every permit is back')
  assert.equal(real.limit.pendingCount, 0)
}

// ------------------------------------------------------------------ tests --

const RUNS = Math.max(1, Math.round(110 * SCALE))

// The two models: how a sequence starts, what it must have exercised.
const MODELS = {
  semaphore: {
    title: 'Semaphore',
    property: () =>
      fc.asyncProperty(
        fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(Infinity)),
        fc.commands(semCommands, { maxCommands: 200, size: 'max' }),
        (permits, cmds) => runSemaphore(permits, cmds)
      ),
    commands: [
      'SemAcquire',
      'SemAcquireAborted',
      'SemAbort',
      'SemRelease',
      'SemTryAcquire',
      'SemSetPermits',
      'SemAdvance'
    ],
    statuses: ['granted', 'aborted', 'timedout', 'refused']
  },
  'p-limit': {
    title: 'p-limit',
    property: () =>
      fc.asyncProperty(
        fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(Infinity)),
        fc.boolean(),
        fc.commands(limitCommands, { maxCommands: 200, size: 'max' }),
        (concurrency, rejectOnClear, cmds) => runLimit(concurrency, rejectOnClear, cmds)
      ),
    commands: ['LimitAdd', 'LimitFinish', 'LimitConcurrency', 'LimitClear'],
    statuses: ['granted', 'done', 'cleared', 'cleared-rejected']
  }
}

// A child: every seed of one model, then what it ran as one JSON line. No
// waiter or timer of the addon is left behind.
async function runModel(name) {
  const base = binding.debugCounts()
  const property = MODELS[name].property()
  for (const seed of SEEDS) {
    await fc.assert(property, { seed, numRuns: RUNS, verbose: 1, includeErrorInReport: true })
  }
  await immediate()
  await immediate()
  const after = binding.debugCounts()
  assert.equal(after.waiters, base.waiters, 'native waiters left behind')
  assert.equal(after.uvHandles, base.uvHandles, 'timers left open')
  return {
    name,
    operations,
    sequences,
    ran: Object.fromEntries(ran),
    outcomes: Object.fromEntries(outcomes)
  }
}

function spawnModel(name) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [__filename],
      {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
        timeout: 300000,
        // The child runs the seeds chosen here (a random one included).
        env: {
          ...process.env,
          SLUICE_MODEL_GATE_CHILD: name,
          SLUICE_MODEL_SEED: EXTRA_SEED === undefined ? '' : String(EXTRA_SEED)
        }
      },
      (err, stdout, stderr) => resolve({ err, stdout, stderr })
    )
  })
}

// Both children start with the first test that needs one.
let children = null
function child(name) {
  if (children === null) {
    children = Object.fromEntries(Object.keys(MODELS).map((n) => [n, spawnModel(n)]))
  }
  return children[name]
}

async function checkModel(t, name) {
  const { title, commands, statuses } = MODELS[name]
  t.diagnostic(
    `${name}: seeds ${SEEDS.join(', ')} (${EXTRA_SEED === undefined ? 'fixed; SLUICE_MODEL_SEED=<n>|random adds one' : 'added: ' + EXTRA_SEED}), ${RUNS} sequences per seed, in a child process`
  )
  const r = await child(name)
  if (r.err) {
    const why = r.err.killed ? 'killed (timeout)' : `exit ${r.err.code}`
    assert.fail(`${title} model: ${why}\n${r.stderr}`)
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  assert.equal(out.name, name)
  t.diagnostic(`${name}: ${out.operations} operations checked against the model`)
  // Every sequence ran, every kind of command ran and every outcome was
  // reached (see `ran`). At SLUICE_MODEL_SCALE < 1 a few sequences cannot
  // be expected to reach every outcome: there only the sequences count.
  assert.equal(out.sequences, SEEDS.length * RUNS, `${name}: sequences run`)
  const seen = (map, keys) => keys.map((k) => `${k} ${map[k] || 0}`).join(', ')
  const keys = statuses.map((s) => `${name}:${s}`)
  t.diagnostic(`${name}: commands run: ${seen(out.ran, commands)}`)
  t.diagnostic(`${name}: waiters at the end of a sequence: ${seen(out.outcomes, keys)}`)
  if (SCALE < 1) return
  for (const c of commands) assert.ok(out.ran[c] > 0, `${name}: no ${c} command ever ran`)
  for (const k of keys) {
    assert.ok(out.outcomes[k] > 0, `${name}: no waiter ever ended ${k.split(':')[1]}`)
  }
}

if (CHILD !== undefined) {
  runModel(CHILD).then(
    (out) => console.log(JSON.stringify(out)),
    (err) => {
      console.error(err && err.stack ? err.stack : err)
      process.exitCode = 1
    }
  )
} else {
  test('Semaphore against the gate model', (t) => checkModel(t, 'semaphore'))
  test('p-limit against the gate model', (t) => checkModel(t, 'p-limit'))
}
