'use strict'
// sluice/generic-pool: generic-pool 3.9's API and observable behaviour over
// the native pool core (src/core/pool.c), without its hangs, crashes and leaks.
//
// C decides, JS does. The core owns every count, the idle list, the
// priority wait queue and every timer (acquire and destroy timeouts,
// eviction, create retries, leak detection). This file only runs what must
// be JS: the factory's create/destroy/validate, the events, and the
// promises it returns. Resources are JS values kept here by slot index (the
// core names slots); waiters are promises kept here by token (the core says
// which token gets which slot). The core reports what to do as events in a
// window shared with C (`#pump`), so a typical acquire or release is one
// native call and reading a count is no call at all.
//
// User code (a valueOf, a getter, a custom Promise class, a signal's
// listener methods, the factory, event listeners) may re-enter the pool.
// Every argument is read, coerced and validated before the pool changes
// anything, and the native calls run none of it, so no operation is ever
// left half done when it does.
const { EventEmitter } = require('node:events')
const { protocol } = require('./binding.js')
const { TimeoutError } = require('./errors.js')
const { executor, captured } = require('./executor.js')
const { nodeDelay, openPool, hasEvents, readEvents, rethrowAsync } = require('./pool-events.js')

// The protocol with the binding, as the addon exports it (src/napi/protocol.h).
const {
  poolEvents: EV,
  poolCtls: CTL,
  poolAcquire: ACQ,
  poolCounts: C,
  poolHeader: H,
  poolConfig: CFG,
  poolSlots: SLOT,
  limits: LIMITS
} = protocol

const FACTORY_CREATE_ERROR = 'factoryCreateError'
const FACTORY_DESTROY_ERROR = 'factoryDestroyError'
const FACTORY_VALIDATE_ERROR = 'factoryValidateError'
const LEAK = 'leak'

const DRAINING = 'pool is draining and cannot accept work'
const FULL = 'max waitingClients count exceeded'

const noop = () => {}
const NativePromise = Promise

// acquire()'s options (a sluice addition): its signal, validated.
function signalOf(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('Expected `options` to be an object')
  }
  const signal = options.signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError('Expected `options.signal` to be an AbortSignal')
  }
  return signal
}

// Whether coercing `v` to a number may run user code.
function isObject(v) {
  return (typeof v === 'object' && v !== null) || typeof v === 'function'
}

// A promise of a user's Promise class with its resolving functions, made
// with a closure of its own (a constructor that re-enters the pool must not
// see, or overwrite, another acquire's resolving functions).
function deferredOf(P) {
  let resolve, reject
  const promise = new P((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function validateFactory(factory) {
  if (factory === null || (typeof factory !== 'object' && typeof factory !== 'function')) {
    throw new TypeError('Expected `factory` to be an object with create and destroy functions')
  }
  if (typeof factory.create !== 'function') {
    throw new TypeError('factory.create must be a function')
  }
  if (typeof factory.destroy !== 'function') {
    throw new TypeError('factory.destroy must be a function')
  }
  if (typeof factory.validate !== 'undefined' && typeof factory.validate !== 'function') {
    throw new TypeError('factory.validate must be a function')
  }
}

function optionalPositive(opts, name, integer) {
  const v = opts[name]
  if (v === undefined) return 0
  if (typeof v !== 'number')
    throw new TypeError(`Expected \`${name}\` to be a number, got ${typeof v}`)
  if (!(v > 0) || (integer && !Number.isInteger(v) && v !== Infinity)) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive ${integer ? 'integer' : 'number'}, got ${v}`
    )
  }
  return v === Infinity ? 0 : v
}

// generic-pool's PoolOptions, quirks included (0 -> default for the `||`
// options, max: Infinity -> 1, min clamped to max...), plus the additions.
function parseOptions(opts) {
  opts = opts || {}
  const fifo = typeof opts.fifo === 'boolean' ? opts.fifo : true
  const priorityRange = Math.max(+(opts.priorityRange || 1) | 0, 1)
  const testOnBorrow = typeof opts.testOnBorrow === 'boolean' ? opts.testOnBorrow : false
  const testOnReturn = typeof opts.testOnReturn === 'boolean' ? opts.testOnReturn : false
  const autostart = typeof opts.autostart === 'boolean' ? opts.autostart : true
  let acquireTimeoutMillis
  if (opts.acquireTimeoutMillis) acquireTimeoutMillis = parseInt(opts.acquireTimeoutMillis, 10)
  let destroyTimeoutMillis
  if (opts.destroyTimeoutMillis) destroyTimeoutMillis = parseInt(opts.destroyTimeoutMillis, 10)
  let maxWaitingClients
  if (opts.maxWaitingClients !== undefined) maxWaitingClients = parseInt(opts.maxWaitingClients, 10)
  let max = parseInt(opts.max, 10)
  let min = parseInt(opts.min, 10)
  max = Math.max(isNaN(max) ? 1 : max, 1)
  // parseInt of a numeric string too long for a double is Infinity: generic-pool
  // would then create resources without end (min is clamped to max). Refuse it.
  if (max === Infinity) {
    throw new RangeError(
      `Expected \`max\` to be a finite number, got ${String(opts.max).slice(0, 40)}`
    )
  }
  min = Math.min(isNaN(min) ? 0 : min, max)
  const evictionRunIntervalMillis = opts.evictionRunIntervalMillis || 0
  const numTestsPerEvictionRun = opts.numTestsPerEvictionRun || 3
  const softIdleTimeoutMillis = opts.softIdleTimeoutMillis || -1
  const idleTimeoutMillis = opts.idleTimeoutMillis || 30000
  const P = opts.Promise != null ? opts.Promise : Promise

  if (priorityRange > LIMITS.PRIORITY_RANGE_MAX) {
    throw new RangeError(
      `Expected \`priorityRange\` to be at most ${LIMITS.PRIORITY_RANGE_MAX}, got ${opts.priorityRange}`
    )
  }
  if (
    typeof P !== 'function' ||
    typeof P.resolve !== 'function' ||
    typeof P.reject !== 'function' ||
    typeof P.all !== 'function'
  ) {
    throw new TypeError('Expected `Promise` to be a Promise constructor')
  }
  const propagateCreateError =
    opts.propagateCreateError === undefined ? false : opts.propagateCreateError
  if (typeof propagateCreateError !== 'boolean') {
    throw new TypeError('Expected `propagateCreateError` to be a boolean')
  }
  const maxUses = optionalPositive(opts, 'maxUses', true)
  const maxLifetimeMillis = optionalPositive(opts, 'maxLifetimeMillis', false)
  const leakDetectionMillis = optionalPositive(opts, 'leakDetectionMillis', false)

  return {
    fifo,
    priorityRange,
    testOnBorrow,
    testOnReturn,
    autostart,
    acquireTimeoutMillis,
    destroyTimeoutMillis,
    maxWaitingClients,
    max,
    min,
    evictionRunIntervalMillis,
    numTestsPerEvictionRun,
    softIdleTimeoutMillis,
    idleTimeoutMillis,
    Promise: P,
    propagateCreateError,
    maxUses,
    maxLifetimeMillis,
    leakDetectionMillis
  }
}

function configArray(c) {
  const a = new Float64Array(CFG.COUNT)
  const ttl = c.acquireTimeoutMillis
  a[CFG.MAX] = c.max
  a[CFG.MIN] = c.min
  a[CFG.MAX_WAITING] = c.maxWaitingClients === undefined ? NaN : c.maxWaitingClients
  a[CFG.FIFO] = c.fifo ? 1 : 0
  a[CFG.TEST_ON_BORROW] = c.testOnBorrow ? 1 : 0
  a[CFG.PROPAGATE] = c.propagateCreateError ? 1 : 0
  a[CFG.PRIORITY_RANGE] = c.priorityRange
  a[CFG.ACQUIRE_TIMEOUT] = ttl !== undefined && ttl > 0 ? nodeDelay(ttl) : 0
  // generic-pool races the destroy with a timeout only if the parsed value is
  // truthy (NaN and 0 mean none).
  a[CFG.DESTROY_TIMEOUT] = c.destroyTimeoutMillis ? nodeDelay(c.destroyTimeoutMillis) : 0
  a[CFG.EVICTION_INTERVAL] =
    Number(c.evictionRunIntervalMillis) > 0 ? nodeDelay(c.evictionRunIntervalMillis) : 0
  a[CFG.NUM_TESTS] = Number(c.numTestsPerEvictionRun)
  a[CFG.SOFT_IDLE] = Number(c.softIdleTimeoutMillis)
  a[CFG.IDLE] = Number(c.idleTimeoutMillis)
  a[CFG.MAX_USES] = c.maxUses
  a[CFG.MAX_LIFETIME] = c.maxLifetimeMillis
  a[CFG.LEAK] = c.leakDetectionMillis
  a[CFG.BACKOFF_MIN] = LIMITS.BACKOFF_MIN // first create retry after 10 ms,
  a[CFG.BACKOFF_MAX] = LIMITS.BACKOFF_MAX // doubling up to 1 s
  return a
}

class Pool extends EventEmitter {
  #config
  #factory
  #P
  #acquire
  #release
  #ctl
  #counts
  #hdr
  #win
  // By slot: the resource, the in-flight create (a promise) and its error,
  // the in-flight destroy.
  #res = []
  #slotOf = new Map()
  #createOps = []
  #createErr = []
  #destroyOps = []
  #destroyTimeouts = [] // by slot: rejects the destroy's race with the timeout
  // By token: the resolving functions of a waiting acquire, and its signal.
  #wres = []
  #wrej = []
  #wsig = []
  #wfree = []
  #wprom = [] // by token: the promise of a waiting acquire (drain waits on it)
  // By slot, only once a drain() asked: a promise resolved when the loan
  // ends (generic-pool's ResourceLoan), and its resolve.
  #loanP = []
  #loanEnd = []
  #readyWaiters = []
  #badTtl // acquireTimeoutMillis was given but is not a positive number
  #pumpError
  #resolved
  // The pump C calls from its timers. C holds it weakly while the pool is
  // idle (so an unused pool can be collected); the pool must hold it, or a
  // GC while idle leaves C nothing to call and timer events (acquire
  // timeouts, evictions, create retries) are never delivered.
  #pumpFn
  #onEventFn = (type, a, b) => this.#onEvent(type, a, b) // readEvents' handler

  /**
   * generic-pool's signature, `new Pool(Evictor, Deque, PriorityQueue,
   * factory, options)`; the three classes are accepted and ignored (the
   * native core has its own). `new Pool(factory, options)` works too.
   */
  constructor(Evictor, Deque, PriorityQueue, factory, options) {
    super()
    if (arguments.length <= 2 && typeof Evictor !== 'function') {
      factory = Evictor
      options = Deque
    }
    validateFactory(factory)
    const config = parseOptions(options)
    if (config.testOnBorrow && typeof factory.validate !== 'function') {
      throw new TypeError('testOnBorrow: true needs factory.validate to be a function')
    }
    this.#config = config
    this.#factory = factory
    this.#P = config.Promise
    this.#badTtl = config.acquireTimeoutMillis !== undefined && !(config.acquireTimeoutMillis > 0)
    this.#resolved = this.#P.resolve()
    this.#pumpFn = () => this.#pump()
    const native = openPool(configArray(config), this.#pumpFn)
    ;[this.#acquire, this.#release, this.#ctl, this.#counts, this.#hdr, this.#win] = native
    if (config.autostart === true) this.start()
  }

  // ------------------------------------------------------------ events --

  #pending() {
    return hasEvents(this.#hdr)
  }

  // Consumes the core's events in order (readEvents: a handler that
  // re-enters the pool, a create calling acquire..., and pumps again
  // continues from the same place). Never throws.
  #pump() {
    readEvents(this.#hdr, this.#win, this.#ctl, this.#onEventFn)
    if (this.#readyWaiters.length > 0) this.#checkReady()
  }

  // One event of the core's. Never throws: errors of user code are rethrown
  // asynchronously, like an error in a promise reaction.
  #onEvent(type, a, b) {
    try {
      switch (type) {
        case EV.RESOLVE:
          this.#settle(a, true, this.#res[b])
          break
        case EV.CREATE:
          this.#startCreate(a)
          break
        case EV.DESTROY:
          this.#startDestroy(a)
          break
        case EV.VALIDATE:
          this.#startValidate(a)
          break
        case EV.REJECT_TIMEOUT:
          this.#settle(a, false, new TimeoutError('ResourceRequest timed out'))
          break
        case EV.REJECT_CREATE:
          this.#settle(a, false, this.#createErr[b])
          break
        case EV.CREATE_ERROR:
          this.emit(FACTORY_CREATE_ERROR, this.#createErr[a])
          break
        case EV.DESTROY_TIMEOUT:
          this.#destroyTimedOut(a)
          break
        case EV.LEAK:
          this.emit(LEAK, this.#res[a])
          break
      }
    } catch (err) {
      this.#throwLater(err)
    }
  }

  // An error of user code the pool cannot hand to a caller, rethrown
  // asynchronously, like an error in a promise reaction (once per turn).
  #throwLater(err) {
    if (this.#pumpError !== undefined) return
    this.#pumpError = err
    process.nextTick(() => {
      const e = this.#pumpError
      this.#pumpError = undefined
      throw e
    })
  }

  // The waiter `token` is served or refused: its slot is free before any
  // user code runs (the signal's removeEventListener may re-enter), and its
  // promise settles whatever that code does.
  #settle(token, ok, value) {
    const fn = ok ? this.#wres[token] : this.#wrej[token]
    this.#wres[token] = undefined
    this.#wrej[token] = undefined
    this.#wprom[token] = undefined
    const entry = this.#wsig[token]
    this.#wfree.push(token)
    if (entry !== undefined) {
      this.#wsig[token] = undefined
      entry.token = -1
      this.#unlisten(entry)
    }
    fn(value)
  }

  // The promise chains below have generic-pool's shape (its
  // _trackOperation adopts a promise, then _dispense runs in a reaction), so
  // a resource becomes idle and is dispatched on the same microtask as with
  // generic-pool.
  #startCreate(slot) {
    const P = this.#P
    this.#createErr[slot] = undefined
    let p
    try {
      p = this.#factory.create()
    } catch (err) {
      p = P.reject(err)
    }
    const tracked = P.resolve(p)
      .then((resource) => this.#createAdd(slot, resource))
      .then(
        (v) => P.resolve(v),
        (err) => P.reject(err)
      )
    this.#createOps[slot] = tracked
    tracked
      .then(() => {
        this.#createOps[slot] = undefined
        this.#ctl(CTL.DISPENSE)
        if (this.#pending()) this.#pump()
      })
      .catch((err) => this.#createFailed(slot, err))
  }

  #createAdd(slot, resource) {
    if (resource === null || resource === undefined) {
      throw new Error(`factory.create resolved to ${resource}; a pool resource must be a value`)
    }
    if (this.#slotOf.has(resource)) {
      throw new Error('factory.create resolved to a resource that is already in the pool')
    }
    this.#res[slot] = resource
    this.#slotOf.set(resource, slot)
    if (!this.#ctl(CTL.CREATED, slot)) {
      // The pool was torn down meanwhile.
      this.#res[slot] = undefined
      this.#slotOf.delete(resource)
      return
    }
    this.#pump() // also resolves ready() once `min` are idle
  }

  #createFailed(slot, err) {
    this.#createOps[slot] = undefined
    this.#createErr[slot] = err
    if (this.#ctl(CTL.CREATE_FAILED, slot)) this.#pump()
  }

  // generic-pool's _destroy: clear() waits for `wrapped`, factory.destroy's
  // promise (raced with the destroy timeout, if any), which leaves the set
  // one reaction after it settles; a failure of either is emitted. The core
  // learns when the destroy itself has settled (the slot is free then).
  #startDestroy(slot) {
    const P = this.#P
    const resource = this.#res[slot]
    this.#res[slot] = undefined
    this.#slotOf.delete(resource)
    let p
    try {
      p = this.#factory.destroy(resource)
    } catch (err) {
      p = P.reject(err)
    }
    const settled = P.resolve(p)
    let wrapped = settled
    if (this.#config.destroyTimeoutMillis) {
      const timeout = new P(executor)
      this.#destroyTimeouts[slot] = captured.reject
      captured.resolve = captured.reject = undefined
      wrapped = P.resolve(P.race([timeout, settled]))
    }
    this.#destroyOps[slot] = wrapped
    const untrack = () => {
      if (this.#destroyOps[slot] === wrapped) this.#destroyOps[slot] = undefined
    }
    wrapped
      .then(
        (v) => {
          untrack()
          return P.resolve(v)
        },
        (err) => {
          untrack()
          return P.reject(err)
        }
      )
      .catch((err) => this.#emitLater(FACTORY_DESTROY_ERROR, err))
    const done = () => {
      this.#destroyTimeouts[slot] = undefined
      this.#ctl(CTL.DESTROYED, slot)
    }
    settled.then(done, done)
  }

  // The core's destroy timer fired first: generic-pool's timeout rejection.
  #destroyTimedOut(slot) {
    const reject = this.#destroyTimeouts[slot]
    if (reject === undefined) return
    this.#destroyTimeouts[slot] = undefined
    reject(new Error('destroy timed out'))
  }

  #startValidate(slot) {
    const P = this.#P
    let p
    try {
      p = this.#factory.validate(this.#res[slot])
    } catch (err) {
      p = P.reject(err)
    }
    P.resolve(p)
      .then(
        (v) => P.resolve(v),
        (err) => P.reject(err)
      )
      .then(
        (valid) => {
          if (this.#ctl(CTL.VALIDATED, slot, valid === false ? 0 : 1)) this.#pump()
        },
        (err) => {
          // generic-pool leaves this rejection unhandled (a crash on Node >= 15):
          // here the resource counts as invalid.
          this.#emitLater(FACTORY_VALIDATE_ERROR, err)
          if (this.#ctl(CTL.VALIDATED, slot, 0)) this.#pump()
        }
      )
  }

  // An emit from a promise reaction: a throwing listener must not stop the
  // pool's own bookkeeping.
  #emitLater(name, ...args) {
    try {
      this.emit(name, ...args)
    } catch (err) {
      rethrowAsync(err)
    }
  }

  // The promises of the loans out now (generic-pool's _resourceLoans).
  #loansOut() {
    const out = []
    for (let slot = 0; slot < this.#res.length; slot++) {
      if (this.#res[slot] === undefined || this.#ctl(CTL.STATE, slot) !== SLOT.BORROWED) continue
      if (this.#loanP[slot] === undefined) {
        this.#loanP[slot] = new this.#P(executor)
        this.#loanEnd[slot] = captured.resolve
        captured.resolve = captured.reject = undefined
      }
      out.push(this.#loanP[slot])
    }
    return out
  }

  // A loan ends (release or destroy of a borrowed resource): before the
  // pool acts on it, as generic-pool resolves its loan first.
  #endLoan(slot) {
    const end = this.#loanEnd[slot]
    if (end === undefined) return
    this.#loanP[slot] = this.#loanEnd[slot] = undefined
    end()
  }

  #checkReady() {
    if (this.#counts[C.AVAILABLE] < this.#config.min) return
    const waiters = this.#readyWaiters
    this.#readyWaiters = []
    this.#ctl(CTL.HOLD, 0)
    for (const resolve of waiters) resolve()
  }

  // ------------------------------------------------------------ methods --

  start() {
    this.#ctl(CTL.START)
    if (this.#pending()) this.#pump()
  }

  /**
   * @param {number} [priority] 0 is served first (generic-pool semantics)
   * @param {{signal?: AbortSignal}} [options] sluice addition
   */
  acquire(priority, options) {
    const P = this.#P
    if (this.#config.autostart === false && !this.#ctl(CTL.STARTED)) this.start()
    const signal = options === undefined ? undefined : signalOf(options)
    let deferred
    let checked = false
    if (P !== NativePromise || signal !== undefined || this.#badTtl || isObject(priority)) {
      // generic-pool's order: its draining and max-waiting refusals (the
      // core decides them), its request (a promise of the pool's class; the
      // acquire-timeout check), then the priority. User code may run from
      // here on, before the pool changes anything.
      checked = true
      const aborted = signal !== undefined && signal.aborted
      const refused = this.#ctl(CTL.CHECK)
      if (refused === ACQ.DRAINING || (refused === ACQ.FULL && (this.#badTtl || !aborted))) {
        return this.#refuse(refused)
      }
      if (P !== NativePromise) deferred = deferredOf(P)
      if (this.#badTtl) throw new Error('delay must be a positive int')
      if (aborted) return P.reject(signal.reason)
    }
    let prio
    try {
      prio = (priority && +priority | 0) || 0
    } catch (err) {
      // A Symbol or a throwing valueOf: generic-pool throws it, unless it
      // refused the acquire first.
      const refused = checked ? 0 : this.#ctl(CTL.CHECK)
      if (refused !== 0) return this.#refuse(refused)
      throw err
    }
    // The abort listener goes on before the waiter is queued: a throwing
    // addEventListener leaves nothing behind.
    let entry
    if (signal !== undefined) {
      entry = this.#listen(signal)
      if (signal.aborted) {
        this.#unlisten(entry)
        return P.reject(signal.reason)
      }
    }
    const wfree = this.#wfree
    const token = wfree.length > 0 ? wfree[wfree.length - 1] : this.#wres.length
    const r = this.#acquire(prio, token)
    if (r >= 0) {
      const resource = this.#res[r]
      if (entry !== undefined) this.#unlisten(entry)
      if (this.#pending()) this.#pump()
      if (deferred === undefined) return P.resolve(resource)
      deferred.resolve(resource)
      return deferred.promise
    }
    if (r !== ACQ.QUEUED) {
      if (entry !== undefined) this.#unlisten(entry)
      return this.#refuse(r)
    }
    // Queued: the token is taken before anything else runs.
    if (wfree.length > 0) wfree.pop()
    let promise
    if (deferred === undefined) {
      promise = new NativePromise(executor)
      this.#wres[token] = captured.resolve
      this.#wrej[token] = captured.reject
      captured.resolve = captured.reject = undefined
    } else {
      promise = deferred.promise
      this.#wres[token] = deferred.resolve
      this.#wrej[token] = deferred.reject
    }
    this.#wprom[token] = promise
    if (entry !== undefined) {
      entry.token = token
      entry.waiter = this.#hdr[H.WAITER]
      this.#wsig[token] = entry
    }
    if (this.#pending()) this.#pump()
    return promise
  }

  // generic-pool's rejection of a refused acquire (ACQ.DRAINING or
  // ACQ.FULL, as the core decided).
  #refuse(code) {
    return this.#P.reject(new Error(code === ACQ.DRAINING ? DRAINING : FULL))
  }

  // Listens for the abort of a waiter not queued yet (entry.token < 0 until
  // it is, and again once it is settled: a late abort does nothing).
  #listen(signal) {
    const entry = { signal, onAbort: undefined, token: -1, waiter: -1 }
    entry.onAbort = () => this.#aborted(entry)
    signal.addEventListener('abort', entry.onAbort, { once: true })
    return entry
  }

  #unlisten(entry) {
    try {
      entry.signal.removeEventListener('abort', entry.onAbort)
    } catch (err) {
      this.#throwLater(err)
    }
  }

  #aborted(entry) {
    const token = entry.token
    if (token < 0) return
    if (this.#ctl(CTL.CANCEL, entry.waiter, token)) {
      this.#settle(token, false, entry.signal.reason)
      // The cancel may have drained the pool: deliver that event now.
      if (this.#pending()) this.#pump()
    }
  }

  /**
   * acquire, run fn(resource), release (or destroy if fn throws or
   * rejects). fn may return a plain value.
   */
  use(fn, priority, options) {
    const P = this.#P
    if (typeof fn !== 'function') return P.reject(new TypeError('Expected `fn` to be a function'))
    return this.acquire(priority, options).then((resource) => {
      let result
      try {
        result = fn(resource)
      } catch (err) {
        this.#destroyQuiet(resource)
        throw err
      }
      return P.resolve(result).then(
        (value) => {
          this.#releaseQuiet(resource)
          return value
        },
        (err) => {
          this.#destroyQuiet(resource)
          throw err
        }
      )
    })
  }

  #releaseQuiet(resource) {
    const slot = this.#slotOf.get(resource)
    if (slot !== undefined && this.#release(slot) && this.#pending()) this.#pump()
  }

  #destroyQuiet(resource) {
    const slot = this.#slotOf.get(resource)
    if (slot !== undefined && this.#ctl(CTL.DESTROY, slot) && this.#pending()) this.#pump()
  }

  isBorrowedResource(resource) {
    const slot = this.#slotOf.get(resource)
    return slot !== undefined && this.#ctl(CTL.STATE, slot) === SLOT.BORROWED
  }

  release(resource) {
    const slot = this.#slotOf.get(resource)
    if (slot === undefined || !this.#release(slot)) {
      return this.#P.reject(new Error('Resource not currently part of this pool'))
    }
    if (this.#loanEnd[slot] !== undefined) this.#endLoan(slot) // only once a drain() asked
    if (hasEvents(this.#hdr) || this.#readyWaiters.length > 0) this.#pump()
    // One shared fulfilled promise: release is the hot path and the value is
    // always undefined.
    return this.#resolved
  }

  destroy(resource) {
    const slot = this.#slotOf.get(resource)
    if (slot === undefined || !this.#ctl(CTL.DESTROY, slot)) {
      return this.#P.reject(new Error('Resource not currently part of this pool'))
    }
    this.#endLoan(slot)
    if (this.#pending()) this.#pump()
    return this.#P.resolve()
  }

  // generic-pool's promise chain, so that drain() settles on the same
  // microtask: the last waiting client settled, then every loan out at that
  // point returned. One fix: if clients still wait then (the last one timed
  // out or was aborted before the others were served), it waits for them
  // too, instead of resolving while they can still borrow.
  drain() {
    const P = this.#P
    this.#ctl(CTL.DRAIN)
    const returned = () => {
      if (this.#ctl(CTL.TAIL) >= 0) return this.#requestsSettled().then(returned)
      const loans = this.#loansOut()
      for (let i = 0; i < loans.length; i++) loans[i] = loans[i].then(noop, noop)
      return P.all(loans)
    }
    return this.#requestsSettled().then(returned).then(noop)
  }

  #requestsSettled() {
    const tail = this.#ctl(CTL.TAIL)
    return tail >= 0 ? this.#wprom[tail].then(noop, noop) : this.#P.resolve()
  }

  clear() {
    const P = this.#P
    const creates = []
    for (const op of this.#createOps) if (op !== undefined) creates.push(op.then(noop, noop))
    return P.all(creates).then(() => {
      this.#ctl(CTL.CLEAR_IDLE)
      if (this.#pending()) this.#pump()
      const destroys = []
      for (const op of this.#destroyOps) if (op !== undefined) destroys.push(op.then(noop, noop))
      return P.all(destroys).then(noop, noop)
    })
  }

  ready() {
    return new this.#P((resolve) => {
      if (this.#counts[C.AVAILABLE] >= this.#config.min) {
        resolve()
        return
      }
      if (this.#readyWaiters.length === 0) this.#ctl(CTL.HOLD, 1)
      this.#readyWaiters.push(resolve)
    })
  }

  /** sluice addition: a snapshot of the counts. */
  stats() {
    const c = this.#counts
    return {
      size: c[C.SIZE],
      available: c[C.AVAILABLE],
      borrowed: c[C.BORROWED],
      pending: c[C.PENDING],
      spareResourceCapacity: c[C.SPARE],
      creating: c[C.CREATING],
      validating: c[C.VALIDATING],
      destroying: c[C.DESTROYING],
      max: this.#config.max,
      min: this.#config.min
    }
  }

  get size() {
    return this.#counts[C.SIZE]
  }
  get available() {
    return this.#counts[C.AVAILABLE]
  }
  get borrowed() {
    return this.#counts[C.BORROWED]
  }
  get pending() {
    return this.#counts[C.PENDING]
  }
  get spareResourceCapacity() {
    return this.#counts[C.SPARE]
  }
  get max() {
    return this.#config.max
  }
  get min() {
    return this.#config.min
  }
}

function createPool(factory, config) {
  return new Pool(undefined, undefined, undefined, factory, config)
}

module.exports = { createPool, Pool, TimeoutError }
