// PostgreSQL streaming replication between two VMs on one network: a primary and a standby that
// find each other by name, and a partition between them that the standby survives.
import { expect, test, VM, VmNetwork } from '@vmctl/vitest'
import { afterAll, beforeAll, describe } from 'vitest'

const BIN = 'bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)'
const START = `"$bin/pg_ctl" -D /tmp/pg/data -l /tmp/pg/server.log -w -o "-c listen_addresses='*' -k /tmp/pg" start`

/** psql as postgres on the guest's own server; the output without decoration. */
async function sql(vm: VM, query: string): Promise<string> {
  const r = await vm.exec(['psql', '-h', '/tmp/pg', '-U', 'postgres', '-tAc', query], { user: 'postgres' })
  return r.stdout.trim()
}

/** Polls `query` on `vm` until it returns `expected` or `timeoutMs` passes; returns the last answer. */
async function eventually(vm: VM, query: string, expected: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let last = await sql(vm, query)
  while (last !== expected && Date.now() < deadline) {
    await vm.exec('sleep 0.5')
    last = await sql(vm, query)
  }
  return last
}

describe('PostgreSQL streaming replication across two VMs (vm)', () => {
  let net: VmNetwork
  let primary: VM
  let standby: VM

  beforeAll(async () => {
    net = await VmNetwork.create()
    ;[primary, standby] = await Promise.all([
      VM.up({ networks: [{ network: net, hostname: 'primary' }] }),
      VM.up({ networks: [{ network: net, hostname: 'standby' }] }),
    ])
    for (const vm of [primary, standby]) await vm.exec('mkdir -p /tmp/pg && chown postgres: /tmp/pg')
    // The primary: a fresh cluster that lets the standby in for replication (trust: a test network).
    await primary.exec(
      `set -e; ${BIN}
      "$bin/initdb" -D /tmp/pg/data -U postgres --auth=trust >/tmp/pg/initdb.log
      echo 'host all,replication all 0.0.0.0/0 trust' >> /tmp/pg/data/pg_hba.conf
      ${START}`,
      { user: 'postgres' },
    )
    // The standby: a base backup of the primary, by its name, that keeps streaming (-R).
    await standby.exec(
      `set -e; ${BIN}
      "$bin/pg_basebackup" -h primary -U postgres -D /tmp/pg/data -R -X stream
      ${START}`,
      { user: 'postgres' },
    )
    await sql(primary, 'CREATE TABLE events (id serial PRIMARY KEY, body text)')
  })
  afterAll(async () => {
    await Promise.all([primary?.destroy(), standby?.destroy()])
    await net?.close()
  })

  test('the standby streams from the primary and serves reads', async () => {
    expect(await sql(standby, 'SELECT pg_is_in_recovery()')).toBe('t')
    await sql(primary, "INSERT INTO events (body) VALUES ('before')")
    expect(await eventually(standby, 'SELECT count(*) FROM events', '1')).toBe('1')
    expect(await sql(primary, 'SELECT client_addr FROM pg_stat_replication')).toBe(standby.ip(net))
  })

  test('a partition holds the standby back; after heal it catches up', async () => {
    await net.partition([primary], [standby])
    try {
      // Asynchronous replication: the primary commits alone.
      await sql(primary, "INSERT INTO events (body) SELECT 'during' FROM generate_series(1, 100)")
      expect(await eventually(standby, 'SELECT count(*) FROM events', '101', 3_000)).toBe('1')
    } finally {
      await net.heal()
    }
    // TCP retransmits what the partition dropped: the standby catches up without a reconnect.
    expect(await eventually(standby, 'SELECT count(*) FROM events', '101')).toBe('101')
  })
})
