'use strict'
// The Redis gate tests (test/redis*.test.js) once more, against Valkey:
// `npm run test:valkey`. Starts a private valkey-server (no persistence, a
// free port on 127.0.0.1) the way npm test starts redis-server, runs the
// files with SLUICE_REDIS_URL pointing at it, and stops it, also on failure.
// No valkey-server: one line saying so, and exit 0, or 1 with
// SLUICE_REQUIRE_VALKEY=1 (CI installs it).
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { startRedis } = require('../test/support/services.js')

const root = path.join(__dirname, '..')

function valkey() {
  for (const d of (process.env.PATH || '').split(path.delimiter).concat(['/usr/bin'])) {
    const p = d && path.join(d, 'valkey-server')
    if (p && fs.existsSync(p)) return p
  }
  return null
}

async function main() {
  const bin = valkey()
  if (bin === null) {
    const required = process.env.SLUICE_REQUIRE_VALKEY === '1'
    console.log(
      `# test:valkey: ${required ? 'FAILED' : 'skipped'}: no valkey-server (Debian 12: apt-get install -t bookworm-backports valkey-server)`
    )
    return required ? 1 : 0
  }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim()
  process.env.SLUICE_REDIS_SERVER = bin
  const server = await startRedis()
  const stop = () => server.stop().catch(() => {})
  process.once('SIGINT', () => stop().then(() => process.exit(130)))
  process.once('SIGTERM', () => stop().then(() => process.exit(143)))
  try {
    const files = fs
      .readdirSync(path.join(root, 'test'))
      .filter((f) => /^redis.*\.test\.js$/.test(f))
      .map((f) => path.join('test', f))
    console.log(`# test:valkey: ${version}; ${files.join(', ')}`)
    const t0 = Date.now()
    const r = spawnSync(process.execPath, ['--test', ...files], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, SLUICE_REDIS_URL: server.url, SLUICE_REQUIRE_SERVICES: '1' }
    })
    console.log(
      `# test:valkey: ${r.status === 0 ? 'ok' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`
    )
    return r.status === 0 ? 0 : 1
  } finally {
    await stop()
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  }
)
