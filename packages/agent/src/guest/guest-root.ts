import { existsSync } from 'node:fs'

/** Where commands run: the agent's own root (the initramfs), or a root mounted at `chrootPath`. */
export interface GuestRoot {
  busybox: string
  chrootPath: string | undefined
}

export function guestRootFromEnv(env: NodeJS.ProcessEnv): GuestRoot {
  const chroot = env.vmctl_chroot
  return {
    busybox: existsSync('/bin/busybox') ? '/bin/busybox' : 'busybox',
    chrootPath: chroot && chroot !== '/' ? chroot : undefined,
  }
}
