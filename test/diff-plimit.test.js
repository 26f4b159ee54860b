'use strict'
// Differential fuzz test: sluice/p-limit against the real p-limit 7.3.3.
//
// fast-check generates a scenario (limiter options plus a command sequence);
// the same scenario runs once against p-limit and once against sluice, each
// run writing one log, and the two logs must be identical entry for entry.
//
// Microtask precision: an "external" ticker (a chain of `await null`) logs
// `tick k` on each microtask while the scenario runs, so every other entry
// (a task starting, a caller's reaction to a settlement, a thenable's `then`
// being called, an iterable being pulled, counts read by the driver) is
// pinned to the microtask it happened on. The ticker stops once the driver
// has finished and nothing but ticks has been logged for QUIET ticks; then a
// macrotask hop catches anything later (logged after `ticker end`). While
// the driver waits for a macrotask (`drain`), the ticker pauses the same way
// once quiet (a macrotask cannot come while it ticks) and resumes after.
//
// Commands: limit(fn, ...args) with fn one of: sync value, sync throw (an
// Error, a TypeError, a non-Error), async fn resolving/rejecting after k
// awaits, a plain function returning a native promise, a function returning
// a plain thenable (resolving/rejecting synchronously or after k microtasks,
// throwing in `then`, resolving with another thenable, never settling), or a
// non-function value; reading activeCount/pendingCount/concurrency; setting
// concurrency (valid values); clearQueue(); limit.map(array | generator that
// may throw, fn | non-function); the driver awaiting k microtasks or a
// macrotask. limitFunction scenarios call the limited function (dispatching
// on its arguments to the same behaviours) and its clearQueue().
//
// Settlements are logged by value; objects (errors included) by
// tag + name + message plus an identity number (first-seen order within the
// run), so "every task cleared by one clearQueue() rejects with the same
// AbortError" is compared too. Cleared tasks without rejectOnClear never
// settle, and nothing awaits them.
//
// It found two divergences, both fixed in lib/p-limit.js and kept below as
// regression tests: the order of the adoption and release jobs when a task
// settles synchronously, and rejectOnClear rejecting inside clearQueue().
//
// Seeds: fixed ones (reproducible); SLUICE_DIFF_SEED=<n> adds one.
// SLUICE_DIFF_RUNS=<n> changes the number of sequences per seed.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fc = require('fast-check')
const sluice = require('../lib/p-limit.js')

const FIXED_SEEDS = [0xd1ff01, 0xd1ff02, 0xd1ff03]
const RUNS = Number(process.env.SLUICE_DIFF_RUNS || 300)
const SEEDS = [...FIXED_SEEDS]
if (process.env.SLUICE_DIFF_SEED !== undefined && process.env.SLUICE_DIFF_SEED !== '') {
  const extra = Number(process.env.SLUICE_DIFF_SEED)
  if (!Number.isInteger(extra))
    throw new RangeError(`SLUICE_DIFF_SEED must be an integer, got ${process.env.SLUICE_DIFF_SEED}`)
  SEEDS.push(extra)
}

const QUIET = 40 // ticks with no other log entry before the ticker stops
const MAX_TICKS = 20000

const immediate = () => new Promise((resolve) => setImmediate(resolve))

// ------------------------------------------------------------- formatting --

function fmtPrimitive(v) {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'symbol') return v.toString()
  return String(v)
}

// Objects get an identity number: the order in which the run first saw them.
function makeFmt(seen) {
  return function fmt(v) {
    if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return fmtPrimitive(v)
    let id = seen.indexOf(v)
    if (id === -1) id = seen.push(v) - 1
    const tag = Object.prototype.toString.call(v)
    if (Array.isArray(v)) return `#${id}[${v.map(fmt).join(',')}]`
    if (v instanceof Error || (typeof DOMException === 'function' && v instanceof DOMException)) {
      return `#${id}${tag} ${v.constructor && v.constructor.name} ${v.name}: ${v.message}`
    }
    return `#${id}${tag} ${typeof v.then === 'function' ? 'thenable' : Object.keys(v).join(',')}`
  }
}

// --------------------------------------------------------------- behaviours --

// spec: { kind, k, mode, value } -> the function given to limit() (or the
// non-function value itself). Every function logs `start <id>` with its
// receiver and arguments when called.
function makeTask(spec, id, L, fmt) {
  const startLog = (self, args) =>
    L(
      `start ${id} this=${self === undefined ? 'undefined' : typeof self} args(${args.length})=[${args.map(fmt).join(',')}]`
    )
  const k = spec.k
  switch (spec.kind) {
    case 'value':
      return function (...args) {
        startLog(this, args)
        return `r${id}`
      }
    case 'undefined':
      return function (...args) {
        startLog(this, args)
      }
    case 'throw':
      return function (...args) {
        startLog(this, args)
        throw new Error(`x${id}`)
      }
    case 'throwType':
      return function (...args) {
        startLog(this, args)
        throw new TypeError(`t${id}`)
      }
    case 'throwString':
      return function (...args) {
        startLog(this, args)
        throw `s${id}`
      } // eslint-disable-line no-throw-literal
    case 'async':
      return async function (...args) {
        startLog(this, args)
        for (let j = 0; j < k; j++) await null
        return `a${id}`
      }
    case 'asyncReject':
      return async function (...args) {
        startLog(this, args)
        for (let j = 0; j < k; j++) await null
        throw new RangeError(`ar${id}`)
      }
    case 'promise':
      return function (...args) {
        startLog(this, args)
        return Promise.resolve(`p${id}`)
      }
    case 'promiseReject':
      return function (...args) {
        startLog(this, args)
        return Promise.reject(new Error(`pr${id}`))
      }
    case 'thenable':
      return function (...args) {
        startLog(this, args)
        return makeThenable(spec.mode, k, id, L)
      }
    case 'nonFunction':
      return spec.value
    default:
      throw new Error(`unknown kind ${spec.kind}`)
  }
}

function later(k, fn) {
  let p = Promise.resolve()
  for (let j = 0; j < k; j++) p = p.then(() => {})
  p.then(fn)
}

function makeThenable(mode, k, id, L) {
  return {
    then(resolve, reject) {
      L(`then ${id} ${typeof resolve}/${typeof reject}`)
      switch (mode) {
        case 'resolve':
          resolve(`th${id}`)
          break
        case 'reject':
          reject(new Error(`thr${id}`))
          break
        case 'throw':
          throw new SyntaxError(`tht${id}`)
        case 'resolveLater':
          later(k, () => {
            L(`thenable ${id} resolves`)
            resolve(`thl${id}`)
          })
          break
        case 'rejectLater':
          later(k, () => {
            L(`thenable ${id} rejects`)
            reject(new Error(`thlr${id}`))
          })
          break
        case 'nested':
          resolve(makeThenable('resolve', k, `${id}n`, L))
          break
        case 'twice':
          resolve(`tw${id}`)
          reject(new Error('ignored'))
          resolve('ignored')
          break
        case 'hang':
          break
        default:
          throw new Error(`unknown thenable mode ${mode}`)
      }
    }
  }
}

// ------------------------------------------------------------------ runner --

// Runs one scenario against one implementation ({ pLimit, limitFunction }),
// returns { log, ops }.
async function runScenario(impl, sc) {
  const log = []
  let events = 0
  const L = (s) => {
    events++
    log.push(s)
  }
  const seen = []
  const fmt = makeFmt(seen)
  let driverDone = false
  let draining = null // while the driver waits for a macrotask: that wait
  let ops = 0

  const observe = (id, p) => {
    L(`returned ${id} ${p instanceof Promise ? 'Promise' : typeof p}`)
    p.then(
      (v) => L(`settled ${id} ok ${fmt(v)}`),
      (e) => L(`settled ${id} err ${fmt(e)}`)
    )
  }

  const ticker = (async () => {
    let quiet = 0
    let lastEvents = events
    for (let k = 1; k <= MAX_TICKS; k++) {
      await null
      log.push(`tick ${k}`)
      if (events !== lastEvents) {
        lastEvents = events
        quiet = 0
      } else if ((driverDone || draining) && ++quiet >= QUIET) {
        if (driverDone) break
        // The driver waits for a macrotask, which cannot come while the
        // ticker keeps the microtask queue busy: pause until it has come.
        log.push('ticker paused')
        await draining
        log.push('ticker resumed')
        quiet = 0
      }
    }
    log.push('ticker end')
  })()

  const options =
    sc.options.form === 'number'
      ? sc.options.concurrency
      : sc.options.form === 'object'
        ? { concurrency: sc.options.concurrency, rejectOnClear: sc.options.rejectOnClear }
        : { concurrency: sc.options.concurrency }

  const driver = (async () => {
    let limit
    let lf
    if (sc.api === 'pLimit') {
      limit = impl.pLimit(options)
      L(
        `created concurrency=${limit.concurrency} active=${limit.activeCount} pending=${limit.pendingCount}`
      )
    } else {
      const target =
        sc.target === 'nonFunction'
          ? 42
          : function (spec, id, ...rest) {
              return makeTask(spec, id, L, fmt).apply(this, rest)
            }
      lf = impl.limitFunction(target, options)
      L(`created limitFunction ${typeof lf} ${typeof lf.clearQueue}`)
    }

    for (let i = 0; i < sc.commands.length; i++) {
      const c = sc.commands[i]
      ops++
      switch (c.op) {
        case 'call': {
          const fn = makeTask(c.spec, i, L, fmt)
          L(
            `call ${i} ${c.spec.kind}${c.spec.mode ? '/' + c.spec.mode : ''} k=${c.spec.k} args=${c.args.length}`
          )
          observe(i, lf ? lf(c.spec, i, ...c.args) : limit(fn, ...c.args))
          break
        }
        case 'counts':
          L(
            `counts active=${limit.activeCount} pending=${limit.pendingCount} concurrency=${limit.concurrency}`
          )
          break
        case 'set':
          L(`set ${c.value}`)
          limit.concurrency = c.value
          L(
            `set done concurrency=${limit.concurrency} active=${limit.activeCount} pending=${limit.pendingCount}`
          )
          break
        case 'clear':
          L(limit ? `clear active=${limit.activeCount} pending=${limit.pendingCount}` : 'clear')
          ;(lf || limit).clearQueue()
          if (limit) L(`cleared active=${limit.activeCount} pending=${limit.pendingCount}`)
          break
        case 'map': {
          const values = c.items.map((s) => `${i}|${JSON.stringify(s)}`)
          let iterable = values
          if (c.iterable === 'generator' || c.throwAt !== null) {
            iterable = (function* () {
              for (let j = 0; j < values.length; j++) {
                L(`iter ${i} pull ${j}`)
                if (j === c.throwAt) throw new EvalError(`iter${i}`)
                yield values[j]
              }
              L(`iter ${i} done`)
            })()
          }
          const mapper = c.mapperNonFunction
            ? 'not a function'
            : function (value, index) {
                const spec = JSON.parse(value.slice(value.indexOf('|') + 1))
                return makeTask(spec, `${i}.${index}`, L, fmt).apply(this, arguments)
              }
          L(
            `map ${i} n=${c.items.length} ${c.iterable} throwAt=${c.throwAt} mapper=${typeof mapper}`
          )
          observe(`map${i}`, limit.map(iterable, mapper))
          break
        }
        case 'await':
          for (let j = 0; j < c.k; j++) await null
          L(`awaited ${c.k}`)
          break
        case 'drain':
          draining = immediate()
          await draining
          draining = null
          L('drained')
          break
        default:
          throw new Error(`unknown op ${c.op}`)
      }
    }
    L('driver done')
    driverDone = true
  })()

  await driver
  await ticker
  // Anything that settles later still happens within microtasks of the last
  // event; a couple of macrotask hops make sure it is in the log.
  await immediate()
  await immediate()
  log.push('end')
  return { log, ops }
}

// ------------------------------------------------------------- arbitraries --

const kArb = fc.integer({ min: 0, max: 5 })

const specArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('value'), k: fc.constant(0) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('undefined'), k: fc.constant(0) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('throw', 'throwType', 'throwString'),
      k: fc.constant(0)
    })
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('async'), k: kArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('asyncReject'), k: kArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constantFrom('promise', 'promiseReject'), k: fc.constant(0) })
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('thenable'),
      k: kArb,
      mode: fc.oneof(
        {
          weight: 10,
          arbitrary: fc.constantFrom(
            'resolve',
            'reject',
            'throw',
            'resolveLater',
            'rejectLater',
            'nested',
            'twice'
          )
        },
        { weight: 1, arbitrary: fc.constant('hang') }
      )
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('nonFunction'),
      k: fc.constant(0),
      value: fc.constantFrom(42, 'str', null, undefined, true)
    })
  }
)

// Specs travel through JSON for map values; nonFunction undefined survives as
// a missing key, which makeTask reads back as undefined. Fine.
const argArb = fc.oneof(fc.integer({ min: -3, max: 9 }), fc.constantFrom('a', 'b', undefined, null))
const argsArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant([]) },
  { weight: 2, arbitrary: fc.array(argArb, { minLength: 1, maxLength: 3 }) }
)

const callArb = fc.record({ op: fc.constant('call'), spec: specArb, args: argsArb })
const awaitArb = fc.record({ op: fc.constant('await'), k: fc.integer({ min: 0, max: 8 }) })
const clearArb = fc.record({ op: fc.constant('clear') })
const drainArb = fc.record({ op: fc.constant('drain') })
const concurrencyArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }) },
  { weight: 1, arbitrary: fc.constant(Infinity) }
)

const mapArb = fc.record({
  op: fc.constant('map'),
  items: fc.array(
    specArb.filter((s) => s.kind !== 'nonFunction'),
    { minLength: 0, maxLength: 6, size: 'max' }
  ),
  iterable: fc.constantFrom('array', 'generator'),
  throwAt: fc.oneof(
    { weight: 4, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 }) }
  ),
  mapperNonFunction: fc.oneof(
    { weight: 12, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) }
  )
})

const pLimitCommandArb = fc.oneof(
  { weight: 10, arbitrary: callArb },
  { weight: 5, arbitrary: awaitArb },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('counts') }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('set'),
      value: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 1, max: 5 }) },
        { weight: 1, arbitrary: fc.constant(Infinity) }
      )
    })
  },
  { weight: 2, arbitrary: clearArb },
  { weight: 2, arbitrary: mapArb },
  { weight: 1, arbitrary: drainArb }
)

const limitFunctionCommandArb = fc.oneof(
  { weight: 10, arbitrary: callArb },
  { weight: 5, arbitrary: awaitArb },
  { weight: 2, arbitrary: clearArb },
  { weight: 1, arbitrary: drainArb }
)

const optionsArb = fc
  .record({
    form: fc.constantFrom('number', 'object', 'objectNoReject'),
    concurrency: concurrencyArb,
    rejectOnClear: fc.boolean()
  })
  .map((o) =>
    o.form === 'object' ? o : { form: o.form, concurrency: o.concurrency, rejectOnClear: false }
  )

const anyScenarioArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      api: fc.constant('pLimit'),
      options: optionsArb,
      commands: fc.array(pLimitCommandArb, { minLength: 1, maxLength: 30, size: 'max' })
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      api: fc.constant('limitFunction'),
      target: fc.oneof(
        { weight: 12, arbitrary: fc.constant('function') },
        { weight: 1, arbitrary: fc.constant('nonFunction') }
      ),
      options: optionsArb,
      commands: fc.array(limitFunctionCommandArb, { minLength: 1, maxLength: 30, size: 'max' })
    })
  }
)

const scenarioArb = anyScenarioArb

let reference // p-limit is ESM-only: loaded by getReference(), which every test awaits
const subject = { pLimit: sluice, limitFunction: sluice.limitFunction }

async function getReference() {
  if (reference === undefined) {
    const mod = await import('p-limit')
    reference = { pLimit: mod.default, limitFunction: mod.limitFunction }
  }
  return reference
}

test('setup: both implementations load', async () => {
  await getReference()
  assert.equal(typeof reference.pLimit, 'function')
  assert.equal(typeof reference.limitFunction, 'function')
  assert.equal(typeof subject.pLimit, 'function')
  assert.equal(typeof subject.limitFunction, 'function')
})

test('non-function task: same TypeError as p-limit', async () => {
  await getReference()
  const messages = []
  for (const impl of [reference, subject]) {
    const limit = impl.pLimit(1)
    const got = []
    for (const [value, args] of [
      [42, []],
      [42, [1, 2]],
      [null, []],
      [undefined, ['a']]
    ]) {
      const e = await limit(value, ...args).then(
        () => null,
        (e) => e
      )
      got.push(`${e.constructor.name} ${e.name}: ${e.message}`)
    }
    messages.push(got)
  }
  assert.deepEqual(messages[1], messages[0])
  assert.equal(messages[0][0], 'TypeError TypeError: function_ is not a function')
})

for (const seed of SEEDS) {
  test(`sluice/p-limit logs equal p-limit's, seed ${seed}${FIXED_SEEDS.includes(seed) ? '' : ' (SLUICE_DIFF_SEED)'}`, async (t) => {
    let scenarios = 0
    let commands = 0
    let entries = 0
    await getReference()
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const a = await runScenario(reference, sc)
        const b = await runScenario(subject, sc)
        assert.deepEqual(b.log, a.log)
        scenarios++
        commands += a.ops
        entries += a.log.length
      }),
      { seed, numRuns: RUNS }
    )
    t.diagnostic(
      `seed ${seed}: ${scenarios} scenarios, ${commands} commands compared, ${entries} log entries per implementation`
    )
  })
}

test('rejectOnClear: the same AbortError (class, name, message, shared per clearQueue)', async () => {
  await getReference()
  const logs = []
  for (const impl of [reference, subject]) {
    const log = []
    const fmt = makeFmt([])
    const limit = impl.pLimit({ concurrency: 1, rejectOnClear: true })
    const running = limit(async () => {
      for (let j = 0; j < 3; j++) await null
      return 'ran'
    })
    running.then((v) => log.push(`running ${fmt(v)}`))
    const cleared = []
    for (let i = 0; i < 3; i++) {
      cleared.push(
        limit(() => log.push(`started ${i}`)).then(
          (v) => log.push(`ok ${i} ${fmt(v)}`),
          (e) => log.push(`err ${i} ${fmt(e)}`)
        )
      )
    }
    log.push(`pending ${limit.pendingCount}`)
    limit.clearQueue()
    log.push(`pending ${limit.pendingCount}`)
    const second = limit(() => new Promise(() => {}))
    second.catch((e) => log.push(`err second ${fmt(e)}`))
    limit.clearQueue()
    await Promise.all([running, ...cleared])
    await immediate()
    logs.push(log)
  }
  assert.deepEqual(logs[1], logs[0])
  assert.ok(
    logs[0].includes(
      'err 0 #0[object DOMException] DOMException AbortError: This operation was aborted'
    ),
    logs[0].join('\n')
  )
  assert.ok(
    logs[0].includes(
      'err 2 #0[object DOMException] DOMException AbortError: This operation was aborted'
    ),
    logs[0].join('\n')
  )
})

// The two divergences this test found, each in a few lines (now fixed).
async function bothLogs(scenario) {
  await getReference()
  return [await scenario(reference.pLimit), await scenario(subject.pLimit)]
}

for (const [kind, fn] of [
  ['a primitive', () => 'a'],
  ['a plain object', () => ({ a: 1 })],
  [
    'a throw',
    () => {
      throw new Error('a')
    }
  ]
]) {
  test(`a task that settles synchronously (${kind}): its caller's promise adopts before the next task starts`, async () => {
    const [a, b] = await bothLogs(async (pLimit) => {
      const log = []
      const limit = pLimit(1)
      limit(fn).then(
        () => log.push('settled a'),
        () => log.push('rejected a')
      )
      limit(async () => {
        log.push('start b')
        await null
        log.push('b after 1 await')
      })
      for (let k = 1; k <= 6; k++) {
        await null
        log.push(`tick ${k}`)
      }
      return log
    })
    assert.deepEqual(b, a)
  })
}

test('a task returning a plain thenable: adopted in the same jobs as p-limit', async () => {
  const [a, b] = await bothLogs(async (pLimit) => {
    const log = []
    const limit = pLimit(1)
    limit(() => ({
      then(resolve) {
        log.push('then called')
        resolve('t')
      }
    })).then((v) => log.push(`settled ${v}`))
    limit(async () => {
      log.push('start b')
      await null
      log.push('b after 1 await')
    })
    for (let k = 1; k <= 6; k++) {
      await null
      log.push(`tick ${k}`)
    }
    return log
  })
  assert.deepEqual(b, a)
})

test('rejectOnClear rejects inside clearQueue(), as p-limit does', async () => {
  const [a, b] = await bothLogs(async (pLimit) => {
    const log = []
    const limit = pLimit({ concurrency: 1, rejectOnClear: true })
    limit(() => new Promise(() => {}))
    limit(() => 'queued').catch((e) => log.push(`caught ${e.name}`))
    limit.clearQueue()
    for (let k = 1; k <= 3; k++) {
      await null
      log.push(`tick ${k}`)
    }
    return log
  })
  assert.deepEqual(b, a)
})

test("AsyncLocalStorage: queued tasks run in their caller's store, with and without rejectOnClear", async () => {
  const { AsyncLocalStorage } = require('node:async_hooks')
  const als = new AsyncLocalStorage()
  const [a, b] = await bothLogs(async (pLimit) => {
    const log = []
    for (const rejectOnClear of [false, true]) {
      const limit = pLimit({ concurrency: 1, rejectOnClear })
      await Promise.all(
        ['A', 'B', 'C'].map((id) =>
          als.run(id, () =>
            limit(async () => {
              log.push(`${rejectOnClear} start ${id}:${als.getStore()}`)
              await null
              log.push(`${rejectOnClear} end ${id}:${als.getStore()}`)
            })
          )
        )
      )
    }
    return log
  })
  assert.deepEqual(b, a)
  assert.ok(a.includes('true end C:C'), a.join(' '))
})
