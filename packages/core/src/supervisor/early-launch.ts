import { openSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { readEarlyQemuPlan } from './early-qemu.js'

/**
 * A supervisor started before its VM exists (`supervisor-main --await-launch`): `vmctl run` starts
 * one as its first act (packages/cli/src/early-supervisor.ts), so that Node's start-up and the
 * supervisor's loading (~0.1 s of CPU) run beside the CLI's own loading and launch preparation
 * instead of after them. VM.up() then hands it the VM's directory and the early QEMU's plan on its
 * stdin (start-vm.ts): the directory's path on the first line (JSON), the plan after it, then the end.
 * A caller that boots no VM (a usage error, --help, a killed CLI) closes the pipe with nothing
 * written, and the supervisor exits without a trace.
 */
export interface EarlyLaunch {
  /** The VM's directory (it holds launch.json). */
  path: string
  /** The early QEMU's plan (early-qemu.ts), '' when there is none. */
  plan: string
}

/** Reads the launch from stdin to its end; undefined when the caller wrote none. */
export function readEarlyLaunch(): EarlyLaunch | undefined {
  const text = readEarlyQemuPlan()
  const newline = text.indexOf('\n')
  if (newline < 0) return undefined // nothing, or a caller killed while it wrote
  try {
    const path = JSON.parse(text.slice(0, newline)) as unknown
    if (typeof path !== 'string' || !path.startsWith('/')) return undefined
    return { path, plan: text.slice(newline + 1) }
  } catch {
    return undefined
  }
}

/**
 * The cache directory as paths.ts's cacheDir() computes it from the same environment (inlined: this
 * runs before the supervisor's modules are loaded): where the code cache is, before launch.json
 * says. A wrong guess costs a code cache miss, nothing else.
 */
export function cacheDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMCTL_CACHE_DIR) return env.VMCTL_CACHE_DIR
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl')
}

/**
 * Sends this process's stdout and stderr (started as /dev/null) to `file`, as VM.up() gives a
 * supervisor it spawns for its VM: the debug log, the supervisor's own errors. Node cannot dup2
 * its descriptors; what Node itself prints on a fatal error goes to /dev/null.
 */
export function writeOutputTo(file: string): void {
  const fd = openSync(file, 'a', 0o600)
  for (const stream of [process.stdout, process.stderr]) {
    stream.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown) => {
      try {
        if (typeof chunk === 'string')
          writeSync(fd, chunk, null, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        else writeSync(fd, chunk)
      } catch {} // a full disk: the log is not worth the VM
      const done = typeof encoding === 'function' ? encoding : callback
      if (typeof done === 'function') (done as () => void)()
      return true
    }) as typeof stream.write
  }
}
