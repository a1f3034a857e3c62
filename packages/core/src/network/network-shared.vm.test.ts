import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { VM, VmNetwork } from '../index.js'
import { isAlive, VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { SHARED_KEEPER_ENV } from '../vm/shared-vm-keeper.js'
import { NetworkDirectory, type NetworkState } from './network-directory.js'

const core = fileURLToPath(new URL('../../dist/index.js', import.meta.url))

/** A process (a test worker, say) that joins the network by name with a VM of its own, then idles. */
function owner(
  network: string,
  hostname: string,
): { child: ChildProcess; ready: Promise<string | undefined> } {
  // Without the run's keeper: it would hold the network until the run ends, and this test is
  // about the owners' own leases.
  const env = { ...process.env, [SHARED_KEEPER_ENV]: undefined }
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { VM } from ${JSON.stringify(core)}
const vm = await VM.up({ networks: [{ network: ${JSON.stringify(network)}, hostname: ${JSON.stringify(hostname)} }] })
console.log(vm.name)
setInterval(() => {}, 1000)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  )
  let out = ''
  child.stdout!.on('data', (chunk) => {
    out += chunk
  })
  const ready = pollUntil(() => out.includes('\n') && out.trim(), {
    timeoutMs: 400_000,
    everyMs: 200,
    stopIf: () => child.exitCode !== null,
  }).then((name) => name || undefined)
  return { child, ready }
}

async function ping(name: string, target: string): Promise<boolean> {
  const vm = await VM.attach(name)
  try {
    return (await vm.exec(`busybox ping -c 1 -W 3 ${target}`, { reject: false })).exitCode === 0
  } finally {
    await vm.close()
  }
}

// Two processes share one network by name, each with a member VM: a test run's workers.
describe('vm: a network shared by name across processes', () => {
  const children: ChildProcess[] = []
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL')
  })

  test('is created once, outlives one owner killed, and leaves nothing once both are', async () => {
    const name = `shared-${process.pid}`
    const a = owner(name, 'ha')
    const b = owner(name, 'hb')
    children.push(a.child, b.child)
    const [vmA, vmB] = await Promise.all([a.ready, b.ready])
    expect(vmA && vmB, 'both processes joined the network with a VM').toBeTruthy()
    const directory = new NetworkDirectory(name)
    const state = directory.readState()!
    expect(state.members.map((m) => m.names[0]).sort()).toEqual(['ha', 'hb'])
    expect(await ping(vmA!, 'hb'), 'ha reaches hb by name').toBe(true)
    expect(await ping(vmB!, 'ha'), 'hb reaches ha by name').toBe(true)

    a.child.kill('SIGKILL')
    // Its VM goes with its lease, and leaves the network; the switch stays for b.
    const aGone = await pollUntil(
      () => !existsSync(new VmDirectory(vmA!).path) && directory.readState()?.members.length === 1,
      { timeoutMs: 60_000, everyMs: 200 },
    )
    expect(aGone, `${vmA} and its membership are gone`).toBe(true)
    expect(isAlive(state.pid), 'the switch outlived one owner').toBe(true)
    const joined = await VmNetwork.create({ name })
    expect(joined.subnet, 'the same network, not a new one').toBe(state.subnet)
    expect((await joined.members()).map((m) => m.names[0])).toEqual(['hb'])
    // hb's frames still reach the switch: its ARP requests for an address nobody has.
    const framesIn = async () => {
      const { state: now } = await joined.control.request({ op: 'status' })
      return (now as NetworkState).members[0]!.port!.framesIn
    }
    const before = await framesIn()
    await ping(vmB!, state.subnet.replace(/0\/24$/, '250'))
    expect(await framesIn()).toBeGreaterThan(before)
    await joined.close()

    b.child.kill('SIGKILL')
    const gone = await pollUntil(
      () => !isAlive(state.pid) && !existsSync(directory.path) && !existsSync(new VmDirectory(vmB!).path),
      { timeoutMs: 60_000, everyMs: 200 },
    )
    expect(gone, `switch ${state.pid}, ${directory.path} and ${vmB} are gone`).toBe(true)
  }, 600_000)
})
