import { UsageError } from './usage-error.js'

interface Command {
  run: (args: string[]) => Promise<number>
  help: string
}

// Each command's module is imported when it runs (or its help is asked for): `vmctl run` loads
// neither image building nor vmtest's config nor the host checks of `setup`.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  setup: {
    load: () =>
      import('./commands/setup-command.js').then((m) => ({ run: m.setupCommand, help: m.SETUP_HELP })),
    summary: 'fetch the guest kernel now and check the host (QEMU, KVM, ...)',
  },
  run: {
    load: () => import('./commands/run-command.js').then((m) => ({ run: m.runCommand, help: m.RUN_HELP })),
    summary: 'boot a fresh VM, run a command in it, destroy it',
  },
  up: {
    load: () => import('./commands/up-command.js').then((m) => ({ run: m.upCommand, help: m.UP_HELP })),
    summary: 'boot a VM that stays up; prints its name',
  },
  exec: {
    load: () => import('./commands/exec-command.js').then((m) => ({ run: m.execCommand, help: m.EXEC_HELP })),
    summary: 'run a command in a running VM',
  },
  cp: {
    load: () => import('./commands/cp-command.js').then((m) => ({ run: m.cpCommand, help: m.CP_HELP })),
    summary: 'copy files and directories between this host and a running VM',
  },
  logs: {
    load: () => import('./commands/logs-command.js').then((m) => ({ run: m.logsCommand, help: m.LOGS_HELP })),
    summary: "print a running VM's kernel, agent and console logs",
  },
  shell: {
    load: () =>
      import('./commands/shell-command.js').then((m) => ({ run: m.shellCommand, help: m.SHELL_HELP })),
    summary: 'an interactive shell in a running VM',
  },
  wait: {
    load: () => import('./commands/wait-command.js').then((m) => ({ run: m.waitCommand, help: m.WAIT_HELP })),
    summary: 'wait until a server in a running VM listens on a port',
  },
  forward: {
    load: () =>
      import('./commands/forward-command.js').then((m) => ({ run: m.forwardCommand, help: m.FORWARD_HELP })),
    summary: 'forward a guest TCP port of a running VM from the host; prints the host port',
  },
  down: {
    load: () => import('./commands/down-command.js').then((m) => ({ run: m.downCommand, help: m.DOWN_HELP })),
    summary: 'destroy VMs',
  },
  stop: {
    load: () =>
      import('./commands/power-commands.js').then((m) => ({
        run: m.powerCommand('stop'),
        help: m.STOP_HELP,
      })),
    summary: 'power a VM off; it stays defined',
  },
  start: {
    load: () =>
      import('./commands/power-commands.js').then((m) => ({
        run: m.powerCommand('start'),
        help: m.START_HELP,
      })),
    summary: 'boot a stopped VM again',
  },
  restart: {
    load: () =>
      import('./commands/power-commands.js').then((m) => ({
        run: m.powerCommand('restart'),
        help: m.RESTART_HELP,
      })),
    summary: 'reboot a VM (--hard: reset)',
  },
  ps: {
    load: () => import('./commands/ps-command.js').then((m) => ({ run: m.psCommand, help: m.PS_HELP })),
    summary: "list this user's VMs and what is out of place",
  },
  gc: {
    load: () => import('./commands/gc-command.js').then((m) => ({ run: m.gcCommand, help: m.GC_HELP })),
    summary: 'repair or remove what vmctl ps finds out of place',
  },
  disk: {
    load: () => import('./commands/disk-command.js').then((m) => ({ run: m.diskCommand, help: m.DISK_HELP })),
    summary: 'disks to plug into running VMs (create, attach, detach, ls, rm)',
  },
  image: {
    load: () =>
      import('./commands/image-command.js').then((m) => ({ run: m.imageCommand, help: m.IMAGE_HELP })),
    summary: 'build, list or prune disk images and provisioning layers (build, ls, prune)',
  },
  kernel: {
    load: () =>
      import('./commands/kernel-command.js').then((m) => ({ run: m.kernelCommand, help: m.KERNEL_HELP })),
    summary: 'fetch, list or prune guest kernels (debian:trixie, debian:bookworm/rt, ...)',
  },
  template: {
    load: () =>
      import('./commands/template-command.js').then((m) => ({
        run: m.templateCommand,
        help: m.TEMPLATE_HELP,
      })),
    summary: 'list or prune VM templates (ls, prune)',
  },
  vmtest: {
    load: () =>
      import('./commands/vmtest-command.js').then((m) => ({ run: m.vmtestCommand, help: m.VMTEST_HELP })),
    summary: "run a vmtest.toml's targets (vmtest's config, its output and exit code)",
  },
  'cache-key': {
    load: () =>
      import('./commands/cache-key-command.js').then((m) => ({
        run: m.cacheKeyCommand,
        help: m.CACHE_KEY_HELP,
      })),
    summary: 'print a key for caching ~/.cache/vmctl on CI',
  },
}

export const MAIN_HELP = `vmctl: throwaway virtual machines with a real kernel, for tests and shells.

Usage: vmctl COMMAND [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run vmctl COMMAND --help for a command's options, vmctl --version (-v) for the version.
DEBUG=vmctl* shows what vmctl does.`

/** Runs the CLI; resolves with the process exit code. */
export async function runCli(args: string[]): Promise<number> {
  const [name, ...rest] = args
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined
    if (!topic) {
      console.log(MAIN_HELP)
      return 0
    }
    console.log((await (await knownCommand(topic)).load()).help)
    return 0
  }
  if (name === '--version' || name === '-v') {
    console.log((await import('./version.js')).versionText())
    return 0
  }
  return (await (await knownCommand(name)).load()).run(rest)
}

/** The command of that name, or a usage error naming the one most likely meant (`vmctl help rn` too). */
async function knownCommand(name: string): Promise<(typeof COMMANDS)[string]> {
  // Own names only: `vmctl constructor` is not Object.prototype's.
  if (Object.hasOwn(COMMANDS, name)) return COMMANDS[name]!
  // core is loaded here only: a mistyped command is the one path that needs it before a command runs.
  // A flag-like word is matched against the top-level flags (--verison: did you mean --version?).
  const known = name.startsWith('-') ? ['--help', '--version'] : Object.keys(COMMANDS)
  const meant = (await import('@vmctl/core')).closestName(name, known)
  throw new UsageError(
    `unknown command ${JSON.stringify(name)}${meant ? ` (did you mean ${meant}?)` : ''}; commands: ${Object.keys(COMMANDS).join(', ')} (see vmctl --help)`,
  )
}
