// Types for `import { ... } from 'sluice'` (lib/index.mjs: named exports
// only), declared in index.d.cts.
export * from './index.cjs'
