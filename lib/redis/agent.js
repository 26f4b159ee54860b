'use strict'
// The process's side of one Redis gate, shared by its threads: one lease and
// one subscriber per process, whichever thread and object holds or waits.
//
// Every thread that opens a Redis gate has one Agent for it (per name and
// Redis client), with a stake in the gate's fleet gate: the native gate of 0
// permits (src/core/gate.h "fleet gates") where the waiters of every
// Semaphore and limiter of that name in the process are queued. One agent
// at a time leads (sl_gate_lead): while anything in the process holds or
// waits, it renews the process's lease in Redis every third of a lease,
// listens for grants on the process's channel and hands each to its waiter,
// in whatever thread, through the fleet gate (GRANT_TO: the waiter's
// doorbell, the same path as any grant across threads). A lead that goes
// away (its thread ended, its objects were closed or collected) frees the
// lead, and the next agent that ticks takes it over, within a third of a
// lease, before the lease could lapse.
//
// The lead also reaps the process's clients that are gone without close()
// (a Semaphore collected, a worker terminated): their permits would
// otherwise stay taken for as long as the process renews its lease.
const crypto = require('node:crypto')
const { binding, OP } = require('../binding.js')
const { listen, unlisten } = require('./client.js')

const PROCESS = binding.processId

// adapter.client -> name -> Agent, for this thread.
const agents = new WeakMap()

// A stake in the process's fleet gate for the Redis gate `name`. The native
// registry takes names of up to 1023 bytes, a Redis gate's may be 512
// characters of up to 4 bytes each: the fleet gate is named by its hash.
function fleetGate(name) {
  return binding.gate(0, crypto.createHash('sha256').update(name).digest('hex'), 'fleet')
}

class Agent {
  constructor(adapter, name, keys, leaseMillis) {
    this.adapter = adapter
    this.name = name
    this.keys = keys
    this.leaseMillis = leaseMillis
    const [, , ctl] = fleetGate(name)
    this.ctl = ctl
    this.id = ctl(OP.STAKE_ID)
    this.client = `${PROCESS}.${this.id}`
    this.channel = `sluice:{${name}}:w:${PROCESS}`
    this.epoch = ctl(OP.EPOCH)
    this.gateEpoch = '' // the gate's epoch in Redis, as the last renewal saw it
    this.timer = null
    this.leading = false
    this.listening = null
    this.renewing = false
    // This thread's open gates of this name: token -> WeakRef (the agent
    // must not keep a dropped gate alive).
    this.gates = new Map()
  }

  static get(adapter, name, keys, leaseMillis) {
    let byName = agents.get(adapter.client)
    if (byName === undefined) agents.set(adapter.client, (byName = new Map()))
    let agent = byName.get(name)
    if (agent === undefined) byName.set(name, (agent = new Agent(adapter, name, keys, leaseMillis)))
    // The shortest lease asked for wins: renewing more often never hurts.
    // A running timer is set again at the new pace, or the shorter lease
    // would lapse between two renewals at the old one.
    if (leaseMillis < agent.leaseMillis) {
      agent.leaseMillis = leaseMillis
      if (agent.timer !== null) {
        clearInterval(agent.timer)
        agent.timer = null
        agent.wake()
      }
    }
    return agent
  }

  attach(token, gate) {
    this.gates.set(token, new WeakRef(gate))
  }

  detach(token) {
    // The last gate of this thread gone: the agent goes too.
    if (!this.gates.delete(token) || this.gates.size > 0) return
    this._stop()
    const byName = agents.get(this.adapter.client)
    if (byName !== undefined && byName.get(this.name) === this) byName.delete(this.name)
  }

  // Something in this thread holds or waits: make sure the process has a
  // lead (this one, if none).
  // Costs nothing (no Redis command) when the agent ticks already: the lead
  // renews on its timer only.
  wake() {
    if (this.timer !== null) return
    const every = Math.max(10, Math.floor(this.leaseMillis / 3))
    this.timer = setInterval(() => this._tick(), every)
    // The agent keeps nothing alive: waiters do, by their own sweep timers.
    this.timer.unref()
    this._tick()
  }

  // Resolves once this agent's subscriber listens, if it leads (at most a
  // second: a subscriber that cannot connect must not hold up the waiters,
  // whose sweeps find their grants anyway).
  subscribed() {
    if (this.listening === null || this.listening.done) return undefined
    let timer
    const bound = new Promise((resolve) => {
      timer = setTimeout(resolve, 1000)
      timer.unref()
    })
    const listening = this.listening
    const ready = listening.ready.then(
      () => (listening.done = true),
      () => {}
    )
    return Promise.race([ready, bound]).finally(() => clearTimeout(timer))
  }

  _busy() {
    return this.ctl(OP.ACTIVE) > 0 || this.ctl(OP.PENDING) > 0
  }

  // The epoch moved (see _renew): each gate here that holds or waits asks.
  _news() {
    const epoch = this.ctl(OP.EPOCH)
    if (epoch === this.epoch) return
    this.epoch = epoch
    for (const ref of this.gates.values()) ref.deref()?._checkLease()
  }

  _tick() {
    this._news()
    if (!this._busy()) {
      this._stop()
      return
    }
    if (!this.leading) {
      this.leading = this.ctl(OP.LEAD, true)
      if (!this.leading) return
    }
    if (this.listening === null) {
      try {
        this.listening = listen(
          this.adapter,
          this.channel,
          (message) => this._message(message),
          () => this._lost()
        )
      } catch {
        // No subscriber (duplicate() failed): the gates' sweeps find their
        // grants, a third of a lease late. The next tick tries again.
        this._renew()
        return
      }
    }
    this._renew()
  }

  // The lease of the process, and the reaping of its gone clients.
  async _renew() {
    if (this.renewing) {
      // The last renewal's reply is still unread (the loop was busy): renew
      // again as soon as it is in, not a whole interval later, or a busy loop
      // shorter than the lease could still let it lapse.
      this.renewAgain = true
      return
    }
    this.renewing = true
    this.renewAgain = false
    try {
      const [below, ...open] = this.ctl(OP.STAKES)
      const reply = await this.adapter.run(this.keys, [
        'lease',
        this.client,
        String(this.leaseMillis),
        '',
        '0',
        '0',
        '',
        '',
        String(below),
        ...open.map(String)
      ])
      // News for every gate of the process, in any thread (each agent sees
      // the fleet gate's epoch move, and its gates that hold or wait ask
      // Redis with a call of their own):
      // - clients of the process were reaped with a lapsed lease (it was
      //   paused or cut off): the call tells each whether it was one;
      // - Redis lost the gate (a restart without persistence, a failover):
      //   the call re-creates it and re-registers what the gate holds,
      //   within the grace period the script gives before granting again.
      const status = String(reply[0])
      const epoch = String(reply[6])
      const lost = status === 'nogate' || (this.gateEpoch !== '' && epoch !== this.gateEpoch)
      if (status !== 'nogate') this.gateEpoch = epoch
      if (lost || Number(reply[2]) > 0) this.ctl(OP.EPOCH, true)
      this._news()
    } catch {
      // Redis is away: the next tick tries again; the gates' own calls say
      // why to their waiters.
    } finally {
      this.renewing = false
      if (this.renewAgain && this.leading) this._renew()
    }
  }

  // "<ticket> <token>", "<ticket> !": the waiter is found by its stake and
  // sequence number in the fleet gate, in any thread. A waiter that is gone
  // (timed out, aborted) is its own gate's to give back: it cancels its
  // ticket, which returns a grant it never took.
  _message(message) {
    const space = message.lastIndexOf(' ')
    if (space < 0) return
    const ticket = message.slice(0, space)
    const token = message.slice(space + 1)
    const dot = ticket.lastIndexOf('.')
    const client = ticket.slice(0, dot)
    const stake = Number(client.slice(client.lastIndexOf('.') + 1))
    const seq = Number(ticket.slice(dot + 1))
    if (!(stake > 0 && seq > 0)) return
    // -1: refused (the permits were lowered below the request).
    this.ctl(OP.GRANT_TO, stake, seq, token === '!' ? -1 : Number(token))
  }

  // The subscriber reconnected: messages may have been lost meanwhile. This
  // thread's gates sweep now; other threads' gates sweep on their own timers.
  _lost() {
    for (const ref of this.gates.values()) ref.deref()?._sweep()
  }

  _stop() {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    if (this.leading) this.ctl(OP.LEAD, false)
    this.leading = false
    if (this.listening !== null) unlisten(this.adapter, this.channel)
    this.listening = null
  }
}

module.exports = { Agent, PROCESS, fleetGate }
