import { InvalidOptionsError } from '../errors.js'
import { logger } from '../log.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { type AttachShell, hostsScript, tellOthers, withHostsLock } from './guest-hosts.js'
import type { GuestShell, JoinedNetworks } from './joined-networks.js'
import { type MemberInfo, validateNetworkName } from './network-directory.js'
import { templateMac } from './template-mac.js'
import { VmNetwork } from './vm-network.js'

const log = logger('network')

export type { GuestShell, JoinedNetworks } from './joined-networks.js'

/**
 * A network in `VM.up({ networks })`: the network, or it with the names the VM has on it. A network
 * given by name is joined as `VmNetwork.shared(name)` does (created when none of that name runs):
 * the form vmctl.toml and `vmctl up --network` use.
 */
export type NetworkAttachment =
  | VmNetwork
  | string
  | {
      network: VmNetwork | string
      /** The name other members reach it by. Default: the VM's name. */
      hostname?: string
      /** More names for it on this network (testcontainers' network aliases). */
      aliases?: string[]
    }

/** The members this process made, by VM name, to tell them of later members over their own connection. */
const handles = new Map<string, WeakRef<GuestShell>>()

interface Membership {
  network: VmNetwork
  ip: string
  mac: string
}

const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/

/** Checks the attachments of `VM.up({ networks })` before anything starts. */
export function checkAttachments(attachments: unknown): asserts attachments is NetworkAttachment[] {
  if (!Array.isArray(attachments))
    throw new InvalidOptionsError(
      'VM option networks must be an array of VmNetwork or { network, hostname, aliases }',
    )
  const seen = new Set<string>()
  for (const entry of attachments) {
    const network = isBare(entry) ? entry : (entry as { network?: unknown })?.network
    if (!(network instanceof VmNetwork) && typeof network !== 'string')
      throw new InvalidOptionsError(
        'VM option networks: each entry must be a VmNetwork (from VmNetwork.create()), a network name, or { network, hostname?, aliases? }',
      )
    const name = typeof network === 'string' ? network : network.name
    if (typeof network === 'string') validateNetworkName(network)
    if (seen.has(name)) throw new InvalidOptionsError(`VM option networks names network ${name} twice`)
    seen.add(name)
    if (isBare(entry)) continue
    const { hostname, aliases, ...rest } = entry as Exclude<NetworkAttachment, VmNetwork | string>
    const unknown = Object.keys(rest).filter((k) => k !== 'network')
    if (unknown.length)
      throw new InvalidOptionsError(
        `VM option networks: unknown field ${unknown[0]} (known: network, hostname, aliases)`,
      )
    for (const name of [...(hostname === undefined ? [] : [hostname]), ...(aliases ?? [])])
      if (typeof name !== 'string' || !NAME.test(name))
        throw new InvalidOptionsError(
          `VM option networks: ${JSON.stringify(name)} is not a valid host name (letters, digits, "-" and ".", up to 63)`,
        )
  }
}

/** Asks each network's switch for a port, an address and a MAC for the VM `member`. */
export async function joinNetworks(
  member: string,
  attachments: NetworkAttachment[],
): Promise<JoinedNetworks> {
  const memberships: Membership[] = []
  const sockets: string[] = []
  // Handles opened here for networks given by name: once the VM is bound it holds the network.
  const opened: VmNetwork[] = []
  const letGo = () => {
    for (const network of opened) void network.close()
  }
  const leave = () => {
    for (const m of memberships) void m.network.control.request({ op: 'leave', member }).catch(() => {})
    letGo()
  }
  try {
    for (const entry of attachments) {
      const given = isBare(entry) ? entry : entry.network
      const network = typeof given === 'string' ? await VmNetwork.shared(given) : given
      if (typeof given === 'string') opened.push(network)
      const names = isBare(entry) ? {} : { hostname: entry.hostname, aliases: entry.aliases }
      const reply = await network.control.request({ op: 'join', member, ...names })
      memberships.push({ network, ip: reply.ip as string, mac: reply.mac as string })
      sockets.push(reply.socket as string)
    }
  } catch (error) {
    leave()
    throw error
  }
  return {
    sockets,
    leave,
    async configure(vm, attach) {
      const started = performance.now()
      const ms = () => Math.round(performance.now() - started)
      handles.set(member, new WeakRef(vm))
      const vmControl = new VmDirectory(member).controlSocket
      for (const [nic, m] of memberships.entries())
        await m.network.control.request({ op: 'bind', member, vmControl, nic })
      // Each network's names, as one script per network, and the booted members that need them.
      const scripts = new Map<string, string[]>()
      for (const m of memberships) {
        const names = await m.network.control.request({ op: 'names', member })
        const script = hostsScript(m.network.name, names.version as number, names.members as MemberInfo[])
        for (const other of [member, ...(names.behind as string[])])
          scripts.set(other, [...(scripts.get(other) ?? []), script])
      }
      // Its own NICs and names in one command: each costs a round trip through the agent (seconds
      // for a restored VM's first one under TCG). The other members are told meanwhile.
      const own = [...memberships.map((m, index) => nicScript(index, m)), ...(scripts.get(member) ?? [])]
      scripts.delete(member)
      const asked = ms()
      const times = { own: 0, others: 0 }
      await Promise.all([
        withHostsLock(member, () => vm.exec(own.join('\n'), { timeoutMs: 60_000 })).then(
          () => (times.own = ms()),
        ),
        tellOthers(scripts, (name) => handles.get(name)?.deref(), attach).then(() => (times.others = ms())),
      ])
      letGo()
      log(
        '%s: on %s (switch %d ms, own setup at %d ms, %d others told at %d ms)',
        member,
        memberships.map((m) => `${m.network.name} ${m.ip}`).join(', '),
        asked,
        times.own,
        scripts.size,
        times.others,
      )
    },
  }
}

function isBare(entry: unknown): entry is VmNetwork | string {
  return entry instanceof VmNetwork || typeof entry === 'string'
}

/**
 * The VM `VM.up()` made, once its NICs are addressed and its names known, when it joined networks;
 * a VM that cannot be set up on them is destroyed, and the error thrown. `attach` reaches members
 * made in other processes (`VM.attach`).
 */
export async function onItsNetworks<T extends GuestShell & { destroy(): Promise<void> }>(
  vm: T,
  networks: JoinedNetworks | undefined,
  attach: AttachShell,
): Promise<T> {
  if (!networks) return vm
  try {
    await networks.configure(vm, attach)
  } catch (error) {
    networks.leave()
    await vm.destroy().catch(() => {})
    throw error
  }
  return vm
}

/**
 * Finds the NIC by its template MAC, gives it the member's MAC and address, and brings it up. The
 * first network also gets the multicast route, so a sender that names no interface (the usual
 * case) reaches the other members rather than the user-mode NIC's default route.
 */
function nicScript(index: number, m: Membership): string {
  const template = templateMac(index)
  // Shell built-ins and busybox: the first start of a program over the 9p root costs a restored
  // guest 1.4-3.2 s under TCG for iproute2's ip, grep or flock (their libraries are read too);
  // busybox (static, one file) costs no more than the exec's own round trip (0.4 s). iproute2's
  // `ip -batch` where there is no busybox (an image without it).
  return `dev=
for d in /sys/class/net/*; do read a < "$d/address"; [ "$a" = ${template} ] && dev=\${d##*/}; done
[ -n "$dev" ] || { echo "vmctl: no NIC with MAC ${template} (network ${m.network.name})" >&2; exit 1; }
set -- "link set dev $dev address ${m.mac}" "addr add ${m.ip}/24 dev $dev" "link set dev $dev up" ${
    index === 0 ? `"route add 224.0.0.0/4 dev $dev"` : ''
  }
if command -v busybox >/dev/null; then for c; do busybox ip $c || exit 1; done
else printf '%s\\n' "$@" | ip -batch - || exit 1; fi`
}
