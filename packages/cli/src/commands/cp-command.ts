import { readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { VM } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const CP_OPTIONS = { ...HELP_OPTION }

export const CP_HELP = `Usage: vmctl cp SOURCE DEST

Copies a file or a directory between this host and a running VM, one side written NAME:PATH (an
absolute path in the guest), as docker cp does:

  vmctl cp ./fixtures db:/opt/fixtures     a directory, its tree copied (parents made)
  vmctl cp db:/var/log/app.log .           into an existing directory, under its own name
  vmctl cp db:/etc/os-release -            a guest file to stdout; "-" as SOURCE: stdin to a guest file

A DEST that is an existing directory (or ends in /) gets SOURCE inside it. Files keep their mode.

Options:
${helpLines(CP_OPTIONS)}`

/** `NAME:/path` (a VM and a guest path), or undefined for a local path. */
function guestSide(text: string): { name: string; path: string } | undefined {
  const match = /^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$/.exec(text)
  if (!match) return undefined
  const [, name, path] = match as unknown as [string, string, string]
  if (!path.startsWith('/'))
    throw new UsageError(`vmctl cp: ${JSON.stringify(text)}: the guest path must be absolute (${name}:/...)`)
  return { name, path }
}

function isLocalDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** The guest path, or the local one, that DEST names for a SOURCE called `name` (inside a directory DEST). */
const inside = (
  dest: string,
  isDirectory: boolean,
  name: string,
  joinPath: (a: string, b: string) => string,
) => (isDirectory || dest.endsWith('/') ? joinPath(dest, name) : dest)

/** `vmctl cp SOURCE DEST`: vm.push/copyDirTo/pullTo/copyDirFrom for a shell. */
export async function cpCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, CP_OPTIONS, 'cp')
  if (values.help) {
    console.log(CP_HELP)
    return 0
  }
  if (positionals.length !== 2)
    throw new UsageError('vmctl cp: usage: vmctl cp SOURCE DEST (one of them NAME:/path)')
  const [source, dest] = positionals as [string, string]
  const from = guestSide(source)
  const to = guestSide(dest)
  if (!from === !to)
    throw new UsageError(
      `vmctl cp: ${from ? 'both sides are' : 'neither side is'} in a VM; write exactly one as NAME:/path (see vmctl ps)`,
    )
  const vm = await VM.attach((from ?? to)!.name)
  try {
    const guestIsDirectory = async (path: string) =>
      (await vm.exec(['test', '-d', path], { reject: false })).exitCode === 0
    if (to) {
      if (source === '-') await vm.writeFile(to.path, readFileSync(0))
      else if (isLocalDirectory(source))
        await vm.copyDirTo(source, inside(to.path, await guestIsDirectory(to.path), basename(source), join))
      else await vm.push(source, inside(to.path, await guestIsDirectory(to.path), basename(source), join))
      return 0
    }
    const guest = from!
    if (dest === '-') {
      process.stdout.write(await vm.pull(guest.path))
      return 0
    }
    const target = inside(dest, isLocalDirectory(dest), basename(guest.path), join)
    if (await guestIsDirectory(guest.path)) await vm.copyDirFrom(guest.path, target)
    else await vm.pullTo(guest.path, target)
    return 0
  } finally {
    await vm.close()
  }
}
