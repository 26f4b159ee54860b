'use strict'
// Throwaway PostgreSQL and Redis servers for the tests: loopback only, a free
// port, data in a temp dir, gone when stopped. `npm test` (scripts/test.js)
// and `.ci/run` both start them through this file; a test that must restart
// or kill its server (fault tests) starts a private one with the same
// functions.
//
//   const { startPostgres, startRedis } = require('./support/services')
//   const pg = await startPostgres()   // { env: { PGHOST, PGPORT, ... }, dir, restart(), stop() }
//   const redis = await startRedis()   // { url, port, restart(), stop() }
//
// As a command (`.ci/run`):
//   node test/support/services.js start <state-file>   prints `export K=V` lines
//   node test/support/services.js stop <state-file>
//
// The tests read the servers from the environment:
//   PostgreSQL: PGHOST PGPORT PGUSER PGDATABASE (libpq's own names, which pg
//   reads), SLUICE_PG_DATA and SLUICE_PG_BIN (for a restart).
//   Redis: SLUICE_REDIS_URL, SLUICE_REDIS_PORT, SLUICE_REDIS_SERVER (binary).
const { spawnSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// Where the PostgreSQL server programs are: $SLUICE_PG_BIN, PATH, then
// Debian's versioned directory (apt-get install postgresql puts them there,
// off the PATH).
function postgresBin() {
  const candidates = []
  if (process.env.SLUICE_PG_BIN) candidates.push(process.env.SLUICE_PG_BIN)
  for (const d of (process.env.PATH || '').split(path.delimiter)) if (d) candidates.push(d)
  const debian = '/usr/lib/postgresql'
  if (fs.existsSync(debian)) {
    for (const v of fs.readdirSync(debian).sort((a, b) => Number(b) - Number(a))) {
      candidates.push(path.join(debian, v, 'bin'))
    }
  }
  for (const d of candidates) {
    if (fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl'))) {
      return fs.realpathSync(path.dirname(fs.realpathSync(path.join(d, 'pg_ctl'))))
    }
  }
  return null
}

function redisBin() {
  const names = ['redis-server', 'valkey-server']
  if (process.env.SLUICE_REDIS_SERVER) return process.env.SLUICE_REDIS_SERVER
  for (const d of (process.env.PATH || '')
    .split(path.delimiter)
    .concat(['/usr/bin', '/usr/sbin'])) {
    for (const n of names) if (d && fs.existsSync(path.join(d, n))) return path.join(d, n)
  }
  return null
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

// PostgreSQL refuses to run as root: as root, its programs run as the
// `postgres` user (which Debian's package creates).
function asPgUser(cmd, args) {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]
}

// The servers run without what the test run preloads into its own processes:
// test:sanitize sets LD_PRELOAD to libasan, under which postgres hung.
function serverEnv() {
  const env = { ...process.env }
  for (const k of Object.keys(env)) {
    if (/^(LD_PRELOAD|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS|TSAN_OPTIONS|NODE_OPTIONS)$/.test(k))
      delete env[k]
  }
  return env
}

function runChecked(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: serverEnv() })
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (${r.error ? r.error.message : `exit ${r.status}`}):\n${r.stdout}${r.stderr}`
    )
  }
  return r
}

// Why PostgreSQL cannot start here, or null when it can.
function postgresMissing() {
  if (process.platform === 'win32') return 'not on Windows'
  if (!postgresBin()) return 'no initdb/pg_ctl (Debian: apt-get install postgresql)'
  if (isRoot && spawnSync('id', ['-u', 'postgres']).status !== 0)
    return 'running as root and there is no postgres user'
  return null
}

function redisMissing() {
  if (process.platform === 'win32') return 'not on Windows'
  if (!redisBin()) return 'no redis-server (Debian: apt-get install redis-server)'
  return null
}

async function startPostgres({ port } = {}) {
  const why = postgresMissing()
  if (why) throw new Error(`PostgreSQL cannot start: ${why}`)
  const bin = postgresBin()
  port = port || (await freePort())
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-pg-'))
  const data = path.join(dir, 'data')
  if (isRoot) runChecked('chown', ['postgres:', dir], 'chown')
  fs.chmodSync(dir, 0o700)
  runChecked(
    ...asPgUser(path.join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C'
    ]),
    'initdb'
  )
  // Trust on loopback only; no Unix socket in a shared dir.
  fs.writeFileSync(
    path.join(data, 'pg_hba.conf'),
    'host all all 127.0.0.1/32 trust\nlocal all all trust\n'
  )
  fs.appendFileSync(
    path.join(data, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 300',
      ''
    ].join('\n')
  )
  const pgCtl = (args) =>
    runChecked(
      ...asPgUser(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'log'), ...args]),
      `pg_ctl ${args[0]}`
    )
  pgCtl(['-w', '-t', '60', 'start'])
  const env = {
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'postgres',
    PGDATABASE: 'postgres',
    SLUICE_PG_DATA: data,
    SLUICE_PG_BIN: bin
  }
  return {
    env,
    dir,
    port,
    // A fast restart: every backend is killed, the server comes back on the
    // same port.
    restart() {
      pgCtl(['-w', '-t', '60', '-m', 'immediate', 'restart'])
    },
    stop() {
      spawnSync(
        ...asPgUser(path.join(bin, 'pg_ctl'), ['-D', data, '-w', '-m', 'immediate', 'stop'])
      )
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

async function waitForPort(port, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline)
      throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`)
    await sleep(20)
  }
}

// A redis-server with no persistence, daemonized with a pid file so that a
// command (`.ci/run`) can stop it later.
async function startRedis({ port } = {}) {
  const why = redisMissing()
  if (why) throw new Error(`Redis cannot start: ${why}`)
  const bin = redisBin()
  port = port || (await freePort())
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-redis-'))
  const pidfile = path.join(dir, 'redis.pid')
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'yes',
    '--pidfile',
    pidfile,
    '--logfile',
    path.join(dir, 'log')
  ]
  const launch = async () => {
    runChecked(bin, args, 'redis-server')
    await waitForPort(port, 10000)
  }
  const kill = async () => {
    let pid
    try {
      pid = Number(fs.readFileSync(pidfile, 'utf8'))
    } catch {
      return
    }
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      return
    }
    // Wait until it is gone, so that the port is free again. A daemonized
    // server is a child of PID 1; where PID 1 reaps late (some containers),
    // it lingers as a zombie, which holds no port: that counts as gone. Its
    // sockets close only when its last thread has exited, so every thread
    // must be a zombie (the leader alone turns 'Z' first).
    const zombie = () => {
      try {
        const tids = fs.readdirSync(`/proc/${pid}/task`)
        return tids.every((tid) => {
          try {
            return (
              fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1][0] === 'Z'
            )
          } catch {
            return true // that thread is gone
          }
        })
      } catch {
        return false
      }
    }
    for (let i = 0; i < 500; i++) {
      try {
        process.kill(pid, 0)
      } catch {
        break
      }
      if (zombie()) break
      await sleep(10)
    }
    fs.rmSync(pidfile, { force: true })
  }
  await launch()
  const url = `redis://127.0.0.1:${port}`
  return {
    url,
    port,
    dir,
    env: { SLUICE_REDIS_URL: url, SLUICE_REDIS_PORT: String(port), SLUICE_REDIS_SERVER: bin },
    // SIGKILL and start again on the same port: every key is gone (no
    // persistence), as after a crash.
    async restart() {
      await kill()
      await launch()
    },
    kill,
    start: launch,
    async stop() {
      await kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

// Starts what is missing from the environment and is available here.
// Returns { env, stop(), notes[] }.
async function startForTests({ require: required = false } = {}) {
  const started = []
  const env = {}
  const notes = []
  if (!process.env.PGPORT) {
    const why = postgresMissing()
    if (why) notes.push(`PostgreSQL tests NOT run: ${why}`)
    else {
      const pg = await startPostgres()
      started.push(pg)
      Object.assign(env, pg.env)
    }
  }
  if (!process.env.SLUICE_REDIS_URL) {
    const why = redisMissing()
    if (why) notes.push(`Redis tests NOT run: ${why}`)
    else {
      const r = await startRedis()
      started.push(r)
      Object.assign(env, r.env)
    }
  }
  if (required && notes.length) {
    for (const s of started) await s.stop()
    throw new Error(notes.join('; '))
  }
  return {
    env,
    notes,
    async stop() {
      for (const s of started) await s.stop()
    }
  }
}

module.exports = {
  startPostgres,
  startRedis,
  startForTests,
  postgresMissing,
  redisMissing,
  freePort
}

// The command: start both and write what stop needs to a state file.
if (require.main === module) {
  const [cmd, state] = process.argv.slice(2)
  if (!state || !['start', 'stop'].includes(cmd)) {
    console.error('usage: node test/support/services.js start|stop <state-file>')
    process.exit(2)
  }
  if (cmd === 'start') {
    ;(async () => {
      const pg = await startPostgres()
      fs.writeFileSync(
        state,
        JSON.stringify({
          pg: { data: pg.env.SLUICE_PG_DATA, bin: pg.env.SLUICE_PG_BIN, dir: pg.dir }
        })
      )
      const redis = await startRedis()
      fs.writeFileSync(
        state,
        JSON.stringify({
          pg: { data: pg.env.SLUICE_PG_DATA, bin: pg.env.SLUICE_PG_BIN, dir: pg.dir },
          redis: { dir: redis.dir }
        })
      )
      for (const [k, v] of Object.entries({ ...pg.env, ...redis.env }))
        console.log(`export ${k}=${v}`)
    })().catch((err) => {
      console.error(err.message)
      process.exit(1)
    })
  } else {
    let s = {}
    try {
      s = JSON.parse(fs.readFileSync(state, 'utf8'))
    } catch {}
    if (s.pg) {
      spawnSync(
        ...asPgUser(path.join(s.pg.bin, 'pg_ctl'), [
          '-D',
          s.pg.data,
          '-w',
          '-m',
          'immediate',
          'stop'
        ]),
        {
          stdio: 'inherit'
        }
      )
      fs.rmSync(s.pg.dir, { recursive: true, force: true })
    }
    if (s.redis) {
      try {
        process.kill(
          Number(fs.readFileSync(path.join(s.redis.dir, 'redis.pid'), 'utf8')),
          'SIGKILL'
        )
      } catch {}
      fs.rmSync(s.redis.dir, { recursive: true, force: true })
    }
    fs.rmSync(state, { force: true })
  }
}
