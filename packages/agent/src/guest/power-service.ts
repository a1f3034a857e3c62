import { spawn } from 'node:child_process'
import type { GuestRoot } from './guest-root.js'

/**
 * Powers the guest off (or reboots it; with QEMU's -no-reboot both end the VM). Answers first,
 * acts a moment later, so the reply reaches the host.
 */
export function powerOff(root: GuestRoot, reboot: boolean): void {
  setTimeout(() => {
    spawn(root.busybox, ['sync']).on('close', () => {
      spawn(root.busybox, [reboot ? 'reboot' : 'poweroff', '-f'], { stdio: 'ignore' })
    })
  }, 50)
}
