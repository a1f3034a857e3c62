// Bundles the VM supervisor into two CommonJS files: dist/supervisor.cjs, the entry
// (supervisor-main.js: a few KB, Node's own modules only), and dist/supervisor-core.cjs
// (supervisor-load.js and everything it imports, grpc-js included), which the entry loads through
// V8's code cache (supervisor/code-cache.ts) once it has started the VM's QEMU, so that QEMU's start
// runs beside the loading. Every VM.up() starts a supervisor process, and Node loading ~200 ES
// modules took ~0.35 s of a ~1 s template restore; one file loads in ~0.15 s.
import { readFileSync } from 'node:fs'
import { build } from 'esbuild'
import { dynamicImportAt } from '../dist/supervisor/code-cache.js'

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // @vmctl/agent's index also exports the paths of its bundle and native helpers, which use
  // import.meta.url; the supervisor never calls them (VM.up() resolves those paths and hands them
  // over in launch.json), and if it did they would throw, not misresolve.
  logOverride: { 'empty-import-meta': 'silent' },
}

await build({
  ...common,
  entryPoints: ['dist/supervisor/supervisor-load.js'],
  outfile: 'dist/supervisor-core.cjs',
})
// supervisor-core.cjs is loaded through V8's code cache, which code-cache.ts skips for a file with
// an import() (on Node 20 one fails once loaded from a cache): one added here would silently cost
// every VM.up() its compile. Refused at build time instead.
const bundle = readFileSync('dist/supervisor-core.cjs')
const at = dynamicImportAt(bundle)
if (at >= 0)
  throw new Error(
    `dist/supervisor-core.cjs has an import(), so it would load without its code cache: ${bundle.subarray(Math.max(0, at - 60), at + 60)}`,
  )
await build({
  ...common,
  entryPoints: ['dist/supervisor/supervisor-main.js'],
  outfile: 'dist/supervisor.cjs',
  plugins: [
    {
      name: 'supervisor-core',
      setup(build) {
        // The entry loads supervisor-core.cjs itself (code-cache.ts); this import is its fallback.
        build.onResolve({ filter: /\/supervisor-load\.js$/ }, () => ({
          path: './supervisor/supervisor-load.js',
          external: true,
        }))
      },
    },
  ],
})
