'use strict'
// `npm test`: the formatting check (Prettier, `npm run format:check`), then
// the C core's own tests (built with AddressSanitizer and UBSan) beside the
// JS suite (node:test): the C tests use one core at a time (gcc, then each
// test), so they run alongside and their output follows the suite's. A
// formatting difference fails the run, at the end: the tests still run and
// report.
//
// The million-operation cases are not here: `npm run test:stress`
// (scripts/stress.js) runs them, and CI runs it after npm test.
//
// A C test declares what it links in its first line:
//   // sources: src/gate.c
// It needs a C compiler and libuv to link against (Debian: libuv1-dev). When
// those are missing the C tests cannot run here; that is an error when
// SLUICE_REQUIRE_C_TESTS=1 (CI sets it) and a loud notice otherwise.
//
// SLUICE_VALGRIND=1 (npm run test:sanitize sets it) also builds each C test
// without sanitizers and runs it under valgrind memcheck, which must report
// no error and no leak of any kind (still-reachable included), within
// 5 minutes. SLUICE_VALGRIND_SKIP="a_test.c b_test.c" leaves named tests out
// of the valgrind run only, loudly (for a test known to need fixing first).
//
// `node scripts/test.js --c` runs only the C tests, `--js` only the JS suite,
// `--format` only the formatting check.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const { startForTests } = require('../test/support/services')

const root = path.join(__dirname, '..')
const requireC = process.env.SLUICE_REQUIRE_C_TESTS === '1'
const useValgrind = process.env.SLUICE_VALGRIND === '1'
const valgrindSkip = (process.env.SLUICE_VALGRIND_SKIP || '').split(/[\s,]+/).filter(Boolean)
const only = ['c', 'js', 'format'].find((k) => process.argv.includes(`--${k}`)) || null

// What each part said, for the summary at the end.
const summary = new Map()

// Runs a command; resolves with its exit status (1 if a signal ended it).
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', cwd: root, ...opts })
    child.once('error', reject)
    child.once('close', (code) => resolve(code === null ? 1 : code))
  })
}

// Where a part writes: the terminal, or a file printed later.
function terminalOutput() {
  return { stdio: 'inherit', log: console.log, error: console.error }
}
function fileOutput(file) {
  const fd = fs.openSync(file, 'w')
  return {
    fd,
    stdio: ['ignore', fd, fd],
    log: (msg) => fs.writeSync(fd, msg + '\n'),
    error: (msg) => fs.writeSync(fd, msg + '\n')
  }
}

function nodeHeaders() {
  const dirs = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node')
  ]
  return dirs.find((d) => d && fs.existsSync(path.join(d, 'uv.h')))
}

function libuv() {
  const pc = spawnSync('pkg-config', ['--libs', 'libuv'], { encoding: 'utf8' })
  if (pc.status === 0 && pc.stdout.trim()) return pc.stdout.trim().split(/\s+/)
  const dirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib'
  ]
  for (const d of dirs) {
    for (const f of ['libuv.so', 'libuv.so.1', 'libuv.a']) {
      if (fs.existsSync(path.join(d, f))) return [path.join(d, f)]
    }
  }
  return null
}

// Prettier over the tree (.prettierrc.json; ignored: .gitignore and
// .prettierignore). --cache keeps a rerun fast.
async function formatCheck() {
  let prettier
  try {
    prettier = require.resolve('prettier/bin/prettier.cjs', { paths: [root] })
  } catch {
    console.error('\n*** formatting NOT checked: prettier is not installed (npm install) ***\n')
    summary.set('format', 'formatting: NOT checked (prettier not installed)')
    return 1
  }
  console.log('# format: prettier --check')
  const status = await run(process.execPath, [
    prettier,
    '--check',
    '--cache',
    '--ignore-unknown',
    '--log-level=warn',
    '.'
  ])
  if (status !== 0) {
    console.error(
      '\n*** formatting: the files above differ from the project style. Run `npm run format` to rewrite them. ***\n'
    )
    summary.set('format', 'formatting: FAILED')
    return 1
  }
  summary.set('format', 'formatting: ok')
  return 0
}

async function cTests(out_ = terminalOutput()) {
  const { log, error, stdio } = out_
  const dir = path.join(root, 'test', 'c')
  const tests = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('_test.c'))
        .sort()
    : []
  if (tests.length === 0) return 0
  const inc = nodeHeaders()
  const uv = libuv()
  const cc = process.env.CC || 'gcc'
  const haveCc = spawnSync(cc, ['--version']).status === 0
  if (!inc || !uv || !haveCc) {
    const why = !haveCc
      ? `no C compiler (${cc})`
      : !inc
        ? 'no uv.h (Node headers)'
        : 'no libuv to link (Debian: apt-get install libuv1-dev)'
    error(`\n*** C core tests NOT run: ${why} ***\n`)
    summary.set('c', `C core tests: NOT RUN (${why})${requireC ? ', required' : ''}`)
    return requireC ? 1 : 0
  }
  if (useValgrind && spawnSync('valgrind', ['--version']).status !== 0) {
    error('\n*** valgrind NOT found (Debian: apt-get install valgrind) ***\n')
    return 1
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ctest-'))
  let failed = 0
  const failures = []
  for (const t of tests) {
    const src = path.join(dir, t)
    const first = fs.readFileSync(src, 'utf8').split('\n', 1)[0]
    const m = /sources:\s*(.*)$/.exec(first)
    const sources = m
      ? m[1]
          .trim()
          .split(/\s+/)
          .map((s) => path.join(root, s))
      : []
    const exe = path.join(out, t.replace(/\.c$/, ''))
    const common = [
      '-std=gnu11',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-g',
      '-O1',
      `-I${inc}`,
      `-I${path.join(root, 'src')}`
    ]
    const sanitize = [
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all',
      '-fno-omit-frame-pointer'
    ]
    const link = [src, ...sources, ...uv, '-lpthread', '-ldl', '-lm']
    log(`# C: building ${t}`)
    if ((await run(cc, [...common, ...sanitize, ...link, '-o', exe], { stdio })) !== 0) {
      failed++
      failures.push(`${t} (build)`)
      continue
    }
    log(`# C: running ${t}`)
    if (
      (await run(exe, [], {
        stdio,
        env: {
          ...process.env,
          ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
          UBSAN_OPTIONS: 'print_stacktrace=1'
        }
      })) !== 0
    ) {
      failed++
      failures.push(`${t} (ASan/UBSan)`)
      continue
    }
    if (!useValgrind) continue
    if (valgrindSkip.includes(t)) {
      error(`\n*** C: ${t} NOT run under valgrind (SLUICE_VALGRIND_SKIP) ***\n`)
      continue
    }
    // memcheck cannot run an ASan binary: the same test, uninstrumented.
    const plain = `${exe}-plain`
    log(`# C: building ${t} without sanitizers for valgrind`)
    if ((await run(cc, [...common, ...link, '-o', plain], { stdio })) !== 0) {
      failed++
      failures.push(`${t} (build for valgrind)`)
      continue
    }
    log(`# C: running ${t} under valgrind`)
    if (
      (await run(
        'valgrind',
        [
          '-q',
          '--error-exitcode=1',
          '--leak-check=full',
          '--show-leak-kinds=all',
          '--errors-for-leak-kinds=all',
          '--track-origins=yes',
          plain
        ],
        { stdio, timeout: 5 * 60 * 1000 }
      )) !== 0
    ) {
      error(`# C: ${t} failed under valgrind`)
      failed++
      failures.push(`${t} (valgrind)`)
    }
  }
  fs.rmSync(out, { recursive: true, force: true })
  const which = failures.length ? ` (${failures.join(', ')})` : ''
  log(`# C core tests: ${tests.length - failed} passed, ${failed} failed${which}`)
  summary.set('c', `C core tests: ${tests.length - failed} passed, ${failed} failed${which}`)
  return failed ? 1 : 0
}

// The module under test must load: a failure is a failed run, never a skip.
async function jsTests() {
  try {
    require(path.join(root, 'lib', 'binding.js'))
  } catch (err) {
    console.error(
      '\n*** sluice: the addon does not load. Run `npm install` (or `npm run build:addon`). ***\n',
      err.message
    )
    summary.set('js', 'JS suite: NOT RUN, the addon does not load (a failure)')
    return 1
  }
  const dir = path.join(root, 'test')
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.test\.(m?js)$/.test(f))
    .sort()
    .map((f) => path.join('test', f))
  // PostgreSQL and Redis: the servers in the environment (PGPORT,
  // SLUICE_REDIS_URL: .ci/run starts them), or throwaway ones started here
  // when the programs are installed. Missing programs skip only the files
  // that need them, with one line each; with SLUICE_REQUIRE_SERVICES=1 (CI)
  // they are a failure.
  let services
  try {
    services = await startForTests({ require: process.env.SLUICE_REQUIRE_SERVICES === '1' })
  } catch (err) {
    console.error(`\n*** ${err.message} ***\n`)
    summary.set('js', `JS suite: NOT RUN (${err.message})`)
    return 1
  }
  for (const note of services.notes) console.error(`\n*** ${note} ***\n`)
  // An interrupted run still stops the servers it started.
  const onSignal = (sig) => services.stop().finally(() => process.kill(process.pid, sig))
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let status
  try {
    status = await run(process.execPath, ['--test', '--test-concurrency=2', ...files], {
      env: { ...process.env, ...services.env }
    })
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await services.stop()
  }
  const notes = services.notes.length ? ` (${services.notes.join('; ')})` : ''
  summary.set('js', `JS suite (${files.length} files): ${status === 0 ? 'ok' : 'FAILED'}${notes}`)
  return status
}

async function main() {
  let status = 0
  if (only === null || only === 'format') status = (await formatCheck()) || status
  if (only === 'c') status = (await cTests()) || status
  if (only === 'js') status = (await jsTests()) || status
  if (only === null) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-'))
    const cOut = fileOutput(path.join(dir, 'c.log'))
    console.log('# C core tests: running beside the JS suite; their output follows it')
    const [c, js] = await Promise.all([cTests(cOut), jsTests()])
    fs.closeSync(cOut.fd)
    console.log('\n# C core tests: their output')
    process.stdout.write(fs.readFileSync(path.join(dir, 'c.log')))
    fs.rmSync(dir, { recursive: true, force: true })
    status = c || js || status
  }
  if (summary.size > 1) {
    console.log('\n# summary')
    for (const part of ['format', 'c', 'js']) {
      if (summary.has(part)) console.log(`#   ${summary.get(part)}`)
    }
  }
  return status
}

main().then(
  (status) => process.exit(status),
  (err) => {
    console.error(err)
    process.exit(1)
  }
)
