/**
 * Long runs of synchronous file-system calls starve the event loop, and with
 * it signal handling. A pacer hands control back now and then.
 *
 * @module
 */

/**
 * Returns a function to call between units of work: every `sliceMs` of work it
 * lets pending events (a SIGINT, a timer) run before the work goes on.
 *
 * @example
 * ```ts
 * import { pacer } from "./pace.ts";
 * const pace = pacer(20);
 * for (let i = 0; i < 1000; i++) await pace();
 * ```
 */
export function pacer(sliceMs = 20): () => Promise<void> | void {
  let sliceStart = performance.now();
  return () => {
    if (performance.now() - sliceStart < sliceMs) return;
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        sliceStart = performance.now();
        resolve();
      }, 0)
    );
  };
}
