// What the README's examples use without defining it, declared here for
// every fixture (the examples are type-checked, never run).
interface Conn {
  query(sql: string): Promise<unknown>
  close(): Promise<void>
}
declare const urls: string[]
declare const url: string
declare const signal: AbortSignal
declare function fetchJson(url: string): Promise<unknown>
declare function connect(): Promise<Conn>
declare function work(): Promise<number>
