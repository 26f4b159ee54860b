'use strict'
// Loads the addon (a prebuild, or build/Release) and wires the per-env state.
const fs = require('node:fs')
const path = require('node:path')
const { TimeoutError } = require('./errors.js')

const root = path.join(__dirname, '..')
const INSTALL_DOCS = 'https://github.com/sluice-js/sluice#install'

// What node-gyp-build matches prebuilds against (its own rules: LIBC, or
// musl when /etc/alpine-release exists), for the error below.
function target() {
  const platform = process.env.npm_config_platform || process.platform
  const arch = process.env.npm_config_arch || process.arch
  if (platform !== 'linux') return `${platform}-${arch}`
  const libc = process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc')
  return `${platform}-${arch} (${libc})`
}

// The prebuilds this copy of the package has: ['linux-x64 (glibc, musl)', ...].
function shipped() {
  const dir = path.join(root, 'prebuilds')
  let tuples = []
  try {
    tuples = fs.readdirSync(dir).sort()
  } catch {}
  return tuples.map((t) => {
    let files = []
    try {
      files = fs.readdirSync(path.join(dir, t)).filter((f) => f.endsWith('.node'))
    } catch {}
    const libcs = files.flatMap((f) => f.split('.').filter((x) => x === 'glibc' || x === 'musl'))
    return libcs.length ? `${t} (${[...new Set(libcs)].join(', ')})` : t
  })
}

// One error that says what is missing and what to do: node-gyp-build's own
// ("No native build was found for platform=...") names neither.
function noBuild(cause, file) {
  const have = shipped()
  const lines = file
    ? [
        `sluice: the native addon ${path.relative(root, file)} does not load on ${target()}, Node ${process.version}:`,
        `  ${cause && cause.message}`
      ]
    : [
        `sluice: no native build of the addon for ${target()}, Node ${process.version}.`,
        have.length
          ? `This copy of sluice has prebuilds for ${have.join(', ')} (none for this platform), and nothing was built when it was installed.`
          : 'This copy of sluice has no prebuilds, and nothing was built when it was installed.'
      ]
  const glibc =
    process.platform === 'linux' && process.report && process.report.getReport
      ? process.report.getReport().header.glibcVersionRuntime
      : 'n/a'
  if (!glibc && !process.env.LIBC && !fs.existsSync('/etc/alpine-release'))
    lines.push('This looks like a musl system: LIBC=musl selects the musl prebuild.')
  if (glibc && glibc !== 'n/a' && process.env.LIBC === 'musl')
    lines.push(
      `LIBC=musl chose the musl prebuild, but this system runs glibc ${glibc}: unset LIBC to load the glibc one.`
    )
  lines.push(
    'To build it from source (needs a C compiler, make and Python, for node-gyp):',
    '  npm rebuild sluice',
    "With npm 12, which runs a dependency's install script only when the app allows it",
    "(allowScripts in the app's package.json), allow sluice's first:",
    '  npm install-scripts approve sluice && npm rebuild sluice',
    `See ${INSTALL_DOCS}`
  )
  const err = new Error(lines.join('\n'), { cause })
  err.code = 'ERR_SLUICE_NO_NATIVE_BUILD'
  return err
}

// SLUICE_ADDON_PATH, when set, names the .node file to load instead: the
// robustness checks point it at an ASan/UBSan build (scripts/sanitize.js),
// and scripts/check-prebuilds.js at a prebuild.
function load() {
  if (process.env.SLUICE_ADDON_PATH) {
    const file = path.resolve(process.env.SLUICE_ADDON_PATH)
    return { file, binding: require(file) }
  }
  let file
  try {
    file = require('node-gyp-build').path(root)
  } catch (err) {
    throw noBuild(err)
  }
  try {
    return { file, binding: require(file) }
  } catch (err) {
    throw noBuild(err, file)
  }
}
const { file, binding } = load()

/** Out-values of native calls (a waiter's cancel token), one per thread.
 * Giving the addon its own path lets it pin itself in memory, so named
 * gates outlive the workers that load and unload it. */
const scratch = binding.setup(TimeoutError, file)

// The protocol with the bindings (op codes, event codes, offsets, limits),
// exported by the addon from src/napi/protocol.h: written once, in C.
const { protocol } = binding

module.exports = { binding, scratch, protocol, OP: protocol.gateOps }
