import type { AttachShell } from './guest-hosts.js'

// Types only, apart from guest-network.ts: vm/ holds a VM's JoinedNetworks without loading (or, for
// an import reader, reaching) the network code, which reaches vm/ through the shared-VM keeper.

/** What the guest side needs: a VM handle's exec (the VM class, without importing it here). */
export interface GuestShell {
  readonly name: string
  exec(command: string, options?: { timeoutMs?: number }): Promise<unknown>
}

/** The networks a VM joined before its QEMU starts: one port (socket) per network, in NIC order. */
export interface JoinedNetworks {
  /** For the launch spec: QEMU connects NIC k to `sockets[k]`. */
  sockets: string[]
  /**
   * After the boot: addresses the guest's NICs, binds the members to the VM, syncs names (members
   * made in other processes reached through `attach`).
   */
  configure(vm: GuestShell, attach: AttachShell): Promise<void>
  /** The boot failed: the ports go. */
  leave(): void
}
