import { expect } from 'vitest'
import { sharedNetwork, sharedVm, test, type VM, type VmNetwork } from './index.js'

// The README's snippet as written: a network shared by name, and two shared VMs that join it by
// name (one with a hostname), resolving each other.
const name = `readme-net-${process.pid}`
const it = test.extend<{ net: VmNetwork; db: VM; app: VM }>({
  net: sharedNetwork(name),
  db: sharedVm(`db-${name}`, { networks: [{ network: name, hostname: 'db' }] }),
  app: sharedVm(`app-${name}`, { networks: [name] }),
})

it('shared VMs join a shared network by name and resolve each other (vm)', async ({ net, db, app }) => {
  expect((await app.exec('getent hosts db')).stdout).toContain(db.ip(net))
  expect((await net.members()).map((member) => member.member).sort()).toEqual([app.name, db.name].sort())
})
