import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { canFinishPendingCompiles, finishPendingCompiles } from './pending-compiles.js'

describe("finishing V8's optimizing compiles before a park", () => {
  test("this Node's V8 has the intrinsic, so a template is saved with them installed (none pending)", () => {
    // Node 20, 22 and 24 all have %FinalizeOptimization; a Node without it would leave the work to
    // every restored VM again: this test says so first.
    expect(canFinishPendingCompiles).toBe(true)
    expect(() => finishPendingCompiles()).not.toThrow()
  })

  test('a compile finished on a background thread and not installed is installed by it', () => {
    // In a child with V8's test intrinsics: a function compiled by TurboFan on a background thread,
    // its code held back from the main thread (as in a parked agent, which runs no JavaScript),
    // then installed by finishPendingCompiles.
    const built = fileURLToPath(new URL('../../dist/guest/pending-compiles.js', import.meta.url))
    const script = `const { finishPendingCompiles } = await import(${JSON.stringify(built)})
function hot(x) { return x * 2 + 1 };
%DisableOptimizationFinalization();
%PrepareFunctionForOptimization(hot);
hot(1); hot(2);
%OptimizeFunctionOnNextCall(hot, 'concurrent');
hot(3);
%WaitForBackgroundOptimization();
for (let i = 0; i < 1000; i++) hot(i);
const before = %GetOptimizationStatus(hot)
finishPendingCompiles()
const after = %GetOptimizationStatus(hot)
process.stdout.write(JSON.stringify({ before, after }))`
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    )
    const { before, after } = JSON.parse(out) as { before: number; after: number }
    const TURBOFANNED = 1 << 4 // V8's OptimizationStatus::kTurboFanned
    expect(before & TURBOFANNED).toBe(0)
    expect(after & TURBOFANNED).toBe(TURBOFANNED)
  })
})
