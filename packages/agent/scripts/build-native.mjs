// Builds vsock-bridge (native/vsock-bridge.c) as a small static executable: the host side of the
// vsock transport and, on the runtime disk, the guest side. Without a C compiler the build goes on
// and vmctl uses virtio-serial only (vsock needs the bridge); the reason is printed once here.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'

const output = 'dist/vsock-bridge'
mkdirSync('dist', { recursive: true })
rmSync(output, { force: true })
const compiler = process.env.CC || 'cc'
try {
  execFileSync(
    compiler,
    ['-O2', '-static', '-s', '-Wall', '-Wextra', '-o', output, 'native/vsock-bridge.c'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
} catch (error) {
  const reason =
    error.code === 'ENOENT' ? `no C compiler (${compiler})` : String(error.stderr || error.message).trim()
  console.warn(
    `vsock-bridge not built (${reason}); VMs will use virtio-serial. For vsock: apt-get install gcc libc6-dev, then pnpm build`,
  )
}
