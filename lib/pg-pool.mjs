// sluice/pg-pool for ES modules: `import Pool from 'sluice/pg-pool'`.
import Pool from './pg-pool.js'

export default Pool
