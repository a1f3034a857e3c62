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
      // core and grpc-js), which held the exit ~50 ms on a loaded host; 'exit' handlers run. Files
      // and TTYs are written synchronously, but a pipe whose reader is slow (`| less`, a CI
      // runner) keeps the rest queued in this process, which process.exit() would drop: exit
      // once an empty write queued behind everything has gone out.
      if (process.argv[2] === 'run') whenFlushed([process.stdout, process.stderr]).then(() => process.exit())
    },
    (error: unknown) => {
      if (error instanceof VmctlError || (error as { exitCode?: number }).exitCode === 2) {
        process.stderr.write(`vmctl: ${(error as Error).message}\n`)
      } else process.stderr.write(`vmctl: ${(error as Error).stack ?? error}\n`)
      process.exitCode = exitCodeFor(error)
    },
  )
}

/** Resolves once everything written to `streams` so far has reached their descriptors (or failed). */
function whenFlushed(streams: NodeJS.WriteStream[]): Promise<unknown> {
  return Promise.all(
    streams.map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))),
  )
}
