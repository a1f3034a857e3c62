import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { VM } from '../vm/vm.js'
import { renderConfigDocs } from './config-docs.js'
import { ConfigError, loadConfig, mergeOptions } from './config-file.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

function configError(path: string, select?: { name?: string }): ConfigError {
  try {
    loadConfig(path, select)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error(`${path} loaded without an error`)
}

describe('vmctl.toml', () => {
  test('a valid file: fields, relative paths resolved against the file, [image] and [[mounts]]', () => {
    mkdirSync(join(dir, 'project'), { recursive: true })
    const path = file(
      'ok.toml',
      `# a comment
memoryMiB = 2048
cpus = 1
ports = [5432, 8080]
env = { A = "1" }
provision = ["true"]

[image]
distribution = "bookworm"
packages = ["jq"]

[[mounts]]
host = "project"
guest = "/mnt/project"
writable = true
`,
    )
    const { options } = loadConfig(path)
    expect(options).toEqual({
      memoryMiB: 2048,
      cpus: 1,
      ports: [5432, 8080],
      env: { A: '1' },
      provision: ['true'],
      image: { distribution: 'bookworm', packages: ['jq'] },
      mounts: [{ host: join(dir, 'project'), guest: '/mnt/project', writable: true }],
    })
  })

  test('bad TOML names the file and the line', () => {
    const error = configError(file('bad.toml', 'cpus = 2\nmemoryMiB = [1,\nports = 3\n'))
    expect(error.line).toBe(3)
    expect(error.message).toMatch(/bad\.toml:3: invalid TOML/)
  })

  test('an unknown field is an error naming the line, the field and the known ones', () => {
    const error = configError(
      file('unknown.toml', 'cpus = 2\n\n[image]\ndistribution = "bookworm"\npakages = ["jq"]\n'),
    )
    expect(error.line).toBe(5)
    expect(error.field).toBe('image.pakages')
    expect(error.message).toContain('unknown.toml:5: image.pakages: unknown field (did you mean packages?)')
    expect(configError(file('unknown2.toml', 'memory = 1024\n')).message).toContain(
      'unknown2.toml:1: memory: unknown field (did you mean memoryMiB?)',
    )
  })

  test('a wrong type says what was expected and what was found', () => {
    const error = configError(file('type.toml', 'cpus = 2\nmemoryMiB = "2G"\n'))
    expect(error.message).toContain(
      'type.toml:2: memoryMiB: expected a positive integer (MiB), got the string "2G"',
    )
    const mount = configError(
      file('mount.toml', '[[mounts]]\nhost = "/tmp"\n\n[[mounts]]\nhost = "/tmp"\nguest = "relative"\n'),
    )
    expect(mount.message).toContain('mount.toml:1: mounts[0]: missing field guest')
    const guest = configError(
      file(
        'mount2.toml',
        '[[mounts]]\nhost = "/tmp"\nguest = "/a"\n\n[[mounts]]\nhost = "/tmp"\nguest = "relative"\n',
      ),
    )
    expect(guest.message).toContain('mount2.toml:7: mounts[1].guest: expected an absolute guest path')
  })

  test('networks: names or [[networks]] tables with hostname and aliases; bad ones named at their line', () => {
    const path = file(
      'networks.toml',
      'networks = ["front"]\n[vm.db]\n[[vm.db.networks]]\nnetwork = "cluster"\nhostname = "db"\naliases = ["primary"]\n',
    )
    expect(loadConfig(path).options.networks).toEqual([
      { network: 'cluster', hostname: 'db', aliases: ['primary'] },
    ])
    expect(loadConfig(file('networks2.toml', 'networks = ["front", "back"]\n')).options.networks).toEqual([
      'front',
      'back',
    ])
    expect(configError(file('net-bad.toml', 'cpus = 1\nnetworks = ["no spaces"]\n')).message).toContain(
      'net-bad.toml:2: networks[0]: expected a network name, got "no spaces"',
    )
    expect(
      configError(file('net-bad2.toml', '[[networks]]\nnetwork = "c"\nhostnme = "db"\n')).message,
    ).toContain('net-bad2.toml:3: networks[0].hostnme: unknown field (did you mean hostname?)')
    expect(configError(file('net-bad3.toml', '[[networks]]\nhostname = "db"\n')).message).toContain(
      'networks[0]: missing field network',
    )
  })

  test('a missing image file and a corrupt image are errors at the image line', () => {
    const missing = configError(file('missing.toml', 'cpus = 1\nimage = "nowhere.qcow2"\n'))
    expect(missing.message).toContain(`missing.toml:2: image: ${join(dir, 'nowhere.qcow2')} does not exist`)
    // A qcow2 header with garbage behind it: qemu-img refuses it.
    writeFileSync(
      join(dir, 'corrupt.qcow2'),
      Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(600, 0x5a)]),
    )
    const corrupt = configError(file('corrupt.toml', 'image = "corrupt.qcow2"\n'))
    expect(corrupt.message).toMatch(
      /corrupt\.toml:1: image: the disk image .*corrupt\.qcow2 is corrupt or not a disk image \(qemu-img: .+\)\. Fix:/,
    )
  })

  test('several VMs: top-level fields are defaults, one is picked by name', () => {
    const path = file('many.toml', 'memoryMiB = 512\n[vm.a]\ncpus = 1\n[vm.b]\ncpus = 3\nmemoryMiB = 2048\n')
    expect(loadConfig(path, { name: 'a' }).options).toEqual({ memoryMiB: 512, cpus: 1, name: 'a' })
    expect(loadConfig(path, { name: 'b' }).options).toEqual({ memoryMiB: 2048, cpus: 3, name: 'b' })
    expect(configError(path).message).toContain('defines several VMs (a, b); pick one')
    expect(configError(file('vmtype.toml', '[vm.a]\ncpus = "x"\n')).message).toContain(
      'vmtype.toml:2: vm.a.cpus: expected',
    )
  })

  test('options in code override the file; env is merged', () => {
    expect(
      mergeOptions({ cpus: 1, memoryMiB: 512, env: { A: '1', B: '1' } }, { cpus: 2, env: { B: '2' } }),
    ).toEqual({
      cpus: 2,
      memoryMiB: 512,
      env: { A: '1', B: '2' },
    })
  })

  test('VM.up(path) rejects a bad file before booting anything', async () => {
    await expect(VM.up(file('up.toml', 'cpu = 2\n'))).rejects.toThrow(
      /up\.toml:1: cpu: unknown field \(did you mean cpus\?\)/,
    )
    await expect(VM.up(join(dir, 'absent.toml'))).rejects.toThrow(/absent\.toml: no such file/)
  })

  test('docs/config.md is generated from the schema', () => {
    const docs = fileURLToPath(new URL('../../../../docs/config.md', import.meta.url))
    if (process.env.UPDATE_DOCS) writeFileSync(docs, renderConfigDocs())
    let current = ''
    try {
      current = readFileSync(docs, 'utf8')
    } catch {}
    expect(current, 'docs/config.md is stale: UPDATE_DOCS=1 npx vitest run packages/core/src/config').toBe(
      renderConfigDocs(),
    )
  })
})
