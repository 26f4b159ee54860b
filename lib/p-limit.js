'use strict'
// sluice/p-limit: p-limit 7.3's API and observable behaviour over a native gate.
//
// How a task flows. `limit(fn)` stores fn (and its arguments) in a slot and
// calls take(slot): the gate either grants a permit at once (undefined) or
// queues a waiter and returns its "go" promise, which C resolves with the slot
// when the permit is granted. go.then(runSlot) is registered inside limit(),
// so the task runs in the caller's async context (AsyncLocalStorage), one
// microtask after the grant, always. When the task's result settles, its
// permit is released (before the caller's await of it resumes) and the gate
// grants the next. Counts and order live in C.
//
// The promise returned to the caller, two ways, each settling on the same
// microtask as p-limit's (test/p-limit-conformance.test.mjs and
// test/diff-plimit.test.js compare them microtask by microtask):
// - by default it is go.then(runSlot) itself, so a queued task costs the JS
//   heap two promises and one reaction (no resolving functions);
// - with rejectOnClear it is a promise of its own whose resolving functions
//   are kept by slot, because p-limit rejects cleared tasks inside
//   clearQueue(), which a derived promise cannot do.
const { binding, scratch, OP } = require('./binding.js')
const { executor, captured } = require('./executor.js')
const { checkScope } = require('./semaphore.js')

const CLEARED = Symbol('cleared')

// What runs granted tasks, kept alive from the moment the gate resolves
// their go promises until the reactions have run (see `hold` below).
// Entries whose count dropped to 0 are swept once per turn of the event
// loop, not on every task (a busy limiter goes 0 -> 1 -> 0 on each one).
const starting = new Set()
let sweeping = false
function sweep() {
  sweeping = false
  for (const holder of starting) if (holder.unstarted === 0) starting.delete(holder)
  if (starting.size > 0 && !sweeping) {
    sweeping = true
    setImmediate(sweep)
  }
}

// A function that calls `run` through a WeakRef. Made here, outside
// pLimit(), so that its closure holds nothing but the WeakRef (closures made
// in one scope share that scope's variables).
function weakly(run) {
  const ref = new WeakRef(run)
  return (slot) => ref.deref()(slot)
}
const noop = () => {}

// p-limit runs `(async () => fn(...args))()`: a sync throw becomes a
// rejection with the same error, values and thenables are adopted. One
// shared async function does that without a closure per task.
async function call(function_, args) {
  return args === undefined ? function_() : function_(...args)
}

// The same for a native promise fn returned: a promise that adopts it.
async function adopt(value) {
  return value
}
const resolved = Promise.resolve()

// By default a task's promise is derived from its go promise, so it can only
// adopt what runSlot returns. When fn settled synchronously (threw, or
// returned a value that is not a thenable), p-limit's order is: the caller's promise adopts the
// settled result first, and the permit is released one job later. Returning
// the settled result would release first (its reaction is registered before
// the adoption job exists). Returning this thenable instead puts both where
// p-limit has them: the adoption job calls then(), which lets the caller's
// promise adopt the outcome and then releases the permit.
class Settled {
  constructor(ok, value, release) {
    this.ok = ok
    this.value = value
    this.release = release
  }

  then(resolve, reject) {
    ;(this.ok ? Promise.resolve(this.value) : Promise.reject(this.value)).then(resolve, reject)
    this.release()
  }
}

function validateConcurrency(concurrency) {
  if (!(
    (Number.isInteger(concurrency) || concurrency === Number.POSITIVE_INFINITY) &&
    concurrency > 0
  )) {
    throw new TypeError('Expected `concurrency` to be a number from 1 and up')
  }
}

/**
 * @param {number | {concurrency: number, rejectOnClear?: boolean}} concurrency
 */
function pLimit(concurrency) {
  let rejectOnClear = false
  let name
  let scope

  if (typeof concurrency === 'object') {
    // A fleet-wide limit in Redis (lib/redis/).
    if (concurrency !== null && concurrency.redis !== undefined) {
      if (concurrency.scope !== undefined) {
        throw new TypeError(
          '`options.scope` cannot be combined with `options.redis`: a Redis gate is fleet-wide'
        )
      }
      return require('./redis/semaphore.js').redisLimit(concurrency)
    }
    ;({ concurrency, rejectOnClear = false, name, scope } = concurrency)
  }

  // sluice's addition: a `name` shares the limit with every thread of the
  // process that opens it; the first opener sets it, later ones may omit it.
  if (name === undefined || concurrency !== undefined) {
    validateConcurrency(concurrency)
  }

  if (typeof rejectOnClear !== 'boolean') {
    throw new TypeError('Expected `rejectOnClear` to be a boolean')
  }

  if (name !== undefined && typeof name !== 'string') {
    throw new TypeError('Expected `name` to be a string')
  }
  // sluice's addition: scope 'host' shares the named limit with every
  // process of the user on this machine.
  scope = checkScope(scope, name, '')

  const [take, release, ctl] = binding.gate(concurrency, name, scope === 'host')
  // The gate counts up to 2^63 and treats more as unlimited; the getter
  // echoes the number the user gave, as p-limit does. A shared limit may be
  // changed by any thread, so its getter asks the gate.
  let concurrencyValue = concurrency
  const getConcurrency = name === undefined ? () => concurrencyValue : () => ctl(OP.PERMITS)

  // The tasks waiting for their go, by slot. A slot is reused only after its
  // task has run (or was cleared), so a late reaction never finds another's.
  // With rejectOnClear, also the resolving functions of their promises.
  const fns = []
  const argv = []
  const resolvers = rejectOnClear ? [] : undefined
  const rejecters = rejectOnClear ? [] : undefined
  const freeSlots = []

  // Lifetimes. The addon holds the go promise of every queued task until it
  // is granted, and that promise's reaction starts the task. If that
  // reaction held this limiter strongly, the addon would keep a limiter
  // nobody can ever release (dropped, its running task never settling)
  // alive forever. So for an unshared limiter the reaction holds it through
  // a WeakRef; the limiter lives as long as its caller or a running task
  // (through `done`) holds it, and when neither does it is collected, and
  // its queued tasks with it (as p-limit's are). Between a grant and its
  // reaction nothing else may hold it, so every call that can grant reports
  // how many promises it resolved (scratch[2]) and `hold` keeps the limiter
  // in `starting` until that many reactions have run. A shared (named)
  // limiter is held by the addon while it waits, as another thread may
  // grant it at any time: its reaction holds it strongly.
  // `holder` is what `starting` keeps: the limiter's state through `run`,
  // and the count of grants whose reactions have not run yet.
  let run
  const holder = { run: undefined, unstarted: 0 }
  function hold() {
    const k = scratch[2]
    if (k === 0 || name !== undefined) return
    if (holder.unstarted === 0) {
      starting.add(holder)
      if (!sweeping) {
        sweeping = true
        setImmediate(sweep)
      }
    }
    holder.unstarted += k
  }
  function started() {
    if (name !== undefined) return
    holder.unstarted--
  }

  // p-limit's next(): one permit back, at most one queued task started.
  const done = () => {
    release()
    hold()
  }

  // Default: returns what the caller's promise (derived from go) adopts.
  // A slot is free again. When every slot is (no task waits for its go),
  // the arrays start over, so the memory of a big burst is given back.
  function freeSlot(slot) {
    fns[slot] = undefined
    argv[slot] = undefined
    if (freeSlots.push(slot) === fns.length && fns.length > 1024) {
      fns.length = 0
      argv.length = 0
      freeSlots.length = 0
      if (resolvers !== undefined) {
        resolvers.length = 0
        rejecters.length = 0
      }
    }
  }

  function runSlot(slot) {
    const function_ = fns[slot]
    const args = argv[slot]
    freeSlot(slot)
    if (function_ === CLEARED) return new Promise(noop) // dropped: never settles
    let value
    try {
      value = args === undefined ? function_() : function_(...args)
    } catch (error) {
      return new Settled(false, error, done)
    }
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
      return new Settled(true, value, done)
    }
    let result
    if (value instanceof Promise) {
      result = adopt(value)
    } else {
      // p-limit's wrapper reads `then` once: a throw or a non-function
      // settles it now; a function is called in the job that adopts it.
      let then
      try {
        then = value.then
      } catch (error) {
        return new Settled(false, error, done)
      }
      if (typeof then !== 'function') return new Settled(true, value, done)
      result = new Promise(executor)
      const resolve = captured.resolve
      const reject = captured.reject
      captured.resolve = captured.reject = undefined
      resolved.then(() => {
        try {
          then.call(value, resolve, reject)
        } catch (error) {
          reject(error)
        }
      })
    }
    // The permit is released one tick after `result` settles, before the
    // caller's promise (which adopts `result` one job later) settles.
    result.then(done, done)
    return result
  }

  // rejectOnClear: p-limit's run(), to the letter: resolve the caller's
  // promise with `result`, then release one tick after `result` settles.
  function runSlotResolving(slot) {
    const function_ = fns[slot]
    const args = argv[slot]
    const resolve = resolvers[slot]
    resolvers[slot] = undefined
    rejecters[slot] = undefined
    freeSlot(slot)
    if (function_ === CLEARED) return // rejected by clearQueue()
    const result = call(function_, args)
    resolve(result)
    result.then(done, done)
  }

  // The reactions of go promises: started() first, then the task.
  run =
    resolvers === undefined
      ? (slot) => {
          started()
          return runSlot(slot)
        }
      : (slot) => {
          started()
          runSlotResolving(slot)
        }
  holder.run = run
  const onGo = name === undefined ? weakly(run) : run

  // A method, so that `limit` is neither a constructor nor has a prototype,
  // like p-limit's arrow function, while it can still read `arguments`
  // (no rest array per call).
  const { generator } = {
    generator(function_) {
      let args
      if (arguments.length > 1) {
        args = new Array(arguments.length - 1)
        for (let i = 1; i < arguments.length; i++) args[i - 1] = arguments[i]
      }
      const slot = freeSlots.length > 0 ? freeSlots.pop() : fns.length
      fns[slot] = function_
      argv[slot] = args
      if (resolvers === undefined) {
        const go = take(slot)
        if (go === undefined) return Promise.resolve(slot).then(runSlot)
        hold()
        return go.then(onGo)
      }
      const promise = new Promise(executor)
      resolvers[slot] = captured.resolve
      rejecters[slot] = captured.reject
      captured.resolve = captured.reject = undefined
      const go = take(slot)
      if (go === undefined) {
        Promise.resolve(slot).then(runSlotResolving)
      } else {
        hold()
        go.then(onGo)
      }
      return promise
    }
  }

  function clearQueue() {
    const slots = ctl(OP.CLEAR)
    hold()
    if (rejecters === undefined) {
      for (const slot of slots) fns[slot] = CLEARED
      return
    }
    // p-limit: one shared AbortError; every cleared task rejected now, in
    // queue order.
    const reason = AbortSignal.abort().reason
    for (const slot of slots) {
      fns[slot] = CLEARED
      const reject = rejecters[slot]
      resolvers[slot] = rejecters[slot] = undefined
      reject(reason)
    }
  }

  Object.defineProperties(generator, {
    activeCount: {
      get: () => ctl(OP.ACTIVE)
    },
    pendingCount: {
      get: () => ctl(OP.PENDING)
    },
    clearQueue: {
      value: clearQueue
    },
    concurrency: {
      get: getConcurrency,
      set(newConcurrency) {
        validateConcurrency(newConcurrency)
        ctl(OP.SET_PERMITS, newConcurrency)
        concurrencyValue = newConcurrency
        // As p-limit: queued tasks start one microtask later.
        queueMicrotask(() => {
          ctl(OP.DISPATCH)
          hold()
        })
      }
    },
    map: {
      async value(iterable, function_) {
        const promises = []
        try {
          Array.from(iterable, (value, index) => {
            const promise = generator(function_, value, index)
            promises.push(promise)
            return promise
          })
        } catch (error) {
          // Promise.all never sees the promises already made: observe them so
          // they raise no unhandled rejection.
          for (const promise of promises) promise.catch(noop)
          throw error
        }
        return Promise.all(promises)
      }
    }
  })

  return generator
}

/**
 * @param {(...args: any[]) => any} function_
 * @param {number | {concurrency: number, rejectOnClear?: boolean}} options
 */
function limitFunction(function_, options) {
  const limit = pLimit(options)
  const limitedFunction = (...arguments_) => limit(() => function_(...arguments_))
  Object.defineProperty(limitedFunction, 'clearQueue', {
    value: limit.clearQueue
  })
  return limitedFunction
}

// `require('sluice/p-limit')` is the function itself, as CommonJS users expect;
// `.default` and `.limitFunction` serve the ESM-shaped imports.
module.exports = pLimit
module.exports.default = pLimit
module.exports.pLimit = pLimit
module.exports.limitFunction = limitFunction
