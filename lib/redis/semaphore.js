'use strict'
// Semaphore and pLimit over a Redis gate (./gate.js): what
// `new Semaphore(permits, { name, redis })` and
// `pLimit({ concurrency, name, redis })` return.
const { EventEmitter } = require('node:events')
const { RedisGate } = require('./gate.js')
const { kind } = require('./client.js')
// The same rules for `n` and the acquire options as the native Semaphore's.
const { checkCount, readOptions } = require('../semaphore.js')

const LEASE_DEFAULT = 10_000

function checkPermits(value, name) {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be a number, got ${typeof value}`)
  }
  if (!(value === Infinity || (Number.isSafeInteger(value) && value >= 0))) {
    throw new RangeError(
      `Expected \`${name}\` to be a non-negative integer or Infinity, got ${value}`
    )
  }
}

// The options every Redis-backed gate takes, checked before anything is made.
function readGateOptions(options, prefix) {
  const { name, redis, leaseMillis = LEASE_DEFAULT } = options
  if (kind(redis) === null) {
    throw new TypeError(
      `Expected \`${prefix}redis\` to be an ioredis client or a node-redis (v4 or later) client`
    )
  }
  if (typeof name !== 'string') {
    throw new TypeError(`Expected \`${prefix}name\` to be a string (a Redis gate needs a name)`)
  }
  if (name.length === 0 || name.length > 512) {
    throw new RangeError(`Expected \`${prefix}name\` to be 1 to 512 characters long`)
  }
  // A lone surrogate becomes U+FFFD on the wire: two names, one gate.
  if (!name.isWellFormed()) {
    throw new RangeError(
      `Expected \`${prefix}name\` to be well-formed Unicode (no lone surrogates)`
    )
  }
  // The keys are sluice:{name}:...; a name that starts with '}' would make
  // an empty hash tag, and Redis Cluster would spread one gate over slots.
  if (name[0] === '}') {
    throw new RangeError(
      `Expected \`${prefix}name\` not to start with '}' (it ends the key's hash tag)`
    )
  }
  if (typeof leaseMillis !== 'number') {
    throw new TypeError(`Expected \`${prefix}leaseMillis\` to be a number`)
  }
  if (!Number.isInteger(leaseMillis) || leaseMillis < 100 || leaseMillis > 0x7fffffff) {
    throw new RangeError(
      `Expected \`${prefix}leaseMillis\` to be an integer from 100 to 2147483647, got ${leaseMillis}`
    )
  }
  return { name, redis, leaseMillis }
}

class RedisSemaphore extends EventEmitter {
  #gate

  constructor(permits, options) {
    super()
    const { name, redis, leaseMillis } = readGateOptions(options, 'options.')
    if (permits !== undefined) checkPermits(permits, 'permits')
    this.#gate = new RedisGate(redis, name, permits, leaseMillis)
    this.#gate.on('leaseLost', (info) => this.emit('leaseLost', info))
  }

  /** Resolves once the gate is open in Redis (rejects if it cannot be). */
  get ready() {
    return this.#gate.ready
  }

  /**
   * Waits for `n` permits; resolves with the grant's fencing token.
   * @returns {Promise<number>}
   */
  acquire(n = 1, options) {
    checkCount(n, 'n')
    const { priority, signal, timeout } = readOptions(options)
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason)
    if (this.#gate.permits !== Infinity && n > this.#gate.permits && this.#gate.permits > 0) {
      return Promise.reject(
        new RangeError(`Cannot acquire ${n} permits: the semaphore has ${this.#gate.permits}`)
      )
    }
    return this.#gate.acquire(n, priority, timeout, signal, false)
  }

  /**
   * Takes `n` permits if they are free and no one waits in the whole fleet.
   * @returns {Promise<number | false>} the fencing token, or false
   */
  tryAcquire(n = 1) {
    checkCount(n, 'n')
    return this.#gate.acquire(n, 0, 0, undefined, true)
  }

  /** Returns `n` permits; a no-op for permits a lapsed lease already gave back. */
  release(n = 1) {
    checkCount(n, 'n')
    this.#gate.release(n)
  }

  async use(fn, options) {
    if (typeof fn !== 'function') throw new TypeError('Expected `fn` to be a function')
    await this.acquire(1, options)
    try {
      return await fn()
    } finally {
      this.release(1)
    }
  }

  /** The fleet's number of permits, as Redis last said. Setting it changes it for the fleet. */
  get permits() {
    return this.#gate.permits
  }
  set permits(value) {
    checkPermits(value, 'permits')
    this.#gate.permits = value
    this.#gate.setPermits(value).catch(() => {})
  }

  /** Sets the fleet's permits and resolves once Redis has them. */
  setPermits(value) {
    checkPermits(value, 'permits')
    return this.#gate.setPermits(value)
  }

  /** Reads the gate's counts from Redis (the getters show the last reply). */
  refresh() {
    return this.#gate.refresh()
  }

  /** Permits free in the fleet, as of the last reply from Redis. */
  get available() {
    return this.#gate.permits - this.#gate.used
  }

  /** Acquires waiting in the fleet, as of the last reply from Redis. */
  get pending() {
    return this.#gate.queued
  }

  /** Permits this process holds. */
  get held() {
    return this.#gate.held
  }

  /** Releases what this semaphore holds, withdraws its waiters, stops its timers. */
  close() {
    return this.#gate.close()
  }

  [Symbol.asyncDispose]() {
    return this.close()
  }
}

function redisLimit(options) {
  const { concurrency, rejectOnClear = false } = options
  const { name, redis, leaseMillis } = readGateOptions(options, '')
  if (concurrency !== undefined) {
    if (!(
      (Number.isInteger(concurrency) || concurrency === Number.POSITIVE_INFINITY) &&
      concurrency > 0
    )) {
      throw new TypeError('Expected `concurrency` to be a number from 1 and up')
    }
  }
  if (typeof rejectOnClear !== 'boolean') {
    throw new TypeError('Expected `rejectOnClear` to be a boolean')
  }
  const gate = new RedisGate(redis, name, concurrency, leaseMillis)
  const events = new EventEmitter()
  gate.on('leaseLost', (info) => events.emit('leaseLost', info))
  let running = 0
  const release = () => {
    running--
    gate.release(1)
  }

  async function generator(fn, ...args) {
    await gate.acquire(1, 0, 0, undefined, false)
    running++
    let result
    try {
      result = fn(...args)
    } catch (error) {
      release()
      throw error
    }
    try {
      return await result
    } finally {
      release()
    }
  }

  const waitCleared = () => {
    // p-limit: cleared tasks never settle, or reject with one AbortError.
    gate.clear(rejectOnClear ? AbortSignal.abort().reason : undefined)
  }

  Object.defineProperties(generator, {
    activeCount: { get: () => gate.used },
    pendingCount: { get: () => gate.queued },
    /** Tasks of this process running now. */
    localActiveCount: { get: () => running },
    /** Tasks of this process waiting for a permit. */
    localPendingCount: { get: () => gate.waiters.size },
    clearQueue: { value: waitCleared },
    concurrency: {
      get: () => gate.permits,
      set(value) {
        if (!((Number.isInteger(value) || value === Number.POSITIVE_INFINITY) && value > 0)) {
          throw new TypeError('Expected `concurrency` to be a number from 1 and up')
        }
        gate.permits = value
        gate.setPermits(value).catch(() => {})
      }
    },
    map: {
      async value(iterable, fn) {
        return Promise.all(Array.from(iterable, (value, index) => generator(fn, value, index)))
      }
    },
    ready: { get: () => gate.ready },
    on: { value: (event, listener) => (events.on(event, listener), generator) },
    off: { value: (event, listener) => (events.off(event, listener), generator) },
    close: { value: () => gate.close() },
    [Symbol.asyncDispose]: { value: () => gate.close() }
  })
  return generator
}

module.exports = { RedisSemaphore, redisLimit, readGateOptions }
