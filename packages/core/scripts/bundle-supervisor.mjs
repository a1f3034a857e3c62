// Bundles the VM supervisor into two CommonJS files: dist/supervisor.cjs, the entry
// (supervisor-main.js: a few KB, Node's own modules only), and dist/supervisor-core.cjs
// (supervisor-load.js and everything it imports, grpc-js included; evaluated on first use with
// VMCTL_BUNDLE_LAZY_GRPC=1: lazy-grpc.cjs), which the entry loads through
// V8's code cache (supervisor/code-cache.ts) once it has started the VM's QEMU, so that QEMU's start
// runs beside the loading. Every VM.up() starts a supervisor process, and Node loading ~200 ES
// modules took ~0.35 s of a ~1 s template restore; one file loads in ~0.15 s.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { build } from 'esbuild'
import { dynamicImportAt } from '../dist/supervisor/code-cache.js'

const require = createRequire(import.meta.url)
const lazyGrpcFile = new URL('./lazy-grpc.cjs', import.meta.url).pathname

/**
 * Every `@grpc/grpc-js` import in the supervisor's core but lazy-grpc.cjs's own resolves to
 * lazy-grpc.cjs, which requires the real package on first use (its comment says why). Its export
 * names are the real package's, read here, so that a name added by a grpc-js update is not missed.
 * Off unless VMCTL_BUNDLE_LAZY_GRPC=1: with it, templates.vm.test.ts's truncated-template test failed
 * its first attempt in 3 runs of 3 (the supervisor exited during the template's rebuild), and
 * passed with the eager build (docs/restore-to-ready.md); the cause is not found yet.
 */
const lazyGrpc = {
  name: 'lazy-grpc',
  setup(build) {
    if (process.env.VMCTL_BUNDLE_LAZY_GRPC !== '1') return
    build.onResolve({ filter: /^@grpc\/grpc-js$/ }, (args) =>
      args.importer === lazyGrpcFile ? undefined : { path: lazyGrpcFile },
    )
    build.onLoad({ filter: /lazy-grpc\.cjs$/ }, () => ({
      contents: `const GRPC_EXPORTS = ${JSON.stringify(Object.keys(require('@grpc/grpc-js')))}\n${readFileSync(lazyGrpcFile, 'utf8')}`,
      loader: 'js',
      resolveDir: new URL('.', import.meta.url).pathname,
    }))
  },
}

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
  plugins: [lazyGrpc],
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
