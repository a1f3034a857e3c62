import { describe, expect, test } from 'vitest'
import { kernelCommandLine, type QemuCommandPlan, qemuArguments } from './qemu-command.js'
import { parseUsernetForwards } from './qmp-client.js'

const plan: QemuCommandPlan = {
  binary: 'qemu-system-x86_64',
  accel: 'tcg',
  kernel: {
    image: '/k/vmlinux',
    format: 'elf',
    release: '6.1.0',
    modulesDir: '/k/lib/modules/6.1.0',
    source: 'cache',
  },
  initramfs: '/c/init.cpio',
  runtimeDisk: '/c/rt.ext4',
  memoryMiB: 512,
  cpus: 2,
  hostname: 'vm-1',
  hostRoot: '/',
  modulesDir: '/k/lib/modules/6.1.0',
  ports: [
    { guestPort: 80, protocol: 'tcp', hostPort: 0 },
    { guestPort: 5432, protocol: 'tcp', hostPort: 0 },
    { guestPort: 53, protocol: 'udp', hostPort: 0 },
  ],
  qmpSocket: '/r/qmp.sock',
  agentSocket: '/r/port.sock',
  tscKhz: 2_500_000,
  kernelArgs: ['foo=bar'],
  extraArgs: ['-device', 'x'],
}

describe('QEMU command', () => {
  test("guest-setup's port: a second virtio-serial port on its own socket, only when asked for", () => {
    const args = qemuArguments({ ...plan, setupSocket: '/r/setup,1.sock' }).join(' ')
    expect(args).toContain('-chardev socket,id=setup,path=/r/setup,,1.sock,server=on,wait=off')
    expect(args).toContain('-device virtserialport,chardev=setup,name=vmctl.setup')
    expect(qemuArguments(plan).join(' ')).not.toContain('vmctl.setup')
  })

  test('image mode: the overlay as a serial-tagged disk instead of the host root; mounts read-only unless writable', () => {
    const image = {
      ...plan,
      image: { overlay: '/r/disk,1.qcow2' },
      mounts: [
        { host: '/src', guest: '/mnt/src', writable: false },
        { host: '/out', guest: '/out', writable: true },
      ],
    }
    const args = qemuArguments(image).join(' ')
    expect(args).toContain('-drive if=none,id=image,file=/r/disk,,1.qcow2,format=qcow2,discard=unmap')
    expect(args).toContain('virtio-blk-device,drive=image,serial=vmctl-image')
    expect(args).not.toContain('mount_tag=hostroot')
    expect(args).toContain('local,id=vmctl_mount0,path=/src,security_model=none,readonly=on')
    expect(args).toContain('local,id=vmctl_mount1,path=/out,security_model=none -device')
    const cmdline = kernelCommandLine(image)
    expect(cmdline).toContain('vmctl_root=disk:vmctl-image vmctl_chroot=/newroot')
    expect(cmdline).not.toContain('vmctl_modules=')
    expect(cmdline).toContain('vmctl_mounts=vmctl_mount0:/mnt/src:ro,vmctl_mount1:/out:rw')
  })

  test('microvm under TCG with the TSC hint, user args last', () => {
    const args = qemuArguments(plan)
    expect(args.slice(0, 2)).toEqual(['-machine', 'microvm,pit=off,pic=off,isa-serial=on,rtc=on'])
    expect(args).toContain('tcg,thread=multi')
    // TCG runs `rep movsb` a byte per step: the guest copies with `rep movsq` without ERMS.
    expect(args[args.indexOf('-cpu') + 1]).toBe('max,-erms')
    expect(args.slice(-2)).toEqual(['-device', 'x'])
    expect(args.join(' ')).toContain(
      'hostfwd=tcp:127.0.0.1:0-:80,hostfwd=tcp:127.0.0.1:0-:5432,hostfwd=udp:127.0.0.1:0-:53',
    )
    expect(args.join(' ')).toContain('path=/,security_model=none,readonly=on,multidevs=remap')
    const cmdline = kernelCommandLine(plan)
    expect(cmdline).toContain('tsc_early_khz=2500000')
    expect(cmdline).toContain('vmctl_root=9p:hostroot')
    expect(cmdline.endsWith('foo=bar')).toBe(true)
  })

  test('KVM needs no TSC hint; no host root means no 9p device', () => {
    const args = qemuArguments({ ...plan, accel: 'kvm', hostRoot: undefined, ports: [] })
    expect(args).toContain('kvm')
    expect(args.join(' ')).not.toContain('virtio-9p')
    expect(args.join(' ')).not.toContain('hostfwd')
    expect(kernelCommandLine({ ...plan, accel: 'kvm' })).not.toContain('tsc_early_khz')
  })

  test('vsock: a vhost-vsock device whose fd and CID vsock-bridge fills in, and the agent told so', () => {
    const args = qemuArguments({ ...plan, vsockPort: 7000 }).join(' ')
    expect(args).toContain('vhost-vsock-device,guest-cid=@VSOCK_CID@,vhostfd=@VSOCK_FD@')
    expect(kernelCommandLine({ ...plan, vsockPort: 7000 })).toContain('vmctl_agent=vsock:7000')
    expect(qemuArguments(plan).join(' ')).not.toContain('vsock')
    expect(kernelCommandLine(plan)).not.toContain('vmctl_agent')
  })

  test('host ports are read back from info usernet', () => {
    const text =
      'Hub -1 (net0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n' +
      '  TCP[HOST_FORWARD]   9       127.0.0.1 46015       10.0.2.15  8080     0     0\r\n' +
      '  TCP[HOST_FORWARD]  10       127.0.0.1 40001       10.0.2.15    22     0     0\r\n' +
      '  UDP[HOST_FORWARD]  11       127.0.0.1 58418       10.0.2.15    53     0     0\r\n'
    expect([...parseUsernetForwards(text)]).toEqual([
      ['8080', 46015],
      ['22', 40001],
      ['53/udp', 58418],
    ])
  })
})
