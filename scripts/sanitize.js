'use strict'
// `npm run test:sanitize`: the robustness checks that need instrumented code.
//
//   1. The C core's tests under ASan/UBSan and then, rebuilt without
//      sanitizers, under valgrind memcheck (scripts/test.js --c with
//      SLUICE_VALGRIND=1): zero errors, zero leaks of any kind. Then their
//      threaded tests under ThreadSanitizer (tsanCTests below): no report.
//   2. The addon built with -fsanitize=address,undefined (binding.gyp's
//      SLUICE_SANITIZE=1) in a copy of the tree under the system temp
//      dir, so build/Release, which `npm test` loads, is never touched.
//   3. The whole JS suite against that build (lib/binding.js loads the file
//      named by SLUICE_ADDON_PATH), with libasan preloaded into the
//      uninstrumented `node`: ASan's runtime has to be the first library
//      loaded to intercept malloc/free, so it cannot arrive later with
//      dlopen of the addon. Child processes and worker threads of the tests
//      inherit it.
//   4. The stress cases (scripts/stress.js: the million-operation leak
//      checks and a million queued tasks) against the same build, the same
//      way.
//
// Sanitizer options for the node process:
//   - detect_leaks=0: LeakSanitizer would report what V8 and Node themselves
//     leave allocated at exit (they free little on purpose), burying any real
//     finding. The C core's leaks are checked by step 1 (LSan and valgrind);
//     the addon's native objects by the JS leak tests.
//   - halt_on_error=1 (ASan and UBSan): the first report ends the process,
//     so a report is also a failed test.
// SLUICE_SANITIZE=1 tells tests they run under ASan: it keeps freed memory
// in a quarantine (256 MB) and its allocator rarely returns pages, so an RSS
// check means nothing there (heap and native-object counts still do).
// Reports go to stderr (gcc's separate libasan and libubsan runtimes do not
// honour log_path consistently). The run's output is scanned and every
// report counted; a report in a child process whose output a test captures
// still fails that test, through halt_on_error's exit status.
// The run fails unless the C tests and the JS suite pass and there are 0
// sanitizer reports.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const timings = []

async function step(name, fn) {
  console.log(`\n## sanitize: ${name}`)
  const t0 = process.hrtime.bigint()
  const ok = await fn()
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  timings.push({ name, ok, s })
  console.log(`## sanitize: ${name}: ${ok ? 'ok' : 'FAILED'} (${s.toFixed(1)} s)`)
  return ok
}

function sanitizerRuntime(name) {
  const cc = process.env.CC || 'gcc'
  const r = spawnSync(cc, [`-print-file-name=${name}`], { encoding: 'utf8' })
  const p = r.status === 0 ? r.stdout.trim() : ''
  // Without a path, gcc echoes the bare name back: the runtime is not installed.
  return path.isAbsolute(p) && fs.existsSync(p) ? p : null
}

const REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/g

/** Runs a command, echoing its output, and counts sanitizer reports in it. */
function runCounting(cmd, args, opts) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines = []
    let reports = 0
    const scan = (stream, out) => {
      let rest = ''
      stream.on('data', (d) => {
        out.write(d)
        const parts = (rest + d).split('\n')
        rest = parts.pop()
        for (const l of parts) {
          const n = (l.match(REPORT) || []).length
          if (n) {
            reports += n
            lines.push(l)
          }
        }
      })
      stream.on('end', () => {
        reports += (rest.match(REPORT) || []).length
      })
    }
    scan(child.stdout, process.stdout)
    scan(child.stderr, process.stderr)
    child.on('close', (code) => resolve({ code, reports, lines }))
  })
}

// The C core's threaded tests under ThreadSanitizer. A C test opts in with a
// line `// tsan: ARGS` among its first lines (ARGS: how to run it, e.g.
// --threads-only); it is built from the same `// sources:` line that
// scripts/test.js reads, with -fsanitize=thread -g -O1, and run with
// halt_on_error=1. Any ThreadSanitizer report or a non-zero exit fails the
// step. gcc's runtime is libtsan (Debian 12: the libtsan2 package, which
// gcc-12 pulls in through libgcc-12-dev). libuv stays uninstrumented: TSan
// sees its pthread calls through its interceptors, which is what the core's
// locking rests on.
function tsanCTests() {
  const cc = process.env.CC || 'gcc'
  if (!sanitizerRuntime('libtsan.so')) {
    console.error('sanitize: libtsan.so not found (Debian: apt-get install libtsan2)')
    return false
  }
  const inc = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node'
  ].find((d) => d && fs.existsSync(path.join(d, 'uv.h')))
  const pc = spawnSync('pkg-config', ['--libs', 'libuv'], { encoding: 'utf8' })
  const uv =
    pc.status === 0 && pc.stdout.trim()
      ? pc.stdout.trim().split(/\s+/)
      : ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']
          .flatMap((d) => ['libuv.so', 'libuv.so.1'].map((f) => path.join(d, f)))
          .filter((f) => fs.existsSync(f))
          .slice(0, 1)
  if (!inc || uv.length === 0) {
    console.error('sanitize: no uv.h or no libuv to link (Debian: apt-get install libuv1-dev)')
    return false
  }
  const dir = path.join(root, 'test', 'c')
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-tsan-'))
  let ran = 0
  let failed = 0
  try {
    for (const t of fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('_test.c'))
      .sort()) {
      const head = fs.readFileSync(path.join(dir, t), 'utf8').split('\n', 5)
      const tsan = head.map((l) => /^\/\/ tsan:(.*)$/.exec(l)).find(Boolean)
      if (!tsan) continue
      const m = /sources:\s*(.*)$/.exec(head[0])
      const sources = m
        ? m[1]
            .trim()
            .split(/\s+/)
            .map((s) => path.join(root, s))
        : []
      const args = tsan[1].trim().split(/\s+/).filter(Boolean)
      const exe = path.join(out, t.replace(/\.c$/, '-tsan'))
      ran++
      console.log(`# TSan: building ${t}`)
      const build = spawnSync(
        cc,
        [
          '-std=gnu11',
          '-Wall',
          '-Wextra',
          '-Werror',
          '-g',
          '-O1',
          '-fsanitize=thread',
          `-I${inc}`,
          `-I${path.join(root, 'src')}`,
          path.join(dir, t),
          ...sources,
          ...uv,
          '-lpthread',
          '-ldl',
          '-lm',
          '-o',
          exe
        ],
        { cwd: root, stdio: 'inherit' }
      )
      if (build.status !== 0) {
        failed++
        continue
      }
      const env = { ...process.env, TSAN_OPTIONS: 'halt_on_error=1:second_deadlock_stack=1' }
      const run = (cmd, argv) => {
        console.log(`# TSan: running ${[t, ...args].join(' ')}`)
        const r = spawnSync(cmd, argv, {
          cwd: root,
          env,
          encoding: 'utf8',
          timeout: 10 * 60 * 1000
        })
        process.stdout.write(r.stdout || '')
        process.stderr.write(r.stderr || '')
        return r
      }
      let r = run(exe, args)
      // gcc 12's TSan cannot map its shadow memory under the larger mmap
      // randomization of newer kernels (vm.mmap_rnd_bits = 32): without ASLR
      // it can.
      if (/unexpected memory mapping/.test(r.stderr || '')) {
        console.log('# TSan: retrying without address randomization (setarch -R)')
        r = run('setarch', [os.arch() === 'arm64' ? 'aarch64' : 'x86_64', '-R', exe, ...args])
      }
      const reports = ((r.stdout || '') + (r.stderr || '')).match(
        /(WARNING|ERROR): ThreadSanitizer/g
      )
      if (r.status !== 0 || reports) {
        console.error(
          `# TSan: ${t} FAILED (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}, ` +
            `${reports ? reports.length : 0} ThreadSanitizer report(s))`
        )
        failed++
      }
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
  if (ran === 0) {
    console.error('sanitize: no C test declares `// tsan:`: nothing ran under ThreadSanitizer')
    return false
  }
  console.log(`# TSan: ${ran - failed} passed, ${failed} failed`)
  return failed === 0
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-sanitize-'))
  let addon = null
  let found = null
  let stressFound = null

  // The C tests' output is echoed, and its failure lines kept
  // for the summary (CI shows only the end of the log).
  let cFailures = []
  const cOk = await step('C core tests (ASan/UBSan, then valgrind)', () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'test.js'), '--c'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, SLUICE_VALGRIND: '1', SLUICE_REQUIRE_C_TESTS: '1' }
    })
    process.stdout.write(r.stdout || '')
    process.stderr.write(r.stderr || '')
    cFailures = `${r.stdout || ''}\n${r.stderr || ''}`
      .split('\n')
      .filter((l) =>
        /CHECK(_EQ)? failed|failed under valgrind|C core tests: .* [1-9]\d* failed|ERROR: \w+Sanitizer|runtime error|==\d+== \w/.test(
          l
        )
      )
    return r.status === 0
  })

  const tsanOk = await step('C core threaded tests under ThreadSanitizer', tsanCTests)

  const buildOk = await step('build the addon with -fsanitize=address,undefined', () => {
    const tree = path.join(work, 'tree')
    fs.mkdirSync(path.join(tree, 'scripts'), { recursive: true })
    fs.cpSync(path.join(root, 'binding.gyp'), path.join(tree, 'binding.gyp'))
    fs.cpSync(path.join(root, 'src'), path.join(tree, 'src'), { recursive: true })
    fs.cpSync(path.join(root, 'scripts', 'install.js'), path.join(tree, 'scripts', 'install.js'))
    // The build users get (scripts/install.js finds node-gyp and the headers);
    // binding.gyp reads SLUICE_SANITIZE.
    const r = spawnSync(process.execPath, [path.join(tree, 'scripts', 'install.js'), '--force'], {
      cwd: tree,
      stdio: 'inherit',
      env: { ...process.env, SLUICE_SANITIZE: '1' }
    })
    const file = path.join(tree, 'build', 'Release', 'sluice.node')
    if (r.status !== 0 || !fs.existsSync(file)) return false
    // Make sure the variable took: an uninstrumented build would pass vacuously.
    const nm = spawnSync('nm', ['-D', '--undefined-only', file], { encoding: 'utf8' })
    if (nm.status === 0 && !/__asan_/.test(nm.stdout)) {
      console.error('sanitize: the build is not instrumented (no __asan_ symbols)')
      return false
    }
    addon = file
    return true
  })

  const asan = sanitizerRuntime('libasan.so')
  const env = {
    ...process.env,
    SLUICE_ADDON_PATH: addon,
    SLUICE_SANITIZE: '1',
    LD_PRELOAD: [asan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
    ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0',
    UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1'
  }
  const jsOk =
    buildOk &&
    (await step('JS suite against the sanitized addon', async () => {
      if (!asan) {
        console.error('sanitize: libasan.so not found (Debian: apt-get install gcc)')
        return false
      }
      found = await runCounting(process.execPath, [path.join(__dirname, 'test.js'), '--js'], {
        cwd: root,
        env
      })
      return found.code === 0 && found.reports === 0
    }))

  const stressOk =
    buildOk &&
    asan &&
    (await step('stress cases against the sanitized addon', async () => {
      stressFound = await runCounting(process.execPath, [path.join(__dirname, 'stress.js')], {
        cwd: root,
        env
      })
      return stressFound.code === 0 && stressFound.reports === 0
    }))

  console.log('\n## sanitize: summary')
  if (cFailures.length) {
    console.log('#   C core test failures (first lines):')
    for (const l of cFailures.slice(0, 20)) console.log(`#     ${l}`)
  }
  const lines = [...(found ? found.lines : []), ...(stressFound ? stressFound.lines : [])]
  if (lines.length) {
    console.log('#   sanitizer reports (first lines):')
    for (const l of lines.slice(0, 20)) console.log(`#     ${l.replace(/^#\s*/, '')}`)
  }
  for (const t of timings)
    console.log(`#   ${t.ok ? 'ok  ' : 'FAIL'} ${t.name}: ${t.s.toFixed(1)} s`)
  console.log(`#   sanitizer reports in the JS suite: ${found ? found.reports : 'not run'}`)
  console.log(
    `#   sanitizer reports in the stress cases: ${stressFound ? stressFound.reports : 'not run'}`
  )
  if (!process.env.SLUICE_KEEP_SANITIZE_BUILD) fs.rmSync(work, { recursive: true, force: true })
  else console.log(`#   sanitized build kept in ${work}`)
  process.exit(cOk && tsanOk && buildOk && jsOk && stressOk ? 0 : 1)
}

main()
