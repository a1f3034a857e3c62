import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'
import { cacheDir } from '../paths.js'
import { fetchDefaultKernel, resolveKernel } from './resolve-kernel.js'

// A kernel as a user has it after `dpkg-deb -x linux-image-*.deb tree`: boot/vmlinuz-R and
// usr/lib/modules/R with modules.order and modules.builtin but no modules.dep (depmod makes it at
// install time). Made from the cached default kernel, its modules linked rather than copied, in a
// directory the guest sees through the host root (the guest's /tmp is the host's too, but this
// keeps the tree next to the test).
const here = fileURLToPath(new URL('.', import.meta.url))
const tree = mkdtempSync(join(here, '..', '..', '.test-custom-kernel-'))
let shadow: string | undefined
afterAll(() => {
  rmSync(tree, { recursive: true, force: true })
  // The links vmctl made in its cache for this tree: nothing else will use them.
  if (shadow) rmSync(shadow, { recursive: true, force: true })
})

describe('a custom kernel with modules beside it and no modules.dep (vm)', () => {
  test('boots, loads a module by name, and leaves the user’s tree as it was', async () => {
    const cached = await fetchDefaultKernel(cacheDir())
    const release = cached.release
    mkdirSync(join(tree, 'boot'))
    copyFileSync(join(cached.dir, 'vmlinuz'), join(tree, 'boot', `vmlinuz-${release}`))
    const modules = join(tree, 'usr/lib/modules', release)
    mkdirSync(join(tree, 'usr/lib/modules'), { recursive: true })
    execFileSync('cp', ['-rs', join(cached.dir, 'lib/modules', release), modules])
    for (const file of readdirSync(modules))
      if (/^modules\.(dep|alias|symbols|devname|softdep)/.test(file) || file.endsWith('.bin'))
        rmSync(join(modules, file))
    const before = readdirSync(modules).sort()

    const image = join(tree, 'boot', `vmlinuz-${release}`)
    const kernel = await resolveKernel({ explicit: image }, cacheDir())
    shadow = kernel.modulesDir?.replace(/\/lib\/modules\/[^/]+$/, '')
    expect(kernel.modulesDir).toMatch(
      new RegExp(`/kernels/custom/[0-9a-f]+/lib/modules/${release.replace(/\./g, '\\.')}$`),
    )
    expect(existsSync(join(kernel.modulesDir!, 'modules.dep'))).toBe(true)

    await using vm = await VM.up({ kernel: image })
    expect((await vm.exec('uname -r')).stdout.trim()).toBe(release)
    await vm.exec('modprobe dummy && grep -q "^dummy " /proc/modules')
    expect(readdirSync(modules).sort()).toEqual(before)
  }, 900_000)
})
