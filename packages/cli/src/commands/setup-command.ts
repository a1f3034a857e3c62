import {
  assertSupportedHost,
  cacheDir,
  fetchDefaultKernel,
  fetchNamedKernel,
  firstLineOf,
  installedDefaultKernel,
  isKernelName,
  listCachedKernels,
  locateKernel,
  parseKernelName,
  prepareBusybox,
  VM,
  VmctlError,
} from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { packageManager } from '../distribution.js'
import { checkHost, type HostCheck } from '../host-checks.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const OPTIONS = {
  'no-fetch': {
    type: 'boolean' as const,
    help: 'download nothing: check the host and say whether the kernel is cached (the first VM fetches it; on CI, before the cache is restored)',
  },
  boot: {
    type: 'boolean' as const,
    help: "then boot one VM: makes the agent's runtime disk, the KVM verdict and the default template now, not in the first test",
  },
  ...HELP_OPTION,
}

export const SETUP_HELP = `Usage: vmctl setup [--boot] [--no-fetch]

Gets this host ready for vmctl ahead of time, and says what is missing. Downloads the default guest
kernel (Debian's linux-image-amd64, from the Debian archive over HTTPS; VMCTL_DEBIAN_MIRROR for
another mirror, HTTPS_PROXY/NO_PROXY honoured) into ${cacheDir()}/kernels, and busybox
when the host has none, unless VMCTL_KERNEL names a kernel. VM.up() does the same on first use;
running setup first keeps the download out of a test's time. Then checks the host: Node, QEMU and
its version, mkfs.ext4, qemu-img, setpriv, /dev/kvm and the cached KVM verdict, /dev/vhost-vsock,
the cache's location, size and free space. One line each, with the command that installs what is
missing on this distribution (apt-get, dnf or pacman). Exits 1 when something required is missing.

Options:
${helpLines(OPTIONS)}`

export async function setupCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'setup')
  if (values.help) {
    console.log(SETUP_HELP)
    return 0
  }
  if (positionals.length > 0)
    throw new UsageError(`vmctl setup: unexpected ${JSON.stringify(positionals[0])}`)
  // Another OS or CPU: one error naming it, not a kernel fetched for a host that cannot boot it.
  assertSupportedHost()
  const cache = cacheDir()
  const env = process.env
  const checks: HostCheck[] = []
  const report = (check: HostCheck) => {
    checks.push(check)
    const fix = check.fix ? `; fix: ${check.fix}` : ''
    console.log(`${check.status.padEnd(8)} ${check.name.padEnd(12)} ${check.detail}${fix}`)
  }
  for (const check of checkHost(cache, packageManager(), env)) report(check)
  if (values['no-fetch'] && isKernelName(env.VMCTL_KERNEL)) {
    report(namedKernelState(cache, env.VMCTL_KERNEL))
  } else if (values['no-fetch']) {
    const kernel = installedDefaultKernel(cache)
    report({
      name: 'kernel',
      status: kernel || env.VMCTL_KERNEL ? 'ok' : 'warn',
      detail: kernel
        ? `${kernel.release} in ${kernel.dir} (cached)`
        : env.VMCTL_KERNEL
          ? `VMCTL_KERNEL=${env.VMCTL_KERNEL} (not checked: --no-fetch)`
          : 'not cached yet: the first VM fetches it (or run vmctl setup)',
    })
  } else {
    report(await kernelCheck(cache, env))
    report(await busyboxCheck(cache, env))
  }
  const ready = !checks.some((c) => c.status === 'missing')
  if (values.boot && ready) report(await bootCheck())
  const missing = checks.filter((c) => c.status === 'missing').map((c) => c.name)
  if (missing.length > 0) {
    console.log(`vmctl cannot run VMs here yet: ${missing.join(', ')} missing (see the fixes above)`)
    return 1
  }
  console.log(`vmctl is ready. Try: npx vmctl run -- uname -a`)
  return 0
}

async function kernelCheck(cache: string, env: NodeJS.ProcessEnv): Promise<HostCheck> {
  // A name (VMCTL_KERNEL=debian:trixie) is fetched like the default kernel, not looked for as a path.
  if (isKernelName(env.VMCTL_KERNEL)) {
    try {
      const kernel = await fetchNamedKernel(cache, env.VMCTL_KERNEL, env)
      return {
        name: 'kernel',
        status: 'ok',
        detail: `${kernel.release} in ${kernel.dir} (VMCTL_KERNEL=${env.VMCTL_KERNEL}, ${kernel.fetched ? 'fetched now' : 'cached'})`,
      }
    } catch (error) {
      return {
        name: 'kernel',
        status: 'missing',
        detail: `VMCTL_KERNEL=${env.VMCTL_KERNEL}: ${(error as Error).message}`,
      }
    }
  }
  if (env.VMCTL_KERNEL) {
    try {
      const kernel = locateKernel({ env })
      return {
        name: 'kernel',
        status: 'ok',
        detail: `${kernel.image} (VMCTL_KERNEL, ${kernel.release ?? 'release unknown'})`,
      }
    } catch (error) {
      const tried = (error as { tried?: string[] }).tried
      return {
        name: 'kernel',
        status: 'missing',
        detail: tried ? `no kernel at ${tried.join('; ')}` : firstLineOf(error),
        fix: "correct VMCTL_KERNEL, or unset it to use Debian's kernel (fetched into the cache)",
      }
    }
  }
  const had = installedDefaultKernel(cache)
  try {
    const kernel = had ?? (await fetchDefaultKernel(cache, env))
    const phases = kernel.phases
    const how = phases
      ? `fetched now: index ${s(phases.indexMs)}, download ${s(phases.downloadMs)}, unpack ${s(phases.unpackMs)}, prepare ${s(phases.prepareMs)}`
      : 'cached'
    return { name: 'kernel', status: 'ok', detail: `${kernel.release} in ${kernel.dir} (${how})` }
  } catch (error) {
    return { name: 'kernel', status: 'missing', detail: (error as Error).message }
  }
}

async function busyboxCheck(cache: string, env: NodeJS.ProcessEnv): Promise<HostCheck> {
  try {
    const busybox = await prepareBusybox(cache, env)
    return {
      name: 'busybox',
      status: 'ok',
      detail: `${busybox.path} (${busybox.source === 'host' ? "the host's" : "Debian's busybox-static, in the cache"})`,
    }
  } catch (error) {
    return { name: 'busybox', status: 'missing', detail: (error as Error).message }
  }
}

async function bootCheck(): Promise<HostCheck> {
  const started = Date.now()
  try {
    const vm = await VM.up()
    try {
      const { stdout } = await vm.exec('uname -r')
      return {
        name: 'boot',
        status: 'ok',
        detail: `a VM booted and ran uname -r (${stdout.trim()}) in ${s(Date.now() - started)}`,
      }
    } finally {
      await vm.destroy()
    }
  } catch (error) {
    return {
      name: 'boot',
      status: 'missing',
      detail: error instanceof VmctlError ? error.message : String(error),
    }
  }
}

/** What --no-fetch says of a kernel name: cached (its release), or fetched by the first VM. */
function namedKernelState(cache: string, name: string): HostCheck {
  try {
    const text = parseKernelName(name).text
    const entry = listCachedKernels(cache).find((k) => k.names.includes(text))
    return entry
      ? {
          name: 'kernel',
          status: 'ok',
          detail: `VMCTL_KERNEL=${name}: ${entry.release} in ${entry.dir} (cached)`,
        }
      : {
          name: 'kernel',
          status: 'warn',
          detail: `VMCTL_KERNEL=${name}: not cached yet: the first VM fetches it (or run vmctl setup)`,
        }
  } catch (error) {
    return { name: 'kernel', status: 'missing', detail: `VMCTL_KERNEL=${name}: ${firstLineOf(error)}` }
  }
}

function s(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
