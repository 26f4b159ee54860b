'use strict'
// Random exploration of the model-based tests, outside `npm test`:
//   npm run test:explore [-- <rounds>]      (default 10)
// Each round runs test/model-gate.test.js and test/model-pool.test.js with one
// fresh random seed (SLUICE_MODEL_SEED=random) each and prints it. A failing
// seed is printed with the shrunk sequence; replay it with
//   SLUICE_MODEL_SEED=<seed> node --test test/model-pool.test.js
// and, once fixed, add it to that test's fixed seeds. Exit code 1 if any
// round failed.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const rounds = Number(process.argv[2] || 10)
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: node scripts/explore.js [rounds >= 1]')
  process.exit(2)
}
const root = path.join(__dirname, '..')
const failed = []
for (let round = 1; round <= rounds; round++) {
  for (const file of ['test/model-gate.test.js', 'test/model-pool.test.js']) {
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 256 << 20,
      env: { ...process.env, SLUICE_MODEL_SEED: 'random' }
    })
    const out = r.stdout + r.stderr
    const seed = (out.match(/added: (-?\d+)/) || [])[1]
    const ok = r.status === 0
    console.log(
      `round ${round}/${rounds} ${path.basename(file)} seed ${seed}: ${ok ? 'ok' : 'FAILED'}`
    )
    if (!ok) {
      failed.push(`${file} seed ${seed}`)
      console.log(
        out
          .split('\n')
          .filter((l) => /Counterexample|Property failed|Got |seed:/.test(l))
          .join('\n')
      )
    }
  }
}
if (failed.length > 0) {
  console.log(`\n${failed.length} failing: ${failed.join('; ')}`)
  process.exit(1)
}
console.log(`\nall ${rounds} rounds passed`)
