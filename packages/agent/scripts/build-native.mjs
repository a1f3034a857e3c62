// Builds the native helpers as small static executables (no Node ABI, nothing needed from the
// guest): vsock-bridge (native/vsock-bridge.c: both ends of the vsock transport) and guest-setup
// (native/guest-setup.c with mount-root.c and clone-refresh.c: the guest's root filesystem, and the
// clock, RNG and hostname of a VM restored from a snapshot) and vmctl-spawner (native/spawner.c: starts
// the agent's commands, so that the large Node process does not fork for each). Without vsock-bridge vmctl works on
// virtio-serial (the reason is printed); without guest-setup no VM can boot, so the build fails.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'

const compiler = process.env.CC || 'cc'
mkdirSync('dist', { recursive: true })
for (const [name, sources, without] of [
  ['vsock-bridge', ['vsock-bridge.c'], 'VMs will use virtio-serial'],
  ['guest-setup', ['guest-setup.c', 'mount-root.c', 'clone-refresh.c'], undefined],
  [
    'vmctl-spawner',
    ['spawner.c', 'spawner-requests.c', 'spawner-child.c', 'spawner-jobs.c', 'group-list.c'],
    'commands will start through child_process',
  ],
]) {
  const output = `dist/${name}`
  rmSync(output, { force: true })
  try {
    execFileSync(
      compiler,
      ['-O2', '-static', '-s', '-Wall', '-Wextra', '-o', output, ...sources.map((file) => `native/${file}`)],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    )
  } catch (error) {
    const reason =
      error.code === 'ENOENT' ? `no C compiler (${compiler})` : String(error.stderr || error.message).trim()
    const fix = 'Fix: apt-get install gcc libc6-dev, then pnpm build'
    if (!without) {
      console.error(`${name} could not be built (${reason}); VMs cannot boot without it. ${fix}`)
      process.exit(1)
    }
    console.warn(`${name} not built (${reason}); ${without}. ${fix}`)
  }
}
