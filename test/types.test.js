'use strict'
// sluice's types as users get them: through the package, never by path.
//
// test/types/ holds one small project per way of importing sluice (its
// tsconfig.json says which): nodenext-esm, bundler, nodenext-cjs, node10 and
// js-checkjs. Their sources are the README's examples and a few lines each
// must refuse (// @ts-expect-error; an expected error that is not there fails
// too). The test copies test/types/ to a temporary folder whose
// node_modules/sluice is a link to this repository, so 'sluice/p-limit'
// resolves through package.json's exports map (or, under node10, its
// "types" and "typesVersions") exactly as in an app, and checks:
//
// - each project, strict, with TypeScript's API (the project's own files and
//   sluice's declaration files are checked; @types/node and TypeScript's lib
//   files are only read: checking them costs seconds and is not ours to do);
// - which of sluice's declaration files each 'sluice...' specifier resolved
//   to (a wrong condition would still type-check where the shapes agree);
// - the files marked shared below once more with 'sluice/p-limit' replaced
//   by 'p-limit' and 'sluice/generic-pool' by 'generic-pool': the same code
//   type-checks against the packages sluice replaces;
// - that each entry point declares the values it exports at run time;
// - @arethetypeswrong/cli on the packed tarball (what `attw --pack` checks;
//   packed here into the temporary folder rather than into the repository,
//   where another test may be packing too): no problem for any entry point
//   in any resolution mode. It needs no network. npm pack and attw (~2 s
//   of CPU) run beside the projects' checks (~3.5 s).
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const ts = require('typescript')

const root = path.join(__dirname, '..')
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-types-')))
after(async () => {
  await attw.catch(() => {})
  fs.rmSync(tmp, { recursive: true, force: true })
})

// Per project: the sources shared with p-limit or generic-pool (by file
// name; bundler and node10 compile the sources of nodenext-esm and
// nodenext-cjs), and where each specifier must resolve, from the repo root.
const esm = {
  sluice: 'types/index.d.mts',
  'sluice/p-limit': 'types/p-limit.d.mts',
  'sluice/generic-pool': 'types/generic-pool.d.mts',
  'sluice/pg-pool': 'types/pg-pool.d.mts'
}
const cjs = {
  sluice: 'types/index.d.cts',
  'sluice/p-limit': 'types/p-limit.d.cts',
  'sluice/generic-pool': 'types/generic-pool.d.cts',
  'sluice/pg-pool': 'types/pg-pool.d.cts'
}
const PROJECTS = {
  'nodenext-esm': { shared: ['p-limit.ts', 'generic-pool.ts'], resolves: esm },
  bundler: { shared: ['p-limit.ts', 'generic-pool.ts'], resolves: esm },
  'nodenext-cjs': { shared: ['generic-pool.cts'], resolves: cjs },
  node10: { shared: ['generic-pool.cts'], resolves: cjs },
  'js-checkjs': { shared: ['generic-pool.js'], resolves: cjs }
}
const SHARED = new Set(Object.values(PROJECTS).flatMap((p) => p.shared))
const ANCHOR = { 'sluice/p-limit': 'p-limit', 'sluice/generic-pool': 'generic-pool' }

// The packed tarball and attw, started now: they run while the projects are
// checked.
const attw = (async () => {
  // npm's own CLI when npm runs the tests, else `npm` from the PATH.
  const cli = process.env.npm_execpath
  const npm = cli && /npm-cli\.c?js$/.test(cli) ? [process.execPath, cli] : ['npm']
  const pack = await run(
    npm[0],
    [...npm.slice(1), 'pack', '--ignore-scripts', '--json', '--pack-destination', tmp],
    { cwd: root, shell: npm.length === 1 && process.platform === 'win32' }
  )
  if (pack.status !== 0) return pack
  const tarball = path.join(tmp, JSON.parse(pack.stdout)[0].filename)
  const manifest = require.resolve('@arethetypeswrong/cli/package.json')
  const attwCli = path.join(path.dirname(manifest), require(manifest).bin.attw)
  return run(process.execPath, [attwCli, tarball, '--format', 'ascii'], {
    env: { ...process.env, NO_COLOR: '1' }
  })
})()

function run(cmd, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

// The two copies of test/types/ and the packages they resolve.
function copy(to, rewrite) {
  fs.cpSync(path.join(__dirname, 'types'), to, {
    recursive: true,
    filter: (src) => !src.includes(`${path.sep}node_modules`)
  })
  if (!rewrite) return
  for (const dir of fs.readdirSync(to)) {
    for (const name of SHARED) {
      const file = path.join(to, dir, name)
      if (!fs.existsSync(file)) continue
      const text = fs.readFileSync(file, 'utf8')
      fs.writeFileSync(
        file,
        text.replace(/'(sluice\/[a-z-]+)'/g, (s, spec) => `'${ANCHOR[spec]}'`)
      )
    }
  }
}
copy(path.join(tmp, 'sluice'), false)
copy(path.join(tmp, 'anchors'), true)
fs.mkdirSync(path.join(tmp, 'node_modules'))
for (const [name, target] of [
  ['sluice', root],
  ['@types', path.join(root, 'node_modules', '@types')],
  ['p-limit', path.join(root, 'node_modules', 'p-limit')],
  ['generic-pool', path.join(root, 'node_modules', 'generic-pool')]
]) {
  fs.symlinkSync(target, path.join(tmp, 'node_modules', name), 'junction')
}

// Declaration files parsed once for all the programs (lib files, @types/node).
const parsed = new Map()
function createHost(options) {
  const host = ts.createCompilerHost(options)
  // As tsc: JSDoc is parsed in JavaScript only (in TypeScript it types nothing).
  host.jsDocParsingMode = ts.JSDocParsingMode.ParseForTypeErrors
  const getSourceFile = host.getSourceFile
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    if (!/\.d\.[cm]?ts$/.test(fileName) || !fileName.includes('node_modules')) {
      return getSourceFile.call(host, fileName, languageVersion, ...rest)
    }
    const v = typeof languageVersion === 'object' ? languageVersion : { languageVersion }
    const key = `${fileName}|${v.languageVersion}|${v.impliedNodeFormat}|${v.jsDocParsingMode}`
    if (!parsed.has(key))
      parsed.set(key, getSourceFile.call(host, fileName, languageVersion, ...rest))
    return parsed.get(key)
  }
  return host
}

const rel = (file) => {
  for (const [dir, as] of [
    [path.join(tmp, 'sluice'), 'test/types'],
    [path.join(tmp, 'anchors'), 'test/types (against p-limit and generic-pool)'],
    [root, '.']
  ]) {
    if (file.startsWith(dir + '/') || file.startsWith(dir + path.sep)) {
      return as + '/' + path.relative(dir, file).split(path.sep).join('/')
    }
  }
  return file
}

function format(diagnostics) {
  return diagnostics
    .map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n  ')
      if (!d.file) return `error TS${d.code}: ${text}`
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start)
      return `${rel(d.file.fileName)}(${line + 1},${character + 1}): error TS${d.code}: ${text}`
    })
    .join('\n')
}

// Compiles one project; returns its errors and where 'sluice...' resolved.
function check(base, project, only) {
  const configFile = path.join(base, project, 'tsconfig.json')
  const config = ts.getParsedCommandLineOfConfigFile(
    configFile,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(format([d]))
    }
  )
  const rootNames = config.fileNames.filter(
    (f) => f.endsWith('.d.ts') || !only || only.has(path.basename(f))
  )
  const program = ts.createProgram({
    rootNames,
    options: config.options,
    host: createHost(config.options),
    configFileParsingDiagnostics: ts.getConfigFileParsingDiagnostics(config)
  })
  const ours = (f) =>
    f.startsWith(base + path.sep) ||
    (f.startsWith(root + path.sep) && !f.includes(`${path.sep}node_modules${path.sep}`))
  const diagnostics = [
    ...program.getConfigFileParsingDiagnostics(),
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics()
  ]
  const checker = program.getTypeChecker()
  const resolved = {}
  const surface = {}
  for (const file of program.getSourceFiles()) {
    if (!ours(file.fileName)) continue
    diagnostics.push(
      ...program.getSyntacticDiagnostics(file),
      ...program.getSemanticDiagnostics(file)
    )
    if (!file.fileName.startsWith(base + path.sep)) continue
    for (const spec of specifiers(file)) {
      if (spec.text !== 'sluice' && !spec.text.startsWith('sluice/')) continue
      const module = checker.getSymbolAtLocation(spec)
      const to = module && module.declarations && module.declarations[0].getSourceFile().fileName
      const where = to ? path.relative(root, to).split(path.sep).join('/') : '(unresolved)'
      ;(resolved[spec.text] ??= new Set()).add(where)
      if (module) surface[spec.text] = values(checker, module)
    }
  }
  return { errors: format(diagnostics), resolved, surface, files: rootNames.length }
}

// The names of a module's exports that are values (not only types). A class
// exported with `export =` (sluice/pg-pool) lists its `prototype`, which is
// no export.
function values(checker, module) {
  return checker
    .getExportsOfModule(module)
    .filter((s) => s.name !== 'prototype')
    .filter((s) => {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s
      return target.flags & ts.SymbolFlags.Value
    })
    .map((s) => s.name)
    .sort()
}

// The module specifiers of a file: import/export ... from, import = require,
// and require() in JavaScript.
function specifiers(file) {
  const out = []
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      out.push(node.moduleSpecifier)
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference)
    ) {
      out.push(node.moduleReference.expression)
    } else if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'require' &&
      node.arguments.length === 1 &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      out.push(node.arguments[0])
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return out.filter(ts.isStringLiteral)
}

const results = {}
for (const [project, { shared, resolves }] of Object.entries(PROJECTS)) {
  test(`types/${project}: the README's examples type-check through the package`, (t) => {
    const result = check(path.join(tmp, 'sluice'), project)
    results[project] = result
    assert.ok(result.files >= 4, `${project}: only ${result.files} files`)
    assert.ok(result.errors === '', `tsc errors in ${project}:\n${result.errors}`)
    const got = {}
    for (const [spec, set] of Object.entries(result.resolved)) {
      got[spec] = [...set].join(' and ')
      t.diagnostic(`${spec} -> ${got[spec]}`)
    }
    assert.deepEqual(got, resolves)
  })
  test(`types/${project}: ${shared.join(', ')} type-check against p-limit/generic-pool too`, () => {
    const { errors, resolved, files } = check(path.join(tmp, 'anchors'), project, new Set(shared))
    assert.equal(files, shared.length + 1)
    assert.ok(errors === '', `tsc errors in ${project} (against the anchors):\n${errors}`)
    assert.deepEqual(resolved, {})
  })
}

// The values each entry point declares are the ones it exports at run time
// (under import: the module namespace; under require: module.exports' own
// keys, which for sluice/p-limit are the function's).
test('types: each entry point declares the values it exports at run time', async () => {
  for (const [project, load] of [
    ['nodenext-esm', async (spec) => Object.keys(await import(spec))],
    ['nodenext-cjs', async (spec) => Object.keys(require(spec))]
  ]) {
    const { surface } = (results[project] ??= check(path.join(tmp, 'sluice'), project))
    assert.deepEqual(Object.keys(surface).sort(), Object.keys(esm).sort())
    for (const [spec, declared] of Object.entries(surface)) {
      assert.deepEqual(declared, (await load(spec)).sort(), `${spec} in ${project}`)
    }
  }
})

test('attw: no problem in any entry point under node10, node16 (CJS and ESM) and bundler', async () => {
  const r = await attw
  assert.ok(r.status === 0, `exit ${r.status}\n${r.stdout}${r.stderr}`)
  assert.match(r.stdout, /No problems found/, r.stdout)
})
