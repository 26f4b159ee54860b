import pLimit from './p-limit.js'

export const limitFunction = pLimit.limitFunction
export default pLimit
