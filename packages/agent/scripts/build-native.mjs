// Builds the native helpers as small static executables (no Node ABI, nothing needed from the
// guest): vsock-bridge (native/vsock-bridge.c: both ends of the vsock transport) and clone-refresh
// (native/clone-refresh.c: clock and RNG of a VM restored from a snapshot). Without a C compiler the
// build goes on: vmctl then uses virtio-serial and no templates; the reason is printed here.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'

const compiler = process.env.CC || 'cc'
mkdirSync('dist', { recursive: true })
for (const [name, without] of [
  ['vsock-bridge', 'VMs will use virtio-serial'],
  ['clone-refresh', 'VM templates are off'],
]) {
  const output = `dist/${name}`
  rmSync(output, { force: true })
  try {
    execFileSync(compiler, ['-O2', '-static', '-s', '-Wall', '-Wextra', '-o', output, `native/${name}.c`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
  } catch (error) {
    const reason =
      error.code === 'ENOENT' ? `no C compiler (${compiler})` : String(error.stderr || error.message).trim()
    console.warn(
      `${name} not built (${reason}); ${without}. Fix: apt-get install gcc libc6-dev, then pnpm build`,
    )
  }
}
