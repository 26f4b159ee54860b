// Types for `import ... from 'sluice/generic-pool'` (lib/generic-pool.mjs):
// the named exports of generic-pool.d.cts, and the whole module as the
// default export (as `import genericPool from 'generic-pool'` gives it).
import genericPool from './generic-pool.cjs'

export default genericPool
export * from './generic-pool.cjs'
