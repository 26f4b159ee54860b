'use strict'
// Builds the addon unless a prebuild for this platform loads.
//
// node-gyp downloads Node's headers unless it is told where they are. A Node
// installed from a distribution package (or a machine with no route to the
// download) has its own headers beside the binary, in <prefix>/include/node;
// when no nodedir is configured we point node-gyp there.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const force = process.argv.includes('--force')

if (!force && !process.env.SLUICE_BUILD_FROM_SOURCE) {
  try {
    require('node-gyp-build').path(root)
    process.exit(0) // a prebuild (or an earlier build) is there and matches
  } catch {}
}

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
