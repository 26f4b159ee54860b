'use strict'
// sluice/pg-pool: pg-pool 3.14's API and observable behaviour (the Pool inside
// `pg`) over the native pool core (src/core/pool.c), opened with pg-pool's
// rules (bind_creates: see src/core/pool.h).
//
// C decides, JS does. The core owns the counts (totalCount, idleCount,
// waitingCount, expiredCount), the FIFO queue of waiting callers, the LIFO
// idle list, which caller gets which client, and every timer: the queue's
// and the connect's connectionTimeoutMillis, each client's idle timer and
// lifetime. This file holds the pg clients (by slot), the callers' callbacks
// (by token), runs pg (connect, end) and emits pg-pool's events. The core
// tells it what to do as events in a window shared with C (#pump).
//
// Where pg-pool hurts its users, this pool does the safe thing; each
// difference is listed in the README ("Migrating from pg").
const { EventEmitter } = require('node:events')
const { protocol } = require('./binding.js')
const { executor, captured } = require('./executor.js')
const { nodeDelay, openPool, hasEvents, readEvents, rethrowAsync } = require('./pool-events.js')

const {
  poolEvents: EV,
  poolCtls: CTL,
  poolCounts: C,
  poolConfig: CFG,
  poolSlots: SLOT,
  limits: LIMITS
} = protocol

const NOOP = function () {}
const NativePromise = Promise

// Per-client state, on the client object itself (no Map lookup per call).
const kSlot = Symbol('sluice.pg-pool.slot')
const kIdle = Symbol('sluice.pg-pool.idle')
const kLent = Symbol('sluice.pg-pool.lent')

const DOUBLE_RELEASE = 'Release called on client which has already been released to the pool.'
const ENDED = 'Cannot use a pool after calling end on the pool'
const QUEUE_TIMEOUT = 'timeout exceeded when trying to connect'
const CONNECT_TIMEOUT = 'Connection terminated due to connection timeout'
const USE_AFTER_RELEASE =
  'Client was released to the pool: check out a client with pool.connect() before using it'

function throwOnDoubleRelease() {
  throw new Error(DOUBLE_RELEASE)
}

// pg-pool's promisify: a callback, or a promise of the pool's Promise class.
// As in pg-pool, the promise returned is the one from a catch() that
// replaces a rejection's stack with one from where it is settled (pg
// replaces the one leading to TCP.onStreamRead the same way); that extra
// step also settles it in the same microtask turn as pg-pool's.
function promisify(P, callback) {
  if (callback) return { callback, result: undefined }
  let res, rej
  const result = new P((resolve, reject) => {
    res = resolve
    rej = reject
  }).catch(restack)
  const cb = function (err, client) {
    if (err) rej(err)
    else res(client)
  }
  return { callback: cb, result }
}

function restack(err) {
  if (err instanceof Error) Error.captureStackTrace(err)
  throw err
}

function loadClient() {
  try {
    return require('pg').Client
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND') {
      const e = new Error(
        "sluice/pg-pool needs the 'pg' package (npm install pg), or a Client class: new Pool(options, Client) or options.Client"
      )
      e.code = 'ERR_SLUICE_NO_PG'
      e.cause = err
      throw e
    }
    throw err
  }
}

// A non-negative number option; unset (undefined, null, false, '': pg-pool
// tests each option for truth, so these are all "not set") gives `dflt`.
// Numeric strings are read as pg-pool's comparisons and setTimeout read them.
function numberOption(options, name, dflt) {
  const v = options[name]
  if (v === undefined || v === null || v === false || v === '') return dflt
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (typeof n !== 'number') {
    throw new TypeError(`Expected \`options.${name}\` to be a number, got ${typeof v}`)
  }
  if (!(n >= 0)) {
    throw new RangeError(`Expected \`options.${name}\` to be a number >= 0, got ${String(v)}`)
  }
  return n
}

function functionOption(options, name) {
  const v = options[name]
  if (v !== undefined && v !== null && typeof v !== 'function') {
    throw new TypeError(`Expected \`options.${name}\` to be a function, got ${typeof v}`)
  }
  return v || undefined
}

class Pool extends EventEmitter {
  #acquire
  #release
  #ctl
  #counts
  #hdr
  #win
  #pumpFn
  #pulseFn
  #onEventFn = (type, a, b) => this.#onEvent(type, a, b) // readEvents' handler
  #endCallback
  #prefill
  // By slot: the client, its idle listener, whether it was never lent yet,
  // the error of its failed connect.
  #clients = []
  #fresh = []
  #createErr = []
  // By token: the callback of a caller waiting for a client, or the
  // resolving functions of its promise.
  #wcb = []
  #wres = []
  #wrej = []
  #wfree = []
  #ntokens = 0 // tokens made so far (the next new one)

  constructor(options, Client) {
    super()
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw new TypeError(`Expected \`options\` to be an object, got ${typeof options}`)
    }
    this.options = Object.assign({}, options)
    if (options != null && 'password' in options) {
      // Hidden, as pg-pool hides it: no password in logs or stack traces.
      Object.defineProperty(this.options, 'password', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: options.password
      })
    }
    if (options != null && options.ssl && options.ssl.key) {
      Object.defineProperty(this.options.ssl, 'key', { enumerable: false })
    }
    const o = this.options
    // pg-pool's defaults, with its `||` (0 means the default).
    // The numbers the pool runs on (`n`); pool.options keeps the values as
    // given, filled in with pg-pool's `||` (0 means the default), as
    // pg-pool's does (a numeric string stays a string there).
    const n = {
      max: numberOption(o, 'max', 0) || numberOption(o, 'poolSize', 0) || 10,
      min: numberOption(o, 'min', 0) || 0,
      maxUses: numberOption(o, 'maxUses', 0) || Infinity,
      maxLifetimeSeconds: numberOption(o, 'maxLifetimeSeconds', 0) || 0
    }
    // Between 0 and 1, pg-pool opens one client (its `>=` test), as here.
    if (n.max === Infinity) {
      throw new RangeError(`Expected \`options.max\` to be a finite number, got ${n.max}`)
    }
    o.max = o.max || o.poolSize || 10
    o.min = o.min || 0
    o.maxUses = o.maxUses || Infinity
    o.allowExitOnIdle = o.allowExitOnIdle || false
    o.maxLifetimeSeconds = o.maxLifetimeSeconds || 0
    if (typeof o.idleTimeoutMillis === 'undefined') o.idleTimeoutMillis = 10000
    // Only undefined gets the default: pg-pool runs no idle timer for null,
    // false or 0.
    const idle = numberOption(o, 'idleTimeoutMillis', 0)
    const connectTimeout = numberOption(o, 'connectionTimeoutMillis', 0)
    this.log = functionOption(o, 'log') || function () {}
    functionOption(o, 'onConnect')
    functionOption(o, 'verify')
    this.Client = o.Client || Client || loadClient()
    if (typeof this.Client !== 'function') {
      throw new TypeError(`Expected \`Client\` to be a class, got ${typeof this.Client}`)
    }
    this.Promise = o.Promise || global.Promise
    if (typeof this.Promise !== 'function') {
      throw new TypeError('Expected `options.Promise` to be a Promise constructor')
    }
    // sluice addition: keep `min` clients open (created at once, replaced when
    // lost). Off by default: to pg-pool, min is only a floor for idle removal.
    if (o.prefill !== undefined && typeof o.prefill !== 'boolean') {
      throw new TypeError(`Expected \`options.prefill\` to be a boolean, got ${typeof o.prefill}`)
    }
    this.#prefill = o.prefill === true

    this.ending = false
    this.ended = false
    this.#pumpFn = () => this.#pump()
    this.#pulseFn = () => {
      this.#ctl(CTL.DISPENSE)
      this.#pump()
    }
    const native = openPool(this.#config(n, idle, connectTimeout), this.#pumpFn)
    ;[this.#acquire, this.#release, this.#ctl, this.#counts, this.#hdr, this.#win] = native
    if (this.#prefill && n.min > 0) {
      this.#ctl(CTL.START)
      this.#pump()
    }
  }

  #config(n, idle, connectTimeout) {
    const a = new Float64Array(CFG.COUNT)
    const max = Math.min(n.max, LIMITS.COUNT_MAX)
    a[CFG.MAX] = Math.ceil(max)
    a[CFG.MIN] = Math.min(n.min, a[CFG.MAX])
    a[CFG.MAX_WAITING] = NaN
    a[CFG.FIFO] = 0 // LIFO idle reuse, as pg-pool pops its idle list
    a[CFG.PRIORITY_RANGE] = 1
    a[CFG.ACQUIRE_TIMEOUT] = connectTimeout > 0 ? nodeDelay(connectTimeout) : 0
    a[CFG.IDLE] = NaN // no generic-pool evictor
    a[CFG.MAX_USES] = n.maxUses === Infinity ? 0 : n.maxUses
    a[CFG.BACKOFF_MIN] = LIMITS.BACKOFF_MIN
    a[CFG.BACKOFF_MAX] = LIMITS.BACKOFF_MAX
    a[CFG.BIND_CREATES] = 1
    a[CFG.NO_FILL] = this.#prefill ? 0 : 1
    a[CFG.UNREF_TIMEOUTS] = 1
    a[CFG.CREATE_TIMEOUT] = connectTimeout > 0 ? nodeDelay(connectTimeout) : 0
    a[CFG.IDLE_TIMEOUT] = idle > 0 ? nodeDelay(idle) : 0
    a[CFG.EXPIRE] = n.maxLifetimeSeconds > 0 ? nodeDelay(n.maxLifetimeSeconds * 1000) : 0
    return a
  }

  // ------------------------------------------------------------ events --

  // Consumes the core's events in order (readEvents: a handler that
  // re-enters the pool continues from the same place).
  #pump() {
    readEvents(this.#hdr, this.#win, this.#ctl, this.#onEventFn)
  }

  // One event of the core's. Errors of user code (callbacks, listeners) are
  // rethrown asynchronously.
  #onEvent(type, a, b) {
    try {
      switch (type) {
        case EV.RESOLVE:
          this.#acquireClient(a, b)
          break
        case EV.CREATE:
          this.#newClient(a)
          break
        case EV.DESTROY:
          this.#remove(a)
          break
        case EV.REJECT_TIMEOUT:
          // A queued caller that times out gets no `done`, as in pg-pool
          // (only a failed connect passes one).
          this.#settle(a, new Error(QUEUE_TIMEOUT), undefined, undefined)
          break
        case EV.REJECT_CREATE: {
          const err = this.#createErr[b]
          this.#createErr[b] = undefined
          this.#fail(a, err)
          break
        }
        case EV.REJECT_CREATE_TIMEOUT: {
          // The cause: the connect's own error if it failed by now.
          const cause = this.#createErr[b] || new Error('timeout expired')
          this.#createErr[b] = undefined
          this.#fail(a, new Error(CONNECT_TIMEOUT, { cause }))
          break
        }
        case EV.REJECT_DRAINING:
          // As pg-pool's connect() after end(): no `done`.
          this.#settle(a, new Error(ENDED), undefined, undefined)
          break
        case EV.CREATE_TIMEOUT:
          this.#abortConnect(a)
          break
        case EV.EXPIRED:
          this.#expired(a)
          break
      }
    } catch (err) {
      rethrowAsync(err)
    }
  }

  // The caller `token` is served (err undefined) or refused.
  #settle(token, err, client, done) {
    const cb = this.#wcb[token]
    this.#wfree.push(token)
    if (cb !== undefined) {
      this.#wcb[token] = undefined
      cb(err, client, done)
      return
    }
    const res = this.#wres[token]
    const rej = this.#wrej[token]
    this.#wres[token] = this.#wrej[token] = undefined
    // The stack of a rejection is replaced in the promise's catch() step.
    if (err) rej(err)
    else res(client)
  }

  #fail(token, err) {
    this.#settle(token, err, undefined, NOOP)
  }

  // pg-pool's newClient, for the slot the core created.
  #newClient(slot) {
    this.#createErr[slot] = undefined // a reused slot: no stale error
    let client
    try {
      client = new this.Client(this.options)
    } catch (err) {
      // A constructor that throws is a failed connect (pg-pool throws it
      // out of connect()); the slot must not stay in creation.
      this.#connectFailed(slot, undefined, err)
      return
    }
    client[kSlot] = slot
    client[kIdle] = false
    client[kLent] = false
    this.#clients[slot] = client
    this.log('connecting new client')
    // Only the first settlement counts: a client that calls back twice must
    // not report a second outcome for a slot that has moved on (or been
    // reused by another client).
    let settled = false
    const onConnect = (err) => {
      if (settled) return
      settled = true
      this.#clientConnected(slot, client, err)
    }
    try {
      client.connect(onConnect)
    } catch (err) {
      onConnect(err)
    }
  }

  #clientConnected(slot, client, err) {
    client.on('error', this.#errorListener(client))
    if (err) {
      this.log('client failed to connect', err)
      this.#connectFailed(slot, client, err)
      return
    }
    this.log('new client connected')
    const onConnect = this.options.onConnect
    if (onConnect) {
      this.#promiseTry(() => onConnect(client)).then(
        () => this.#connected(slot),
        (hookErr) => client.end(() => this.#connectFailed(slot, client, hookErr))
      )
      return
    }
    this.#connected(slot)
  }

  #promiseTry(f) {
    const P = this.Promise
    if (typeof P.try === 'function') return P.try(f)
    return new P((resolve) => resolve(f()))
  }

  #connected(slot) {
    this.#fresh[slot] = true
    this.#ctl(CTL.CREATED, slot)
    this.#pump()
  }

  #connectFailed(slot, client, err) {
    if (this.#clients[slot] === client) this.#clients[slot] = undefined
    this.#createErr[slot] = err
    this.#ctl(CTL.CREATE_FAILED, slot)
    this.#pump()
    this.#checkEnded()
  }

  // The core's create timeout: its caller has been told already. Abort the
  // connect as pg-pool does; whatever its outcome, the core makes sure the
  // client is never handed out (and ended if it connected after all).
  #abortConnect(slot) {
    const client = this.#clients[slot]
    if (client === undefined) return
    this.log('ending client due to timeout')
    if (client.connection && client.connection.stream) client.connection.stream.destroy()
    else client.end()
  }

  // An idle client reached maxLifetimeSeconds: pg-pool checks it out and
  // releases it, so 'acquire' and 'release' are emitted; its removal follows.
  #expired(slot) {
    const client = this.#clients[slot]
    this.log('ending client due to expired lifetime')
    this.emit('acquire', client)
    client._poolUseCount = (client._poolUseCount || 0) + 1
    this.emit('release', undefined, client)
  }

  // pg-pool's _remove: the core has taken the slot out of every count.
  #remove(slot) {
    const client = this.#clients[slot]
    this.#clients[slot] = undefined
    client[kIdle] = false
    client.end(() => {
      // A 'remove' listener that throws must not keep the slot from being
      // freed (nor end() from finishing): its error is thrown after.
      try {
        this.emit('remove', client)
      } finally {
        this.#ctl(CTL.DESTROYED, slot)
        this.#pump()
        this.#checkEnded()
      }
    })
  }

  #checkEnded() {
    if (this.ending && !this.ended && this.#counts[C.SIZE] === 0) {
      this.ended = true
      this.#endCallback()
    }
  }

  // One 'error' listener for a client's whole life in the pool (pg-pool
  // adds and removes its idle listener on every checkout). While the client
  // is idle it is pg-pool's idle listener; while it is checked out, its
  // errors are its holder's, as with pg-pool: with no listener of the
  // holder's, the error is thrown as EventEmitter throws it.
  #errorListener(client) {
    const pool = this
    let failed
    return function onClientError(err) {
      if (client[kLent]) {
        if (client.listenerCount('error') === 1) throw err
        return
      }
      if (failed !== undefined) {
        pool.log('additional client error after disconnection due to error', failed)
        return
      }
      failed = err
      err.client = client
      const slot = client[kSlot]
      if (pool.#clients[slot] === client && pool.#ctl(CTL.REMOVE, slot)) pool.#pump()
      // pg-pool emits 'error' even with nobody listening, which crashes the
      // process (pg #2439): the pool has removed the client and goes on, so
      // without a listener the error is a warning instead.
      if (pool.listenerCount('error') > 0) pool.emit('error', err, client)
      else process.emitWarning(err, { code: 'SLUICE_PG_IDLE_CLIENT_ERROR' })
    }
  }

  // pg-pool's _acquireClient: the core lent `slot` to the caller `token`.
  #acquireClient(token, slot) {
    const client = this.#clients[slot]
    const isNew = this.#fresh[slot] === true
    // A 'connect' or 'acquire' listener that throws must not leave the
    // caller waiting for ever and the client lent to nobody: the caller is
    // served, then the listener's error is thrown (#pump rethrows it).
    let listenerErr
    if (isNew) {
      this.#fresh[slot] = false
      this.#guard(client)
      listenerErr = this.#emitCatching('connect', client)
    } else if (this.options.allowExitOnIdle && client.ref) {
      client.ref()
    }
    client[kIdle] = false
    listenerErr = this.#emitCatching('acquire', client) || listenerErr
    client.release = this.#releaseOnce(client, slot)
    client[kLent] = true
    if (listenerErr !== undefined) {
      this.#serve(token, client, isNew)
      throw listenerErr
    }
    this.#serve(token, client, isNew)
  }

  // Emits `name`; returns what a listener threw (undefined if none did).
  #emitCatching(name, client) {
    try {
      this.emit(name, client)
    } catch (err) {
      return err === undefined ? null : err
    }
    return undefined
  }

  #serve(token, client, isNew) {
    if (isNew && this.options.verify) {
      // Only verify's first answer counts: a second call would settle the
      // caller twice (pg-pool calls its callback twice), and here free its
      // token twice, so two later callers would share one token and one of
      // them would never be served. A verify that throws fails the check.
      let answered = false
      const done = (err) => {
        if (answered) return
        answered = true
        if (err) {
          client.release(err)
          return this.#settle(token, err, undefined, NOOP)
        }
        this.#settle(token, undefined, client, client.release)
      }
      try {
        this.options.verify(client, done)
      } catch (err) {
        if (answered) throw err
        done(err)
      }
      return
    }
    this.#settle(token, undefined, client, client.release)
  }

  // Use after release: while a client sits idle in the pool its query()
  // refuses to run (with pg-pool it runs, on a client the pool may hand to
  // someone else meanwhile).
  #guard(client) {
    if (typeof client.query !== 'function') return
    // The client's own query if it has one by now (set by onConnect), else
    // its class's, looked up at each call (so later instrumentation of the
    // class, as APM agents do, still applies).
    const own = Object.prototype.hasOwnProperty.call(client, 'query') ? client.query : undefined
    const proto = Object.getPrototypeOf(client)
    client.query = function (config, values, callback) {
      if (this[kIdle] !== true) {
        return (own || proto.query).call(this, config, values, callback)
      }
      const err = new Error(USE_AFTER_RELEASE)
      const cb =
        typeof callback === 'function'
          ? callback
          : typeof values === 'function'
            ? values
            : config && typeof config.callback === 'function'
              ? config.callback
              : undefined
      if (config && typeof config.submit === 'function') {
        if (typeof config.handleError === 'function') {
          process.nextTick(() => config.handleError(err))
        }
        return config
      }
      if (cb) {
        process.nextTick(() => cb(err))
        return undefined
      }
      return Promise.reject(err)
    }
  }

  #releaseOnce(client, slot) {
    let released = false
    return (err) => {
      if (released) {
        // release(err) after release(): the caller says the client is broken.
        // pg-pool throws and keeps it idle for the next caller; it is removed
        // here if it still sits idle (and the same error is thrown).
        if (err && this.#clients[slot] === client && this.#ctl(CTL.STATE, slot) === SLOT.IDLE) {
          if (this.#ctl(CTL.REMOVE, slot)) this.#pump()
        }
        throwOnDoubleRelease()
      }
      released = true
      this.#releaseClient(client, slot, err)
    }
  }

  // pg-pool's _release. The core applies maxUses and the lifetime.
  #releaseClient(client, slot, err) {
    client[kLent] = false
    client._poolUseCount = (client._poolUseCount || 0) + 1
    // A 'release' listener that throws: its error is thrown out of
    // release() (as in pg-pool), after the client went back (pg-pool loses
    // it: it stays counted and is never lent again).
    let listenerErr
    try {
      this.emit('release', err, client)
    } catch (e) {
      listenerErr = e === undefined ? null : e
    }
    this.#giveBack(client, slot, err)
    if (listenerErr !== undefined) throw listenerErr
  }

  #giveBack(client, slot, err) {
    if (err || this.ending || !client._queryable || client._ending) {
      this.#ctl(CTL.DESTROY, slot)
    } else {
      if (this.options.allowExitOnIdle && client.unref) client.unref()
      client[kIdle] = true
      this.#release(slot)
    }
    if (hasEvents(this.#hdr)) this.#pump()
  }

  // ------------------------------------------------------------ methods --

  connect(cb) {
    if (cb !== undefined && typeof cb !== 'function') {
      throw new TypeError(`Expected \`callback\` to be a function, got ${typeof cb}`)
    }
    if (this.ending) {
      const err = new Error(ENDED)
      return cb ? cb(err) : this.Promise.reject(err)
    }
    const wfree = this.#wfree
    const token = wfree.length > 0 ? wfree.pop() : this.#ntokens++
    let result
    if (cb !== undefined) {
      this.#wcb[token] = cb
    } else if (this.Promise === NativePromise) {
      // The catch() step as in pg-pool's promisify: the same microtask turn.
      result = new NativePromise(executor).catch(restack)
      this.#wres[token] = captured.resolve
      this.#wrej[token] = captured.reject
      captured.resolve = captured.reject = undefined
    } else {
      result = new this.Promise((resolve, reject) => {
        this.#wres[token] = resolve
        this.#wrej[token] = reject
      }).catch(restack)
    }
    // pg-pool queues a caller while a client is idle and serves it on the
    // next tick.
    if (this.#counts[C.AVAILABLE] > 0) process.nextTick(this.#pulseFn)
    this.#acquire(0, token)
    if (hasEvents(this.#hdr)) this.#pump()
    return result
  }

  query(text, values, cb) {
    if (typeof text === 'function') {
      const response = promisify(this.Promise, text)
      setImmediate(function () {
        return response.callback(
          new Error('Passing a function as the first parameter to pool.query is not supported')
        )
      })
      return response.result
    }
    if (typeof values === 'function') {
      cb = values
      values = undefined
    }
    if (cb !== undefined && typeof cb !== 'function') {
      throw new TypeError(`Expected \`callback\` to be a function, got ${typeof cb}`)
    }
    const response = promisify(this.Promise, cb)
    cb = response.callback
    this.connect((err, client) => {
      if (err) return cb(err)
      let clientReleased = false
      const onError = (err) => {
        if (clientReleased) return
        clientReleased = true
        client.release(err)
        cb(err)
      }
      client.once('error', onError)
      this.log('dispatching query')
      try {
        client.query(text, values, (err, res) => {
          this.log('query dispatched')
          client.removeListener('error', onError)
          if (clientReleased) return
          clientReleased = true
          client.release(err)
          if (err) return cb(err)
          return cb(undefined, res)
        })
      } catch (err) {
        client.release(err)
        return cb(err)
      }
    })
    return response.result
  }

  end(cb) {
    // Checked first: a bad callback must not leave the pool half ended.
    if (cb !== undefined && typeof cb !== 'function') {
      throw new TypeError(`Expected \`callback\` to be a function, got ${typeof cb}`)
    }
    this.log('ending')
    if (this.ending) {
      const err = new Error('Called end on pool more than once')
      return cb ? cb(err) : this.Promise.reject(err)
    }
    this.ending = true
    const promised = promisify(this.Promise, cb)
    this.#endCallback = promised.callback
    this.#ctl(CTL.DRAIN)
    this.#pump()
    this.#checkEnded()
    return promised.result
  }

  get waitingCount() {
    return this.#counts[C.PENDING]
  }

  get idleCount() {
    return this.#counts[C.AVAILABLE]
  }

  get expiredCount() {
    return this.#counts[C.EXPIRED]
  }

  get totalCount() {
    return this.#counts[C.SIZE]
  }
}

module.exports = Pool
