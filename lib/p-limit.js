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

  if (typeof concurrency === 'object') {
    ({ concurrency, rejectOnClear = false } = concurrency)
  }

  validateConcurrency(concurrency)

  if (typeof rejectOnClear !== 'boolean') {
    throw new TypeError('Expected `rejectOnClear` to be a boolean')
  }

  const [take, release, ctl] = binding.gate(concurrency)

  // The tasks waiting for their go, by slot. A slot is reused only after its
  // task has run (or was cleared), so a late reaction never finds another's.
  const fns = []
  const argv = []
  const freeSlots = []

  const done = () => { release() }

  function run (function_, args) {
    let result
    try {
      result = args === undefined ? function_() : function_(...args)
    } catch (error) {
      release()
      throw error
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function')) {
      // Adopt promises and thenables; the release reaction is registered
      // before the caller's, so the next task starts before the caller resumes.
      result = Promise.resolve(result)
      result.then(done, done)
      return result
    }
    release()
    return result
  }

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
    return run(function_, args)
  }

  function generator (function_) {
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
      get: () => ctl(OP.PERMITS),
      set (newConcurrency) {
        validateConcurrency(newConcurrency)
        ctl(OP.SET_PERMITS, newConcurrency)
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
