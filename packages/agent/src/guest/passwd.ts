import { readFileSync } from 'node:fs'

export interface PasswdEntry {
  name: string
  uid: number
  gid: number
  home: string
}

/** Looks a user up (by name or uid) in the root's /etc/passwd. */
export function lookupUser(etcDir: string, user: string): PasswdEntry | undefined {
  let text: string
  try {
    text = readFileSync(`${etcDir}/passwd`, 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const [name, , uid, gid, , home] = line.split(':')
    if (!name || uid === undefined || gid === undefined) continue
    if (name === user || uid === user) return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' }
  }
  return /^\d+$/.test(user) ? { name: user, uid: Number(user), gid: Number(user), home: '/' } : undefined
}

/** A group's gid by name or number, from the root's /etc/group. */
export function lookupGroup(etcDir: string, group: string): number | undefined {
  if (/^\d+$/.test(group)) return Number(group)
  try {
    for (const line of readFileSync(`${etcDir}/group`, 'utf8').split('\n')) {
      const [name, , gid] = line.split(':')
      if (name === group && gid !== undefined) return Number(gid)
    }
  } catch {}
  return undefined
}

/** A user as a command runs as them: the passwd entry, the primary group, and all their groups. */
export interface CommandUser extends PasswdEntry {
  /** The primary group first, then every group of the root's /etc/group that lists the user. */
  groups: number[]
}

/**
 * The groups a login gives a user, as initgroups(3) does: the primary group, then every group
 * whose member list in the root's /etc/group names the user (`su` and sshd give postgres
 * `ssl-cert` this way). The command's root is read, never the agent's own /etc. A gid no process
 * can hold (over 4294967294: a typo in /etc/group) is passed over, rather than failing every
 * command of the user with a bare EINVAL.
 */
/** The largest gid a process can hold ((gid_t)-1 means "unchanged"): group-list.c's bound. */
const MAX_GID = 4294967294

export function userGroups(etcDir: string, name: string, primary: number[]): number[] {
  const groups = new Set(primary)
  let text = ''
  try {
    text = readFileSync(`${etcDir}/group`, 'utf8')
  } catch {}
  for (const line of text.split('\n')) {
    const [, , gid, members] = line.split(':')
    if (!gid || !members || !/^\d+$/.test(gid) || Number(gid) > MAX_GID) continue
    if (members.trim().split(',').includes(name)) groups.add(Number(gid))
  }
  return [...groups]
}
