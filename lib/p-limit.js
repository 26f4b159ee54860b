'use strict'
// sluice/p-limit: p-limit 7.3's API and observable behaviour over a native gate.
//
// How a task flows. `limit(fn)` stores fn (and its arguments) in a slot and
// calls take(slot): the gate either grants a permit at once (undefined) or
// queues a waiter and returns its "go" promise, which C resolves with the slot
// when the permit is granted. The promise returned to the caller is
// go.then(runSlot): that reaction is registered inside limit(), so the task
// runs in the caller's async context (AsyncLocalStorage), one microtask after
// the grant, always. When the task's result settles, its permit is released
// (before the caller's await of it resumes) and the gate grants the next.
// Per queued task the JS heap holds two promises and one reaction; counts and
// order live in C.
const { binding, OP } = require('./binding.js')

const CLEARED = Symbol('cleared')
const noop = () => {}

// p-limit runs `(async () => fn(...args))()`: a sync throw becomes a
// rejection with the same error, values and thenables are adopted. One
// shared async function does that without a closure per task.
async function call (function_, args) {
  return args === undefined ? function_() : function_(...args)
}

function validateConcurrency (concurrency) {
  if (!((Number.isInteger(concurrency) || concurrency === Number.POSITIVE_INFINITY) && concurrency > 0)) {
    throw new TypeError('Expected `concurrency` to be a number from 1 and up')
  }
}

/**
 * @param {number | {concurrency: number, rejectOnClear?: boolean}} concurrency
 */
function pLimit (concurrency) {
  let rejectOnClear = false
  let name

  if (typeof concurrency === 'object') {
    ({ concurrency, rejectOnClear = false, name } = concurrency)
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

  const [take, release, ctl] = binding.gate(concurrency, name)
  // The gate counts up to 2^63 and treats more as unlimited; the getter
  // echoes the number the user gave, as p-limit does. A shared limit may be
  // changed by any thread, so its getter asks the gate.
  let concurrencyValue = concurrency
  const getConcurrency = name === undefined ? () => concurrencyValue : () => ctl(OP.PERMITS)

  // The tasks waiting for their go, by slot. A slot is reused only after its
  // task has run (or was cleared), so a late reaction never finds another's.
  const fns = []
  const argv = []
  const freeSlots = []

  // p-limit's next(): one permit back, at most one queued task started.
  const done = () => { release() }

  function runSlot (slot) {
    const function_ = fns[slot]
    const args = argv[slot]
    fns[slot] = undefined
    argv[slot] = undefined
    freeSlots.push(slot)
    if (function_ === CLEARED) {
      if (args === undefined) return new Promise(noop) // dropped: never settles
      throw args // rejectOnClear: the shared AbortError
    }
    // The same promise shape as p-limit, so every settlement lands on the
    // same microtask: the caller's promise adopts `result`, and the permit is
    // released one tick after `result` settles, before the caller resumes.
    const result = call(function_, args)
    result.then(done, done)
    return result
  }

  // A method, so that `limit` is neither a constructor nor has a prototype,
  // like p-limit's arrow function, while it can still read `arguments`
  // (no rest array per call).
  const { generator } = {
    generator (function_) {
      let args
      if (arguments.length > 1) {
        args = new Array(arguments.length - 1)
        for (let i = 1; i < arguments.length; i++) args[i - 1] = arguments[i]
      }
      const slot = freeSlots.length > 0 ? freeSlots.pop() : fns.length
      fns[slot] = function_
      argv[slot] = args
      const go = take(slot)
      return (go === undefined ? Promise.resolve(slot) : go).then(runSlot)
    }
  }

  function clearQueue () {
    const reason = rejectOnClear ? AbortSignal.abort().reason : undefined
    for (const slot of ctl(OP.CLEAR)) {
      fns[slot] = CLEARED
      argv[slot] = reason
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
      set (newConcurrency) {
        validateConcurrency(newConcurrency)
        ctl(OP.SET_PERMITS, newConcurrency)
        concurrencyValue = newConcurrency
        // As p-limit: queued tasks start one microtask later.
        queueMicrotask(() => { ctl(OP.DISPATCH) })
      }
    },
    map: {
      async value (iterable, function_) {
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
function limitFunction (function_, options) {
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
