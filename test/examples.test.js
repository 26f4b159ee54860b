'use strict'
// The examples run as a user would run them: a child process that must exit
// by itself, with status 0, and print what it promises.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const EXAMPLES = path.join(__dirname, '..', 'examples')

// Resolves with { code, signal, stdout, stderr }. A hung example is killed
// after `timeout` ms (a process kept alive by a leftover handle would hang).
function runExample(file, timeout = 60_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(EXAMPLES, file)], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s) => {
      stdout += s
    })
    child.stderr.setEncoding('utf8').on('data', (s) => {
      stderr += s
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

test('examples/shared-limit-http.js: 4 workers, one shared limit of 3, the service sees at most 3 at once and reaches it', async () => {
  const r = await runExample('shared-limit-http.js')
  assert.equal(r.signal, null, `killed (hung?): ${r.stdout}\n${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  const max = /max concurrent requests: (\d+) \(limit (\d+)\)/.exec(r.stdout)
  assert.ok(max, r.stdout)
  assert.equal(Number(max[2]), 3)
  assert.equal(Number(max[1]), 3, 'the limit is reached and never exceeded across threads')
  assert.match(r.stdout, /total requests: 100 \(served: 100\)/)
  assert.equal(r.stderr, '')
})

test(
  'examples/cluster-host-limit.js: 4 cluster workers behind one host-wide limit of 3, the service sees at most 3 at once and reaches it',
  { skip: process.platform === 'linux' ? false : "scope: 'host' is Linux-only for now" },
  async () => {
    const r = await runExample('cluster-host-limit.js')
    assert.equal(r.signal, null, `killed (hung?): ${r.stdout}\n${r.stderr}`)
    assert.equal(r.code, 0, r.stderr)
    const max = /max concurrent requests: (\d+) \(limit (\d+)\)/.exec(r.stdout)
    assert.ok(max, r.stdout)
    assert.equal(Number(max[2]), 3)
    assert.equal(Number(max[1]), 3, 'the limit is reached and never exceeded across processes')
    assert.match(r.stdout, /total requests: 100 \(served: 100\)/)
    assert.equal(r.stderr, '')
  }
)

test('examples/pool-workers.js: runs its jobs, shuts the pool down and exits by itself', async () => {
  const r = await runExample('pool-workers.js')
  assert.equal(r.signal, null, `killed (hung?): ${r.stdout}\n${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^ready: 2 workers$/m)
  assert.match(r.stdout, /^200 jobs in \d+ ms on at most 4 workers$/m)
  assert.match(r.stdout, /after drain \+ clear: \{ size: 0, available: 0 \}/)
  assert.equal(r.stderr, '')
})

test(
  'examples/pg-connection-pool.js: the walk-through on a real server, the third request gets the first backend back',
  {
    skip: process.env.PGPORT
      ? false
      : 'no PostgreSQL here: PGPORT is not set (npm test starts one when PostgreSQL is installed)'
  },
  async () => {
    const r = await runExample('pg-connection-pool.js')
    assert.equal(r.signal, null, `killed (hung?): ${r.stdout}\n${r.stderr}`)
    assert.equal(r.code, 0, r.stderr)
    const pid = (n) => new RegExp(`request ${n} got backend (\\d+)`).exec(r.stdout)[1]
    assert.notEqual(pid(1), pid(2))
    assert.match(r.stdout, /^request 3 waits +available 0, used 2, waiting 1$/m)
    const third = /request 3 got (\d+) +available 0, used 2, waiting 0/.exec(r.stdout)
    assert.ok(third, r.stdout)
    assert.equal(third[1], pid(1))
    assert.match(r.stdout, /^the third request got the first connection back: yes$/m)
    assert.match(r.stdout, /^pool ended +available 0, used 0, waiting 0$/m)
    assert.equal(r.stderr, '')
  }
)
