import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { imageKey } from './image-builder.js'
import {
  CUSTOMIZE_HOOK,
  DPKG_PATH_FILTERS,
  EXTRACT_HOOK,
  mmdebstrapArgs,
  SETUP_HOOK,
} from './mmdebstrap-args.js'

const roots: string[] = []
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true })
})

function tree(files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'vmctl-hook-test-'))
  roots.push(root)
  for (const file of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true })
    writeFileSync(join(root, file), file)
  }
  return root
}

/** mmdebstrap runs a hook that is not a file as `sh -c HOOK exec ROOT`. */
const runHook = (hook: string, root: string) => execFileSync('sh', ['-c', hook, 'exec', root])

describe('mmdebstrap hooks', () => {
  it('the extract hook removes what the path filters exclude, and only that', () => {
    const root = tree([
      'usr/share/doc/bash/copyright',
      'usr/share/man/man1/bash.1.gz',
      'usr/share/info/dir',
      'usr/share/locale/locale.alias',
      'usr/share/locale/de/LC_MESSAGES/dpkg.mo',
      'usr/share/zoneinfo/UTC',
      'usr/bin/bash',
    ])
    runHook(EXTRACT_HOOK, root)
    for (const dir of ['doc', 'man', 'info']) expect(readdirSync(join(root, 'usr/share', dir))).toEqual([])
    expect(readdirSync(join(root, 'usr/share/locale'))).toEqual(['locale.alias'])
    expect(existsSync(join(root, 'usr/share/zoneinfo/UTC'))).toBe(true)
    expect(existsSync(join(root, 'usr/bin/bash'))).toBe(true)
  })

  it('the extract hook passes on a tree without those directories', () => {
    const root = tree(['usr/share/zoneinfo/UTC'])
    runHook(EXTRACT_HOOK, root)
    expect(existsSync(join(root, 'usr/share/zoneinfo/UTC'))).toBe(true)
  })

  it('leaves the image the dpkg config mmdebstrap --dpkgopt would have, without unsafe-io', () => {
    const root = tree([])
    runHook(SETUP_HOOK, root)
    const during = readdirSync(join(root, 'etc/dpkg/dpkg.cfg.d')).sort()
    // dpkg skips names with other characters than letters, digits, '-' and '_'.
    for (const name of during) expect(name).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(during.map((name) => readFileSync(join(root, 'etc/dpkg/dpkg.cfg.d', name), 'utf8'))).toContain(
      'force-unsafe-io\n',
    )
    runHook(CUSTOMIZE_HOOK, root)
    expect(readdirSync(join(root, 'etc/dpkg/dpkg.cfg.d'))).toEqual(['99mmdebstrap'])
    expect(readFileSync(join(root, 'etc/dpkg/dpkg.cfg.d/99mmdebstrap'), 'utf8')).toBe(
      `${DPKG_PATH_FILTERS.join('\n')}\n`,
    )
  })

  it('passes no --dpkgopt (that would bring back the per-package tar filter)', () => {
    const args = mmdebstrapArgs({
      distribution: 'bookworm',
      packages: ['jq'],
      mirror: 'M',
      target: 'T',
      mode: 'root',
    })
    expect(args.filter((arg) => arg.startsWith('--dpkgopt'))).toEqual([])
    expect(args.slice(-4)).toEqual(['--mode=root', 'bookworm', 'T', 'M'])
  })
})

describe('image key', () => {
  const spec = { distribution: 'bookworm', packages: ['jq', 'curl'] }
  it('is the same for the same inputs, in any package order', () => {
    expect(imageKey({ ...spec, packages: ['curl', 'jq', 'jq'] })).toBe(imageKey(spec))
  })
  it('changes with each input', () => {
    const keys = [
      imageKey(spec),
      imageKey({ ...spec, distribution: 'trixie' }),
      imageKey({ ...spec, packages: ['jq'] }),
      imageKey({ ...spec, mirror: 'http://mirror.example/debian' }),
      imageKey({ ...spec, diskGiB: 8 }),
    ]
    expect(new Set(keys).size).toBe(keys.length)
  })
})
