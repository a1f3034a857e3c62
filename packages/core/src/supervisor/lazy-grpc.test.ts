import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build, type Plugin } from 'esbuild'
import { afterAll, describe, expect, test } from 'vitest'

const run = promisify(execFile)
const coreRoot = fileURLToPath(new URL('../../', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-lazy-grpc-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Runs `script` in a fresh Node; prints whatever it logs as JSON. */
async function inNode(script: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, ['-e', script], { cwd: coreRoot })
  return JSON.parse(stdout)
}

/** Node's own modules that grpc-js's index loads and the light part (status, Metadata) does not. */
const HTTP2 = "process.moduleLoadList.some((m) => m === 'NativeModule http2')"

// scripts/lazy-grpc-plugin.mjs: the supervisor's core and the `vmctl` bundle load grpc-js only
// when a gRPC call is made (a restore and `vmctl run` make none).
describe('lazy grpc-js in the bundles', () => {
  test('the built supervisor core loads without grpc-js', async () => {
    const core = join(coreRoot, 'dist/supervisor-core.cjs')
    expect(await inNode(`require(${JSON.stringify(core)}); console.log(${HTTP2})`)).toBe(false)
  })

  test('status and Metadata without grpc-js; the rest, clients included, the real package on first use', async () => {
    const pluginFile = join(coreRoot, 'scripts/lazy-grpc-plugin.mjs')
    const { lazyGrpc } = (await import(pluginFile)) as { lazyGrpc: Plugin }
    // The plugin resolves '@grpc/grpc-js' itself (to lazy-grpc.cjs, beside it): the entry may be anywhere.
    const entry = join(scratch, 'entry.mjs')
    const outfile = join(scratch, 'bundle.cjs')
    writeFileSync(
      entry,
      `import { status, Metadata, credentials, makeGenericClientConstructor } from '@grpc/grpc-js'
export const light = () => ({ ok: status.OK, unavailable: status.UNAVAILABLE, metadata: new Metadata().toJSON() })
export const Client = makeGenericClientConstructor({}, 'test.Service')
export const insecure = () => credentials.createInsecure()
export { Metadata }`,
    )
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      plugins: [lazyGrpc],
    })
    const result = await inNode(`
      const bundle = require(${JSON.stringify(outfile)})
      const atLoad = ${HTTP2}
      const light = bundle.light()
      const afterLight = ${HTTP2}
      const serviceName = bundle.Client.serviceName
      const afterClient = ${HTTP2}
      const insecure = bundle.insecure()._isSecure()
      const client = new bundle.Client('unix:///nonexistent', bundle.insecure())
      const isClient = typeof client.getChannel === 'function'
      client.close()
      console.log(JSON.stringify({ atLoad, light, afterLight, serviceName, afterClient, insecure, isClient }))`)
    expect(result).toEqual({
      atLoad: false,
      light: { ok: 0, unavailable: 14, metadata: {} },
      afterLight: false,
      serviceName: 'test.Service',
      afterClient: true,
      insecure: false,
      isClient: true,
    })
  })
})
