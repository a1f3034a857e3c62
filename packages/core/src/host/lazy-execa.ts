import type { execa as Execa } from 'execa'

let loading: Promise<typeof Execa> | undefined

/**
 * execa, imported on first use. Importing it costs ~0.15 s of start-up, paid by every process that
 * imports @vmctl/core (each `vmctl` command, each test worker), while most of them never run a
 * host command: the initramfs and runtime disk are cached, images are built once.
 */
export function loadExeca(): Promise<typeof Execa> {
  loading ??= import('execa').then((module) => module.execa)
  return loading
}
