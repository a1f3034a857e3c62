import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { findCircles, type ImportEdge, readImportGraph } from './test-support/import-graph.js'

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const CORE = 'packages/core/src/'
const graph = readImportGraph(ROOT)
/** Only what ships: tests and their helpers may import from anywhere. */
const shipped = graph.edges.filter(
  (e) => !/\.(test|nested|typecheck)\.ts$/.test(e.from) && !e.from.includes('/test-support/'),
)

function edgesWhere(from: (path: string) => boolean, to: (path: string) => boolean): string[] {
  return shipped.filter((e) => from(e.from) && to(e.to)).map(show)
}

function show(e: ImportEdge): string {
  return `${e.from} → ${e.to}${e.dynamic ? ' (dynamic import)' : ''}`
}

const inCore = (folder: string) => (path: string) => path.startsWith(`${CORE}${folder}/`)

describe('the import graph of packages/*/src', () => {
  test('has no circle, static or through a dynamic import() (import type aside)', () => {
    // A sanity check on the reader: it sees the lazy loads that keep start-up cheap.
    expect(graph.edges.length).toBeGreaterThan(300)
    expect(shipped.some((e) => e.dynamic && e.to === `${CORE}kernels/default-kernel.ts`)).toBe(true)
    expect(findCircles(graph.edges).map((circle) => circle.join(' → '))).toEqual([])
  })

  test('the reader finds a circle and names it, through a dynamic import too', () => {
    const edge = (from: string, to: string, dynamic = false) => ({ from, to, dynamic })
    expect(
      findCircles([
        edge('a.ts', 'b.ts'),
        edge('b.ts', 'c.ts', true),
        edge('c.ts', 'a.ts'),
        edge('c.ts', 'd.ts'),
      ]),
    ).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']])
    expect(findCircles([edge('a.ts', 'b.ts'), edge('b.ts', 'c.ts')])).toEqual([])
  })

  test('nothing in supervisor/ imports the orchestrator but its entry point', () => {
    // supervisor-load.ts is the entry point's second half (what it loads once QEMU is started).
    const entry = [`${CORE}supervisor/supervisor-main.ts`, `${CORE}supervisor/supervisor-load.ts`]
    expect(
      edgesWhere(
        (from) => !entry.includes(from),
        (to) => to === `${CORE}supervisor/supervisor.ts`,
      ),
    ).toEqual([])
  })

  test('no arrow runs back up where issue 12 removed one', () => {
    // The facade (vm/vm.ts) and the package's surface (index.ts) are the top: below them, what a
    // part needs of a VM handle is given to it (network/guest-hosts.ts takes an attach function).
    expect(
      edgesWhere(
        (from) => from !== `${CORE}index.ts`,
        (to) => to === `${CORE}vm/vm.ts`,
      ),
    ).toEqual([])
    expect(
      edgesWhere(
        (from) => from.startsWith(CORE),
        (to) => to === `${CORE}index.ts`,
      ),
    ).toEqual([])
    // Templates sit below the supervisor and the VM; config and images below the VM's options.
    expect(edgesWhere(inCore('templates'), (to) => inCore('supervisor')(to) || inCore('vm')(to))).toEqual([])
    expect(edgesWhere((from) => inCore('config')(from) || inCore('images')(from), inCore('vm'))).toEqual([])
  })

  test('the back arrows issue 16 found stay gone: each folder imports only from those below it', () => {
    // qemu/ builds command lines: below the network (the template MAC lives in qemu/template-mac.ts).
    expect(
      edgesWhere(inCore('qemu'), (to) => ['network', 'supervisor', 'vm'].some((f) => inCore(f)(to))),
    ).toEqual([])
    // kernels/ is below every VM: what it needs of the runtime directory it reads through paths.ts
    // and read-launch-spec.ts, not the supervisor's VmDirectory.
    expect(
      edgesWhere(inCore('kernels'), (to) => ['network', 'supervisor', 'vm'].some((f) => inCore(f)(to))),
    ).toEqual([])
    // network/ is below the VM facade: the shared keeper's client is host/shared-keeper-client.ts.
    expect(edgesWhere(inCore('network'), inCore('vm'))).toEqual([])
    // The supervisor is below vm/ but for the agent's client (vm/agent-client.ts: the call lane,
    // gRPC for an agent without it): no other arrow may join these two.
    expect(edgesWhere(inCore('supervisor'), inCore('vm'))).toEqual([
      `${CORE}supervisor/agent-warm-up.ts → ${CORE}vm/agent-client.ts`,
      `${CORE}supervisor/first-command-rehearsal.ts → ${CORE}vm/agent-client.ts`,
      `${CORE}supervisor/guest-power.ts → ${CORE}vm/agent-client.ts`,
      `${CORE}supervisor/network-rejoin.ts → ${CORE}vm/agent-client.ts`,
      `${CORE}supervisor/spare-park.ts → ${CORE}vm/agent-client.ts`,
    ])
  })
})
