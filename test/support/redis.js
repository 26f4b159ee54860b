'use strict'
// Helpers for the Redis tests: a client of either kind, unique gate names,
// raw commands, and a child process that runs a gate (test/support/redis-child.js).
const { spawn } = require('node:child_process')
const path = require('node:path')
const crypto = require('node:crypto')

const KINDS = ['ioredis', 'node-redis']

// Quiet clients: connection errors during fault tests are expected, and a
// client without an 'error' listener would crash the process.
async function connect(kind, url, extra = {}) {
  if (kind === 'ioredis') {
    const Redis = require('ioredis')
    const c = new Redis(url, { lazyConnect: true, ...extra })
    c.on('error', () => {})
    await c.connect()
    return c
  }
  const { createClient } = require('redis')
  const c = createClient({ url, ...extra })
  c.on('error', () => {})
  await c.connect()
  return c
}

async function disconnect(c) {
  if (typeof c.defineCommand === 'function') c.disconnect()
  else await (c.destroy ? c.destroy() : c.disconnect())
}

function raw(c, ...args) {
  return typeof c.defineCommand === 'function' ? c.call(...args) : c.sendCommand(args.map(String))
}

function uniqueName(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`
}

function keys(name) {
  const tag = `sluice:{${name}}:`
  return Object.fromEntries(
    ['meta', 'queue', 'qidx', 'grants', 'held', 'leases', 'clients'].map((k) => [k, tag + k])
  )
}

// A child process running test/support/redis-child.js with `args` (JSON);
// its stdout lines are JSON events, collected in `events`, awaited by `waitFor`.
function child(args) {
  const proc = spawn(process.execPath, [path.join(__dirname, 'redis-child.js')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, SLUICE_CHILD_ARGS: JSON.stringify(args) }
  })
  const events = []
  const waiters = []
  let stderr = ''
  let buf = ''
  proc.stderr.setEncoding('utf8').on('data', (s) => (stderr += s))
  proc.stdout.setEncoding('utf8').on('data', (s) => {
    buf += s
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (!line) continue
      const e = JSON.parse(line)
      events.push(e)
      for (const w of [...waiters]) w()
    }
  })
  const exited = new Promise((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal }))
  )
  exited.then(() => {
    for (const w of [...waiters]) w()
  })
  let gone = false
  exited.then(() => (gone = true))
  return {
    proc,
    events,
    exited,
    get stderr() {
      return stderr
    },
    send(cmd) {
      proc.stdin.write(JSON.stringify(cmd) + '\n')
    },
    // Resolves with the first event matching `pred`; rejects after `ms`.
    waitFor(pred, ms = 15000, what = 'an event') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred)
          if (e) {
            done()
            resolve(e)
          } else if (gone) {
            done()
            reject(new Error(`child exited before ${what}: ${stderr}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(
            new Error(
              `no ${what} within ${ms} ms; events: ${JSON.stringify(events)}; stderr: ${stderr}`
            )
          )
        }, ms)
        const done = () => {
          clearTimeout(timer)
          const i = waiters.indexOf(check)
          if (i >= 0) waiters.splice(i, 1)
        }
        waiters.push(check)
        check()
      })
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Polls `pred` every 10 ms until it holds; throws after `ms`.
async function until(pred, ms = 5000, what = 'the condition') {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`)
    await sleep(10)
  }
}

module.exports = { KINDS, connect, disconnect, raw, uniqueName, keys, child, sleep, until }
