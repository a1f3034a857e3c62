import { spawn } from 'node:child_process'

export interface CommandResult {
  stdout: string
  stderr: string
  /** Exit status, null when a signal ended it. */
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * Runs a command to its end without blocking the test worker's event loop, as execFileSync and
 * spawnSync do: a worker blocked for a minute on a loaded host (a tar of a cache, a pnpm pack)
 * misses vitest's RPC and fails the run ("Timeout calling onTaskUpdate") though its tests passed.
 * Rejects, with the command's stderr, when it exits non-zero or is killed, unless `allowFailure`.
 */
export async function runCommand(
  file: string,
  args: string[],
  options: { input?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv; allowFailure?: boolean } = {},
): Promise<CommandResult> {
  const run = await runToEnd(file, args, options)
  const result = { ...run, stdout: run.stdout.toString('utf8'), stderr: run.stderr.toString('utf8') }
  if (run.code !== 0 && !options.allowFailure) throw failure(file, args, run)
  return result
}

/** runCommand's stdout as bytes, for binary output (a compressor's). */
export async function runForBytes(file: string, args: string[], input: Buffer): Promise<Buffer> {
  const run = await runToEnd(file, args, { input })
  if (run.code !== 0) throw failure(file, args, run)
  return run.stdout
}

interface RawResult {
  stdout: Buffer
  stderr: Buffer
  code: number | null
  signal: NodeJS.Signals | null
}

function runToEnd(
  file: string,
  args: string[],
  options: { input?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv },
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: 'pipe' })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.once('error', reject)
    child.once('close', (code, signal) =>
      resolve({ stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), code, signal }),
    )
    child.stdin.on('error', () => {})
    child.stdin.end(options.input)
  })
}

function failure(file: string, args: string[], run: RawResult): Error {
  return new Error(
    `${file} ${args.join(' ')}: ${run.signal ?? `exit ${run.code}`}: ${run.stderr.toString('utf8').trim()}`,
  )
}
