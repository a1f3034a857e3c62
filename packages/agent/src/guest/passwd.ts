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
