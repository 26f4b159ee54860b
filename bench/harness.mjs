// Shared helpers for the bench scripts (not a benchmark itself).
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

export const NOT_BUILT = 'sluice not built: run npm install'

// Load lib/<name>.js lazily. A missing lib file or native binding becomes one
// clear error, so only the sluice rows fail and the anchors still run.
export function loadSluice(name) {
  try {
    return require(`../lib/${name}.js`)
  } catch (err) {
    const msg = String(err && err.message).split('\n')[0]
    const missing = err.code === 'MODULE_NOT_FOUND' || /No native build|\.node\b/.test(msg)
    throw new Error(missing ? `${NOT_BUILT} (${msg})` : `sluice failed to load: ${msg}`)
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// Warm up, then time `runs` calls of async fn with hrtime. Returns ns.
// gc: force a full GC before each timed run (needs --expose-gc). Off by
// default: it shrinks the heap, so every run would pay for regrowing it.
// budgetMs: stop early (after at least one timed run) once the timed runs
// have taken this long, so a pathologically slow library can't stall the suite.
export async function timeRuns(fn, { warmup = 2, runs = 5, gc = false, budgetMs = Infinity } = {}) {
  for (let i = 0; i < warmup; i++) await fn()
  const t = []
  let total = 0
  while (t.length < runs && total < budgetMs * 1e6) {
    if (gc) globalThis.gc()
    const t0 = process.hrtime.bigint()
    await fn()
    t.push(Number(process.hrtime.bigint() - t0))
    total += t[t.length - 1]
  }
  const med = median(t)
  return { median: med, spread: (Math.max(...t) - Math.min(...t)) / med, runs: t.length }
}

// Run `script --child ...args` in a fresh node and parse the JSON it prints
// on its last stdout line. Failures come back as { error }.
export function runChild(script, args, flags = ['--expose-gc']) {
  const file = fileURLToPath(new URL(script, import.meta.url))
  const r = spawnSync(process.execPath, [...flags, file, '--child', ...args.map(String)], {
    encoding: 'utf8',
    maxBuffer: 64 << 20
  })
  // Debug output a child writes on stderr (SHARED_DEBUG=1 in shared.mjs).
  if (process.env.SHARED_DEBUG && r.stderr) process.stderr.write(r.stderr)
  const last = r.stdout.trim().split('\n').pop()
  try {
    const out = JSON.parse(last)
    if (out && typeof out === 'object') return out
  } catch {}
  const why =
    (r.stderr || '')
      .trim()
      .split('\n')
      .find((l) => /Error|error:/.test(l)) || `exit ${r.status}${r.signal ? ' ' + r.signal : ''}`
  return { error: why.trim() }
}

// Child side: run body, print its result (or the error) as one JSON line.
export async function childMain(body) {
  let out
  try {
    out = await body()
  } catch (err) {
    out = { error: String(err && err.message).split('\n')[0] }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

export const fmt = (x, digits = 0) =>
  x == null || Number.isNaN(x)
    ? '-'
    : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

export const ratio = (x) => (x == null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`)

// Print rows (array of plain objects, same keys) as an aligned text table.
// First column left-aligned, the rest right-aligned. Rows with `error`
// span the table after the first column.
export function printTable(title, rows, notes = []) {
  const cols = Object.keys(rows.find((r) => !r.error) || rows[0]).filter((c) => c !== 'error')
  const cell = (r, c) => String(r[c] ?? '')
  const w = cols.map((c) =>
    Math.max(
      c.length,
      ...rows.filter((r) => !r.error || c === cols[0]).map((r) => cell(r, c).length)
    )
  )
  const line = (vals) => vals.map((v, i) => (i ? v.padStart(w[i]) : v.padEnd(w[i]))).join('  ')
  console.log(`\n${title}`)
  console.log(line(cols))
  console.log(line(w.map((n) => '-'.repeat(n))))
  for (const r of rows)
    console.log(
      r.error ? `${cell(r, cols[0]).padEnd(w[0])}  ${r.error}` : line(cols.map((c) => cell(r, c)))
    )
  for (const n of notes) console.log(`  ${n}`)
}

export const isChild = process.argv.includes('--child')
export const childArgs = isChild ? process.argv.slice(process.argv.indexOf('--child') + 1) : []

// ---- Steady-state measurement (limiter and pool flatness) ----
//
// The driver keeps W operations queued the whole time and calls tick() once
// per completed operation. The meter lets `warmup` operations pass, then
// times `windows` consecutive windows of K operations each. A window (or the
// warm-up) also ends once it has run for budgetMs (checked every 1,024
// operations), and a window cut short that way is the last one, so a library
// whose per-operation cost grows with W cannot stall the suite; such windows
// report how many operations they covered.
// Each window reports ns/op and how much of that was main-thread GC pauses
// (PerformanceObserver 'gc' entries, attributed by start time), and the
// process CPU time (user + system, all threads: GC helpers included), which
// other processes competing for the cores inflate far less than the wall
// clock. tick()
// returns false once the meter is done; `done` resolves with the windows.
import { PerformanceObserver, performance } from 'node:perf_hooks'

export function steadyMeter({ warmup, K, windows, budgetMs = Infinity }) {
  const gcs = []
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push([e.startTime, e.duration])
  })
  obs.observe({ entryTypes: ['gc'] })
  const marks = [] // [time, ops, cpu µs] at the start of the first window and at each window end
  let count = 0
  let next = warmup // op count at which the current phase ends
  let phaseStart = performance.now()
  let finished = false
  let resolve
  const done = new Promise((r) => {
    resolve = r
  })

  const mark = (cut) => {
    const now = performance.now()
    const cpu = process.cpuUsage()
    marks.push([now, count, cpu.user + cpu.system])
    if (marks.length > windows || (cut && marks.length > 1)) {
      finished = true
      setTimeout(finish, 20) // let the GC entries of the last window arrive
      return
    }
    phaseStart = now
    next = count + K
  }
  const finish = () => {
    obs.disconnect()
    const out = []
    for (let i = 1; i < marks.length; i++) {
      const [t0, c0, u0] = marks[i - 1]
      const [t1, c1, u1] = marks[i]
      let gcMs = 0
      for (const [s, d] of gcs) if (s >= t0 && s < t1) gcMs += d
      out.push({ ops: c1 - c0, ms: t1 - t0, gcMs, cpuMs: (u1 - u0) / 1000 })
    }
    resolve(out)
  }
  const budget = budgetMs
  return {
    tick() {
      if (finished) return false
      if (++count === next) mark(false)
      else if (
        (count & 1023) === 0 &&
        budget !== Infinity &&
        performance.now() - phaseStart > budget
      )
        mark(true)
      return !finished
    },
    get count() {
      return count
    },
    done
  }
}

// Summarise one child's windows: amortised ns/op over all its windows (total
// time / total ops, so a rare major GC is charged in full, not hidden by a
// median), GC ns/op, and the window-to-window spread.
export function summarizeWindows(ws) {
  const ops = ws.reduce((a, w) => a + w.ops, 0)
  const ms = ws.reduce((a, w) => a + w.ms, 0)
  const gcMs = ws.reduce((a, w) => a + w.gcMs, 0)
  const cpuMs = ws.reduce((a, w) => a + w.cpuMs, 0)
  const per = ws.map((w) => (w.ms * 1e6) / w.ops)
  return {
    ns: (ms * 1e6) / ops,
    gcNs: (gcMs * 1e6) / ops,
    cpuNs: (cpuMs * 1e6) / ops,
    ops,
    minWindowOps: Math.min(...ws.map((w) => w.ops)),
    windowSpread: (Math.max(...per) - Math.min(...per)) / median(per)
  }
}

// Combine one (library, size) cell over rounds (one fresh child per round):
// median of the rounds' amortised ns/op, and the spread (max-min)/median.
export function combineRounds(rs) {
  const ok = rs.filter((r) => !r.error)
  if (!ok.length) return { error: (rs[0] && rs[0].error) || 'no result' }
  const ns = ok.map((r) => r.ns)
  const cpu = ok.map((r) => r.cpuNs)
  const m = median(ns)
  const mc = median(cpu)
  return {
    ns: m,
    gcNs: median(ok.map((r) => r.gcNs)),
    cpuNs: mc,
    spread: (Math.max(...ns) - Math.min(...ns)) / m,
    cpuSpread: (Math.max(...cpu) - Math.min(...cpu)) / mc,
    rounds: ok.length,
    minWindowOps: Math.min(...ok.map((r) => r.minWindowOps))
  }
}

// The steady-state runs of a flatness table: rounds x sizes x libraries,
// one fresh child each (`script --child steady <name> <size>`); the library
// order alternates between rounds. `check(r, size)` says what is wrong with
// a child's result (a string), if anything. Returns, by name and size, the
// cell combineRounds makes of the rounds.
export function steadyRounds(script, names, sizes, rounds, check) {
  const raw = Object.fromEntries(
    names.map((name) => [name, Object.fromEntries(sizes.map((n) => [n, []]))])
  )
  for (let round = 0; round < rounds; round++) {
    for (const n of sizes) {
      for (const name of round % 2 ? [...names].reverse() : names) {
        const r = runChild(script, ['steady', name, n])
        if (!r.error) {
          const wrong = check(r, n)
          if (wrong) r.error = wrong
        }
        raw[name][n].push(r)
      }
    }
  }
  return Object.fromEntries(
    names.map((name) => [
      name,
      Object.fromEntries(sizes.map((n) => [n, combineRounds(raw[name][n])]))
    ])
  )
}

// The rows of a steady-state table, one per library: `pick(cells, ns)` makes
// a row's columns from its cells (by size) and their ns; a library with a
// failed cell gets that cell's error instead.
export function steadyRows(steady, names, sizes, pick) {
  return names.map((name) => {
    const cells = sizes.map((n) => steady[name][n])
    const bad = cells.find((c) => c.error)
    if (bad) return { library: name, error: bad.error }
    return {
      library: name,
      ...pick(
        cells,
        cells.map((c) => c.ns)
      )
    }
  })
}

// The two tables that follow a steady-state table: its CPU time and its GC
// pauses per operation. `col(n)` names the column of size n, `per` the
// operation in the CPU table's title ('per task'), `unit` the GC table's
// ('ns/task'), `digits` the figures' decimals, `gcNotes` the GC table's
// notes.
export function printSteadyCpuGc(rows, sizes, { col, per, unit, digits, gcNotes = [] }) {
  printTable(
    `  the same, CPU time ${per} (process user+sys, all threads; less sensitive to other processes on the cores)`,
    rows((cells) => {
      const v = cells.map((c) => c.cpuNs)
      return {
        ...Object.fromEntries(
          sizes.map((n, i) => [col(n), `${fmt(v[i], digits)} (${pct(cells[i].cpuSpread)})`])
        ),
        'largest/smallest': ratio(Math.max(...v) / Math.min(...v))
      }
    })
  )
  printTable(
    `  of which main-thread GC pauses, ${unit} (PerformanceObserver "gc", median over rounds)`,
    rows((cells) => Object.fromEntries(sizes.map((n, i) => [col(n), fmt(cells[i].gcNs, digits)]))),
    gcNotes
  )
}

// A share as a whole percentage (a spread).
export const pct = (x) => `${(x * 100).toFixed(0)}%`

// A minimal FIFO for the "JS reference" rows of the flatness tables: an array
// with a head index, compacted when the dead prefix is more than half of it
// (amortised O(1) shift, unlike Array#shift on a large array).
export class RefQueue {
  constructor() {
    this.a = []
    this.h = 0
  }
  get size() {
    return this.a.length - this.h
  }
  push(x) {
    this.a.push(x)
  }
  shift() {
    const x = this.a[this.h]
    this.a[this.h++] = undefined
    if (this.h > 1024 && this.h * 2 > this.a.length) {
      this.a = this.a.slice(this.h)
      this.h = 0
    }
    return x
  }

  clear() {
    this.a = []
    this.h = 0
  }
}
