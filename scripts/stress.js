'use strict'
// `npm run test:stress`: the million-operation cases, outside `npm test`
// (which runs the same checks at a size that keeps it fast). CI runs this
// after npm test, and scripts/sanitize.js runs it against the ASan/UBSan
// build of the addon.
//
//   - leaks (test/support/leak-scenarios.js): 1,000,000 limiter tasks, 1,000,000
//     pool acquire/release cycles and 100,000 timeouts/aborts, each in a
//     fresh process: the addon back at rest (no native object left), the
//     JS heap within 1 MB and the memory outside it within 6 MB of a
//     warmed-up baseline;
//   - a million queued p-limit tasks complete, in order, with p-limit's
//     counts (against p-limit 7.3.3 and sluice/p-limit, each in a fresh
//     process: node:test's own async hook makes every promise several
//     times more expensive).
//
// The cases run one after another (they measure memory): node:test runs a
// file's top-level tests in sequence. One case: --test-name-pattern=<re>.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { promisify } = require('node:util')
const leaks = require('../test/support/leak-scenarios.js')

const root = path.join(__dirname, '..')
// Under AddressSanitizer everything is several times slower.
const SLOW = process.env.SLUICE_SANITIZE === '1' ? 5 : 1

const LEAK_OPS = { limiter: 1000000, pool: 1000000, timeouts: 100000 }

for (const [scenario, ops] of Object.entries(LEAK_OPS)) {
  test(`no leak: ${scenario} (${ops} operations)`, (t) => {
    const out = leaks.runScenario(scenario, ops, { timeout: 180000 * SLOW })
    t.diagnostic(leaks.describe(scenario, out))
    leaks.check(out)
  })
}

const MILLION = {
  'p-limit': require.resolve('p-limit'),
  sluice: path.join(root, 'lib', 'p-limit.mjs')
}

for (const [name, file] of Object.entries(MILLION)) {
  test(`${name}: a million queued tasks complete`, async (t) => {
    const script = `
      const { default: pLimit } = await import(process.argv[1])
      const n = 1_000_000
      const limit = pLimit(1)
      let count = 0
      const fn = () => ++count
      const promises = new Array(n)
      for (let i = 0; i < n; i++) promises[i] = limit(fn)
      const queued = [limit.activeCount, limit.pendingCount, count]
      const t0 = Date.now()
      const results = await Promise.all(promises)
      let inOrder = true
      for (let i = 0; i < n; i++) if (results[i] !== i + 1) inOrder = false
      console.log(JSON.stringify({ queued, count, inOrder, after: [limit.activeCount, limit.pendingCount], ms: Date.now() - t0 }))
    `
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '-e', script, pathToFileURL(file).href],
      { timeout: 120000 * SLOW }
    )
    const out = JSON.parse(stdout)
    t.diagnostic(`${name}: 1,000,000 queued tasks settled in ${out.ms} ms`)
    delete out.ms
    assert.deepEqual(out, {
      queued: [1, 999999, 0],
      count: 1000000,
      inOrder: true,
      after: [0, 0]
    })
  })
}
