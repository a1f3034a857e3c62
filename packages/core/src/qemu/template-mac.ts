/**
 * The MAC every network NIC has on QEMU's command line, by position. The command line (and so the
 * template key) is then the same for every member: a restored member gets its own MAC and address
 * from `configure`, so joining a network costs a restore, not a cold boot. Locally administered
 * (02 bit) and apart from members' MACs (02:76:6d:…), so never on the wire before it is replaced.
 */
export function templateMac(index: number): string {
  return `06:76:6d:00:00:${index.toString(16).padStart(2, '0')}`
}
