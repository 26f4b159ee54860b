'use strict'
// sluice's install script (`npm install`), and `npm run build:addon` (--force).
//
// - From a git checkout (a .git beside package.json): build from source
//   whenever build/Release/sluice.node is missing or older than a file of src/
//   or binding.gyp, so a changed src/ is never tested with a stale binary.
// - From the package (npm install sluice): node-gyp-build's own rule (its bin
//   `node-gyp-build`): nothing to do when a build or a prebuild for this
//   platform loads, else `node-gyp rebuild`.
// - SLUICE_BUILD_FROM_SOURCE=1 or --force: always build.
//
// The one thing node-gyp-build lacks: node-gyp downloads Node's headers
// unless it is told where they are. A Node installed from a distribution
// package (or a machine with no route to the download) has its own headers
// beside the binary, in <prefix>/include/node; when no nodedir is configured
// we point node-gyp there.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const built = path.join(root, 'build', 'Release', 'sluice.node')

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    (() => {
      try {
        return require.resolve('node-gyp/bin/node-gyp.js')
      } catch {
        return null
      }
    })(),
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js'
    ),
    path.join(
      path.dirname(process.execPath),
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js'
    )
  ]
  for (const c of candidates) if (c && fs.existsSync(c)) return c
  return null
}

function localHeaders() {
  if (process.env.npm_config_nodedir) return null // the user chose; respect it
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  const inc = path.join(prefix, 'include', 'node')
  if (fs.existsSync(path.join(inc, 'node_api.h')) && fs.existsSync(path.join(inc, 'common.gypi')))
    return prefix
  return null
}

// The newest of binding.gyp and src/**, if it is newer than the build
// (or the reason to build when there is none).
function staleBecause() {
  let builtAt
  try {
    builtAt = fs.statSync(built).mtimeMs
  } catch {
    return 'no build/Release/sluice.node yet'
  }
  const files = [path.join(root, 'binding.gyp')]
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else files.push(p)
    }
  }
  walk(path.join(root, 'src'))
  const newer = files.find((f) => fs.statSync(f).mtimeMs > builtAt)
  return newer ? `${path.relative(root, newer)} is newer than build/Release/sluice.node` : null
}

function nodeGypRebuild() {
  const gyp = findNodeGyp()
  if (!gyp) {
    console.error(
      'sluice: cannot find node-gyp (npm ships it); install a C toolchain and node-gyp, or use a prebuild'
    )
    process.exit(1)
  }
  const args = [gyp, 'rebuild']
  const nodedir = localHeaders()
  if (nodedir) args.push(`--nodedir=${nodedir}`)
  if (process.env.SLUICE_DEBUG_BUILD) args.push('--debug')
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
  process.exit(r.status === null ? 1 : r.status)
}

const force = process.argv.includes('--force') || process.env.SLUICE_BUILD_FROM_SOURCE === '1'
const checkout = fs.existsSync(path.join(root, '.git'))

if (force) {
  nodeGypRebuild()
} else if (checkout) {
  const why = staleBecause()
  if (why) {
    console.log(`sluice: building from source (${why})`)
    nodeGypRebuild()
  }
} else {
  // node-gyp-build's installer (its bin, node-gyp-build): build only when its
  // test, node-gyp-build-test, cannot load a build or prebuild for this
  // platform. Run here rather than through the bin, which finds the test on
  // PATH and runs node-gyp without the local headers.
  const test = spawnSync(process.execPath, [require.resolve('node-gyp-build/build-test.js')], {
    cwd: root,
    stdio: process.env.npm_config_loglevel === 'verbose' ? 'inherit' : 'ignore'
  })
  if (test.status !== 0) nodeGypRebuild()
  console.log('sluice: a prebuild for this platform loads; nothing to build')
}
