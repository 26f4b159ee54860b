import genericPool from './generic-pool.js'

export const { createPool, Pool, TimeoutError } = genericPool
export default genericPool
