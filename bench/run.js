'use strict'
// `npm run bench`: run each benchmark in its own node process and let it print
// its tables. Pick a subset by name: `node bench/run.js limiter pool`.
// Each benchmark spawns one further child per library, with --expose-gc
// (runChild in bench/harness.mjs), so the entry scripts themselves need no flags.
const { spawnSync } = require('node:child_process')
const { existsSync } = require('node:fs')
const path = require('node:path')

const BENCHES = [
  { name: 'limiter', file: 'limiter.mjs', flags: [] },
  { name: 'heap', file: 'heap.mjs', flags: [] },
  { name: 'pool', file: 'pool.mjs', flags: [] },
  // pg's Pool against pg-pool on a real PostgreSQL (issue 10).
  { name: 'pg-pool', file: 'pg-pool.mjs', flags: [] },
  // Cross-thread benchmark (issue 4); runs once the file exists.
  { name: 'shared', file: 'shared.mjs', flags: [], optional: true },
  // Cross-process (scope: 'host', issue 11): hand-offs and uncontended pairs.
  { name: 'host', file: 'host.mjs', flags: [] },
  // Fleet gates on a private redis-server (issue 12); says so when there is none.
  { name: 'redis', file: 'redis.mjs', flags: [] }
]

const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !BENCHES.some((b) => b.name === w))
if (unknown.length) {
  console.error(
    `unknown benchmark(s): ${unknown.join(', ')}; choose from ${BENCHES.map((b) => b.name).join(', ')}`
  )
  process.exit(2)
}

console.log(
  `sluice benchmarks — node ${process.version}, ${process.platform}/${process.arch}, ${require('node:os').cpus().length} CPUs`
)
let failed = 0
const start = Date.now()
for (const b of BENCHES) {
  const file = path.join(__dirname, b.file)
  if (wanted.length ? !wanted.includes(b.name) : b.optional && !existsSync(file)) continue
  console.log(`\n=== ${b.name} (node ${[...b.flags, `bench/${b.file}`].join(' ')}) ===`)
  const t0 = Date.now()
  const r = spawnSync(process.execPath, [...b.flags, file], { stdio: 'inherit' })
  if (r.status !== 0) {
    failed++
    console.log(`!! ${b.name} failed (${r.signal || `exit ${r.status}`})`)
  }
  console.log(`(${b.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)`)
}
console.log(`\nTotal ${((Date.now() - start) / 1000).toFixed(1)} s`)
process.exit(failed ? 1 : 0)
