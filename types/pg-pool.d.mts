// Types for `import Pool from 'sluice/pg-pool'` (lib/pg-pool.mjs): the class
// as the default export, declared in pg-pool.d.cts.
import Pool from './pg-pool.cjs'

export default Pool
export type ClientLike = Pool.ClientLike
export type PoolClient<C extends Pool.ClientLike = Pool.ClientLike> = Pool.PoolClient<C>
export type PoolOptions<C extends Pool.ClientLike = Pool.ClientLike> = Pool.PoolOptions<C>
export type Done = Pool.Done
