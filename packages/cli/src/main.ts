#!/usr/bin/env node
// First, before any file but early-supervisor.js is loaded: a command that boots a VM starts its
// supervisor process now, so that its start-up runs beside this one's (early-supervisor.ts). An ES
// module's static imports are all loaded before its body runs, so the files this one needs next
// (core's code cache, version.js) are imported after the spawn; Node's own modules cost nothing.
import { existsSync } from 'node:fs'
import module from 'node:module'
import { fileURLToPath } from 'node:url'
import { startEarlySupervisor } from './early-supervisor.js'

const earlySupervisor = startEarlySupervisor(process.argv.slice(2))

type CliMain = typeof import('./cli-main.js')

/**
 * The CLI: the bundle (scripts/bundle-cli.mjs) through a compile cache, so that the ~1.1 MB of it
 * (CLI, core, grpc-js) are not compiled again on every run; tsc's modules where it is missing.
 * Node >= 22.1 has its own compile cache (module.enableCompileCache). On Node 20 the bundle goes
 * through requireWithCodeCache (V8's code cache). A script loaded from that cache has lost its
 * dynamic-import callback there, so the bundle has no import(): the lazily loaded execa, undici and
 * openpgp are imported by dist/cli-import.cjs, which Node compiles itself (scripts/bundle-cli.mjs).
 */
async function loadCli(): Promise<CliMain> {
  const bundle = fileURLToPath(new URL('./cli-main.cjs', import.meta.url))
  if (!existsSync(bundle)) return import('./cli-main.js')
  const compileCache = (module as { enableCompileCache?: () => unknown }).enableCompileCache
  if (compileCache) {
    compileCache()
    return module.createRequire(import.meta.url)(bundle) as CliMain
  }
  const { cacheDirFromEnv, requireWithCodeCache } = await import('@vmctl/core/code-cache')
  const cached = requireWithCodeCache<CliMain>(bundle, cacheDirFromEnv(), 'cli')
  process.once('exit', (code) => {
    if (code === 0) cached.save()
  })
  return cached.exports
}

// `vmctl --version` needs only two package.json files: answered without loading the bundle.
const [first, ...rest] = process.argv.slice(2)
if ((first === '--version' || first === '-v') && rest.length === 0)
  console.log((await import('./version.js')).versionText())
else (await loadCli()).main(earlySupervisor)
