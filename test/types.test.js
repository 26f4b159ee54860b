'use strict'
// The TypeScript declarations type-check what a user writes with them.
// Every declaration file is checked (--skipLibCheck false: ours, and
// @types/node against them) but TypeScript's own lib.*.d.ts
// (--skipDefaultLibCheck: 3.5 s of CPU instead of 5.3 here). tsc runs
// incrementally (its build info in node_modules/.cache): a rerun with
// nothing changed takes ~1.5 s; it rechecks what changed and reports the
// errors of every file again.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

test('index.d.ts, p-limit.d.ts and generic-pool.d.ts type-check a strict usage file', () => {
  const tsc = require.resolve('typescript/bin/tsc')
  const r = spawnSync(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--target',
      'es2022',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--skipLibCheck',
      'false',
      '--skipDefaultLibCheck',
      '--types',
      'node',
      '--incremental',
      '--tsBuildInfoFile',
      path.join(__dirname, '..', 'node_modules', '.cache', 'sluice-tsc', 'usage.tsbuildinfo'),
      path.join(__dirname, 'types', 'usage.ts')
    ],
    { encoding: 'utf8' }
  )
  assert.equal(r.status, 0, r.stdout + r.stderr)
})
