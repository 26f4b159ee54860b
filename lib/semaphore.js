'use strict'
// A counting semaphore over a native gate: weighted acquires, priorities
// (higher first, FIFO within a priority), AbortSignal and timeouts. Timeouts
// are libuv timers in C; the promise is rejected from their callback.
const { binding, scratch, OP } = require('./binding.js')

function checkCount(value, name) {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be a number, got ${typeof value}`)
  }
  if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw new RangeError(`Expected \`${name}\` to be an integer from 1 to 4294967295, got ${value}`)
  }
}

function checkPermits(value, name) {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be a number, got ${typeof value}`)
  }
  if (!(value === Infinity || (Number.isInteger(value) && value >= 0))) {
    throw new RangeError(
      `Expected \`${name}\` to be a non-negative integer or Infinity, got ${value}`
    )
  }
}

// `scope`: 'process' (the default) or 'host'; a host-wide gate needs a name.
function checkScope(scope, name, prefix) {
  if (scope === undefined || scope === 'process') return 'process'
  if (scope !== 'host') {
    throw new TypeError(
      `Expected \`${prefix}scope\` to be 'process' or 'host', got ${
        typeof scope === 'string' ? JSON.stringify(scope) : typeof scope
      }`
    )
  }
  if (name === undefined) {
    throw new TypeError(`Expected \`${prefix}name\` with \`${prefix}scope\` 'host'`)
  }
  return scope
}

const DEFAULTS = Object.freeze({ priority: 0, signal: undefined, timeout: 0, aborted: false })

function readOptions(options) {
  if (options === undefined) return DEFAULTS
  if (options === null || typeof options !== 'object') {
    throw new TypeError('Expected `options` to be an object')
  }
  const { priority = 0, signal, timeout = 0 } = options
  if (typeof priority !== 'number')
    throw new TypeError('Expected `options.priority` to be a number')
  if (!Number.isInteger(priority) || priority < -0x80000000 || priority > 0x7fffffff) {
    throw new RangeError(`Expected \`options.priority\` to be a 32-bit integer, got ${priority}`)
  }
  let aborted = false
  if (signal !== undefined) {
    // instanceof passes for Object.create(AbortSignal.prototype), whose
    // `aborted` getter then throws an error that names nothing.
    try {
      if (!(signal instanceof AbortSignal)) throw new TypeError()
      aborted = signal.aborted
    } catch {
      throw new TypeError('Expected `options.signal` to be an AbortSignal')
    }
  }
  if (typeof timeout !== 'number') throw new TypeError('Expected `options.timeout` to be a number')
  if (!(timeout >= 0 && timeout <= 0xffffffff)) {
    throw new RangeError(
      `Expected \`options.timeout\` to be a number of milliseconds from 0 to 4294967295, got ${timeout}`
    )
  }
  return { priority, signal, timeout, aborted }
}

class Semaphore {
  #take
  #release
  #ctl

  /**
   * @param {number} [permits] how many permits the semaphore has (0 and up, or
   *   Infinity); may be omitted to attach to an existing shared semaphore
   * @param {{name?: string, scope?: 'process' | 'host'}} [options] `name`
   *   shares the semaphore with every thread of the process that opens the
   *   same name; with `scope: 'host'`, with every process of the user on
   *   this machine
   */
  constructor(permits, options) {
    // A fleet-wide gate in Redis (lib/redis/): another object, same API.
    if (options !== null && typeof options === 'object' && options.redis !== undefined) {
      if (options.scope !== undefined) {
        throw new TypeError(
          '`options.scope` cannot be combined with `options.redis`: a Redis gate is fleet-wide'
        )
      }
      return new (require('./redis/semaphore.js').RedisSemaphore)(permits, options)
    }
    let name
    let scope
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw new TypeError('Expected `options` to be an object')
      }
      name = options.name
      if (name !== undefined && typeof name !== 'string') {
        throw new TypeError('Expected `options.name` to be a string')
      }
      scope = checkScope(options.scope, name, 'options.')
    }
    if (name === undefined || permits !== undefined) checkPermits(permits, 'permits')
    const [take, release, ctl] = binding.gate(permits, name, scope === 'host')
    this.#take = take
    this.#release = release
    this.#ctl = ctl
  }

  /**
   * Waits for `n` permits. Rejects with `options.signal.reason` when the
   * signal aborts, and with a TimeoutError after `options.timeout` ms.
   * @param {number} [n=1]
   * @param {{priority?: number, signal?: AbortSignal, timeout?: number}} [options]
   * @returns {Promise<void>}
   */
  acquire(n = 1, options) {
    checkCount(n, 'n')
    if (options === undefined) {
      // The common case: nothing for the native side to parse.
      return (n === 1 ? this.#take() : this.#take(undefined, n)) ?? Promise.resolve()
    }
    const { priority, signal, timeout, aborted } = readOptions(options)
    if (signal === undefined)
      return this.#take(undefined, n, priority, timeout) ?? Promise.resolve()
    if (aborted) return Promise.reject(signal.reason)
    // The listener is added before the waiter is queued, so a throwing
    // addEventListener leaves nothing queued; it cancels by the waiter's
    // token, set once there is one. The addon keeps the gate alive while a
    // timer may still settle the waiter.
    const ctl = this.#ctl
    let index = -1
    let seq = 0
    const onAbort = () => {
      if (index >= 0) ctl(OP.CANCEL, index, seq, signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    const settled = () => {
      try {
        signal.removeEventListener('abort', onAbort)
      } catch {
        // The permits are held (or the rejection stands) whatever the
        // signal does: a throwing removeEventListener must not lose them.
      }
    }
    let go
    try {
      go = this.#take(undefined, n, priority, timeout)
    } catch (error) {
      settled()
      throw error
    }
    if (go === undefined) {
      settled()
      return Promise.resolve()
    }
    index = scratch[0]
    seq = scratch[1]
    // The returned promise derives from `go` rather than `go` getting a side
    // reaction, which would mark every rejection handled and hide unhandled
    // ones.
    return go.then(settled, (error) => {
      settled()
      throw error
    })
  }

  /**
   * Takes `n` permits now if they are free and no one is waiting.
   * @param {number} [n=1]
   * @returns {boolean}
   */
  tryAcquire(n = 1) {
    checkCount(n, 'n')
    return this.#ctl(OP.TRY_TAKE, n)
  }

  /**
   * Returns `n` permits. Releasing more than are held is a RangeError.
   * @param {number} [n=1]
   */
  release(n = 1) {
    checkCount(n, 'n')
    this.#release(n)
  }

  /**
   * Acquires one permit, runs `fn`, and releases the permit however fn ends.
   * @template T
   * @param {() => T | PromiseLike<T>} fn
   * @param {{priority?: number, signal?: AbortSignal, timeout?: number}} [options]
   * @returns {Promise<T>}
   */
  async use(fn, options) {
    if (typeof fn !== 'function') throw new TypeError('Expected `fn` to be a function')
    await this.acquire(1, options)
    try {
      return await fn()
    } finally {
      this.#release(1)
    }
  }

  /** The number of permits; setting it grants waiters that now fit. */
  get permits() {
    return this.#ctl(OP.PERMITS)
  }
  set permits(value) {
    checkPermits(value, 'permits')
    this.#ctl(OP.SET_PERMITS, value)
    this.#ctl(OP.DISPATCH)
  }

  /** Permits free now (negative after `permits` was lowered below the in-use count). */
  get available() {
    return this.#ctl(OP.AVAILABLE)
  }

  /** Acquires waiting. */
  get pending() {
    return this.#ctl(OP.PENDING)
  }
}

module.exports = { Semaphore, checkScope, checkCount, readOptions }
