// One limit for the whole host (issue 11): a sluice Semaphore with
// scope: 'host', side by side with what a user would use today:
//   - ipc: a semaphore in a master process that workers call over the
//     node:cluster / child_process IPC channel (the design of
//     rate-limiter-flexible's RateLimiterCluster: a request and a reply per
//     acquire, a message per release; here with a FIFO queue, so it is a
//     semaphore);
//   - lockfile: proper-lockfile 4.1.2, a mkdir lock with retries (a mutex:
//     waiters poll, here every 1 ms at best).
//
// (a) Hand-off latency: two processes pass one permit back and forth. The
//     holder waits until the other is queued, takes process.hrtime (a
//     monotonic clock shared by every process of the machine) and releases;
//     the other takes the time when its acquire resolves. p50 and p99 in µs.
// (b) Uncontended: one process, `await acquire(); release()` in a loop
//     (and sluice's synchronous tryAcquire() + release()), pairs per second.
//
// Each implementation runs in its own child process, which forks the
// workers it needs. Usage: node bench/host.mjs
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import {
  loadSluice,
  runChild,
  childMain,
  printTable,
  fmt,
  ratio,
  isChild,
  childArgs
} from './harness.mjs'

const require = createRequire(import.meta.url)
const FILE = fileURLToPath(import.meta.url)
const PINGS = { sluice: 5000, ipc: 5000, lockfile: 300 }
const PAIRS = { sluice: 300_000, ipc: 30_000, lockfile: 1_000 }
const IMPLS = {
  sluice: "sluice Semaphore({ scope: 'host' })",
  ipc: 'IPC semaphore in a master (RateLimiterCluster design)',
  lockfile: 'proper-lockfile 4.1.2 (mkdir + retries)'
}
const now = () => process.hrtime.bigint()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const immediate = () => new Promise((resolve) => setImmediate(resolve))

// ------------------------------------------------------------ the locks ---

// A worker's view of one implementation: acquire(), release(), and
// otherQueued(), which resolves once the other process waits.
function openImpl(impl, name) {
  if (impl === 'sluice') {
    const { Semaphore } = loadSluice('index')
    const sem = new Semaphore(1, { name, scope: 'host' })
    return {
      acquire: () => sem.acquire(),
      release: () => sem.release(),
      trySync: () => sem.tryAcquire(),
      // Polls with a timer, not setImmediate: a spinning holder would take
      // a core from the waiting process's two threads (its helper and its
      // loop) on a small machine, and time the scheduler, not the gate.
      async otherQueued(until) {
        while (sem.pending === 0) {
          if (Date.now() > until) return false
          await sleep(1)
        }
        return true
      }
    }
  }
  if (impl === 'ipc') {
    // The master answers {acquire} with {granted} once the permit is ours.
    let next = 1
    const waiting = new Map()
    process.on('message', (m) => {
      if (m.granted) {
        waiting.get(m.granted)()
        waiting.delete(m.granted)
      } else if (m.pending !== undefined) {
        waiting.get(m.id)(m.pending)
        waiting.delete(m.id)
      }
    })
    const ask = (msg) =>
      new Promise((resolve) => {
        const id = next++
        waiting.set(id, resolve)
        process.send({ ...msg, id })
      })
    return {
      acquire: () => ask({ op: 'acquire' }),
      release: () => process.send({ op: 'release' }),
      async otherQueued(until) {
        while ((await ask({ op: 'pending' })) === 0) {
          if (Date.now() > until) return false
          await immediate()
        }
        return true
      }
    }
  }
  // proper-lockfile: a mutex on a file; waiting is retrying.
  const lockfile = require('proper-lockfile')
  const file = path.join(os.tmpdir(), `${name}.target`)
  fs.writeFileSync(file, '')
  let unlock
  return {
    async acquire() {
      unlock = await lockfile.lock(file, {
        retries: { forever: true, factor: 1, minTimeout: 1, maxTimeout: 1 },
        realpath: false
      })
    },
    release: () => unlock(),
    // No queue to look at: the other process is retrying by then.
    otherQueued: () => sleep(3).then(() => true)
  }
}

// The master of the IPC design: a counter and a FIFO of waiting requests.
function ipcMaster(children) {
  let free = 1
  const queue = []
  for (const child of children) {
    child.on('message', (m) => {
      if (m.op === 'acquire') {
        if (free > 0 && queue.length === 0) {
          free--
          child.send({ granted: m.id })
        } else queue.push([child, m.id])
      } else if (m.op === 'release') {
        free++
        if (queue.length > 0) {
          free--
          const [c, id] = queue.shift()
          c.send({ granted: id })
        }
      } else if (m.op === 'pending') {
        child.send({ id: m.id, pending: queue.length })
      }
    })
  }
}

// ------------------------------------------------------------- workers ---

async function workerPing(impl, name, pings) {
  const lock = openImpl(impl, name)
  const events = []
  // Start together: each says it is ready, the coordinator says go.
  await new Promise((resolve) => {
    process.once('message', resolve)
    process.send({ ready: true })
  })
  for (let i = 0; i < pings; i++) {
    await lock.acquire()
    events.push(['got', now()])
    // The last one to finish has nobody left to hand over to.
    if (await lock.otherQueued(Date.now() + 200)) events.push(['rel', now()])
    await lock.release()
  }
  return events.map(([k, t]) => [k, String(t)])
}

async function workerPairs(impl, name, pairs) {
  const lock = openImpl(impl, name)
  const out = {}
  const t0 = now()
  for (let i = 0; i < pairs; i++) {
    await lock.acquire()
    await lock.release()
  }
  out.asyncPerSec = pairs / (Number(now() - t0) / 1e9)
  if (lock.trySync) {
    const n = pairs * 4
    const t1 = now()
    for (let i = 0; i < n; i++) {
      lock.trySync()
      lock.release()
    }
    out.syncPerSec = n / (Number(now() - t1) / 1e9)
  }
  return out
}

// --------------------------------------------------------- coordinators ---

function spawnWorker(impl, mode, name, n) {
  return fork(FILE, ['--worker', impl, mode, name, String(n)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
}

// A worker's result comes over IPC (a large one on a pipe could be cut
// short by the exit).
function result(child) {
  return new Promise((resolve, reject) => {
    let out
    child.on('message', (m) => {
      if (m && m.result) out = m.result
    })
    child.on('exit', (code, signal) =>
      out ? resolve(out) : reject(new Error(`worker exited ${signal || code}`))
    )
  })
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function coordinate(impl) {
  const name = `bench-host-${process.pid}-${impl}`
  // (a) two processes ping-pong one permit.
  const kids = [0, 1].map(() => spawnWorker(impl, 'ping', name, PINGS[impl]))
  if (impl === 'ipc') ipcMaster(kids)
  await Promise.all(kids.map((k) => new Promise((resolve) => k.once('message', resolve))))
  const results = kids.map(result)
  for (const k of kids) k.send({ go: true })
  const events = (await Promise.all(results))
    .flatMap((evs, who) => evs.map(([k, t]) => [k, BigInt(t), who]))
    .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  const lat = []
  for (let i = 0; i < events.length; i++) {
    const [k, t, who] = events[i]
    if (k !== 'rel') continue
    const next = events.slice(i + 1).find(([k2, , w2]) => k2 === 'got' && w2 !== who)
    if (next) lat.push(Number(next[1] - t) / 1e3)
  }
  const warm = lat.slice(Math.floor(lat.length / 10)).sort((a, b) => a - b)
  // (b) one process alone.
  const one = spawnWorker(impl, 'pairs', name + '-u', PAIRS[impl])
  if (impl === 'ipc') ipcMaster([one])
  const pairs = await result(one)
  return { p50: percentile(warm, 50), p99: percentile(warm, 99), handoffs: warm.length, ...pairs }
}

// ----------------------------------------------------------------- main ---

if (process.argv.includes('--worker')) {
  const [impl, mode, name, n] = process.argv.slice(process.argv.indexOf('--worker') + 1)
  const body = mode === 'ping' ? workerPing : workerPairs
  body(impl, name, Number(n)).then(
    (out) => process.send({ result: out }, () => process.exit(0)),
    (err) => {
      console.error(err)
      process.exit(1)
    }
  )
} else if (isChild) {
  childMain(() => coordinate(childArgs[0]))
} else if (process.platform !== 'linux') {
  console.log("host: scope: 'host' is Linux-only for now; nothing to compare")
} else {
  const r = {}
  for (const impl of Object.keys(IMPLS)) r[impl] = runChild('host.mjs', [impl], [])
  const s = r.sluice
  printTable(
    'Cross-process hand-off: release in one process -> the waiter running in another (2 processes, 1 permit)',
    Object.entries(IMPLS).map(([k, label]) =>
      r[k].error
        ? { implementation: label, error: r[k].error }
        : {
            implementation: label,
            'p50 µs': fmt(r[k].p50, 1),
            'p99 µs': fmt(r[k].p99, 1),
            'hand-offs': fmt(r[k].handoffs),
            'sluice p50 faster by': k === 'sluice' || s.error ? '' : ratio(r[k].p50 / s.p50)
          }
    ),
    ['The first 10% of hand-offs are warm-up and not counted.']
  )
  printTable(
    'Uncontended acquire + release, one process',
    Object.entries(IMPLS).map(([k, label]) =>
      r[k].error
        ? { implementation: label, error: r[k].error }
        : {
            implementation: label,
            'await acquire()+release() /s': fmt(r[k].asyncPerSec),
            'tryAcquire()+release() /s': r[k].syncPerSec ? fmt(r[k].syncPerSec) : '-',
            'sluice faster by':
              k === 'sluice' || s.error ? '' : ratio(s.asyncPerSec / r[k].asyncPerSec)
          }
    )
  )
}
