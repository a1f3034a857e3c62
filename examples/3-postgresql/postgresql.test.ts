// PostgreSQL in a VM that every test file of the run shares (booted once, started once), queried
// with psql inside the guest and with a Node client from the test through a forwarded port.
import { test as base, expect, sharedVm, type VM } from '@vmctl/vitest'
import pg from 'pg'

/** PostgreSQL's own cluster in the guest's /tmp (never the host's), started once per VM. */
const START = `
  set -e
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  exec 9>/tmp/pg/.lock && flock 9
  if [ ! -f /tmp/pg/data/PG_VERSION ]; then
    "$bin/initdb" -D /tmp/pg/data -U postgres --auth=trust >/tmp/pg/initdb.log
    echo 'host all all 0.0.0.0/0 trust' >> /tmp/pg/data/pg_hba.conf
  fi
  # 9>&-: the server must not inherit the lock, or it would hold it for ever.
  "$bin/pg_ctl" -D /tmp/pg/data status >/dev/null ||
    "$bin/pg_ctl" -D /tmp/pg/data -l /tmp/pg/server.log -w -o "-c listen_addresses='*' -k /tmp/pg" start 9>&-`

const test = base.extend<{ db: VM; postgres: VM }>({
  db: sharedVm('postgres-example', { ports: [5432] }),
  postgres: async ({ db }, use) => {
    await db.exec('mkdir -p /tmp/pg && chown postgres: /tmp/pg')
    await db.exec(START, { user: 'postgres' })
    await use(db)
  },
})

test('psql inside the VM (vm)', async ({ postgres }) => {
  const r = await postgres.exec(['psql', '-h', '/tmp/pg', '-U', 'postgres', '-tAc', 'SELECT 1'], {
    user: 'postgres',
  })
  expect(r).toHaveStdout('1')
  await expect(postgres).toHaveListeningPort(5432)
  await expect(postgres).toHaveProcess('postgres')
})

test('a Node client through the forwarded port (vm)', async ({ postgres }) => {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: postgres.forwardedPort(5432),
    user: 'postgres',
    connectionTimeoutMillis: 30_000,
  })
  await client.connect()
  try {
    const { rows } = await client.query('SELECT version() AS version, 1 + 1 AS two')
    expect(rows[0].two).toBe(2)
    expect(rows[0].version).toMatch(/^PostgreSQL \d+/)
  } finally {
    await client.end()
  }
})
