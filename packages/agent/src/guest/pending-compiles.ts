import { setFlagsFromString } from 'node:v8'

/**
 * Finishes the optimizing compiles V8 has in flight and installs their code, at once: the agent
 * calls it as the host parks it (mux-session.ts, 'parking'), just before a template or snapshot
 * is saved.
 *
 * Why: V8 optimizes a hot function on a background thread, and installs the result on the main
 * thread the next time JavaScript runs there. The template warm-up makes functions hot; a parked
 * agent runs no JavaScript; so a template was saved with a compile finished or half done and not
 * installed, and every VM restored from it did the rest first (V8's trace in a restored VM:
 * `completed compiling wrappedFn (target TURBOFAN)`), with the compiler's code translated again by
 * QEMU under TCG, on a vCPU the refresh and the agent's wake-up needed (docs/first-command.md).
 *
 * JavaScript has no call for it; V8's own intrinsic `%FinalizeOptimization()` (which waits for the
 * background jobs and installs them) is compiled and called at each park, with natives syntax
 * allowed for that moment only (a function compiled once and kept could have its bytecode flushed
 * by V8 in the hours a VM runs before a snapshot, and be compiled again without the flag: a
 * SyntaxError, and no finishing). A V8 without it (a
 * future Node) gets a no-op: the clone finishes the work, as it did before.
 */
export function finishPendingCompiles(): void {
  try {
    withNativesSyntax(() => (new Function('%FinalizeOptimization()') as () => void)())
  } catch {} // only a shortcut: the park goes on
}

/** False on a V8 without the intrinsic: finishPendingCompiles() does nothing there. */
export const canFinishPendingCompiles = (() => {
  try {
    withNativesSyntax(() => new Function('%FinalizeOptimization()'))
    return true
  } catch {
    return false
  }
})()

/** Runs `work` (its compile and its call) with V8's natives syntax allowed, and only it. */
function withNativesSyntax<T>(work: () => T): T {
  setFlagsFromString('--allow-natives-syntax')
  try {
    return work()
  } finally {
    setFlagsFromString('--no-allow-natives-syntax')
  }
}
