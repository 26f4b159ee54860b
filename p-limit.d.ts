// Types for `sluice/p-limit`: the same surface as p-limit 7.3.

export type LimitFunction = {
  /** The number of promises that are currently running. */
  readonly activeCount: number

  /** The number of promises that are waiting to run (i.e. their internal `fn` was not called yet). */
  readonly pendingCount: number

  /** Get or set the concurrency limit. */
  concurrency: number

  /**
	Discard pending promises that are waiting to run.

	This might be useful if you want to teardown the queue at the end of your program's lifecycle or discard any function calls referencing an intermediary state of your app.

	Note: This does not cancel promises that are already running. When `rejectOnClear` is enabled, pending promises are rejected with an `AbortError`.
	*/
  clearQueue: () => void

  /**
	Process an iterable of inputs with limited concurrency.

	The mapper function receives the item value and its index.

	@returns A promise equivalent to `Promise.all(Array.from(iterable, (item, index) => limit(mapperFunction, item, index)))`.
	*/
  map: <Input, ReturnType>(
    iterable: Iterable<Input>,
    mapperFunction: (input: Input, index: number) => PromiseLike<ReturnType> | ReturnType
  ) => Promise<ReturnType[]>

  /**
	@param fn - Promise-returning/async function.
	@param arguments - Any arguments to pass through to `fn`. Support for passing arguments on to the `fn` is provided in order to be able to avoid creating unnecessary closures.
	@returns The promise returned by calling `fn(...arguments)`.
	*/
  <Arguments extends unknown[], ReturnType>(
    function_: (...arguments_: Arguments) => PromiseLike<ReturnType> | ReturnType,
    ...arguments_: Arguments
  ): Promise<ReturnType>
}

export type Options = {
  /**
	Concurrency limit. Minimum: `1`.
	*/
  readonly concurrency?: number

  /**
	Reject pending promises with an `AbortError` when `clearQueue()` is called.

	@default false
	*/
  readonly rejectOnClear?: boolean

  /**
	sluice's addition: share this limit with every worker thread of the process that opens the same name. The first opener sets `concurrency`; later openers pass the same number or none.
	*/
  readonly name?: string
}

/**
Run multiple promise-returning & async functions with limited concurrency.

@param concurrency - Concurrency limit. Minimum: `1`. You can pass a number or an options object.
@returns A `limit` function.
*/
export default function pLimit(concurrency: number | Options): LimitFunction

/**
Returns a function with limited concurrency.

The returned function manages its own concurrent executions, allowing you to call it multiple times without exceeding the specified concurrency limit.

Ideal for scenarios where you need to control the number of simultaneous executions of a single function, rather than managing concurrency across multiple functions.

@param fn - Promise-returning/async function.
@returns Function with limited concurrency.
*/
export function limitFunction<Arguments extends unknown[], ReturnType>(
  function_: (...arguments_: Arguments) => PromiseLike<ReturnType>,
  options: number | Options
): ((...arguments_: Arguments) => Promise<ReturnType>) & { clearQueue: () => void }
