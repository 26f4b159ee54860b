'use strict'
// The reference model of a gate (test/model-gate.test.js, test/model-host.test.js):
// permits, permits in use, and a priority queue that is FIFO within a
// priority and blocks behind its head, with sl_gate_acquire's rules.
const assert = require('node:assert/strict')

class GateModel {
  constructor(permits) {
    this.permits = permits
    this.inUse = 0
    this.queue = [] // sorted: highest priority first, FIFO within one
    this.status = new Map() // id -> 'queued' | 'granted' | 'aborted' | 'timedout' | 'cleared'
    this.waiter = new Map() // id -> {id, n, priority, timeout}
    this.grants = 0
  }

  fits(n) {
    if (this.permits === Infinity) return true
    return this.inUse <= this.permits && n <= this.permits - this.inUse
  }

  get available() {
    return this.permits === Infinity ? Infinity : this.permits - this.inUse
  }
  get pending() {
    return this.queue.length
  }

  grant(w) {
    assert.ok(this.fits(w.n), 'model: a grant over the limit')
    this.inUse += w.n
    this.status.set(w.id, 'granted')
    this.grants++
  }

  // A request that can never fit: more than the gate has (0 is paused).
  doomed(n) {
    return this.permits !== Infinity && this.permits > 0 && n > this.permits
  }

  // Lowering the permits refuses the queued waiters that can no longer fit.
  setPermits(permits) {
    this.permits = permits
    for (const w of this.queue.filter((w) => this.doomed(w.n))) {
      this.queue.splice(this.queue.indexOf(w), 1)
      this.status.set(w.id, 'refused')
    }
  }

  // Refused (RangeError) when doomed; takes now, or queues (and grants the
  // head if it fits, as sl_gate_acquire).
  acquire(w, maxHeadGrants = 1) {
    this.waiter.set(w.id, w)
    if (this.doomed(w.n)) {
      this.status.set(w.id, 'refused')
      return false
    }
    if (this.queue.length === 0 && this.fits(w.n)) {
      this.inUse += w.n
      this.status.set(w.id, 'granted')
      this.grants++
      return true
    }
    let i = this.queue.length
    while (i > 0 && this.queue[i - 1].priority < w.priority) i--
    this.queue.splice(i, 0, w)
    this.status.set(w.id, 'queued')
    if (maxHeadGrants > 0 && this.fits(this.queue[0].n)) this.grant(this.queue.shift())
    return false
  }

  tryTake(n) {
    if (this.queue.length === 0 && this.fits(n)) {
      this.inUse += n
      return true
    }
    return false
  }

  dispatch(max = Infinity) {
    let i = 0
    while (this.queue.length > 0 && this.fits(this.queue[0].n) && i < max) {
      this.grant(this.queue.shift())
      i++
    }
  }

  release(n, max) {
    this.inUse -= n
    this.dispatch(max)
  }

  remove(id, status) {
    const i = this.queue.findIndex((w) => w.id === id)
    if (i < 0) return false
    this.queue.splice(i, 1)
    this.status.set(id, status)
    this.dispatch()
    return true
  }

  // The order short timers fire in: deadline (all were armed at the same
  // loop time, since the loop is only entered in `advance`), then arming order.
  fireShortTimeouts() {
    const due = this.queue
      .filter((w) => w.timeout > 0 && w.timeout < 100)
      .sort((a, b) => a.timeout - b.timeout || a.id - b.id)
    for (const w of due) {
      if (this.status.get(w.id) === 'queued') this.remove(w.id, 'timedout')
    }
  }

  idsWith(status) {
    const out = []
    for (const [id, s] of this.status) if (s === status) out.push(id)
    return out.sort((a, b) => a - b)
  }
}

module.exports = { GateModel }
