import { CACHE_KEY_HELP, cacheKeyCommand } from './commands/cache-key-command.js'
import { DOWN_HELP, downCommand } from './commands/down-command.js'
import { EXEC_HELP, execCommand } from './commands/exec-command.js'
import { IMAGE_HELP, imageCommand } from './commands/image-command.js'
import { powerCommand, RESTART_HELP, START_HELP, STOP_HELP } from './commands/power-commands.js'
import { PS_HELP, psCommand } from './commands/ps-command.js'
import { RUN_HELP, runCommand } from './commands/run-command.js'
import { SETUP_HELP, setupCommand } from './commands/setup-command.js'
import { TEMPLATE_HELP, templateCommand } from './commands/template-command.js'
import { UP_HELP, upCommand } from './commands/up-command.js'
import { UsageError } from './usage-error.js'
import { versionText } from './version.js'

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; help: string; summary: string }> =
  {
    setup: {
      run: setupCommand,
      help: SETUP_HELP,
      summary: 'fetch the guest kernel now and check the host (QEMU, KVM, ...)',
    },
    run: { run: runCommand, help: RUN_HELP, summary: 'boot a fresh VM, run a command in it, destroy it' },
    up: { run: upCommand, help: UP_HELP, summary: 'boot a VM that stays up; prints its name' },
    exec: { run: execCommand, help: EXEC_HELP, summary: 'run a command in a running VM' },
    down: { run: downCommand, help: DOWN_HELP, summary: 'destroy VMs' },
    stop: { run: powerCommand('stop'), help: STOP_HELP, summary: 'power a VM off; it stays defined' },
    start: { run: powerCommand('start'), help: START_HELP, summary: 'boot a stopped VM again' },
    restart: { run: powerCommand('restart'), help: RESTART_HELP, summary: 'reboot a VM (--hard: reset)' },
    ps: { run: psCommand, help: PS_HELP, summary: 'list running VMs' },
    image: {
      run: imageCommand,
      help: IMAGE_HELP,
      summary: 'build, list or prune disk images and provisioning layers (build, ls, prune)',
    },
    template: {
      run: templateCommand,
      help: TEMPLATE_HELP,
      summary: 'list or prune VM templates (ls, prune)',
    },
    'cache-key': {
      run: cacheKeyCommand,
      help: CACHE_KEY_HELP,
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
    console.log(topic && COMMANDS[topic] ? COMMANDS[topic].help : MAIN_HELP)
    return 0
  }
  if (name === '--version' || name === '-v') {
    console.log(versionText())
    return 0
  }
  const command = COMMANDS[name]
  if (!command)
    throw new UsageError(
      `unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')} (see vmctl --help)`,
    )
  return command.run(rest)
}
