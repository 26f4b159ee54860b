'use strict'
// Differential fuzz test: sluice/generic-pool (lib/generic-pool.js) against
// the real generic-pool 3.9.0 (devDependency).
//
// fast-check generates a scenario (pool options plus up to MAX_COMMANDS
// commands); the SAME scenario runs against both implementations, each with
// its own manual factory, and the two observable logs must be identical
// after every step.
//
// The factory's create/destroy/validate return promises that only the
// commands settle (create resolves to {id}, ids from 0 in the order of the
// create calls), so nothing happens on its own: no timer is involved, and
// after each command the microtask queue is drained (`await null`, never a
// timer; the test checks it is quiet by then). The log records, in order:
//   - every factory call: create#id, destroy#id, validate#id,
//   - every settlement of a promise the pool returned: acquire (waiter index
//     -> resource id, or the rejection message), release, destroy, drain,
//     clear (ok or the rejection message), and synchronous throws,
//   - every event (factoryCreateError, factoryDestroyError),
//   - the counts (size, available, borrowed, pending, spareResourceCapacity)
//     after every step.
// Each entry made during a step carries the microtask it happened on
// (`@k`, k microtasks after the command), so both the order of the
// settlements and their exact microtask are compared; the exceptions are
// the divergences below.
//
// Options: max 1-4, min 0-3, fifo, priorityRange 1-3, maxWaitingClients
// (undefined or 0-3), a validate or not, testOnBorrow (only with a
// validate), autostart true. Commands: acquire(priority in undefined, 0, 1,
// 2, -1, 5); release or destroy of a borrowed resource; release or destroy
// of a foreign object or of one of the pool's resources the test does not
// hold (both reject 'Resource not currently part of this pool'); settle
// one pending create, destroy or validate (true/false); drain(); clear();
// read max/min. Every scenario ends with a deterministic shutdown (release
// everything held, settle every factory call, drain, clear), compared the
// same way, after which nothing may be outstanding.
//
// Left out on purpose, because sluice deliberately differs there (README,
// "Where generic-pool hangs, crashes or leaks, sluice does the safe thing"):
// creates that fail, throw, resolve to null or to a resource already in the
// pool; validates that reject; and every time-based option (acquire and
// destroy timeouts, eviction, idle timeouts), which would need timers.
//
// Divergences this test found in drain() and clear() timing are fixed (both
// now follow generic-pool's promise chains; the regression tests are at the
// end). One is a documented fix and stays out of the comparison:
//
//  - Documented fix (README item 7, node-pool#217): clear() destroys the
//     idle resources but generic-pool leaves them in its available list
//     (`available` stays up, and the next acquire is handed a destroyed
//     resource); sluice takes them out. Excluded: clear() is only issued
//     while no resource is idle and no create is in flight (so none can
//     become idle before clear() destroys the idle ones), and after the
//     shutdown's final clear() `available` is left out of the counts.
//
// Seeds: fixed ones (reproducible CI); SLUICE_DIFF_SEED=<n> adds one;
// SLUICE_DIFF_RUNS=<n> changes the number of scenarios per seed.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fc = require('fast-check')
const genericPool = require('generic-pool')
const sluice = require('../lib/generic-pool.js')

const FIXED_SEEDS = [0xd1ff01, 0xd1ff02, 0xd1ff03]
const RUNS = process.env.SLUICE_DIFF_RUNS ? Number(process.env.SLUICE_DIFF_RUNS) : 150
const MAX_COMMANDS = 60
const FLUSH_TICKS = 50
const QUIET_TICKS = 10
// A scenario that has not finished after this long fails instead of
// blocking (fast-check's per-run timeout); the shutdown has a step budget.
const RUN_TIMEOUT_MS = 10000
const MAX_SHUTDOWN_STEPS = 200

const SEEDS = [...FIXED_SEEDS]
if (process.env.SLUICE_DIFF_SEED !== undefined && process.env.SLUICE_DIFF_SEED !== '') {
  const extra = Number(process.env.SLUICE_DIFF_SEED)
  if (!Number.isInteger(extra))
    throw new RangeError(`SLUICE_DIFF_SEED must be an integer, got ${process.env.SLUICE_DIFF_SEED}`)
  SEEDS.push(extra)
}
if (!(Number.isInteger(RUNS) && RUNS > 0))
  throw new RangeError('SLUICE_DIFF_RUNS must be a positive integer')

// Microtasks since the start of the current step (one harness steps at a
// time, and its microtasks are over before the other one starts).
let tick = 0
async function flush(n) {
  for (let i = 0; i < n; i++) {
    tick++
    await null
  }
}

// ---------------------------------------------------------------- harness --

// One implementation under test, with its manual factory and its log.
class Harness {
  constructor(lib, cfg) {
    this.log = []
    this.creates = [] // pending factory.create calls: {id, settle}
    this.destroys = [] // pending factory.destroy calls: {id, settle}
    this.validates = [] // pending factory.validate calls: {id, settle(valid)}
    this.nextId = 0
    this.byId = new Map() // id -> resource object (this implementation's)
    this.borrowed = [] // ids of resources the test holds, in acquire order
    this.nextWaiter = 0
    this.nextOp = 0
    this.unsettled = new Set() // labels of returned promises not yet settled
    this.finalCleared = false
    const factory = {
      create: () => {
        const id = this.nextId++
        this.note(`create#${id}`)
        return new Promise((resolve) => {
          this.creates.push({
            id,
            settle: () => {
              const resource = { id }
              this.byId.set(id, resource)
              resolve(resource)
            }
          })
        })
      },
      destroy: (resource) => {
        this.note(`destroy#${resource.id}`)
        return new Promise((resolve) => {
          this.destroys.push({ id: resource.id, settle: () => resolve() })
        })
      }
    }
    if (cfg.validate) {
      factory.validate = (resource) => {
        this.note(`validate#${resource.id}`)
        return new Promise((resolve) => {
          this.validates.push({ id: resource.id, settle: (valid) => resolve(valid) })
        })
      }
    }
    this.pool = lib.createPool(factory, cfg.opts)
    this.pool.on('factoryCreateError', (err) =>
      this.note(`event factoryCreateError ${err && err.message}`)
    )
    this.pool.on('factoryDestroyError', (err) =>
      this.note(`event factoryDestroyError ${err && err.message}`)
    )
    this.note(`max=${this.pool.max} min=${this.pool.min}`)
  }

  // A log entry, pinned to the microtask it happens on.
  note(line, stamp = true) {
    this.log.push(stamp ? `${line} @${tick}` : line)
  }

  // Calls fn (which returns one of the pool's promises) and logs how and
  // when that promise settles.
  track(label, fn, { onValue } = {}) {
    let p
    try {
      p = fn()
    } catch (err) {
      this.note(`${label} threw ${err && err.message}`)
      return
    }
    this.unsettled.add(label)
    const settled = (line) => {
      this.unsettled.delete(label)
      this.note(line)
    }
    p.then(
      (v) => settled(onValue ? onValue(v) : `${label} ok`),
      (err) => settled(`${label} ! ${err && err.message}`)
    )
  }

  acquire(priority) {
    const w = this.nextWaiter++
    this.note(`acquire#${w}(${priority})`)
    this.track(`acq#${w}`, () => this.pool.acquire(priority), {
      onValue: (resource) => {
        this.borrowed.push(resource.id)
        return `acq#${w} -> #${resource.id}`
      }
    })
  }

  // op: 'release' | 'destroy'
  giveBack(op, resource, what) {
    const label = `${op}#${this.nextOp++}`
    this.note(`${label}(${what})`)
    this.track(label, () => this.pool[op](resource))
  }

  returnBorrowed(op, index) {
    const [id] = this.borrowed.splice(index, 1)
    this.giveBack(op, this.byId.get(id), `#${id}`)
  }

  // A resource the test does not hold: one of this pool's (idle, released
  // or destroyed), or a foreign object.
  returnNotBorrowed(op, kind, pick) {
    if (kind === 'own') {
      const ids = [...this.byId.keys()].filter((id) => !this.borrowed.includes(id))
      if (ids.length > 0) {
        const id = ids[pick % ids.length]
        this.giveBack(op, this.byId.get(id), `not held #${id}`)
        return
      }
    }
    this.giveBack(op, { id: 'foreign' }, 'foreign')
  }

  settleOne(list, index, name, arg) {
    const [item] = list.splice(index, 1)
    this.note(`settle ${name}#${item.id}${arg === undefined ? '' : ' ' + arg}`)
    item.settle(arg)
  }

  drain() {
    const label = `drain#${this.nextOp++}`
    this.note(label)
    this.track(label, () => this.pool.drain())
  }

  clear() {
    const label = `clear#${this.nextOp++}`
    this.note(label)
    this.track(label, () => this.pool.clear())
  }

  counts() {
    const p = this.pool
    // From the final clear() on, `available` is left out (divergence 3).
    const available = this.finalCleared ? '' : ` available=${p.available}`
    return `size=${p.size}${available} borrowed=${p.borrowed} pending=${p.pending} spare=${p.spareResourceCapacity}`
  }
}

// Applies one command to one harness. Every choice depends only on the
// harness's own state, which is the same in both as long as the logs agree.
function apply(h, cmd) {
  switch (cmd.t) {
    case 'acquire':
      h.acquire(cmd.priority)
      break
    case 'release':
    case 'destroy':
      if (h.borrowed.length === 0) h.note(`${cmd.t}: nothing held`)
      else h.returnBorrowed(cmd.t, cmd.pick % h.borrowed.length)
      break
    case 'giveBackNotHeld':
      h.returnNotBorrowed(cmd.op, cmd.kind, cmd.pick)
      break
    case 'create':
      if (h.creates.length === 0) h.note('no create pending')
      else h.settleOne(h.creates, cmd.pick % h.creates.length, 'create')
      break
    case 'destroyDone':
      if (h.destroys.length === 0) h.note('no destroy pending')
      else h.settleOne(h.destroys, cmd.pick % h.destroys.length, 'destroy')
      break
    case 'validate':
      if (h.validates.length === 0) h.note('no validate pending')
      else h.settleOne(h.validates, cmd.pick % h.validates.length, 'validate', cmd.valid)
      break
    case 'drain':
      h.drain()
      break
    case 'clear':
      // Divergence 3 otherwise (a documented fix).
      if (h.pool.available > 0 || h.creates.length > 0) h.note('clear skipped')
      else h.clear()
      break
    case 'finalClear':
      h.finalCleared = true
      h.clear()
      break
    case 'read':
      h.note(`read max=${h.pool.max} min=${h.pool.min}`)
      break
    default:
      throw new Error(`unknown command ${cmd.t}`)
  }
}

// The next shutdown command, decided from a harness's state, or null when
// done: release everything held, settle validations (valid) and creates,
// drain once, settle destroys, clear once.
function nextShutdownCommand(h, state) {
  if (h.borrowed.length > 0) return { t: 'release', pick: 0 }
  if (h.validates.length > 0) return { t: 'validate', pick: 0, valid: true }
  if (h.creates.length > 0) return { t: 'create', pick: 0 }
  if (!state.drained) {
    state.drained = true
    return { t: 'drain' }
  }
  if (h.destroys.length > 0) return { t: 'destroyDone', pick: 0 }
  if (!state.cleared) {
    state.cleared = true
    return { t: 'finalClear' }
  }
  return null
}

async function step(harnesses, cmd, n) {
  for (const h of harnesses) {
    h.note(`-- step ${n}: ${JSON.stringify(cmd)}`, false)
    tick = 0
    apply(h, cmd)
    await flush(FLUSH_TICKS)
    h.log.push(h.counts())
    // The queue must be quiet by now, or steps would bleed into each other.
    const len = h.log.length
    await flush(QUIET_TICKS)
    assert.equal(
      h.log.length,
      len,
      `microtasks still running after step ${n}: ${h.log.slice(len).join(', ')}`
    )
  }
  const [a, b] = harnesses
  if (a.log.length !== b.log.length || a.log.some((line, i) => line !== b.log[i])) {
    assert.deepStrictEqual(
      b.log,
      a.log,
      `sluice (actual) diverges from generic-pool (expected) at step ${n}`
    )
  }
}

const stats = { scenarios: 0, commands: 0, shutdown: 0, entries: 0 }

async function runScenario(cfg, cmds) {
  const harnesses = [new Harness(genericPool, cfg), new Harness(sluice, cfg)]
  let n = 0
  await step(harnesses, { t: 'read' }, n++)
  for (const cmd of cmds) await step(harnesses, cmd, n++)
  // The states agree (or the last step failed): decide from generic-pool's.
  const state = { drained: false, cleared: false }
  let shutdown = 0
  for (let cmd; (cmd = nextShutdownCommand(harnesses[0], state)) !== null;) {
    if (++shutdown > MAX_SHUTDOWN_STEPS)
      assert.fail(`shutdown not finished after ${MAX_SHUTDOWN_STEPS} steps`)
    await step(harnesses, cmd, n++)
  }
  for (const h of harnesses) {
    assert.deepEqual([...h.unsettled], [], 'promises left unsettled after shutdown')
    assert.equal(
      h.creates.length + h.destroys.length + h.validates.length,
      0,
      'factory calls left pending'
    )
    assert.equal(h.pool.borrowed, 0)
    assert.equal(h.pool.pending, 0)
  }
  stats.scenarios++
  stats.commands += cmds.length
  stats.shutdown += shutdown
  stats.entries += harnesses[0].log.length
}

// ------------------------------------------------------------ arbitraries --

const configArb = fc
  .record({
    max: fc.integer({ min: 1, max: 4 }),
    min: fc.integer({ min: 0, max: 3 }),
    fifo: fc.boolean(),
    priorityRange: fc.integer({ min: 1, max: 3 }),
    maxWaitingClients: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    validate: fc.boolean(),
    testOnBorrow: fc.nat({ max: 2 }).map((n) => n > 0)
  })
  .map((c) => {
    const opts = {
      max: c.max,
      min: c.min,
      fifo: c.fifo,
      priorityRange: c.priorityRange,
      autostart: true
    }
    if (c.maxWaitingClients !== undefined) opts.maxWaitingClients = c.maxWaitingClients
    if (c.validate) opts.testOnBorrow = c.testOnBorrow
    return { validate: c.validate, opts }
  })

const pick = fc.nat({ max: 7 })
// drain is rare, or most scenarios would spend their second half refusing
// acquires ('pool is draining'); the shutdown drains anyway.
const commandArb = fc.oneof(
  {
    weight: 18,
    arbitrary: fc.record({
      t: fc.constant('acquire'),
      priority: fc.constantFrom(undefined, 0, 1, 2, -1, 5)
    })
  },
  { weight: 12, arbitrary: fc.record({ t: fc.constant('release'), pick }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('destroy'), pick }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('giveBackNotHeld'),
      op: fc.constantFrom('release', 'destroy'),
      kind: fc.constantFrom('own', 'foreign'),
      pick
    })
  },
  { weight: 15, arbitrary: fc.record({ t: fc.constant('create'), pick }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('destroyDone'), pick }) },
  { weight: 10, arbitrary: fc.record({ t: fc.constant('validate'), pick, valid: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('drain') }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('clear') }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('read') }) }
)

const property = fc.asyncProperty(
  configArb,
  fc.array(commandArb, { maxLength: MAX_COMMANDS, size: 'max' }),
  runScenario
)

for (const seed of SEEDS) {
  const label = FIXED_SEEDS.includes(seed) ? '' : ' (SLUICE_DIFF_SEED)'
  test(
    `sluice/generic-pool logs equal generic-pool's after every step, seed ${seed}${label}`,
    { timeout: 120000 },
    async (t) => {
      const before = { ...stats }
      const start = Date.now()
      await fc.assert(property, {
        seed,
        numRuns: RUNS,
        timeout: RUN_TIMEOUT_MS,
        verbose: 1,
        includeErrorInReport: true
      })
      t.diagnostic(
        `seed ${seed}: ${stats.scenarios - before.scenarios} scenarios, ${stats.commands - before.commands} random commands + ${stats.shutdown - before.shutdown} shutdown commands compared, ${stats.entries - before.entries} log entries per implementation, ${Date.now() - start} ms`
      )
    }
  )
}

// ------------------------------------- the divergences found, now fixed --

async function settlementsAfterLastRelease(lib) {
  const log = []
  let k = 0
  const pool = lib.createPool({ create: async () => ({}), destroy: async () => {} }, { max: 1 })
  const r = await pool.acquire()
  pool.drain().then(() => log.push(`drain @${k}`))
  pool.release(r).then(() => log.push(`release @${k}`))
  for (; k < 20; k++) await null
  await pool.clear()
  return log
}

test('drain() settles 4 microtasks after the release() that returns the last loan, as generic-pool', async () => {
  assert.deepEqual(
    await settlementsAfterLastRelease(sluice),
    await settlementsAfterLastRelease(genericPool)
  )
  assert.deepEqual(await settlementsAfterLastRelease(genericPool), ['release @0', 'drain @4'])
})

async function clearTiming(lib) {
  let k = 0
  let settleDestroy
  const pool = lib.createPool(
    {
      create: async () => ({}),
      destroy: () =>
        new Promise((resolve) => {
          settleDestroy = resolve
        })
    },
    { max: 1 }
  )
  await pool.release(await pool.acquire())
  let at
  pool.clear().then(() => {
    at = k
  })
  for (let i = 0; i < 20; i++) await null
  settleDestroy()
  for (; k < 20; k++) await null
  return at
}

test('clear() settles on the same microtask as generic-pool after the last destroy', async () => {
  assert.equal(await clearTiming(sluice), await clearTiming(genericPool))
})
