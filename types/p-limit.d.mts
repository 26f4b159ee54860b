// Types for `import ... from 'sluice/p-limit'` (lib/p-limit.mjs): the
// default export and `limitFunction`, declared in p-limit.d.cts.
import pLimit from './p-limit.cjs'

export default pLimit
export {
  limitFunction,
  type AttachOptions,
  type LimitFunction,
  type Options,
  type RedisOptions,
  type RedisLimitFunction
} from './p-limit.cjs'
