import { describe } from 'vitest'
import { expect, test } from './index.js'

const bootId = async (vm: { exec(c: string): Promise<{ stdout: string }> }) =>
  (await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()

const seen: Record<string, string[]> = { vm: [], fileVm: [] }

describe('vitest fixtures (vm)', () => {
  test('vm is a fresh VM, and writes to it stay in it', async ({ vm }) => {
    seen.vm!.push(await bootId(vm))
    await vm.writeFile('/tmp/marker', 'first')
    await expect(vm).toHaveFile('/tmp/marker', 'first')
  })

  test('the next test gets another VM', async ({ vm }) => {
    seen.vm!.push(await bootId(vm))
    expect(seen.vm![0]).not.toBe(seen.vm![1])
    await expect(vm).not.toHaveFile('/tmp/marker')
  })

  test.scoped({ vmOptions: { ports: [8080], env: { GREETING: 'hi' } } })
  test('options come from test.scoped', async ({ vm }) => {
    expect(vm.forwardedPort(8080)).toBeGreaterThan(0)
    expect(await vm.exec('echo $GREETING')).toHaveStdout('hi')
  })
})

describe('vitest file-scoped fixture (vm)', () => {
  test('fileVm is booted on first use', async ({ fileVm }) => {
    seen.fileVm!.push(await bootId(fileVm))
    await fileVm.writeFile('/tmp/kept', 'x')
  })

  test('and the same VM serves the next test', async ({ fileVm }) => {
    seen.fileVm!.push(await bootId(fileVm))
    expect(seen.fileVm![1]).toBe(seen.fileVm![0])
    await expect(fileVm).toHaveFile('/tmp/kept')
  })
})
