// Shared helpers for the bench scripts (not a benchmark itself).
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

export const NOT_BUILT = 'sluice not built: run npm install'

// Load lib/<name>.js lazily. A missing lib file or native binding becomes one
// clear error, so only the sluice rows fail and the anchors still run.
export function loadSluice (name) {
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
export async function timeRuns (fn, { warmup = 2, runs = 5, gc = false, budgetMs = Infinity } = {}) {
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
export function runChild (script, args, flags = ['--expose-gc']) {
  const file = fileURLToPath(new URL(script, import.meta.url))
  const r = spawnSync(process.execPath, [...flags, file, '--child', ...args.map(String)], {
    encoding: 'utf8', maxBuffer: 64 << 20
  })
  const last = r.stdout.trim().split('\n').pop()
  try {
    const out = JSON.parse(last)
    if (out && typeof out === 'object') return out
  } catch {}
  const why = (r.stderr || '').trim().split('\n').find((l) => /Error|error:/.test(l)) ||
    `exit ${r.status}${r.signal ? ' ' + r.signal : ''}`
  return { error: why.trim() }
}

// Child side: run body, print its result (or the error) as one JSON line.
export async function childMain (body) {
  let out
  try {
    out = await body()
  } catch (err) {
    out = { error: String(err && err.message).split('\n')[0] }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

export const fmt = (x, digits = 0) => x == null || Number.isNaN(x)
  ? '-'
  : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

export const ratio = (x) => x == null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`

// Print rows (array of plain objects, same keys) as an aligned text table.
// First column left-aligned, the rest right-aligned. Rows with `error`
// span the table after the first column.
export function printTable (title, rows, notes = []) {
  const cols = Object.keys(rows.find((r) => !r.error) || rows[0]).filter((c) => c !== 'error')
  const cell = (r, c) => String(r[c] ?? '')
  const w = cols.map((c) => Math.max(c.length, ...rows.filter((r) => !r.error || c === cols[0]).map((r) => cell(r, c).length)))
  const line = (vals) => vals.map((v, i) => i ? v.padStart(w[i]) : v.padEnd(w[i])).join('  ')
  console.log(`\n${title}`)
  console.log(line(cols))
  console.log(line(w.map((n) => '-'.repeat(n))))
  for (const r of rows) console.log(r.error ? `${cell(r, cols[0]).padEnd(w[0])}  ${r.error}` : line(cols.map((c) => cell(r, c))))
  for (const n of notes) console.log(`  ${n}`)
}

export const isChild = process.argv.includes('--child')
export const childArgs = isChild ? process.argv.slice(process.argv.indexOf('--child') + 1) : []
