import { createHash } from 'node:crypto'
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import { BootFailedError, cacheDir, ProvisionError, VM, type VmOptions } from '../index.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { listTemplates, removeTemplate } from '../templates/template-store.js'
import { foreignImage, TEST_IMAGE } from '../test-support/test-images.js'
import { buildImage } from './image-builder.js'
import { imageIdentity } from './image-disk.js'
import { layersDir } from './provision.js'

const cache = cacheDir()
const work = mkdtempSync(join(tmpdir(), 'vmctl-images-test-'))
let base: string
let baseSum: string
const vmDirectories: string[] = []

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Boots and remembers the VM's directory, which must be gone once the VM is. */
async function up(options: VmOptions): Promise<VM> {
  const vm = await VM.up(options)
  const dir = new VmDirectory(vm.name).path
  vmDirectories.push(dir)
  return vm
}

describe('vm: image mode', () => {
  beforeAll(async () => {
    // Cold, this builds the image (minutes, once per machine); warm, it is a cache hit.
    base = (await buildImage(TEST_IMAGE, cache)).path
    baseSum = await sha256(base)
  }, 20 * 60_000)

  afterAll(async () => {
    rmSync(work, { recursive: true, force: true })
    // No VM directory (and so no overlay) outlives its VM.
    for (const dir of vmDirectories) expect(existsSync(dir), dir).toBe(false)
  })

  test('boots a built Debian image; commands run in it through the agent handed in at boot', async () => {
    await using vm = await up({ image: TEST_IMAGE })
    const r = await vm.exec(
      '. /etc/os-release; echo $VERSION_CODENAME; jq -n "1+1"; test -e /vmctl || echo no-agent-in-image',
    )
    expect(r.stdout).toBe('bookworm\n2\nno-agent-in-image\n')
    expect((await vm.info()).osRelease).toContain('Debian GNU/Linux 12')
    // The disk is the VM's own overlay, in its directory.
    const dir = new VmDirectory(vm.name).path
    expect(existsSync(join(dir, 'disk.qcow2'))).toBe(true)
  })

  test('a built image is what users expect: packages installed and verified, no docs, root-owned files, dpkg config as mmdebstrap writes it', async () => {
    await using vm = await up({ image: TEST_IMAGE })
    const r = await vm.exec(
      [
        // Every package fully installed, and every installed file as its package shipped it (but
        // the documentation left out on purpose, which dpkg --verify lists as missing).
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript
        "dpkg-query -W -f='${db:Status-Abbrev}${Package}\\n' | grep -v '^ii ' || echo all-installed",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript
        "dpkg-query -W -f='${Package}\\n' | grep -cx -e jq -e bash -e apt -e base-files",
        "dpkg --verify | grep -Ev '^missing +/usr/share/(doc|man|info|locale)(/|$)' || echo verified",
        'ls -A /etc/dpkg/dpkg.cfg.d',
        'cat /etc/dpkg/dpkg.cfg.d/99mmdebstrap',
        // install-info's index is made in the image, not shipped; locale.alias is in /etc.
        'find /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale -mindepth 1',
        "stat -c '%a %U:%G %n' /etc/shadow /usr/bin/passwd /tmp /root /etc/passwd /usr/bin/jq",
        'getent passwd root nobody | cut -d: -f1,3,4,6,7',
      ].join('; '),
    )
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(
      [
        'all-installed',
        '4',
        'verified',
        '99mmdebstrap',
        'path-exclude=/usr/share/doc/*',
        'path-exclude=/usr/share/man/*',
        'path-exclude=/usr/share/info/*',
        'path-exclude=/usr/share/locale/*',
        'path-include=/usr/share/locale/locale.alias',
        '/usr/share/info/dir',
        '640 root:shadow /etc/shadow',
        '4755 root:root /usr/bin/passwd',
        '1777 root:root /tmp',
        '700 root:root /root',
        '644 root:root /etc/passwd',
        '755 root:root /usr/bin/jq',
        'root:0:0:/root:/bin/bash',
        'nobody:65534:65534:/nonexistent:/usr/sbin/nologin',
        '',
      ].join('\n'),
    )
  })

  test('two VMs from one base at once: writes in one are invisible in the other, the base is unchanged', async () => {
    const [a, b] = await Promise.all([up({ image: base }), up({ image: base })])
    try {
      await a.exec('echo from-a > /root/mark && apt-get --version >/dev/null && rm /usr/bin/jq && sync')
      expect(await a.readFile('/root/mark')).toBe('from-a\n')
      const inB = await b.exec('cat /root/mark; command -v jq', { reject: false })
      expect(inB.stdout).toBe('/usr/bin/jq\n')
      expect(inB.stderr).toContain('No such file')
      await b.exec('echo from-b > /root/mark')
      expect(await a.readFile('/root/mark')).toBe('from-a\n')
    } finally {
      await Promise.all([a.destroy(), b.destroy()])
    }
    expect(await sha256(base)).toBe(baseSum)
  })

  test('snapshot and restore in place bring back the disk with the memory', async () => {
    await using vm = await up({ image: base })
    // Not in the page cache at the snapshot: after a restore the guest reads the disk.
    await vm.exec('echo provisioned > /root/state && sync && echo 3 > /proc/sys/vm/drop_caches')
    await vm.snapshot('clean')
    // Overwritten in place (same disk block) and dropped from the cache: only the disk knows it.
    await vm.exec(
      "printf 'dirtydirtyd' | dd of=/root/state conv=notrunc,fsync 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches",
    )
    expect((await vm.exec('cat /root/state')).stdout).toBe('dirtydirtyd\n')
    await vm.restore('clean')
    expect((await vm.exec('cat /root/state')).stdout).toBe('provisioned\n')
    // The filesystem stays usable after a second restore.
    await vm.restore('clean')
    expect((await vm.exec('echo again > /root/state && sync && cat /root/state')).stdout).toBe('again\n')
    // A save under the same name that fails (its state cannot be written: the partial file is a
    // link into a directory that does not exist) leaves the old snapshot whole, disk included.
    symlinkSync(
      '/nonexistent/vmctl-snapshot',
      join(new VmDirectory(vm.name).path, 'snapshots', 'clean.partial'),
    )
    await expect(vm.snapshot('clean')).rejects.toThrow()
    await vm.restore('clean')
    expect((await vm.exec('cat /root/state')).stdout).toBe('provisioned\n')
  })

  test('host directories: a read-only mount refuses writes, a writable one reaches the host', async () => {
    const ro = join(work, 'ro')
    const rw = join(work, 'rw')
    mkdirSync(ro)
    mkdirSync(rw)
    writeFileSync(join(ro, 'input.txt'), 'from the host\n')
    await using vm = await up({
      image: base,
      mounts: [
        { host: ro, guest: '/mnt/ro' },
        { host: rw, guest: '/srv/out', writable: true },
      ],
    })
    expect((await vm.exec('cat /mnt/ro/input.txt')).stdout).toBe('from the host\n')
    const write = await vm.exec('echo x > /mnt/ro/new.txt', { reject: false })
    expect(write.exitCode).not.toBe(0)
    expect(write.stderr).toContain('Read-only file system')
    expect(existsSync(join(ro, 'new.txt'))).toBe(false)
    await vm.exec('echo from-the-guest > /srv/out/result.txt')
    expect(readFileSync(join(rw, 'result.txt'), 'utf8')).toBe('from-the-guest\n')
    // The CLI's working directory follows the mounts.
    expect(vm.guestPathOf(join(rw, 'sub'))).toBe('/srv/out/sub')
    expect(vm.guestPathOf('/etc')).toBeUndefined()
  })

  test('an image vmctl never touched (partitioned like a cloud image, no agent) boots with the agent handed in', async () => {
    const busybox = which('busybox', '/bin:/usr/bin')!
    // At a fixed place, made once: the same image each run reuses its VM template.
    const image = join(cache, 'test-images', 'foreign.raw')
    if (!existsSync(image)) {
      mkdirSync(join(cache, 'test-images'), { recursive: true })
      await foreignImage(`${image}.partial`, busybox)
      renameSync(`${image}.partial`, image)
    }
    const before = await sha256(image)
    await using vm = await up({ image })
    const r = await vm.exec('cat /etc/os-release; ls /; test -e /vmctl || echo no-agent-here')
    expect(r.stdout).toContain('PRETTY_NAME="A foreign image"')
    expect(r.stdout).toContain('no-agent-here')
    expect((await vm.info()).osRelease).toBe('A foreign image')
    await vm.exec('touch /root/written && sync')
    expect(await sha256(image)).toBe(before)
  })

  test('an image without a root filesystem fails the boot, saying what is missing', async () => {
    // An empty MBR: a disk by its partition table (so it passes the check before boot), no root.
    const image = join(cache, 'test-images', 'empty-mbr.raw')
    if (!existsSync(image)) {
      mkdirSync(join(cache, 'test-images'), { recursive: true })
      const disk = Buffer.alloc(4 * 1024 * 1024)
      disk.writeUInt16LE(0xaa55, 510)
      writeFileSync(image, disk)
    }
    const error = await VM.up({ image }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BootFailedError)
    expect((error as Error).message).toContain('no ext4 root filesystem with /bin/sh on the image disk')
  })

  test('provisioning: the layer is made once; the next boot starts from it, faster, with the package', async () => {
    const steps = [
      'apt-get install -y --no-install-recommends hello || (apt-get update && apt-get install -y --no-install-recommends hello)',
      `echo provisioned-${TEST_IMAGE.distribution} > /etc/provisioned`,
    ]
    removeLayersWith(steps)
    let started = performance.now()
    const first = await up({ image: base, provision: steps })
    const firstMs = performance.now() - started
    expect((await first.exec('hello')).stdout).toBe('Hello, world!\n')
    await first.destroy()
    started = performance.now()
    await using second = await up({ image: base, provision: steps })
    const secondMs = performance.now() - started
    expect((await second.exec('hello; cat /etc/provisioned')).stdout).toBe(
      'Hello, world!\nprovisioned-bookworm\n',
    )
    console.log(
      `provisioned image: first VM.up ${(firstMs / 1000).toFixed(1)} s (provisioning), second ${(secondMs / 1000).toFixed(1)} s`,
    )
    expect(secondMs).toBeLessThan(firstMs / 2)
    const layer = layerFiles().find((f) => f.endsWith('.qcow2') && !f.includes('staging'))
    expect(layer).toBeDefined()
    // This run's layer is new, so its VM template is too: remove it rather than leave 180 MB behind.
    const identity = imageIdentity(join(layersDir(cache), layer!), cache)
    for (const t of listTemplates(cache))
      if (t.summary.includes(`image ${identity}`)) removeTemplate(cache, t.key)
  })

  test('a failing provisioning step stops with its output and leaves no cache entry', async () => {
    const steps = ['echo step-one-ran', 'echo about-to-fail; echo on-stderr >&2; exit 3', 'echo never']
    const before = layerFiles()
    const error = await VM.up({ image: base, provision: steps }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProvisionError)
    const failure = error as ProvisionError
    expect(failure.exitCode).toBe(3)
    expect(failure.step).toBe(steps[1])
    expect(failure.output).toContain('about-to-fail')
    expect(failure.output).toContain('on-stderr')
    expect(failure.message).toContain('provisioning step 2 failed with exit code 3')
    expect(layerFiles()).toEqual(before)
  })
})

function layerFiles(): string[] {
  try {
    return readdirSync(layersDir(cache)).sort()
  } catch {
    return []
  }
}

function removeLayersWith(steps: string[]): void {
  for (const file of layerFiles()) {
    if (!file.endsWith('.json')) continue
    const meta = JSON.parse(readFileSync(join(layersDir(cache), file), 'utf8'))
    if (JSON.stringify(meta.steps) === JSON.stringify(steps)) {
      rmSync(join(layersDir(cache), file))
      rmSync(join(layersDir(cache), file.replace(/\.json$/, '.qcow2')), { force: true })
    }
  }
}
