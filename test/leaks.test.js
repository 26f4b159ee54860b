'use strict'
// Leaks, small and fast: 20,000 limiter tasks, 20,000 pool acquire/release
// cycles and 10,000 timeouts/aborts (semaphore and pool), each in its own
// process (test/support/leak-scenarios.js), leave the addon at rest (no waiter,
// gate, pool or timer alive: absolute counts, exact at any size), the JS
// heap within 1 MB of a warmed-up baseline and the memory outside it within
// a few MB.
//
// The same scenarios with 1,000,000 operations, where the heap and memory
// checks see a leak of a few bytes per operation, run in
// `npm run test:stress` (scripts/stress.js; CI runs it after npm test).
const { test } = require('node:test')
const { runScenario, check: assertAtRest, describe } = require('./support/leak-scenarios.js')

const OPS = { limiter: 20000, pool: 20000, timeouts: 10000 }

for (const [scenario, ops] of Object.entries(OPS)) {
  test(`no leak: ${scenario} (${ops} operations)`, (t) => {
    const out = runScenario(scenario, ops, { timeout: 60000 })
    t.diagnostic(describe(scenario, out))
    assertAtRest(out)
  })
}
