import { UnsupportedHostError } from '../errors.js'

/**
 * Refuses a host vmctl cannot run VMs on, at once and saying why, where it would otherwise fail
 * later and obscurely: macOS has no /proc or prctl for the supervisor and no 9p root to share; on
 * an arm64 Linux host the x86-64 guest would be handed the host's arm64 programs (its root, the
 * agent built from its `node`) and fail with "exec format error" inside the guest.
 */
export function assertSupportedHost(platform: string = process.platform, arch: string = process.arch): void {
  if (platform !== 'linux') {
    const name = platform === 'darwin' ? 'macOS' : platform === 'win32' ? 'Windows' : platform
    throw new UnsupportedHostError(
      platform,
      arch,
      `${name} cannot serve as vmctl's host (its supervisor needs Linux's /proc and prctl, and a guest shares the host's Linux root)${platform === 'win32' ? '; WSL 2 is a Linux host' : ''}`,
    )
  }
  if (arch !== 'x64')
    throw new UnsupportedHostError(
      platform,
      arch,
      `its guests are x86-64 and run the host's own programs (the host's root, the agent built from its node), which are ${arch} here`,
    )
}
