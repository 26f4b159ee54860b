// One limit for a fleet, on Redis (issue 12): sluice's Redis-backed Semaphore
// side by side with redis-semaphore 5.8 (polling waiters) and bottleneck
// 2.19's Redis clustering, all through ioredis, on one private local
// redis-server (no persistence) started for the run.
//
// (a) Round trip, uncontended: one process loops acquire + release on a
//     gate of 1 permit nobody else uses. µs per pair, Redis commands per pair.
// (b) Hand-off: two processes share 1 permit and take turns: acquire, hold
//     2 ms, release, ask again once the other holds it. A hand-off is a release in one process followed by the grant
//     in the other; its latency is the time between the two (wall clock,
//     performance.timeOrigin + performance.now(), one clock on one machine).
//     p50 / p99 in µs, and Redis round trips per grant (MONITOR: commands
//     the clients sent, lease renewals and polling included).
// (c) Idle waiting: three processes wait 3 s for a permit the benchmark holds;
//     Redis round trips per second (MONITOR).
//
// Usage: node bench/redis.mjs   (needs redis-server; says so and exits 0 if missing)
import { createRequire } from 'node:module'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { printTable, fmt, ratio, median, loadSluice } from './harness.mjs'

const require = createRequire(import.meta.url)
const ROUNDTRIPS = 1000
const HANDOFF_ROUNDS = 150 // per process
const HOLD_MS = 2
const IDLE_MS = 3000
const LIBS = {
  sluice: 'sluice Semaphore({ redis })',
  'redis-semaphore': 'redis-semaphore 5.8 Semaphore',
  bottleneck: 'bottleneck 2.19 (Redis clustering)'
}

// Strict turns for every library but bottleneck: its Redis clustering never
// started a job queued in one process when the other's job ended (waited
// 20 s; it hands over when both processes keep jobs queued). bottleneck's
// peers loop freely, and only its cross-process hand-offs are timed.
const ALTERNATE = { sluice: true, 'redis-semaphore': true, bottleneck: false }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const wall = () => performance.timeOrigin + performance.now()

// A gate of 1 permit in `lib`: { acquire(), release(), close() }.
async function open(lib, url, name) {
  const Redis = require('ioredis')
  if (lib === 'sluice') {
    const { Semaphore } = loadSluice('index')
    const client = new Redis(url)
    const sem = new Semaphore(1, { name, redis: client })
    await sem.ready
    return {
      acquire: () => sem.acquire(),
      release: async () => sem.release(),
      close: async () => {
        await sem.close()
        client.disconnect()
      }
    }
  }
  if (lib === 'redis-semaphore') {
    const { Semaphore } = require('redis-semaphore')
    const client = new Redis(url)
    let current
    return {
      // One lock object per acquisition, as redis-semaphore's API has it.
      acquire: async () => {
        current = new Semaphore(client, name, 1, { acquireTimeout: 60000 })
        await current.acquire()
      },
      release: () => current.release(),
      close: async () => client.disconnect()
    }
  }
  const Bottleneck = require('bottleneck')
  const { hostname, port } = new URL(url)
  const limiter = new Bottleneck({
    id: name,
    maxConcurrent: 1,
    datastore: 'ioredis',
    clientOptions: { host: hostname, port: Number(port) }
  })
  limiter.on('error', () => {})
  await limiter.ready()
  // Bottleneck runs jobs; acquire = a job starts, release = it ends.
  let finish
  return {
    acquire: () =>
      new Promise((granted) => {
        limiter.schedule(
          () =>
            new Promise((resolve) => {
              finish = resolve
              granted()
            })
        )
      }),
    release: async () => finish(),
    close: () => limiter.disconnect()
  }
}

// -------------------------------------------------------------- peer ---
// A process of (b), forked with `--peer lib url name rounds`. The two peers
// alternate strictly: after a release, a peer asks again only once the
// other has the permit (told through the parent, off the measured path), so
// every release has a waiter and every grant is a hand-off, whether or not
// the library is FIFO.
async function peer([lib, url, name, rounds]) {
  const gate = await open(lib, url, name)
  let others = 0
  let wake = null
  let go = false
  process.on('message', (m) => {
    if (m === 'go') {
      go = true
      wake?.()
    } else if (m === 'other') {
      others++
      wake?.()
    }
  })
  const until = (pred) =>
    pred()
      ? undefined
      : new Promise((resolve) => {
          wake = () => {
            if (pred()) {
              wake = null
              resolve()
            }
          }
        })
  process.send('ready')
  await until(() => go)
  const events = []
  for (let i = 0; i < Number(rounds); i++) {
    await gate.acquire()
    events.push(['a', wall()])
    process.send('acquired')
    await sleep(HOLD_MS)
    const seen = others
    events.push(['r', wall()])
    await gate.release()
    if (ALTERNATE[lib] && i < Number(rounds) - 1) await until(() => others > seen)
  }
  await gate.close()
  process.send({ events })
  process.disconnect()
}

// A process of (c), forked with `--idle lib url name`: asks for the permit
// the parent holds, and waits.
async function idlePeer([lib, url, name]) {
  const gate = await open(lib, url, name)
  process.send('ready')
  process.once('message', async () => {
    setTimeout(() => process.exit(0), 2000).unref()
    await gate.close().catch(() => {})
    process.disconnect()
    process.exit(0)
  })
  // close() rejects it (ERR_SLUICE_CLOSED): the end of the measurement.
  await gate.acquire().catch(() => {})
}

async function idle(lib, url) {
  const name = `bench-idle-${lib}-${process.pid}`
  const holder = await open(lib, url, name)
  await holder.acquire()
  const peers = [0, 1, 2].map(() =>
    fork(fileURLToPath(import.meta.url), ['--idle', lib, url, name], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
  )
  await Promise.all(peers.map((p) => new Promise((r) => p.once('message', r))))
  await sleep(500) // their acquires are queued (or polling)
  const counted = await countRoundTrips(url, () => sleep(IDLE_MS))
  for (const p of peers) p.send('stop')
  await Promise.all(peers.map((p) => new Promise((r) => p.once('exit', r))))
  await holder.release()
  await holder.close()
  return { idlePerSec: counted.trips / (IDLE_MS / 1000) }
}

function startPeers(lib, url, name, rounds) {
  const peers = [0, 1].map(() =>
    fork(fileURLToPath(import.meta.url), ['--peer', lib, url, name, String(rounds)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
  )
  const ready = Promise.all(peers.map((p) => new Promise((r) => p.once('message', r))))
  const done = Promise.all(
    peers.map(
      (p, i) =>
        new Promise((resolve, reject) => {
          let events
          // A peer done with its rounds exits while the other may still
          // tell it 'other': that send may fail (EPIPE), harmlessly.
          p.on('error', () => {})
          p.on('message', (m) => {
            if (m === 'acquired') peers[1 - i].connected && peers[1 - i].send('other')
            else if (m && m.events) events = m.events
          })
          p.once('exit', (code) =>
            code === 0 && events ? resolve(events) : reject(new Error(`peer exited ${code}`))
          )
        })
    )
  )
  return { peers, ready, done }
}

// Redis round trips (commands the clients sent; not the commands scripts ran
// inside Redis), counted with MONITOR while `fn` runs.
async function countRoundTrips(url, fn) {
  const Redis = require('ioredis')
  const probe = new Redis(url)
  const monitor = await probe.monitor()
  let n = 0
  let inner = 0
  monitor.on('monitor', (time, args, source) => {
    if (source === 'lua') inner++
    else if (String(args[0]).toLowerCase() !== 'monitor') n++
  })
  await sleep(50)
  await fn()
  await sleep(100)
  monitor.disconnect()
  probe.disconnect()
  return { trips: n, inner }
}

async function roundtrip(lib, url) {
  const gate = await open(lib, url, `bench-rt-${lib}-${process.pid}`)
  const cycle = async () => {
    await gate.acquire()
    await gate.release()
  }
  for (let i = 0; i < 100; i++) await cycle()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ROUNDTRIPS; i++) await cycle()
  const us = Number(process.hrtime.bigint() - t0) / 1000 / ROUNDTRIPS
  const counted = await countRoundTrips(url, async () => {
    for (let i = 0; i < 100; i++) await cycle()
  })
  await gate.close()
  return { us, trips: counted.trips / 100, inner: counted.inner / 100 }
}

async function handoff(lib, url) {
  const name = `bench-ho-${lib}-${process.pid}`
  if (lib === 'sluice') {
    // The first opener sets the permits.
    const g = await open(lib, url, name)
    await g.close()
  }
  const run = async (rounds) => {
    const { peers, ready, done } = startPeers(lib, url, name, rounds)
    const timer = setTimeout(() => peers.forEach((p) => p.kill('SIGKILL')), 60_000)
    try {
      await ready
      for (const p of peers) p.send('go')
      return await done
    } finally {
      clearTimeout(timer)
    }
  }
  const logs = await run(HANDOFF_ROUNDS)
  const all = logs.flatMap((events, who) => events.map(([k, t]) => ({ k, t, who })))
  all.sort((a, b) => a.t - b.t)
  const lat = []
  for (let i = 1; i < all.length; i++) {
    const prev = all[i - 1]
    const e = all[i]
    if (e.k === 'a' && prev.k === 'r' && prev.who !== e.who) lat.push((e.t - prev.t) * 1000)
  }
  lat.sort((a, b) => a - b)
  // Round trips per grant, in a shorter run of its own (MONITOR slows Redis).
  const COUNT_ROUNDS = 30
  const counted = await countRoundTrips(url, () => run(COUNT_ROUNDS))
  return {
    p50: median(lat),
    p99: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))],
    handoffs: lat.length,
    perGrant: counted.trips / (COUNT_ROUNDS * 2),
    innerPerGrant: counted.inner / (COUNT_ROUNDS * 2)
  }
}

async function main() {
  const { startRedis, redisMissing } = require('../test/support/services.js')
  if (redisMissing()) {
    console.log(`skipped: no redis-server here (${redisMissing()})`)
    return
  }
  const server = await startRedis()
  // An interrupted run still stops its server.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => server.stop().finally(() => process.exit(130)))
  }
  const Redis = require('ioredis')
  const probe = new Redis(server.url)
  const version = /redis_version:(\S+)/.exec(await probe.info('server'))[1]
  console.log(`redis-server ${version} (private, no persistence), ioredis clients`)
  const results = {}
  try {
    for (const lib of Object.keys(LIBS)) {
      const r = {}
      if (process.env.BENCH_DEBUG) console.error(`${lib}: round trip`)
      try {
        Object.assign(r, await roundtrip(lib, server.url))
      } catch (err) {
        r.error = `round trip failed: ${err.message}`
      }
      if (process.env.BENCH_DEBUG) console.error(`${lib}: hand-off`)
      try {
        Object.assign(r, await handoff(lib, server.url))
      } catch (err) {
        r.error = `${r.error ? r.error + '; ' : ''}hand-off failed: ${err.message}`
      }
      if (process.env.BENCH_DEBUG) console.error(`${lib}: idle waiting`)
      try {
        Object.assign(r, await idle(lib, server.url))
      } catch (err) {
        r.idleError = `idle waiting failed: ${err.message}`
      }
      results[lib] = r
    }
  } finally {
    probe.disconnect()
    await server.stop()
  }
  const s = results.sluice
  printTable(
    '(a) acquire + release, uncontended, one process',
    Object.entries(LIBS).map(([lib, label]) => {
      const r = results[lib]
      if (r.us === undefined) return { library: label, error: r.error }
      return {
        library: label,
        'µs/pair': fmt(r.us, 0),
        'round trips/pair': fmt(r.trips, 1),
        'script-internal cmds/pair': fmt(r.inner, 1),
        'sluice is': lib === 'sluice' ? '' : ratio(r.us / s.us) + ' faster'
      }
    })
  )
  printTable(
    `(b) hand-off between two processes, 1 permit, ${HANDOFF_ROUNDS} rounds each, hold ${HOLD_MS} ms`,
    Object.entries(LIBS).map(([lib, label]) => {
      const r = results[lib]
      if (r.p50 === undefined) return { library: label, error: r.error }
      return {
        library: label,
        'p50 µs': fmt(r.p50, 0),
        'p99 µs': fmt(r.p99, 0),
        'hand-offs': String(r.handoffs),
        'round trips/grant': fmt(r.perGrant, 1),
        'script-internal/grant': fmt(r.innerPerGrant, 1),
        'sluice p50 is': lib === 'sluice' ? '' : ratio(r.p50 / s.p50) + ' faster',
        'sluice p99 is': lib === 'sluice' ? '' : ratio(r.p99 / s.p99) + ' faster'
      }
    }),
    [
      'The peers take turns (a peer asks again once the other holds), so each grant is a hand-off;',
      "bottleneck's peers loop freely (see ALTERNATE) and only its cross-process grants are timed.",
      'round trips/grant: commands the clients sent (MONITOR, in a 30-round run of its own), lease',
      'renewals and polling included; script-internal: commands Lua scripts ran inside Redis.'
    ]
  )
  printTable(
    `(c) three processes waiting ${IDLE_MS / 1000} s for a permit held elsewhere`,
    Object.entries(LIBS).map(([lib, label]) => {
      const r = results[lib]
      if (r.idlePerSec === undefined) return { library: label, error: r.idleError }
      return { library: label, 'round trips/s': fmt(r.idlePerSec, 1) }
    }),
    ['sluice: lease renewals only (every leaseMillis / 3 = 3.3 s per process); no polling.']
  )
}

if (process.argv[2] === '--peer') peer(process.argv.slice(3))
else if (process.argv[2] === '--idle') idlePeer(process.argv.slice(3))
else
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
