'use strict'
// A gate whose permits live in Redis: one limit for a fleet of processes.
// The state is in Redis and changes only through the Lua script
// (./script.js); this object keeps the process's side: its waiters (promises,
// timers, signals), what it holds, its lease timer, and the grants that
// arrive over pub/sub.
//
// A waiter's life: acquire() makes a ticket "<client>.<k>" and runs the
// script's acquire, which queues it in Redis (or grants it at once). A grant
// to a queued ticket comes as a message on the process's channel, or, if the
// message was lost, from the next sweep (the lease renewal asks after the
// oldest waiting tickets). A granted ticket's record stays in Redis until
// the client "claims" it in its next script call (piggybacked, no command of
// its own), so a retried acquire finds its grant instead of taking another.
// A waiter that times out or is aborted is cancelled in Redis: removed from
// the queue, or, if it was granted meanwhile, its permits given back, once.
const crypto = require('node:crypto')
const { EventEmitter } = require('node:events')
const { TimeoutError } = require('../errors.js')
const { adapt, isReplyError, subscriber, unsubscribe } = require('./client.js')
const { RedisUnreachableError } = require('./errors.js')

const PROCESS = crypto.randomBytes(6).toString('hex')
const CHANNEL = `sluice:w:${PROCESS}`
let clients = 0
const SWEEP_BATCH = 256

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref())

// setTimeout fires after 1 ms for a delay above 2^31-1 ms; a timeout may be
// up to 2^32-1 ms, so a longer one is armed in steps.
const MAX_DELAY = 0x7fffffff
function longTimeout(fn, ms) {
  const h = { t: null }
  const arm = (left) => {
    h.t = left > MAX_DELAY ? setTimeout(arm, MAX_DELAY, left - MAX_DELAY) : setTimeout(fn, left)
  }
  arm(ms)
  return h
}

function onMessage(s, message) {
  const space = message.lastIndexOf(' ')
  if (space < 0) return
  const ticket = message.slice(0, space)
  const client = ticket.slice(0, ticket.lastIndexOf('.'))
  const gate = s.gates.get(client)
  if (gate !== undefined) gate._message(ticket, message.slice(space + 1))
}

function onReconnect(s) {
  for (const gate of s.gates.values()) gate._sweep()
}

class RedisGate extends EventEmitter {
  constructor(redis, name, permits, leaseMillis) {
    super()
    this.adapter = adapt(redis)
    this.name = name
    const tag = `sluice:{${name}}:`
    this.keys = ['meta', 'queue', 'qidx', 'grants', 'held', 'leases'].map((k) => tag + k)
    this.client = `${PROCESS}.${++clients}`
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
    this.sub = subscriber(this.adapter, CHANNEL, onMessage, onReconnect)
    this.sub.gates.set(this.client, this)
    this.ready = this._open()
    this.ready.catch(() => {})
  }

  async _open() {
    await this.sub.ready
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
  // no-op); our waiters queue again, at the back.
  _leaseLost() {
    const held = this.held
    if (held === 0 && this.waiters.size === 0) return
    this.lost += held
    this.held = 0
    this._requeue()
    process.nextTick(() => this.emit('leaseLost', { permits: held, waiting: this.waiters.size }))
  }

  _requeue() {
    for (const w of this.waiters.values()) {
      if (w.sent) this._send(w)
    }
  }

  _ensureTimer() {
    if (this.timer !== null || this.closed) return
    const every = Math.max(10, Math.floor(this.leaseMillis / 3))
    this.timer = setInterval(() => this._sweep(), every)
    this._keepAlive()
  }

  // Waiters keep the process alive (a process elsewhere may release to
  // them); held permits alone do not.
  _keepAlive() {
    if (this.timer === null) return
    if (this.waiters.size > 0) this.timer.ref()
    else this.timer.unref()
  }

  _idleCheck() {
    if (
      this.timer !== null &&
      this.held === 0 &&
      this.waiters.size === 0 &&
      this.releasing === 0 &&
      !this.releaseBusy
    ) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  // The lease renewal, which is also the safety sweep: it asks after the
  // oldest waiting tickets, in case a grant message was lost.
  async _sweep() {
    if (this.closed) return
    if (this.sweeping) {
      // The last renewal's reply is still unread (the loop was busy): renew
      // again as soon as it is in, not a whole interval later, or a busy loop
      // shorter than the lease could still let it lapse.
      this.sweepAgain = true
      return
    }
    this.sweeping = true
    this.sweepAgain = false
    try {
      if (this.held === 0 && this.waiters.size === 0 && this.claims.length === 0) {
        this._idleCheck()
        return
      }
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

  _message(ticket, token) {
    const w = this.waiters.get(ticket)
    if (w === undefined) return
    if (token === '!') {
      this._settle(w)
      w.reject(
        new RangeError(
          `The request for ${w.n} permits can never be granted: the gate now has ${this.permits}`
        )
      )
      return
    }
    this._grant(w, token)
  }

  _grant(w, token) {
    if (!this.waiters.has(w.ticket)) return
    this._settle(w)
    this.held += w.n
    this.claims.push(w.ticket)
    const t = Number(token)
    if (t > this.maxToken) this.maxToken = t
    this._ensureTimer()
    w.resolve(t)
  }

  _settle(w) {
    this.waiters.delete(w.ticket)
    if (this.waiters.size === 0) this._keepAlive()
    if (w.timer !== undefined) clearTimeout(w.timer.t)
    if (w.signal !== undefined) {
      try {
        w.signal.removeEventListener('abort', w.onAbort)
      } catch {
        // The permits stand whatever the signal does.
      }
    }
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
      for (let delay = 50; this.waiters.has(w.ticket); delay = Math.min(delay * 2, 1000)) {
        w.resend = false
        let r
        try {
          r = await this._bounded('acquire', [w.ticket, String(w.n), String(w.priority), w.try])
        } catch (err) {
          if (!transient(err)) {
            if (this.waiters.has(w.ticket)) {
              this._settle(w)
              w.reject(err)
            }
            break
          }
          await sleep(delay)
          continue
        }
        w.sent = true
        if (r.status === 'granted') this._grant(w, r.b)
        else if (r.status === 'busy') {
          this._settle(w)
          w.resolve(false)
        } else if (r.status === 'toolarge') {
          this._settle(w)
          w.reject(
            new RangeError(
              `Cannot acquire ${w.n} permits: the gate ${JSON.stringify(this.name)} has ${r.a}`
            )
          )
        }
        if (!w.resend) break
      }
    } catch (err) {
      // this.ready failed (the gate could not be opened).
      if (this.waiters.has(w.ticket)) {
        this._settle(w)
        w.reject(err)
      }
    } finally {
      w.sending = false
    }
    if (w.cancelled) this._cancelInRedis(w)
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
    this._idleCheck()
  }

  _cancel(w, reason) {
    if (!this.waiters.has(w.ticket)) return
    this._settle(w)
    w.cancelled = true
    w.reject(reason)
    // After the acquire is answered, so that the cancel reaches Redis after it.
    if (!w.sending) this._cancelInRedis(w)
  }

  acquire(n, priority, timeout, signal, tryOnly) {
    if (this.closed) return Promise.reject(closedError(this.name))
    const ticket = `${this.client}.${++this.seq}`
    let resolve, reject
    const promise = new Promise((res, rej) => {
      resolve = res
      reject = rej
    })
    const w = {
      ticket,
      n,
      priority,
      try: tryOnly ? '1' : '0',
      resolve,
      reject,
      timer: undefined,
      signal,
      onAbort: undefined,
      sent: false,
      sending: false,
      resend: false,
      cancelled: false
    }
    this.waiters.set(ticket, w)
    if (timeout > 0) {
      w.timer = longTimeout(() => this._cancel(w, this._timeoutError(w, timeout)), timeout)
    }
    if (signal !== undefined) {
      w.onAbort = () => this._cancel(w, signal.reason)
      signal.addEventListener('abort', w.onAbort, { once: true })
    }
    this._ensureTimer()
    this._keepAlive()
    this._send(w)
    return promise
  }

  _timeoutError(w, timeout) {
    if (!w.sent || this.lastError !== null) {
      const why = this.lastError ? this.lastError.message : 'no reply'
      return new RedisUnreachableError(
        `Timed out after ${timeout} ms: Redis is unreachable (${why}); the gate ${JSON.stringify(this.name)} could not be asked for permits`,
        this.lastError || undefined
      )
    }
    return new TimeoutError(`Timed out after ${timeout} ms waiting for ${w.n} permits`)
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
      this._idleCheck()
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
    const dropped = []
    for (const w of [...this.waiters.values()]) {
      if (reason !== undefined) this._cancel(w, reason)
      else {
        this._settle(w)
        w.cancelled = true
        if (!w.sending) this._cancelInRedis(w)
      }
      dropped.push(w)
    }
    return dropped.length
  }

  async close() {
    if (this.closed) return this.closing
    this.closed = true
    const error = closedError(this.name)
    for (const w of [...this.waiters.values()]) {
      this._settle(w)
      w.reject(error)
    }
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
          .then(() => this._call('close', []))
          .catch(() => {
            // Unreachable or refused: the lease lapses and Redis reaps it.
          })
        await Promise.race([giveUp, closed])
      } catch {
        // Unreachable or refused: the lease lapses and Redis reaps it.
      } finally {
        clearTimeout(timer)
      }
      this.held = 0
      this.lost = 0
      this.sub.gates.delete(this.client)
      unsubscribe(this.adapter)
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
