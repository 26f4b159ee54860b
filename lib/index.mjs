import sluice from './index.js'

export const {
  pLimit,
  limitFunction,
  Semaphore,
  TimeoutError,
  createPool,
  Pool,
  RedisUnreachableError
} = sluice
