// One gate for the whole process (issue 4): a sluice Semaphore opened by name
// in several worker_threads, side by side with a pure-JS semaphore on
// SharedArrayBuffer + Atomics.waitAsync (bench/atomics-semaphore.mjs).
//
// (a) Hand-offs: 4 workers each loop `await acquire(); release()` ITERS times
//     on one shared semaphore of 1 permit, then of 4 permits. Reported: acquire
//     + release pairs per second over all workers, and (1 permit) how many of
//     them were cross-thread hand-offs: the permit went to another thread
//     than the one that held it last.
// (b) Wake-up latency: two workers ping-pong one permit. The holder waits
//     until the other thread's acquire is queued, writes
//     process.hrtime.bigint() into a SharedArrayBuffer and releases; the other
//     thread takes the time when its acquire resolves. p50 and p99 in µs.
//
// Each implementation runs in its own child process (`--child <impl>`); its
// workers load this file too. Usage: node bench/shared.mjs
// (SHARED_DEBUG=1 prints every round of (a) on stderr.)
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads'
import {
  loadSluice,
  runChild,
  childMain,
  printTable,
  fmt,
  ratio,
  median,
  isChild,
  childArgs
} from './harness.mjs'
import { AtomicsSemaphore } from './atomics-semaphore.mjs'

const WORKERS = 4
const PERMITS = [1, 4]
const ITERS = { 1: 10_000, 4: 100_000 } // acquire/release pairs per worker per round
const ROUNDS = { warmup: 1, runs: 7 } // rounds per permit count, all on the same 4 workers
const PINGS = 20_000 // hand-offs timed in (b)
const PING_WARMUP = 2_000 // hand-offs before those, not recorded
const IMPLS = { sluice: 'sluice Semaphore({name})', atomics: 'Atomics.waitAsync semaphore' }

// ctl slots (Int32Array over a SharedArrayBuffer)
const GEN = 0 // throughput: round generation, bumped by the child's main thread to start a round
const HOLDERS = 1 // threads holding a permit now
const OVER = 2 // times a thread got a permit while `permits` were already held
const LAST = 3 // (1 permit) the worker that held the permit last
const SWITCHES = 4 // (1 permit) acquires by another worker than LAST
const QUEUED = 5 // latency: the waiting thread's acquire is queued
const ACQUIRED = 6 // latency: the new holder has the permit
const COUNT = 7 // latency: hand-offs done
const FIRST = 8 // throughput: set by the first worker to finish its loop
const CTL_SLOTS = 9
const STRIDE = 16 // Int32 slots between the workers' progress counters (64 bytes: one cache line each)

const now = () => process.hrtime.bigint() // CLOCK_MONOTONIC: one clock for every thread

// -------------------------------------------------------------- workers ---

function openSemaphore({ impl, name, buffer }) {
  if (impl === 'sluice') {
    const { Semaphore } = loadSluice('index')
    return new Semaphore(undefined, { name }) // attach: the child's main thread set the permits
  }
  return new AtomicsSemaphore(buffer)
}

async function throughputWorker(sem, ctl, { me, permits, iters, rounds, ends, progress }) {
  const end = new BigInt64Array(ends)
  const done = new Int32Array(progress)
  const track = permits === 1
  for (let r = 0; r < rounds; r++) {
    parentPort.postMessage({ arrived: r })
    Atomics.wait(ctl, GEN, r) // until the main thread bumps GEN to r + 1
    for (let i = 0; i < iters; i++) {
      Atomics.store(done, me * STRIDE, i)
      await sem.acquire()
      if (Atomics.add(ctl, HOLDERS, 1) >= permits) Atomics.add(ctl, OVER, 1)
      if (track && Atomics.load(ctl, LAST) !== me) {
        Atomics.store(ctl, LAST, me)
        Atomics.add(ctl, SWITCHES, 1)
      }
      Atomics.sub(ctl, HOLDERS, 1)
      sem.release()
    }
    end[me] = now()
    Atomics.store(done, me * STRIDE, iters)
    if (Atomics.compareExchange(ctl, FIRST, 0, 1) === 0) {
      // The first to finish: how many pairs all workers had completed by now.
      let sum = 0
      for (let w = 0; w < done.length / STRIDE; w++) sum += Atomics.load(done, w * STRIDE)
      end[done.length / STRIDE] = BigInt(sum)
    }
    parentPort.postMessage({ done: r })
  }
}

// Blocks this thread until the other one raises `flag`, and lowers it again.
const waitFor = (ctl, flag) => {
  while (Atomics.load(ctl, flag) === 0) Atomics.wait(ctl, flag, 0)
  Atomics.store(ctl, flag, 0)
}
const raise = (ctl, flag) => {
  Atomics.store(ctl, flag, 1)
  Atomics.notify(ctl, flag)
}

// Two threads pass the permit back and forth. Blocking Atomics.wait is used
// only for the protocol around the timed step (the holder waits until the
// other's acquire is queued; the old holder waits until the new one has the
// permit before it queues again, so it cannot barge in on the Atomics
// semaphore). The timed step is release() in one thread -> the other
// thread's `await acquire()` resuming, its event loop idle meanwhile.
async function latencyWorker(sem, ctl, { me, total, skip, stamp }) {
  const ts = new BigInt64Array(stamp)
  const samples = []
  const waitAndTake = async () => {
    waitFor(ctl, ACQUIRED) // the old holder lets the new one take the permit first
    const p = sem.acquire()
    raise(ctl, QUEUED)
    await p
    const t = now()
    const k = Atomics.add(ctl, COUNT, 1)
    if (k >= skip && k < total) samples.push(Number(t - ts[0]))
    raise(ctl, ACQUIRED)
  }
  if (me === 0) {
    await sem.acquire()
    raise(ctl, ACQUIRED)
  } else {
    await waitAndTake()
  }
  for (;;) {
    // holding the permit
    if (Atomics.load(ctl, COUNT) >= total) break
    waitFor(ctl, QUEUED)
    ts[0] = now()
    sem.release()
    await waitAndTake()
  }
  sem.release() // the other thread, if it is queued, takes it and stops too
  return samples
}

async function workerMain() {
  const sem = openSemaphore(workerData)
  const ctl = new Int32Array(workerData.ctl)
  if (workerData.mode === 'throughput') await throughputWorker(sem, ctl, workerData)
  else parentPort.postMessage({ samples: await latencyWorker(sem, ctl, workerData) })
}

// -------------------------------------------------- child (one per impl) ---

function createSemaphore(impl, permits) {
  if (impl === 'sluice') {
    const { Semaphore } = loadSluice('index')
    const name = `sluice-bench-${process.pid}-${permits}-${Math.random().toString(36).slice(2)}`
    // This thread keeps the gate open while the workers attach and run.
    return { sem: new Semaphore(permits, { name }), data: { name } }
  }
  const sem = new AtomicsSemaphore(permits)
  return { sem, data: { buffer: sem.buffer } }
}

function spawn(data) {
  const w = new Worker(new URL(import.meta.url), { workerData: data })
  const exited = new Promise((resolve, reject) => {
    w.once('error', reject)
    w.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`worker exited with code ${code}`))
    )
  })
  const messages = []
  let wake = null
  let gone = false
  exited.then(
    () => {
      gone = true
    },
    () => {}
  )
  w.on('message', (m) => {
    messages.push(m)
    if (wake) wake()
  })
  const next = async () => {
    while (messages.length === 0) {
      if (gone) throw new Error('worker exited before it reported')
      await Promise.race([
        new Promise((resolve) => {
          wake = resolve
        }),
        exited
      ])
    }
    return messages.shift()
  }
  return { next, exited }
}

async function throughput(impl, permits) {
  const { sem, data } = createSemaphore(impl, permits)
  const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_SLOTS))
  const ends = new SharedArrayBuffer(8 * (WORKERS + 1)) // each worker's end time, then the pairs done when the first ended
  const progress = new SharedArrayBuffer(4 * STRIDE * WORKERS)
  const end = new BigInt64Array(ends)
  const rounds = ROUNDS.warmup + ROUNDS.runs
  const iters = ITERS[permits]
  const workers = Array.from({ length: WORKERS }, (_, me) =>
    spawn({
      ...data,
      impl,
      mode: 'throughput',
      ctl: ctl.buffer,
      ends,
      progress,
      me,
      permits,
      iters,
      rounds
    })
  )
  const perSec = []
  const handoffs = []
  const firstDone = []
  const allPerSec = []
  for (let r = 0; r < rounds; r++) {
    for (const w of workers) await w.next() // all arrived, blocked on GEN
    // This thread holds every permit until all 4 workers are queued, so the
    // round is contended from its first hand-off; otherwise whether the
    // workers overlap at all depends on when the OS schedules them.
    for (let k = 0; k < permits; k++) if (!sem.tryAcquire()) throw new Error('a permit is missing')
    Atomics.store(ctl, LAST, -1)
    Atomics.store(ctl, SWITCHES, 0)
    Atomics.store(ctl, FIRST, 0)
    Atomics.store(ctl, GEN, r + 1)
    Atomics.notify(ctl, GEN)
    while (sem.pending < WORKERS) await new Promise((resolve) => setTimeout(resolve, 1))
    const t0 = now()
    sem.release(permits)
    for (const w of workers) await w.next()
    let first = end[0]
    let last = end[0]
    for (let w = 1; w < WORKERS; w++) {
      if (end[w] < first) first = end[w]
      if (end[w] > last) last = end[w]
    }
    const allOps = Number(end[WORKERS])
    const ns = Number(last - t0)
    if (r >= ROUNDS.warmup) {
      perSec.push(((WORKERS * iters) / ns) * 1e9)
      handoffs.push((Atomics.load(ctl, SWITCHES) / ns) * 1e9)
      firstDone.push(Number(first - t0) / ns)
      allPerSec.push((allOps / Number(first - t0)) * 1e9)
    }
    if (process.env.SHARED_DEBUG)
      console.error(
        impl,
        permits,
        r,
        (ns / 1e6).toFixed(1) + ' ms',
        Atomics.load(ctl, SWITCHES),
        (Number(first - t0) / ns).toFixed(2),
        Math.round(((WORKERS * iters) / ns) * 1e9),
        Math.round((allOps / Number(first - t0)) * 1e9)
      )
  }
  await Promise.all(workers.map((w) => w.exited))
  if (ctl[OVER] !== 0)
    throw new Error(
      `${impl}, ${permits} permit(s): more than ${permits} holder(s) at once ${ctl[OVER]} times`
    )
  if (sem.available !== permits)
    throw new Error(`${impl}, ${permits} permit(s): ${sem.available} available after the run`)
  return {
    perSec: median(perSec),
    handoffs: permits === 1 ? median(handoffs) : null,
    firstDone: median(firstDone),
    allPerSec: median(allPerSec),
    allSpread: (Math.max(...allPerSec) - Math.min(...allPerSec)) / median(allPerSec)
  }
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

async function latency(impl) {
  const { sem, data } = createSemaphore(impl, 1)
  const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_SLOTS))
  const stamp = new SharedArrayBuffer(8)
  const workers = [0, 1].map((me) =>
    spawn({
      ...data,
      impl,
      mode: 'latency',
      ctl: ctl.buffer,
      stamp,
      me,
      total: PING_WARMUP + PINGS,
      skip: PING_WARMUP
    })
  )
  const samples = []
  for (const w of workers) samples.push(...(await w.next()).samples)
  await Promise.all(workers.map((w) => w.exited))
  if (sem.available !== 1)
    throw new Error(`${impl} latency: ${sem.available} available after the run`)
  samples.sort((a, b) => a - b)
  return { n: samples.length, p50: pct(samples, 0.5) / 1e3, p99: pct(samples, 0.99) / 1e3 }
}

async function child(impl) {
  const out = {}
  for (const p of PERMITS) out[p] = await throughput(impl, p)
  out.latency = await latency(impl)
  return out
}

// ------------------------------------------------------------------ main ---

function main() {
  const res = Object.fromEntries(
    Object.keys(IMPLS).map((impl) => [impl, runChild('./shared.mjs', [impl], [])])
  )
  const base = res.atomics
  const rows = []
  for (const p of PERMITS) {
    for (const impl of Object.keys(IMPLS)) {
      const r = res[impl]
      const label = `${IMPLS[impl]}, ${p} permit${p > 1 ? 's' : ''}`
      if (r.error) {
        rows.push({ semaphore: label, error: r.error })
        continue
      }
      const t = r[p]
      const vs = base.error ? null : t.allPerSec / base[p].allPerSec
      rows.push({
        semaphore: label,
        'pairs/s, all 4 running': fmt(t.allPerSec),
        'vs baseline': impl === 'atomics' ? '' : ratio(vs),
        'pairs/s, whole round': fmt(t.perSec),
        'cross-thread hand-offs/s': t.handoffs == null ? '' : fmt(t.handoffs),
        'hand-offs vs baseline':
          impl === 'atomics' || t.handoffs == null || base.error
            ? ''
            : ratio(t.handoffs / base[p].handoffs),
        'first worker done': `${(t.firstDone * 100).toFixed(0)}%`,
        'run spread': `${(t.allSpread * 100).toFixed(0)}%`
      })
    }
  }
  printTable(
    `Shared semaphore hand-offs: ${WORKERS} worker threads each loop \`await acquire(); release()\` (${fmt(ITERS[1])} times at 1 permit, ${fmt(ITERS[4])} at 4), median of ${ROUNDS.runs} rounds after ${ROUNDS.warmup} warm-up`,
    rows,
    [
      'pairs/s, all 4 running: acquire+release pairs completed by all workers per second, until the first worker finished its loop;',
      "  vs baseline = this / the Atomics.waitAsync semaphore's (>1 is faster). pairs/s, whole round: all pairs / time until the last finished",
      '  (after one worker stalls, the others run nearly alone and much faster, so the whole-round figure swings between rounds)',
      'cross-thread hand-offs/s (1 permit): acquires by another thread than the last holder; sluice is FIFO across threads, so nearly every acquire',
      '  is one; the Atomics semaphore lets a releasing thread take the permit straight back (barging), so most of its pairs stay on one thread',
      '  and how many of them cross threads swings from round to round (SHARED_DEBUG=1 prints each round)',
      'run spread = (max-min)/median of pairs/s, all 4 running, over the rounds',
      'first worker done: when the first of the 4 workers finished its loop, as a share of the round (100%: all progressed together)',
      'every round checks that no more than `permits` threads held a permit at once, and that all permits are free at the end'
    ]
  )
  const lrows = Object.keys(IMPLS).map((impl) => {
    const r = res[impl]
    if (r.error) return { semaphore: IMPLS[impl], error: r.error }
    const l = r.latency
    return {
      semaphore: IMPLS[impl],
      'p50 µs': fmt(l.p50, 1),
      'p99 µs': fmt(l.p99, 1),
      'p50 vs baseline': impl === 'atomics' || base.error ? '' : ratio(base.latency.p50 / l.p50),
      'p99 vs baseline': impl === 'atomics' || base.error ? '' : ratio(base.latency.p99 / l.p99),
      samples: fmt(l.n)
    }
  })
  printTable(
    `Wake-up latency: release() in one worker thread -> the other thread's \`await acquire()\` resuming (1 permit ping-ponged ${fmt(PINGS)} times after ${fmt(PING_WARMUP)} warm-up)`,
    lrows,
    ['vs baseline = Atomics semaphore latency / sluice latency (>1 means sluice wakes faster)']
  )
  if (!res.sluice.error && !base.error) {
    const s = res.sluice
    const pairs1 = s[1].allPerSec / base[1].allPerSec
    const pairs4 = s[4].allPerSec / base[4].allPerSec
    const cross = s[1].handoffs / base[1].handoffs
    const lat = s.latency.p50 <= base.latency.p50
    const verdict = (x) => (x >= 2 ? 'met' : 'NOT met')
    console.log("\nTarget (issue 4): >= 2x the baseline's hand-offs/s, and p50 latency no worse.")
    console.log(
      `  acquire+release pairs/s (all 4 running): 1 permit ${ratio(pairs1)} (${verdict(pairs1)}), 4 permits ${ratio(pairs4)} (${verdict(pairs4)})`
    )
    console.log(
      `  cross-thread hand-offs/s, 1 permit: ${ratio(cross)} (${verdict(cross)}; the baseline barges, so its count of these swings between rounds and runs)`
    )
    console.log(
      `  p50 wake-up latency: ${fmt(s.latency.p50, 1)} µs vs ${fmt(base.latency.p50, 1)} µs (${lat ? 'met' : 'NOT met'})`
    )
  }
  if (Object.values(res).some((r) => r.error)) process.exitCode = 1
}

if (!isMainThread) await workerMain()
else if (isChild) childMain(() => child(childArgs[0]))
else main()
