'use strict'
// A gate whose permits live in Redis: one limit for a fleet of processes.
// The state is in Redis and changes only through the Lua script
// (./script.js); this object keeps its side: what it holds, its tickets,
// and its waiters, which are queued in the process's fleet gate (native,
// src/core/gate.h), so that timeouts, aborts, teardown and grants from
// another thread are the native gate's, as for any Semaphore.
//
// A waiter's life: acquire() queues a native waiter (0 permits: it waits)
// and makes its ticket "<client>.<seq>" (client: "<process>.<stake id>"),
// then runs the script's acquire, which queues the ticket in Redis or
// grants it at once. A grant to a queued ticket comes as a message on the
// process's channel, to whichever thread leads the gate in the process
// (./agent.js), which grants the native waiter by its stake and seq; or, if
// the message was lost, from this object's next sweep. A granted ticket's
// record stays in Redis until this client "claims" it in its next script
// call (piggybacked, no command of its own), so a retried acquire finds its
// grant instead of taking another. A waiter that times out or is aborted
// (the native gate settles it) is cancelled in Redis: removed from the
// queue, or, if it was granted meanwhile, its permits given back, once.
const { EventEmitter } = require('node:events')
const { TimeoutError } = require('../errors.js')
const { scratch, OP } = require('../binding.js')
const { adapt, isReplyError } = require('./client.js')
const { RedisUnreachableError } = require('./errors.js')
const { Agent, PROCESS, fleetGate } = require('./agent.js')

const SWEEP_BATCH = 256

// Why a native waiter was cancelled by this object, when not an error the
// caller sees: a tryAcquire that found no room, a clearQueue() that drops.
const BUSY = Symbol('busy')
const DROP = Symbol('drop')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref())

// An object collected without close(): its agent lets go of it (the lead
// reaps its client in Redis, ./agent.js).
const dropped = new FinalizationRegistry(({ agent, token }) => agent.detach(token))

class RedisGate extends EventEmitter {
  constructor(redis, name, permits, leaseMillis) {
    super()
    this.adapter = adapt(redis)
    this.name = name
    const tag = `sluice:{${name}}:`
    this.keys = ['meta', 'queue', 'qidx', 'grants', 'held', 'leases', 'clients'].map((k) => tag + k)
    // This object's stake in the process's fleet gate: its waiters queue
    // there, and its id names this client in Redis.
    const [take, release, ctl] = fleetGate(name)
    this.take = take
    this.nrelease = release
    this.ctl = ctl
    this.stake = ctl(OP.STAKE_ID)
    this.client = `${PROCESS}.${this.stake}`
    this.leaseMillis = leaseMillis
    this.createPermits = permits
    // What Redis said last (a round trip stale at most).
    this.permits = permits === undefined ? NaN : permits
    this.used = 0
    this.queued = 0
    this.epoch = ''
    this.maxToken = 0
    // This process's side.
    this.waiters = new Map() // ticket -> waiter, in the order they were made
    this.seq = 0
    this.held = 0
    this.lost = 0
    this.claims = []
    this.releasing = 0 // permits released locally, not yet sent
    this.releaseBusy = false
    this.rseq = 0
    this.closed = false
    this.lastError = null
    this.timer = null
    this.sweeping = false
    this.sweepAgain = false
    this.agent = Agent.get(this.adapter, name, this.keys, leaseMillis)
    // What the agent knows this object by: not the object itself, which it
    // must not keep alive.
    this.token = {}
    this.agent.attach(this.token, this)
    dropped.register(this, { agent: this.agent, token: this.token }, this.token)
    this.ready = this._open()
    this.ready.catch(() => {})
  }

  async _open() {
    const p = this.createPermits
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      if (this.closed) return
      try {
        const r = await this._bounded('open', [p === undefined ? '' : encode(p)])
        if (r.status === 'nogate') {
          throw new RangeError(
            `No gate named ${JSON.stringify(this.name)} in Redis: pass \`permits\` to create it`
          )
        }
        if (r.status === 'mismatch') {
          throw new RangeError(
            `The gate ${JSON.stringify(this.name)} has ${r.a === '-1' ? 'Infinity' : r.a} permits in Redis, not ${p}`
          )
        }
        if (this.createPermits === undefined) this.createPermits = this.permits
        return
      } catch (err) {
        if (!transient(err)) throw err
        await sleep(delay)
      }
    }
  }

  // A call that gives up waiting after a lease (at least 1 s): a command
  // lost in a reconnect must not stall a sweep, a waiter or the releases
  // forever. Every op is idempotent (tickets, release sequence numbers), so
  // the caller may send it again; a late reply is still taken in.
  _bounded(op, extra, releasing = 0) {
    const ms = Math.max(1000, this.leaseMillis)
    let timer
    const call = this._call(op, extra, releasing)
    const late = new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        call.catch(() => {})
        const err = new Error(`Redis did not answer within ${ms} ms`)
        this.lastError = err
        reject(err)
      }, ms)
      timer.unref()
    })
    return Promise.race([call, late]).finally(() => clearTimeout(timer))
  }

  // One script call. Everything it reports about the gate is taken in here.
  // `releasing`: permits this very call releases (a release call).
  async _call(op, extra, releasing = 0) {
    if (this.closed && op !== 'close') throw closedError(this.name)
    // Whether this process should have a lease now: it holds permits or has
    // tickets in Redis. A lapse found by a call made while idle means nothing.
    let expected = this.held > 0
    if (!expected) for (const w of this.waiters.values()) if ((expected = w.sent)) break
    const argv = [
      op,
      this.client,
      String(this.leaseMillis),
      this.epoch,
      // What Redis should count as ours if it lost the gate and this call
      // re-creates it: what we hold plus what we released but Redis has not
      // applied yet (the releases not sent, and this call's own, which the
      // script applies after re-registering).
      // With it, the last release those permits account for (this call's
      // own is not yet), so that a retried release is not applied twice.
      `${this.held + this.releasing + releasing}:${this.rseq - (releasing > 0 ? 1 : 0)}`,
      String(this.maxToken),
      this.claims.length > 0 ? this.claims.splice(0).join(' ') : '',
      this.createPermits === undefined ? '' : encode(this.createPermits),
      ...extra
    ]
    let reply
    try {
      reply = await this.adapter.run(this.keys, argv)
    } catch (err) {
      // Claims are resent with the next call (HDEL of a claimed ticket is
      // idempotent).
      if (argv[6] !== '') this.claims.push(...argv[6].split(' '))
      if (transient(err)) this.lastError = err
      throw err
    }
    this.lastError = null
    const [status, a, b, permits, used, pending, epoch, flags] = reply.map(String)
    const r = { status, a, b }
    if (status === 'nogate') return r
    this.permits = permits === '-1' ? Infinity : Number(permits)
    this.createPermits = this.permits
    this.used = Number(used)
    this.queued = Number(pending)
    const recreated = flags.includes('e')
    const lapsed = flags.includes('l')
    this.epoch = epoch
    if (lapsed && expected) this._leaseLost()
    else if (recreated) this._requeue()
    return r
  }

  // Our lease lapsed and Redis reaped it: what we held went to others and our
  // tickets left the queue. Those permits are gone (their release is a
  // no-op, and the fleet gate gets them back now); our waiters queue again,
  // at the back.
  _leaseLost() {
    const held = this.held
    if (held === 0 && this.waiters.size === 0) return
    this.lost += held
    this.held = 0
    if (held > 0) this.nrelease(held)
    this._requeue()
    process.nextTick(() => this.emit('leaseLost', { permits: held, waiting: this.waiters.size }))
  }

  // The lead saw clients of this process reaped with a lapsed lease: if this
  // is one of them, the call says so (flag 'l') and _call handles it.
  _checkLease() {
    if (this.closed || (this.held === 0 && this.waiters.size === 0)) return
    this.ready
      .then(() => this._call('state', []))
      .catch(() => {
        // Unreachable: the next epoch or call tells.
      })
  }

  _requeue() {
    for (const w of this.waiters.values()) {
      if (w.sent) this._send(w)
    }
  }

  // The sweep timer runs while this object has waiters: it asks Redis after
  // their tickets, in case a grant message was lost. It keeps the process
  // alive (a process elsewhere may release to them). The lease is the
  // agent's (./agent.js): held permits alone need no timer here.
  _ensureTimer() {
    if (this.timer !== null || this.closed) return
    const every = Math.max(10, Math.floor(this.leaseMillis / 3))
    this.timer = setInterval(() => this._sweep(), every)
  }

  _idleCheck() {
    if (this.timer !== null && this.waiters.size === 0) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  // The safety sweep: the state of the oldest waiting tickets.
  async _sweep() {
    if (this.closed) return
    if (this.sweeping) {
      this.sweepAgain = true
      return
    }
    this.sweeping = true
    this.sweepAgain = false
    try {
      if (this.waiters.size === 0) return
      const tickets = []
      for (const w of this.waiters.values()) {
        if (w.sent) tickets.push(w.ticket)
        if (tickets.length === SWEEP_BATCH) break
      }
      const r = await this._bounded('renew', tickets)
      if (r.a === '') return
      for (const item of r.a.split(',')) {
        const [ticket, token] = item.split(' ')
        const w = this.waiters.get(ticket)
        if (w === undefined) continue
        if (token === '-') this._send(w)
        else this._grant(w, token)
      }
    } catch {
      // The next sweep tries again; lastError says why.
    } finally {
      this.sweeping = false
      this._idleCheck()
      if (this.sweepAgain && this.timer !== null) this._sweep()
    }
  }

  // Redis granted w's ticket (the reply to our own acquire or sweep): the
  // native waiter is granted, and settles in _granted. If it is not queued
  // any more, it was either granted already (by the lead's message) or
  // cancelled, and its cancel gives the grant back in Redis.
  _grant(w, token) {
    this.ctl(OP.GRANT_TO, this.stake, w.seq, Number(token))
  }

  // The native waiter was granted (by _grant, or by the lead's message in
  // any thread): `token` is the fencing token, -1 for a refusal.
  _granted(w, token) {
    this._settle(w)
    if (token === -1) {
      // Refused: the permits were lowered below the request. The native
      // grant that carried the news is given back at once.
      this.nrelease(w.n)
      w.reject(
        new RangeError(
          `The request for ${w.n} permits can never be granted: the gate now has ${this.permits}`
        )
      )
      return
    }
    if (this.closed) {
      // Granted while close() was under way: close gives it back in Redis.
      this.nrelease(w.n)
      w.reject(closedError(this.name))
      return
    }
    this.held += w.n
    this.claims.push(w.ticket)
    if (token > this.maxToken) this.maxToken = token
    this.agent.wake()
    w.resolve(token)
  }

  // The native waiter was rejected: by its timeout, or by a cancel of ours
  // (w.reason says which).
  _rejected(w, err) {
    this._settle(w)
    const reason = w.reason
    if (reason === BUSY) w.resolve(false)
    else if (reason === DROP) {
      // cleared: the caller's promise stays pending, as p-limit's.
    } else if (reason !== undefined) w.reject(reason)
    else w.reject(err instanceof TimeoutError ? this._timeoutError(w, err) : err)
    if (w.inRedis) {
      w.cancelled = true
      // After the acquire is answered, so that the cancel reaches Redis after it.
      if (!w.sending) this._cancelInRedis(w)
    }
  }

  _settle(w) {
    this.waiters.delete(w.ticket)
    if (w.signal !== undefined) {
      try {
        w.signal.removeEventListener('abort', w.onAbort)
      } catch {
        // The permits stand whatever the signal does.
      }
    }
    this._idleCheck()
  }

  // Cancels the native waiter with `reason`; false if it is not queued any
  // more (granted or rejected meanwhile: that settles it instead).
  _cancel(w, reason, inRedis = true) {
    if (!this.waiters.has(w.ticket) || w.reason !== undefined) return false
    w.reason = reason
    w.inRedis = inRedis
    if (this.ctl(OP.CANCEL, w.index, w.seq, reason === BUSY || reason === DROP ? null : reason)) {
      return true
    }
    w.reason = undefined
    w.inRedis = true
    return false
  }

  // Sends (or resends) a waiter's acquire until Redis answers or the waiter
  // is gone. The ticket makes it idempotent.
  async _send(w) {
    if (w.sending) {
      w.resend = true
      return
    }
    w.sending = true
    try {
      await this.ready
      // If this thread just took the lead, its subscriber first, so that the
      // grant's message is not published before anyone listens (the sweep
      // would find it, a third of a lease later).
      await this.agent.subscribed()
      for (let delay = 50; this.waiters.has(w.ticket); delay = Math.min(delay * 2, 1000)) {
        w.resend = false
        let r
        try {
          r = await this._bounded('acquire', [w.ticket, String(w.n), String(w.priority), w.try])
        } catch (err) {
          if (!transient(err)) {
            this._cancel(w, err, false)
            break
          }
          await sleep(delay)
          continue
        }
        w.sent = true
        if (r.status === 'granted') this._grant(w, r.b)
        else if (r.status === 'busy') this._cancel(w, BUSY, false)
        else if (r.status === 'toolarge') {
          this._cancel(
            w,
            new RangeError(
              `Cannot acquire ${w.n} permits: the gate ${JSON.stringify(this.name)} has ${r.a}`
            ),
            false
          )
        }
        if (!w.resend) break
      }
    } catch (err) {
      // this.ready failed (the gate could not be opened).
      this._cancel(w, err, false)
    } finally {
      w.sending = false
    }
    if (w.cancelled) this._cancelInRedis(w)
  }

  // close()'s script, sent until Redis answers it. Giving up is not safe:
  // while anything else in the process holds or waits, the process's lease
  // is renewed and this client is not reaped (its stake stays open as long
  // as this object lives), so what it held would stay taken in Redis.
  // close() itself does not wait for this past its own bound; the retries
  // keep nothing alive (their sleeps are unref'd).
  async _closeInRedis() {
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        await this._bounded('close', [])
        return
      } catch (err) {
        if (!transient(err)) return
        await sleep(delay)
      }
    }
  }

  async _cancelInRedis(w) {
    // close() withdraws every ticket of this client in one go.
    if (this.closed) return
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        await this._bounded('cancel', [w.ticket])
        break
      } catch (err) {
        if (!transient(err) || this.closed) break
        await sleep(delay)
      }
    }
  }

  acquire(n, priority, timeout, signal, tryOnly) {
    if (this.closed) return Promise.reject(closedError(this.name))
    // The native waiter: the fleet gate has 0 permits, so it always queues;
    // its timeout is a libuv timer (on time after a busy loop).
    const go = this.take(undefined, n, priority, tryOnly ? 0 : timeout)
    const index = scratch[0]
    const seq = scratch[1]
    let resolve, reject
    const promise = new Promise((res, rej) => {
      resolve = res
      reject = rej
    })
    const w = {
      ticket: `${this.client}.${seq}`,
      n,
      priority,
      index,
      seq,
      try: tryOnly ? '1' : '0',
      resolve,
      reject,
      signal,
      onAbort: undefined,
      reason: undefined,
      inRedis: true,
      sent: false,
      sending: false,
      resend: false,
      cancelled: false
    }
    this.waiters.set(w.ticket, w)
    go.then(
      (token) => this._granted(w, token),
      (err) => this._rejected(w, err)
    )
    if (signal !== undefined) {
      w.onAbort = () => this._cancel(w, signal.reason)
      signal.addEventListener('abort', w.onAbort, { once: true })
    }
    this._ensureTimer()
    this.agent.wake()
    this._send(w)
    return promise
  }

  // A timeout while Redis could not be reached says so; otherwise it is the
  // plain TimeoutError (Redis answered: the permits were just not free).
  _timeoutError(w, err) {
    if (this.lastError !== null || (!w.sent && !this.adapter.ready())) {
      const why = this.lastError ? this.lastError.message : 'not connected'
      return new RedisUnreachableError(
        `${err.message}: Redis is unreachable (${why}); the gate ${JSON.stringify(this.name)} could not be asked for permits`,
        this.lastError || undefined
      )
    }
    return err
  }

  // Local bookkeeping first (synchronous, so a double release is caught
  // here); Redis is told by one release at a time, carrying what piled up.
  release(n) {
    // close() gave everything back already; a task that ends after it must
    // not throw.
    if (this.closed) return
    if (n > this.held + this.lost) {
      throw new RangeError(
        `Cannot release ${n} permits: this process holds ${this.held} of the gate ${JSON.stringify(this.name)}`
      )
    }
    const fromLost = Math.min(this.lost, n)
    this.lost -= fromLost
    n -= fromLost
    if (n === 0) return
    this.held -= n
    this.nrelease(n)
    this.releasing += n
    if (!this.releaseBusy) this._flushReleases()
  }

  async _flushReleases() {
    this.releaseBusy = true
    try {
      while (this.releasing > 0) {
        const n = this.releasing
        this.releasing = 0
        const rseq = ++this.rseq
        for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
          try {
            await this._bounded('release', [String(n), String(rseq)], n)
            break
          } catch (err) {
            // A lapsed lease returns them anyway; a closed gate reaps itself.
            if (!transient(err) || this.closed) break
            await sleep(delay)
          }
        }
      }
    } finally {
      this.releaseBusy = false
    }
  }

  async setPermits(permits) {
    await this.ready
    this.createPermits = permits
    await this._call('permits', [encode(permits)])
  }

  async refresh() {
    await this.ready
    await this._call('state', [])
  }

  // Local waiters only; with `reason` they are rejected, else dropped.
  clear(reason) {
    let n = 0
    for (const w of [...this.waiters.values()]) {
      if (this._cancel(w, reason === undefined ? DROP : reason)) n++
    }
    return n
  }

  async close() {
    if (this.closed) return this.closing
    const error = closedError(this.name)
    for (const w of [...this.waiters.values()]) this._cancel(w, error, false)
    this.closed = true
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.closing = (async () => {
      // What it holds and every waiter of this client go, in one script.
      // Redis may be unreachable: close() gives up after a lease (at most
      // 5 s), when the lease lapses and Redis reaps it anyway.
      let timer
      const giveUp = new Promise((resolve) => {
        timer = setTimeout(resolve, Math.min(this.leaseMillis, 5000))
      })
      try {
        const closed = this.ready
          .then(() => this._closeInRedis())
          .catch(() => {
            // The gate was never opened: nothing of this client is in Redis.
          })
        await Promise.race([giveUp, closed])
      } catch {
        // Unreachable or refused: the lease lapses and Redis reaps it.
      } finally {
        clearTimeout(timer)
      }
      if (this.held > 0) this.nrelease(this.held)
      this.held = 0
      this.lost = 0
      dropped.unregister(this.token)
      this.agent.detach(this.token)
    })()
    return this.closing
  }
}

function encode(permits) {
  return permits === Infinity ? '-1' : String(permits)
}

function transient(err) {
  return !isReplyError(err) && !(err instanceof RangeError) && !(err instanceof TypeError)
}

function closedError(name) {
  const err = new Error(`The gate ${JSON.stringify(name)} was closed`)
  err.code = 'ERR_SLUICE_CLOSED'
  return err
}

module.exports = { RedisGate, RedisUnreachableError, PROCESS }
