'use strict'
// scope: 'host': one gate for every process of the user on this machine.
// Real processes (child_process), real SIGKILLs. What is measured is
// measured outside sluice where it can be (an O_APPEND log of task starts
// and ends); time bounds are generous (a loaded 2-core machine).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Semaphore } = require('../lib/index.js')
const pLimit = require('../lib/p-limit.js')

const CHILD = path.join(__dirname, 'support', 'host-child.js')
const linux = process.platform === 'linux'
const skip = linux ? false : "scope: 'host' is Linux-only for now"
let seq = 0
const uniq = (what) => `test-${what}-${process.pid}-${++seq}`
const segment = (name) => `/dev/shm/sluice-${process.geteuid()}-${name}`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-host-'))
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))

// A child process running one role of host-child.js: its stdout lines, a
// way to wait for one, and its exit.
function start(role, opts, { user } = {}) {
  const args = [CHILD, role, JSON.stringify(opts)]
  const child = user
    ? spawn('runuser', ['-u', user, '--', process.execPath, ...args])
    : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  const waiting = []
  let rest = ''
  child.stdout.on('data', (d) => {
    const parts = (rest + d).split('\n')
    rest = parts.pop()
    for (const line of parts) {
      lines.push(line)
      for (const w of waiting.splice(0)) w()
    }
  })
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal }))
  )
  return {
    child,
    lines,
    exited,
    // Resolves with the first line matching `re` (seen already or to come).
    async line(re, ms = 20000) {
      const end = Date.now() + ms
      for (;;) {
        const found = lines.find((l) => re.test(l))
        if (found !== undefined) return found
        if (/^error /.test(lines.at(-1) || '')) throw new Error(`child: ${lines.at(-1)}`)
        if (Date.now() > end) throw new Error(`no line ${re} from ${role}: ${lines.join(' | ')}`)
        await Promise.race([new Promise((resolve) => waiting.push(resolve)), sleep(50)])
      }
    },
    kill(signal = 'SIGKILL') {
      child.kill(signal)
    }
  }
}

test(
  'four processes x pLimit({ concurrency: 3, scope: "host" }) x 60 tasks: 3 at once at most, and 3 reached',
  { skip },
  async () => {
    const name = uniq('limit')
    const log = path.join(tmp, `${name}.log`)
    const kids = Array.from({ length: 4 }, () =>
      start('limit', { name, concurrency: 3, tasks: 60, log })
    )
    for (const k of kids) await k.line(/^ready$/)
    for (const k of kids) k.child.stdin.end('go\n')
    for (const k of kids) assert.deepEqual(await k.exited, { code: 0, signal: null })
    let running = 0
    let max = 0
    let starts = 0
    let ends = 0
    for (const line of fs.readFileSync(log, 'utf8').trim().split('\n')) {
      if (line[0] === 'S') {
        starts++
        max = Math.max(max, ++running)
      } else {
        ends++
        running--
      }
    }
    assert.equal(starts, 240)
    assert.equal(ends, 240)
    assert.equal(max, 3)
    assert.equal(fs.existsSync(segment(name)), false, 'the last process unlinked the segment')
  }
)

test(
  'SIGKILL of the holder of every permit: a waiting process gets them within 1 s',
  { skip },
  async (t) => {
    const name = uniq('kill')
    const holder = start('hold', { name, permits: 3, n: 3 })
    await holder.line(/^held$/)
    const waiter = start('wait', { name, n: 3 })
    await waiter.line(/^queued 1$/)
    await sleep(300) // the waiter is settled in its wait
    const t0 = performance.now()
    holder.kill()
    await waiter.line(/^got$/)
    const ms = performance.now() - t0
    assert.ok(ms < 1000, `the permits came back after ${ms.toFixed(0)} ms`)
    t.diagnostic(`the waiter had the permits ${ms.toFixed(0)} ms after the SIGKILL`)
    assert.deepEqual(await waiter.exited, { code: 0, signal: null })
    assert.equal((await holder.exited).signal, 'SIGKILL')
  }
)

test(
  '32 rounds of SIGKILL on random holders and waiters at random moments: afterwards one process takes every permit, once',
  { skip },
  async () => {
    const name = uniq('chaos')
    const permits = 3
    const kids = []
    for (let i = 0; i < 4; i++) kids.push(start('chaos', { name, permits }))
    for (const k of kids) await k.line(/^ready$/)
    for (let round = 0; round < 32; round++) {
      await sleep(10 + Math.random() * 40)
      const i = Math.floor(Math.random() * kids.length)
      kids[i].kill()
      await kids[i].exited
      kids[i] = start('chaos', { name, permits })
    }
    for (const k of kids) k.kill()
    for (const k of kids) await k.exited
    const last = start('all', { name, permits, timeout: 5000 })
    assert.equal(await last.line(/^all /), 'all 0 false')
    assert.deepEqual(await last.exited, { code: 0, signal: null })
    assert.equal(fs.existsSync(segment(name)), false)
  }
)

test('FIFO within a priority and priorities first, across processes', { skip }, async () => {
  const name = uniq('fifo')
  const log = path.join(tmp, `${name}.log`)
  const sem = new Semaphore(1, { name, scope: 'host' })
  await sem.acquire()
  const plan = [
    { id: 'a', priority: 0 },
    { id: 'b', priority: 0 },
    { id: 'c', priority: 5 },
    { id: 'd', priority: 0 },
    { id: 'e', priority: 5 }
  ]
  const kids = []
  for (const p of plan) {
    const k = start('wait', { name, n: 1, log, ...p })
    await k.line(/^queued/)
    kids.push(k)
  }
  assert.equal(sem.pending, plan.length)
  sem.release()
  for (const k of kids) assert.deepEqual(await k.exited, { code: 0, signal: null })
  assert.equal(fs.readFileSync(log, 'utf8'), 'c\ne\na\nb\nd\n')
  assert.equal(sem.available, 1)
})

test(
  'a process is kept alive only while another could let it in; idle processes exit',
  { skip },
  async () => {
    // Waiting on a gate only it holds: nothing can ever let it in.
    const name = uniq('self')
    const alone = start('selfwait', { name })
    await alone.line(/^waiting$/)
    assert.deepEqual(await alone.exited, { code: 0, signal: null })
    assert.deepEqual(alone.lines, ['waiting'])

    // Waiting on a permit this process holds: alive until it is released.
    const name2 = uniq('held')
    const sem = new Semaphore(1, { name: name2, scope: 'host' })
    await sem.acquire()
    const waiter = start('wait', { name: name2, n: 1 })
    await waiter.line(/^queued/)
    await sleep(700)
    assert.equal(waiter.child.exitCode, null, 'still waiting')
    sem.release()
    assert.deepEqual(await waiter.exited, { code: 0, signal: null })
    assert.deepEqual(waiter.lines, ['queued 1', 'got'])
  }
)

test(
  'the first opener sets the permits; another number is a RangeError; a change applies to all',
  { skip },
  async () => {
    const name = uniq('permits')
    const sem = new Semaphore(2, { name, scope: 'host' })
    let k = start('open', { name, permits: 3 })
    assert.match(await k.line(/^(error|opened)/), /exists with 2 permits/)
    k = start('open', { name })
    assert.equal(await k.line(/^(error|opened)/), 'opened 2')
    sem.permits = 5
    k = start('open', { name, permits: 5 })
    assert.equal(await k.line(/^(error|opened)/), 'opened 5')
    assert.throws(() => new Semaphore(4, { name, scope: 'host' }), RangeError)
    // Attach-only with no gate anywhere.
    assert.throws(
      () => new Semaphore(undefined, { name: uniq('none'), scope: 'host' }),
      /No host-wide limit is named/
    )
  }
)

test(
  'process.exit() while holding every permit: they go to the waiting process at once, and the last one out unlinks',
  { skip },
  async () => {
    const name = uniq('exit')
    const holder = start('hold', { name, permits: 2, n: 2, exit: true })
    await holder.line(/^held$/)
    const waiter = start('wait', { name, n: 2 })
    await waiter.line(/^queued 1$/)
    holder.child.stdin.end('exit\n')
    assert.deepEqual(await holder.exited, { code: 0, signal: null })
    await waiter.line(/^got$/)
    assert.deepEqual(await waiter.exited, { code: 0, signal: null })
    assert.equal(fs.existsSync(segment(name)), false)
  }
)

test('a stale segment (every user killed) is recovered by the next opener', { skip }, async () => {
  const name = uniq('stale')
  const holder = start('hold', { name, permits: 2, n: 2 })
  await holder.line(/^held$/)
  holder.kill()
  await holder.exited
  assert.equal(fs.existsSync(segment(name)), true)
  const last = start('all', { name, permits: 4, timeout: 5000 })
  assert.equal(await last.line(/^all /), 'all 0 false')
  await last.exited
  assert.equal(fs.existsSync(segment(name)), false)
})

// Without /proc (a sandbox, a chroot) the segment cannot be created as an
// O_TMPFILE linked through /proc/self/fd: creation falls back to a named
// temporary instead of failing. A private mount namespace hides /proc.
const noProc =
  !linux || process.geteuid() !== 0 || spawnSync('unshare', ['-m', 'true']).status !== 0
test(
  'a process without /proc creates a host gate',
  {
    skip:
      (noProc && 'hiding /proc needs root and unshare -m here') ||
      (process.env.SLUICE_SANITIZE && 'the sanitizer runtime needs /proc')
  },
  () => {
    const name = uniq('noproc')
    const code = `const { Semaphore } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const s = new Semaphore(2, { name: ${JSON.stringify(name)}, scope: 'host' })
      console.log(require('fs').existsSync('/proc/self'), s.tryAcquire(2))`
    const r = spawnSync('unshare', [
      '-m',
      'sh',
      '-c',
      'mount -t tmpfs none /proc && exec "$0" -e "$1"',
      process.execPath,
      code
    ])
    assert.equal(r.stderr.toString(), '')
    assert.equal(r.stdout.toString(), 'false true\n')
    assert.equal(fs.existsSync(segment(name)), false)
  }
)

// Without /dev/shm (hidden by a private mount namespace), the first opener
// is told that, not that it should have given the permits it gave.
test(
  'a process without /dev/shm gets a clear ENOENT',
  { skip: noProc && 'hiding /dev/shm needs root and unshare -m here' },
  () => {
    const code = `const { Semaphore } = require(${JSON.stringify(path.join(__dirname, '..'))})
      try { new Semaphore(2, { name: 'x', scope: 'host' }) } catch (e) { console.log(e.code, e.message) }`
    const r = spawnSync('unshare', [
      '-m',
      'sh',
      '-c',
      'mount -t tmpfs none /dev && exec "$0" -e "$1"',
      process.execPath,
      code
    ])
    assert.equal(r.stderr.toString(), '')
    assert.match(r.stdout.toString(), /^ENOENT .*cannot create the host-wide limit "x".*\/dev\/shm/)
  }
)

test('bad scope and host names: TypeError/RangeError naming them', { skip }, () => {
  assert.throws(() => pLimit({ concurrency: 1, name: 'x', scope: 'Host' }), {
    name: 'TypeError',
    message: /`scope` to be 'process' or 'host'/
  })
  assert.throws(() => new Semaphore(1, { name: 'x', scope: 1 }), {
    name: 'TypeError',
    message: /`options.scope`/
  })
  assert.throws(() => pLimit({ concurrency: 1, scope: 'host' }), {
    name: 'TypeError',
    message: /`name`/
  })
  assert.throws(() => new Semaphore(1, { name: 'a/b', scope: 'host' }), {
    name: 'RangeError',
    message: /`name`.*no "\/"/
  })
  assert.throws(() => new Semaphore(1, { name: 'x'.repeat(201), scope: 'host' }), RangeError)
  assert.throws(() => new Semaphore(1, { name: 'a\0b', scope: 'host' }), RangeError)
  // 'process' is the default and stays in-process.
  const a = new Semaphore(1, { name: uniq('proc'), scope: 'process' })
  assert.equal(a.permits, 1)
})

test(
  'the segment is 0600, and a file another user planted at the name is refused with EACCES',
  { skip },
  async (t) => {
    const name = uniq('mode')
    const sem = new Semaphore(1, { name, scope: 'host' })
    assert.equal(fs.statSync(segment(name)).mode & 0o777, 0o600)
    assert.equal(sem.permits, 1)
    // Others may write it: refused (here the planted file is our own,
    // loosened; the runuser test below plants one as another user).
    const loose = uniq('loose')
    fs.writeFileSync(segment(loose), 'x', { mode: 0o666 })
    fs.chmodSync(segment(loose), 0o666)
    t.after(() => fs.rmSync(segment(loose), { force: true }))
    assert.throws(() => new Semaphore(1, { name: loose, scope: 'host' }), {
      code: 'EACCES',
      message:
        /EACCES: permission denied, host-wide limit .* another user, or others may read or write it/
    })
    // Not a segment of this layout: refused, with what to do.
    const junk = uniq('junk')
    fs.writeFileSync(segment(junk), 'not a gate', { mode: 0o600 })
    t.after(() => fs.rmSync(segment(junk), { force: true }))
    assert.throws(() => new Semaphore(1, { name: junk, scope: 'host' }), {
      code: 'ERR_SLUICE_HOST_LAYOUT'
    })
  }
)

// Another user: root runs the test suite here (CI too); `runuser` switches
// to nobody, who must be able to run node on this tree.
function otherUser() {
  if (!linux) return "scope: 'host' is Linux-only for now"
  if (process.geteuid() !== 0) return 'not root: cannot run a process as another user'
  const r = spawnSync('runuser', [
    '-u',
    'nobody',
    '--',
    process.execPath,
    '-e',
    `require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))})`
  ])
  if (r.error || r.status !== 0) {
    const why = r.error
      ? r.error.message
      : String(r.stderr)
          .split('\n')
          .find((l) => /Error/.test(l)) || `exit ${r.status}`
    return `runuser -u nobody cannot run node on this tree: ${why.trim()}`
  }
  return false
}

test(
  'another user can neither read nor write our gate, and a gate it plants is refused',
  { skip: otherUser() },
  async (t) => {
    const name = uniq('user')
    const sem = new Semaphore(2, { name, scope: 'host' })
    await sem.acquire()
    // nobody opens our segment's file: the kernel refuses (mode 0600).
    const script = (code) =>
      spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '-e', code], {
        encoding: 'utf8'
      })
    for (const flags of ['r', 'r+']) {
      const r = script(
        `try { require('fs').openSync(${JSON.stringify(segment(name))}, '${flags}'); console.log('opened') } catch (e) { console.log(e.code) }`
      )
      assert.equal(r.stdout.trim(), 'EACCES', `nobody opening it '${flags}'`)
    }
    // nobody plants a file at the name of one of our gates: we refuse it with
    // a clear EACCES error instead of trusting it.
    const planted = uniq('planted')
    const r = script(
      `require('fs').writeFileSync(${JSON.stringify(segment(planted))}, 'x'.repeat(1 << 20), { mode: 0o600 })`
    )
    assert.equal(r.status, 0, r.stderr)
    t.after(() => fs.rmSync(segment(planted), { force: true }))
    assert.equal(fs.statSync(segment(planted)).uid, 65534)
    assert.throws(() => new Semaphore(1, { name: planted, scope: 'host' }), {
      code: 'EACCES',
      message: /belongs to another user/
    })
    // nobody's own gate of the same name is nobody's: it does not see ours.
    const k = start('all', { name, permits: 2, timeout: 5000 }, { user: 'nobody' })
    assert.equal(await k.line(/^(all|error)/), 'all 0 false')
    assert.equal(sem.available, 1, 'ours is untouched')
    sem.release()
  }
)

test(
  'worker threads and processes share one host gate; a terminated worker gives its permits and waiters back',
  { skip },
  async () => {
    const { Worker } = require('node:worker_threads')
    const name = uniq('threads')
    const sem = new Semaphore(2, { name, scope: 'host' })
    await sem.acquire(2)
    const src = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Semaphore } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))})
    const sem = new Semaphore(undefined, { name: workerData, scope: 'host' })
    sem.acquire(1).then(() => parentPort.postMessage('got'))
    parentPort.postMessage('queued')
  `
    const w1 = new Worker(src, { eval: true, workerData: name })
    const w2 = new Worker(src, { eval: true, workerData: name })
    const first = (w, what) =>
      new Promise((resolve) => w.on('message', (m) => m === what && resolve()))
    await Promise.all([first(w1, 'queued'), first(w2, 'queued')])
    assert.equal(sem.pending, 2)
    // A waiter in another process too, behind them.
    const proc = start('wait', { name, n: 1 })
    await proc.line(/^queued 3$/)
    await w1.terminate()
    assert.equal(sem.pending, 2, "the terminated worker's waiter left the queue")
    const got2 = first(w2, 'got')
    sem.release(1)
    await got2
    // w2 holds one, we hold one, the process waits. w2 ends: its permit goes
    // to the process.
    await w2.terminate()
    await proc.line(/^got$/)
    assert.deepEqual(await proc.exited, { code: 0, signal: null })
    assert.equal(sem.available, 1)
    sem.release(1)
    assert.equal(sem.available, 2)
  }
)
