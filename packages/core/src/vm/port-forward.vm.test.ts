import dgram from 'node:dgram'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { InvalidOptionsError, VmctlError } from '../errors.js'
import { VM } from './vm.js'

/**
 * A guest port forwarded while the VM runs (NixOS's forward_port, testcontainers' mapped ports
 * without knowing them before the boot): QEMU's user network gets the rule, every handle of the VM
 * learns the host port, and the VM keeps it across a stop and start.
 */
let vm: VM
beforeAll(async () => {
  vm = await VM.up({ ports: ['5353/udp'] }) // one UDP port at the boot
})
afterAll(async () => {
  await vm?.destroy()
})

/** A guest server that writes `greeting` to the first connection, listening once this resolves. */
async function greeter(port: number, greeting: string): Promise<void> {
  const server = vm.spawn(`echo ${greeting} | exec busybox nc -l -p ${port}`)
  await server.waitForPort(port)
}

/** What a host connection to 127.0.0.1:`port` reads until the guest closes it. */
function readFromHost(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      if (text.includes('\n')) socket.destroy()
    })
    socket.on('close', () => resolve(text))
    socket.on('error', reject)
  })
}

/** Sends `text` to 127.0.0.1:`port` over UDP until an answer comes (a datagram may be lost), and returns it. */
async function udpRoundTrip(port: number, text: string): Promise<string> {
  const socket = dgram.createSocket('udp4')
  try {
    const answer = new Promise<string>((resolve) => socket.once('message', (m) => resolve(m.toString())))
    for (let tries = 0; tries < 50; tries++) {
      socket.send(text, port, '127.0.0.1')
      const got = await Promise.race([
        answer,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
      ])
      if (got !== undefined) return got
    }
    throw new Error(`no UDP answer from 127.0.0.1:${port}`)
  } finally {
    socket.close()
  }
}

/**
 * A guest UDP server on `port` that prints the first datagram and answers it with `answer`, bound
 * once this resolves (perl: Debian's busybox nc has no UDP, and perl-base is on every Debian).
 */
async function udpAnswerer(port: number, answer: string) {
  const server = vm.spawn([
    'perl',
    '-MIO::Socket::INET',
    '-e',
    `$s = IO::Socket::INET->new(LocalPort => ${port}, Proto => "udp") or die "bind: $!"; $| = 1; print "bound\n"; $s->recv($d, 100); print "got $d\n"; $s->send("${answer}\n")`,
  ])
  await server.waitForOutput(/bound/)
  return server
}

/** A host port that nothing listens on now. */
async function freeHostPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('forwardPort (vm)', () => {
  test('forwards a guest port from a host port the kernel picks; every handle of the VM knows it', async () => {
    const other = await VM.attach(vm.name) // attached before: told by the supervisor's event
    try {
      expect(() => vm.forwardedPort(8081)).toThrow(/call vm\.forwardPort\(8081\)/)
      await greeter(8081, 'hello-8081')
      const hostPort = await vm.forwardPort(8081)
      expect(hostPort).toBeGreaterThan(0)
      expect(vm.forwardedPort(8081)).toBe(hostPort)
      expect(await readFromHost(hostPort)).toBe('hello-8081\n')
      expect(await vm.forwardPort(8081), 'forwarded already: the same port').toBe(hostPort)
      await expect.poll(() => other.forwardedPort(8081)).toBe(hostPort)
      const later = await VM.attach(vm.name) // attached after: from the status
      expect(later.forwardedPort(8081)).toBe(hostPort)
      await later.close()
    } finally {
      await other.close()
    }
  })

  test('from a host port asked for; one that is taken is refused at once, naming the fix', async () => {
    const asked = await freeHostPort()
    await greeter(8082, 'hello-8082')
    expect(await vm.forwardPort(8082, { hostPort: asked })).toBe(asked)
    expect(await readFromHost(asked)).toBe('hello-8082\n')

    const taken = net.createServer().listen(0, '127.0.0.1')
    await new Promise((resolve) => taken.once('listening', resolve))
    try {
      const { port } = taken.address() as net.AddressInfo
      const started = performance.now()
      const error = await vm.forwardPort(8083, { hostPort: port }).catch((e) => e)
      expect(error).toBeInstanceOf(VmctlError)
      expect((error as VmctlError).code).toBe('PORT_IN_USE')
      expect((error as Error).message).toMatch(
        new RegExp(`host TCP port ${port} on 127\\.0\\.0\\.1 is taken .*leave hostPort out`),
      )
      expect(performance.now() - started).toBeLessThan(5_000)
      // The refusal recorded nothing: the same guest port forwards from another host port.
      expect(await vm.forwardPort(8083)).not.toBe(port)
      // A guest port forwarded already, asked from another host port: refused, naming its port.
      await expect(vm.forwardPort(8082, { hostPort: port })).rejects.toThrow(
        new RegExp(`guest TCP port 8082 is forwarded from host port ${asked} already`),
      )
    } finally {
      taken.close()
    }
  })

  test('UDP: a port given at the boot and one forwarded later, apart from TCP ports of the same number', async () => {
    const atBoot = vm.forwardedPort(5353, 'udp')
    expect(() => vm.forwardedPort(5353)).toThrow(
      /guest TCP port 5353 is not forwarded.*\(forwarded: .*5353\/udp/,
    )
    const first = await udpAnswerer(5353, 'pong-5353')
    expect(await udpRoundTrip(atBoot, 'ping')).toBe('pong-5353\n')
    expect(await first.waitForOutput(/got \w+/)).toBe('got ping') // the guest got the datagram

    const later = await vm.forwardPort(5454, { protocol: 'udp' })
    expect(vm.forwardedPort(5454, 'udp')).toBe(later)
    expect(() => vm.forwardedPort(5454)).toThrow(/vm\.forwardPort\(5454\)/)
    await udpAnswerer(5454, 'pong-5454')
    expect(await udpRoundTrip(later, 'ping')).toBe('pong-5454\n')
    await expect(vm.forwardPort(5454, { protocol: 'sctp' as 'udp' })).rejects.toBeInstanceOf(
      InvalidOptionsError,
    )
  })

  test('bad ports are refused before anything is asked of the VM', async () => {
    for (const [guest, hostPort] of [
      [0, undefined],
      [70_000, undefined],
      [1.5, undefined],
      [80, -1],
      [80, 65_536],
    ] as const)
      await expect(vm.forwardPort(guest, { hostPort })).rejects.toBeInstanceOf(InvalidOptionsError)
  })

  test('a stop and start keeps the forward, from the same host port', async () => {
    const hostPort = await vm.forwardPort(8084)
    await vm.stop()
    await vm.start()
    expect(vm.forwardedPort(8084)).toBe(hostPort)
    await greeter(8084, 'again-8084')
    expect(await readFromHost(hostPort)).toBe('again-8084\n')
  })
})
