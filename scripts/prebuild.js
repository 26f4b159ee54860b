'use strict'
// `npm run prebuild`: the addon for every platform this machine can build
// for, in the layout that node-gyp-build loads at run time (prebuildify's),
// so that `npm install sluice` needs no compiler. No node-gyp: each compiler
// runs straight on binding.gyp's sources. (npm would run a script of this
// name before a script named `build`: the package has none, building the
// addon alone is `npm run build:addon`.)
//
//   prebuilds/linux-x64/node.napi.glibc.node    gcc                     glibc >= 2.28
//   prebuilds/linux-arm64/node.napi.glibc.node  aarch64-linux-gnu-gcc   glibc >= 2.28
//   prebuilds/linux-x64/node.napi.musl.node     musl-gcc                Alpine
//   prebuilds/win32-x64/node.napi.node          x86_64-w64-mingw32-gcc  imports from node.exe
//
// The names are the tags node-gyp-build 4.8 reads (and `prebuildify --napi
// --tag-libc` writes, so the native builds of .github/workflows/prebuild.yml
// replace these files instead of sitting beside them): `node` + `napi` is
// Node-API, loaded by every Node version (and Electron); a libc tag must equal
// the running one (glibc, unless /etc/alpine-release exists or LIBC=musl), so
// the glibc file is never picked on Alpine nor the musl one on glibc.
//
// A check-only target, `clang`, compiles the linux-x64 build with clang into a
// temporary directory: the C must be warning-free with gcc, clang and mingw.
//
// Each file is stripped, under 200 KB, and reproducible (the same bytes from
// the same sources: objects are built from relative paths, no timestamps).
// Checked here: the glibc builds need no symbol version above GLIBC_2.28
// (objdump -T), the musl one needs only libc.musl-x86_64.so.1, the win32 one
// imports only from node.exe and system DLLs, and each exports only its
// Node-API init symbols.
//
// A missing toolchain is apt-get installed when this runs as root on a
// machine with apt-get (SLUICE_NO_APT=1 to never); otherwise the target is
// skipped, loudly, and with SLUICE_PREBUILD_REQUIRE_ALL=1 (CI sets it) that
// fails the run.
//
//   node scripts/prebuild.js                    every target
//   node scripts/prebuild.js linux-x64 win32-x64
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { root, ensure, nodeHeaders } = require('./tools.js')

const MAX_BYTES = 200 * 1024
const GLIBC_FLOOR = [2, 28]
const EXPORTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1']
const requireAll = process.env.SLUICE_PREBUILD_REQUIRE_ALL === '1'

const TARGETS = {
  'linux-x64': {
    dir: 'linux-x64',
    file: 'node.napi.glibc.node',
    format: 'elf',
    libc: 'glibc',
    cc: 'gcc',
    binutils: '',
    apt: ['gcc', 'binutils']
  },
  'linux-arm64': {
    dir: 'linux-arm64',
    file: 'node.napi.glibc.node',
    format: 'elf',
    libc: 'glibc',
    cc: 'aarch64-linux-gnu-gcc',
    binutils: 'aarch64-linux-gnu-',
    apt: ['gcc-aarch64-linux-gnu', 'binutils-aarch64-linux-gnu']
  },
  'linux-x64-musl': {
    dir: 'linux-x64',
    file: 'node.napi.musl.node',
    format: 'elf',
    libc: 'musl',
    cc: 'musl-gcc',
    binutils: '',
    apt: ['musl-tools', 'binutils']
  },
  'win32-x64': {
    dir: 'win32-x64',
    file: 'node.napi.node',
    format: 'pe',
    cc: 'x86_64-w64-mingw32-gcc',
    binutils: 'x86_64-w64-mingw32-',
    apt: ['gcc-mingw-w64-x86-64', 'binutils-mingw-w64-x86-64']
  },
  clang: {
    checkOnly: true,
    format: 'elf',
    libc: 'glibc',
    cc: 'clang',
    binutils: '',
    apt: ['clang', 'binutils']
  }
}

// The sources: binding.gyp's list, so the two builds cannot drift apart.
function sources() {
  const gyp = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')
  const m = /"sources"\s*:\s*(\[[^\]]*\])/.exec(gyp)
  if (!m) throw new Error('binding.gyp: no "sources" list')
  return JSON.parse(m[1])
}

// Runs a command; resolves with { status, out } (stdout and stderr together).
function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, ...opts })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.once('error', (err) => resolve({ status: -1, out: String(err) }))
    child.once('close', (code) => resolve({ status: code === null ? 1 : code, out }))
  })
}

// At most `n` of the thunks at once.
async function pool(thunks, n) {
  const results = new Array(thunks.length)
  let next = 0
  const worker = async () => {
    while (next < thunks.length) {
      const i = next++
      results[i] = await thunks[i]()
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, thunks.length) }, worker))
  return results
}

// Highest GLIBC_x.y[.z] among the symbol versions objdump -T lists.
function glibcMax(text) {
  let max = null
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)(?:\.(\d+))?/g)) {
    const v = [Number(m[1]), Number(m[2]), Number(m[3] || 0)]
    if (
      !max ||
      v[0] > max[0] ||
      (v[0] === max[0] && (v[1] > max[1] || (v[1] === max[1] && v[2] > max[2])))
    )
      max = v
  }
  return max
}
const below = (v, floor) => v[0] < floor[0] || (v[0] === floor[0] && v[1] <= floor[1])

// The checks on a finished build; returns a list of problems and the facts.
function inspect(t, file) {
  const problems = []
  const facts = { bytes: fs.statSync(file).size }
  if (facts.bytes >= MAX_BYTES) problems.push(`${facts.bytes} bytes, over ${MAX_BYTES}`)
  const tool = (name, args) => {
    const r = spawnSync(t.binutils + name, args, { encoding: 'utf8' })
    if (r.status !== 0) problems.push(`${t.binutils}${name} ${args.join(' ')} failed: ${r.stderr}`)
    return r.stdout || ''
  }
  if (t.format === 'elf') {
    const dyn = tool('objdump', ['-T', file])
    const defined = dyn
      .split('\n')
      .filter((l) => /^[0-9a-f]+ g/.test(l) && !l.includes('*UND*'))
      .map((l) => l.trim().split(/\s+/).pop())
      .sort()
    if (defined.join() !== EXPORTS.slice().sort().join())
      problems.push(`exports ${defined.join(', ')}; expected only ${EXPORTS.join(', ')}`)
    const needed = [
      ...spawnSync('readelf', ['-d', file], { encoding: 'utf8' }).stdout.matchAll(
        /\(NEEDED\).*\[(.*)\]/g
      )
    ].map((m) => m[1])
    facts.needed = needed
    const max = glibcMax(dyn)
    if (t.libc === 'glibc') {
      facts.glibc = max ? max.slice(0, max[2] ? 3 : 2).join('.') : 'none'
      if (max && !below(max, GLIBC_FLOOR))
        problems.push(`needs GLIBC_${facts.glibc}, above the ${GLIBC_FLOOR.join('.')} floor`)
      const extra = needed.filter((n) => !['libc.so.6', 'libm.so.6'].includes(n))
      if (extra.length) problems.push(`needs ${extra.join(', ')}`)
    } else {
      if (max) problems.push(`has glibc symbol versions (GLIBC_${max.join('.')})`)
      if (needed.join() !== 'libc.musl-x86_64.so.1')
        problems.push(
          `needs ${needed.join(', ') || 'nothing'}; expected only libc.musl-x86_64.so.1`
        )
    }
  } else {
    const p = tool('objdump', ['-p', file])
    const dlls = [...p.matchAll(/DLL Name: (\S+)/g)].map((m) => m[1])
    facts.dlls = dlls
    const system = /^(node\.exe|kernel32\.dll|msvcrt\.dll|api-ms-win-crt-[a-z0-9-]+\.dll)$/i
    const bad = dlls.filter((d) => !system.test(d))
    if (bad.length) problems.push(`imports from ${bad.join(', ')}`)
    if (!dlls.includes('node.exe')) problems.push('imports nothing from node.exe')
    const table = /\[Ordinal\/Name Pointer\] Table[^\n]*\n([\s\S]*?)\n\s*\n/.exec(p)
    const exported = table ? [...table[1].matchAll(/\]\s+(\S+)\s*$/gm)].map((m) => m[1]).sort() : []
    if (exported.join() !== EXPORTS.slice().sort().join())
      problems.push(
        `exports ${exported.join(', ') || 'nothing'}; expected only ${EXPORTS.join(', ')}`
      )
  }
  return { problems, facts }
}

// musl's libc.so: in a -L directory of the wrapper's link line (musl-gcc's
// specs add it; -print-file-name would answer with glibc's).
function muslLibc(cc) {
  const r = spawnSync(cc, ['-###', '-shared', '-o', 'x.so', 'x.o'], { encoding: 'utf8' })
  const dirs = [...(r.stderr || '').matchAll(/['"]?-L([^\s'"]+)/g)].map((m) => m[1])
  for (const d of [
    ...dirs,
    '/usr/lib/x86_64-linux-musl',
    '/usr/lib/musl/lib',
    '/usr/local/musl/lib'
  ]) {
    const f = path.join(d, 'libc.so')
    if (d.includes('musl') && fs.existsSync(f)) return f
  }
  return null
}

async function build(name, t, headers, srcs) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-prebuild-${name}-`))
  try {
    const cflags = [
      '-std=gnu11',
      '-O2',
      // PE: position-independent anyway; windows.h without the parts uv.h
      // does not need (a third of the compile time).
      ...(t.format === 'elf' ? ['-fPIC'] : ['-DWIN32_LEAN_AND_MEAN']),
      '-fvisibility=hidden',
      '-DNAPI_VERSION=8',
      '-DNDEBUG',
      '-Wall',
      '-Wextra',
      '-Werror',
      `-ffile-prefix-map=${root}=.`,
      '-Isrc',
      `-I${headers}`
    ]
    // Objects from relative source paths (cwd is the repo), in a fixed order.
    const objs = srcs.map((s, i) => path.join(tmp, `${i}-${path.basename(s, '.c')}.o`))
    const compiled = await pool(
      srcs.map((s, i) => () => run(t.cc, [...cflags, '-c', s, '-o', objs[i]])),
      Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length)
    )
    const failed = compiled
      .map((r, i) => ({ ...r, src: srcs[i] }))
      .filter((r) => r.status !== 0 || r.out.trim())
    if (failed.length)
      return { error: 'compile: ' + failed.map((r) => `${r.src}:\n${r.out.trim()}`).join('\n') }

    const out = path.join(tmp, 'sluice.node')
    // ELF: export the init symbols only. -fvisibility=hidden covers our code;
    // musl's crti.o has global _init/_fini, which this keeps local too.
    const exportsOnly = path.join(tmp, 'exports.map')
    fs.writeFileSync(exportsOnly, `{\n  global: ${EXPORTS.join('; ')};\n  local: *;\n};\n`)
    const elfExports = `-Wl,--version-script=${exportsOnly}`
    let link
    if (t.format === 'pe') {
      // An import library for the Node-API and libuv functions the objects
      // call, all exported by node.exe: listed from the objects themselves,
      // sorted, so the library (and the DLL's import table) depends on the
      // sources only, not on a given node.exe. scripts/check-prebuilds.js
      // checks each of them against a real node.exe's exports.
      const nm = await run(t.binutils + 'nm', ['-u', ...objs])
      if (nm.status !== 0) return { error: `nm: ${nm.out}` }
      const syms = [...new Set(nm.out.split('\n').map((l) => l.trim().split(/\s+/).pop()))]
        .filter((s) => /^(napi_|node_api_|uv_)/.test(s))
        .sort()
      const def = path.join(tmp, 'node.def')
      fs.writeFileSync(def, `LIBRARY node.exe\nEXPORTS\n${syms.map((s) => `  ${s}\n`).join('')}`)
      const lib = path.join(tmp, 'libnode.a')
      const dt = await run(t.binutils + 'dlltool', ['-d', def, '-l', lib])
      if (dt.status !== 0) return { error: `dlltool: ${dt.out}` }
      // Stripped by the linker (-s): strip(1) would stamp the PE header with
      // the time, as the linker does without --no-insert-timestamp.
      link = await run(t.cc, [
        '-shared',
        '-s',
        '-o',
        out,
        ...objs,
        lib,
        '-Wl,--no-insert-timestamp',
        '-Wl,--disable-auto-image-base'
      ])
    } else if (t.libc === 'musl') {
      // Alpine's musl has the soname libc.musl-x86_64.so.1 (and its own
      // binaries need that name); Debian's musl-tools has none, so the link
      // would record `libc.so` (on glibc, a linker script: a confusing load
      // error). Link against the same library under Alpine's name.
      const libdir = path.join(tmp, 'musl')
      fs.mkdirSync(libdir)
      const libc = muslLibc(t.cc)
      if (!libc) return { error: `${t.cc}: cannot find musl's libc.so in its library path` }
      fs.symlinkSync(libc, path.join(libdir, 'libc.musl-x86_64.so.1'))
      link = await run(t.cc, [
        '-shared',
        '-o',
        out,
        ...objs,
        '-nodefaultlibs',
        `-L${libdir}`,
        '-l:libc.musl-x86_64.so.1',
        '-lgcc',
        elfExports
      ])
    } else {
      // -lm: ceil() is in glibc's libm (node links it too).
      link = await run(t.cc, ['-shared', '-o', out, ...objs, '-lm', elfExports])
    }
    if (link.status !== 0 || link.out.trim()) return { error: `link: ${link.out}` }
    if (t.format === 'elf') {
      const strip = await run(t.binutils + 'strip', ['--strip-all', out])
      if (strip.status !== 0) return { error: `strip: ${strip.out}` }
    }
    const { problems, facts } = inspect(t, out)
    if (problems.length) return { error: problems.join('; '), facts }
    if (!t.checkOnly) {
      const dest = path.join(root, 'prebuilds', t.dir, t.file)
      fs.mkdirSync(path.dirname(dest), { recursive: true })
      fs.copyFileSync(out, dest + '.tmp')
      fs.renameSync(dest + '.tmp', dest)
      facts.file = path.relative(root, dest)
    }
    facts.sha256 = require('node:crypto')
      .createHash('sha256')
      .update(fs.readFileSync(out))
      .digest('hex')
    return { facts }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

async function main() {
  const t0 = Date.now()
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'))
  for (const a of asked) {
    if (!TARGETS[a]) {
      console.error(`prebuild: unknown target ${a} (targets: ${Object.keys(TARGETS).join(', ')})`)
      process.exit(2)
    }
  }
  const names = asked.length ? asked : Object.keys(TARGETS)
  const headers = nodeHeaders()
  if (!headers) {
    console.error(
      "prebuild: Node headers (node_api.h, uv.h) not found beside this node, in npm_config_nodedir or in node-gyp's cache"
    )
    process.exit(1)
  }
  const srcs = sources()
  console.log(`# prebuild: ${srcs.length} sources, Node headers ${headers}`)

  const rows = []
  let failed = 0
  let skipped = 0
  for (const name of names) {
    const t = TARGETS[name]
    const missing = ensure(
      [
        { cmd: t.cc, apt: t.apt[0] },
        { cmd: t.binutils + 'objdump', apt: t.apt[1] },
        { cmd: t.binutils + 'strip', apt: t.apt[1] },
        ...(t.format === 'pe' ? [{ cmd: t.binutils + 'dlltool', apt: t.apt[1] }] : [])
      ],
      (m) => console.log(m)
    )
    if (missing.length) {
      skipped++
      const why = `${missing.map((m) => m.cmd).join(', ')} not found (Debian: apt-get install ${[...new Set(missing.map((m) => m.apt))].join(' ')})`
      console.error(`\n*** prebuild ${name}: SKIPPED: ${why} ***\n`)
      rows.push(`#   SKIP ${name}: ${why}`)
      continue
    }
    const t1 = Date.now()
    const r = await build(name, t, headers, srcs)
    const secs = ((Date.now() - t1) / 1000).toFixed(1)
    if (r.error) {
      failed++
      console.error(`\n*** prebuild ${name}: FAILED: ${r.error} ***\n`)
      rows.push(`#   FAIL ${name}: ${r.error.split('\n')[0]}`)
      continue
    }
    const f = r.facts
    const what = [
      f.file || 'check only (not shipped)',
      `${(f.bytes / 1024).toFixed(1)} KB`,
      f.glibc && `GLIBC_${f.glibc} at most`,
      f.needed && `needs ${f.needed.join(' ')}`,
      f.dlls && `imports ${f.dlls.join(' ')}`,
      `sha256 ${f.sha256.slice(0, 16)}`,
      `${secs} s`
    ]
      .filter(Boolean)
      .join(', ')
    rows.push(`#   ok   ${name}: ${what}`)
  }
  console.log('# prebuild: summary')
  for (const r of rows) console.log(r)
  console.log(
    `prebuild: ${names.length - failed - skipped} built, ${failed} failed, ${skipped} skipped (${((Date.now() - t0) / 1000).toFixed(1)} s)`
  )
  if (failed || (skipped && requireAll)) {
    if (skipped && requireAll)
      console.error('prebuild: SLUICE_PREBUILD_REQUIRE_ALL=1: every target must build')
    process.exit(1)
  }
}

main()
