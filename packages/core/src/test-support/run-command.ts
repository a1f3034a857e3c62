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
export function runCommand(
  file: string,
  args: string[],
  options: { input?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv; allowFailure?: boolean } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: 'pipe' })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.once('error', reject)
    child.once('close', (code, signal) => {
      const result = {
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        code,
        signal,
      }
      if (code === 0 || options.allowFailure) resolve(result)
      else
        reject(new Error(`${file} ${args.join(' ')}: ${signal ?? `exit ${code}`}: ${result.stderr.trim()}`))
    })
    child.stdin.on('error', () => {})
    child.stdin.end(options.input)
  })
}

/** runCommand's stdout as bytes, for binary output (a compressor's). */
export function runForBytes(file: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'pipe' })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(stdout))
      else
        reject(new Error(`${file} ${args.join(' ')}: ${signal ?? `exit ${code}`}: ${Buffer.concat(stderr)}`))
    })
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}
