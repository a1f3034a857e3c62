// What `vmctl` runs (main.ts imports it once the compile cache is on, and calls main); `pnpm build` bundles it
// and everything it imports into one file, dist/cli-main.js (scripts/bundle-cli.mjs).
import type { ChildProcess } from 'node:child_process'
import { offerEarlySupervisor, VmctlError } from '@vmctl/core'
import { exitCodeFor } from './exit-code.js'
import { runCli } from './run-cli.js'

// Marks for scripts/bench-cli.mjs (a preload reads them at exit); a mark costs microseconds.
performance.mark('vmctl:loaded')

/** Runs the command in argv; `earlySupervisor`: the one main.ts started, for the command's VM.up(). */
export function main(earlySupervisor?: ChildProcess): void {
  if (earlySupervisor) offerEarlySupervisor(earlySupervisor)
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
      // `vmctl run` is done once its VM's supervisor has taken over the teardown (run-command.ts):
      // process.exit() skips Node's own teardown of this process (its environment, its heap with
      // core and grpc-js), which held the exit ~50 ms on a loaded host. Output is not lost: stdout
      // and stderr are written synchronously on Linux (files, pipes, TTYs); 'exit' handlers run.
      if (process.argv[2] === 'run') process.exit()
    },
    (error: unknown) => {
      if (error instanceof VmctlError || (error as { exitCode?: number }).exitCode === 2) {
        process.stderr.write(`vmctl: ${(error as Error).message}\n`)
      } else process.stderr.write(`vmctl: ${(error as Error).stack ?? error}\n`)
      process.exitCode = exitCodeFor(error)
    },
  )
}
