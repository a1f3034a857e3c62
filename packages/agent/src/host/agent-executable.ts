import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'

/** Absolute path of the bundled guest agent (one CommonJS file, no dependencies). */
export function agentBundlePath(): string {
  return createRequire(import.meta.url).resolve('@vmctl/agent/bundle')
}

/**
 * Builds the agent as one executable with Node's single executable applications: the bundle
 * (with V8's code cache for it) injected into a copy of `nodeBinary`. The guest needs no Node
 * installation, only the libraries that node links (the initramfs carries them).
 *
 * Built on the user's machine from the node that runs vmctl, not shipped: a prebuilt one would be
 * a 90 MB download per platform and Node version. About 6-8 s, once per node binary and agent
 * version (callers cache the result).
 */
export async function buildAgentExecutable(nodeBinary: string, output: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'vmctl-sea-'))
  try {
    const blob = join(work, 'agent.blob')
    const config = join(work, 'sea-config.json')
    writeFileSync(
      config,
      JSON.stringify({
        main: agentBundlePath(),
        output: blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
      }),
    )
    await run(nodeBinary, ['--experimental-sea-config', config], { cwd: work })
    const executable = join(work, 'vmctl-agent')
    copyFileSync(nodeBinary, executable)
    chmodSync(executable, 0o755)
    // Debug symbols are 12 MB of a 99 MB node; strip them when binutils is around.
    await run('strip', [executable]).catch(() => {})
    // In a child process: postject's WebAssembly runtime installs process-wide uncaughtException
    // handlers that would take over the caller's process (a test runner, say).
    const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js')
    await run(nodeBinary, [postject, executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE])
    copyFileSync(executable, output)
    chmodSync(output, 0o755)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
