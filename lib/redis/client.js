'use strict'
// The user's Redis client, ioredis or node-redis (v4 and later), recognised
// by its shape. sluice speaks to it through three things only: a raw command
// (ioredis `call`, node-redis `sendCommand`), `duplicate()` for the one
// subscriber per client and thread, and its events for reconnects.
const crypto = require('node:crypto')
const { LUA } = require('./script.js')

const SHA = crypto.createHash('sha1').update(LUA).digest('hex')

function kind(client) {
  if (client === null || typeof client !== 'object') return null
  // Both have duplicate() (the subscriber) and on() (its events).
  if (typeof client.duplicate !== 'function' || typeof client.on !== 'function') return null
  if (typeof client.call === 'function' && typeof client.defineCommand === 'function') {
    return 'ioredis'
  }
  if (
    typeof client.sendCommand === 'function' &&
    typeof client.connect === 'function' &&
    'isOpen' in client
  ) {
    return 'node-redis'
  }
  return null
}

// A reply error of the server (a Lua error, WRONGTYPE, NOSCRIPT), as opposed
// to a connection that is down or a command that timed out.
function isReplyError(err) {
  if (!err || typeof err !== 'object') return false
  // ioredis: ReplyError; node-redis: SimpleError/BlobError, both extending
  // ErrorReply, with `name` left as 'Error'.
  for (let p = Object.getPrototypeOf(err); p !== null; p = Object.getPrototypeOf(p)) {
    const name = p.constructor && p.constructor.name
    if (name === 'ReplyError' || name === 'ErrorReply') return true
    if (p === Error.prototype) break
  }
  return err.name === 'ReplyError'
}

function adapt(client) {
  const k = kind(client)
  if (k === null) {
    throw new TypeError(
      'Expected `options.redis` to be an ioredis client or a node-redis (v4 or later) client'
    )
  }
  const raw = k === 'ioredis' ? (args) => client.call(...args) : (args) => client.sendCommand(args)
  let loaded = false
  async function run(keys, argv) {
    const tail = [String(keys.length), ...keys, ...argv]
    if (loaded) {
      try {
        return await raw(['EVALSHA', SHA, ...tail])
      } catch (err) {
        // Redis 7.4+ evicts scripts; a restart or failover forgets them.
        if (!(isReplyError(err) && /^NOSCRIPT/.test(err.message))) throw err
      }
    }
    const reply = await raw(['EVAL', LUA, ...tail])
    loaded = true
    return reply
  }
  // Whether the client is connected now (a command sent now would be
  // written, not queued for a reconnect).
  const ready = k === 'ioredis' ? () => client.status === 'ready' : () => client.isReady !== false
  return { kind: k, client, run, raw, ready }
}

// The subscriber: one per user client and thread, duplicated from it, made
// when the first channel is listened to and closed with the last. A channel
// is "sluice:{name}:w:<process>", listened to by the agent that leads that
// gate in the process (./agent.js), so a process has one subscriber for a
// gate, whichever of its threads leads it.
const subscribers = new Map()

function listen(adapter, channel, onMessage, onReconnect) {
  let s = subscribers.get(adapter.client)
  if (s === undefined) s = subscribe(adapter)
  const entry = { onMessage, onReconnect, ready: null }
  s.channels.set(channel, entry)
  entry.ready = s.connected.then(() => {
    if (s.channels.get(channel) !== entry) return
    if (adapter.kind === 'ioredis') return s.sub.subscribe(channel)
    return s.sub.subscribe(channel, (message) => s.deliver(channel, message))
  })
  entry.ready.catch(() => {})
  return entry
}

function subscribe(adapter) {
  const client = adapter.client
  const sub = client.duplicate()
  if (sub === null || typeof sub !== 'object' || typeof sub.on !== 'function') {
    throw new TypeError(
      'Expected `options.redis` to be an ioredis or node-redis client: its duplicate() returned no client'
    )
  }
  const s = { sub, channels: new Map(), connected: null, deliver: null }
  subscribers.set(client, s)
  s.deliver = (channel, message) => {
    const entry = s.channels.get(String(channel))
    if (entry !== undefined) entry.onMessage(String(message))
  }
  let first = true
  sub.on('ready', () => {
    if (first) {
      first = false
      return
    }
    // Messages published while it was away are lost: the gates sweep.
    for (const entry of s.channels.values()) entry.onReconnect()
  })
  // The subscriber must not keep the process alive by itself: a process that
  // quits its own client, with nothing waiting, exits. (A gate with waiters
  // keeps it alive with its sweep timer.)
  if (adapter.kind === 'ioredis') {
    sub.on('connect', () => {
      if (sub.stream && typeof sub.stream.unref === 'function') sub.stream.unref()
    })
  } else if (typeof sub.unref === 'function') {
    sub.unref()
  }
  // A subscriber's errors are the connection's own; its reconnects are
  // handled by the client. Without a listener they would crash the process.
  sub.on('error', () => {})
  if (adapter.kind === 'ioredis') {
    sub.on('message', (channel, message) => s.deliver(channel, message))
    s.connected = Promise.resolve()
  } else {
    s.connected = Promise.resolve(sub.isOpen ? undefined : sub.connect())
  }
  s.connected.catch(() => {})
  return s
}

function unlisten(adapter, channel) {
  const s = subscribers.get(adapter.client)
  if (s === undefined || !s.channels.delete(channel)) return
  if (s.channels.size > 0) {
    Promise.resolve()
      .then(() => s.sub.unsubscribe(channel))
      .catch(() => {})
    return
  }
  subscribers.delete(adapter.client)
  try {
    if (adapter.kind === 'ioredis') s.sub.disconnect()
    else {
      const p = s.sub.destroy ? s.sub.destroy() : s.sub.disconnect()
      if (p && typeof p.catch === 'function') p.catch(() => {})
    }
  } catch {
    // Already closed.
  }
}

module.exports = { adapt, kind, isReplyError, listen, unlisten, SHA }
