import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { cacheDir, VM } from '../src/index.js'

/**
 * vsock for real on a host without /dev/vhost-vsock: an outer VM loads vhost_vsock and runs vmctl
 * against a nested VM over vsock. Both run under TCG (no nested KVM here), so the nested guest is
 * very slow; this runs as `pnpm test:vsock`, not in `pnpm test`.
 */
describe('vsock transport (nested vm)', () => {
  test(
    'a nested VM answers over vsock: exec, files, distinct CIDs, agent death and restart',
    async () => {
      await using outer = await VM.up({ memoryMiB: 3072, cpus: 2 })
      const loaded = await outer.exec('modprobe vhost_vsock && ls -l /dev/vhost-vsock', { reject: false })
      expect(loaded.exitCode, loaded.stderr).toBe(0)
      const fixture = fileURLToPath(new URL('./fixtures/vsock-inner.mjs', import.meta.url))
      const started = Date.now()
      const inner = await outer.exec([process.execPath, fixture], {
        reject: false,
        timeoutMs: 55 * 60_000,
        env: { VMCTL_RUNTIME_DIR: '/tmp/vmctl-nested', VMCTL_CACHE_DIR: cacheDir(), DEBUG: 'vmctl:*' },
      })
      const log = inner.stderr
        .split('\n')
        .filter((l) => !l.includes('vmctl:mux'))
        .slice(-40)
        .join('\n')
      console.log(`nested run: ${Math.round((Date.now() - started) / 1000)} s\n${log}\n${inner.stdout}`)
      expect(inner.exitCode, log).toBe(0)
      const findings = JSON.parse(inner.stdout.trim().split('\n').at(-1) ?? '{}')
      expect(findings.reservedCids[0]).not.toBe(findings.reservedCids[1])
      expect(findings.transport).toBe('vsock')
      expect(findings.cid).toBeGreaterThan(2)
      expect(findings.echo).toBe('hello over vsock\n')
      expect(findings.guestCid).toBe('live')
      expect(findings.bridgeRunning).toBe(true)
      expect(findings.roundTrip).toBe(true)
      expect(findings.agentDeathError).toMatch(/agent process died|agent/i)
      expect(findings.agentDeathMs).toBeLessThan(30_000)
      expect(findings.afterRestart).toBe('back\n')
    },
    60 * 60_000,
  )
})
