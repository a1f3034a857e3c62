// Bundles the VM supervisor into two CommonJS files: dist/supervisor.cjs, the entry
// (supervisor-main.js: a few KB, Node's own modules only), and dist/supervisor-core.cjs
// (supervisor-load.js and everything it imports; grpc-js evaluated on first use: lazy-grpc.cjs),
// which the entry loads through V8's code cache (supervisor/code-cache.ts) once it has started the
// VM's QEMU, so that QEMU's start runs beside the loading. Every VM.up() starts a supervisor
// process, and Node loading ~200 ES modules took ~0.35 s of a ~1 s template restore; one file loads
// in ~0.15 s.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { dynamicImportAt } from '../dist/supervisor/code-cache.js'
import { lazyGrpc } from './lazy-grpc-plugin.mjs'

const require = createRequire(import.meta.url)

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // A CommonJS bundle has no import.meta: packageUrls gives each module's import.meta.url its own
  // file's URL instead, and the build refuses any other use of import.meta (below).
  logOverride: { 'empty-import-meta': 'silent' },
}

const here = dirname(fileURLToPath(import.meta.url))
const roots = {
  core: dirname(here),
  agent: dirname(dirname(require.resolve('@vmctl/agent'))),
}
const IMPORT_META_URL = /\bimport\.meta\.url\b/g

/**
 * Core's and the agent's modules find files of their packages through import.meta.url (the agent's
 * bundle and native helpers: guestHelperPaths(), vsockBridgePath(); core's package.json), which
 * esbuild leaves empty in a CommonJS bundle: `new URL('../x', undefined)` throws. Each module's
 * import.meta.url becomes the URL it has in its package: core's found from the bundle's own
 * directory (core/dist), the agent's from core as Node finds it (the workspace's in the
 * repository, node_modules' after an install). The same as bundle-cli.mjs does for the CLI.
 */
const packageUrls = {
  name: 'package-urls',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const owner = Object.entries(roots).find(([, root]) => args.path.startsWith(`${root}/dist/`))
      if (!owner) return undefined
      const contents = readFileSync(args.path, 'utf8')
      if (!contents.includes('import.meta.url')) return undefined
      const [name, root] = owner
      const file = JSON.stringify(relative(root, args.path))
      return {
        contents: contents.replace(IMPORT_META_URL, `__vmctlPackageUrl(${JSON.stringify(name)}, ${file})`),
        loader: 'js',
      }
    })
  },
}

/** core/dist is where both files of the bundle are; the agent is core's dependency. */
const banner = `function __vmctlPackageUrl(name, file) {
  const { join, dirname } = require('node:path');
  const root = name === 'core' ? join(__dirname, '..') : dirname(dirname(require.resolve('@vmctl/agent')));
  return require('node:url').pathToFileURL(join(root, file)).href;
}`

/** An import.meta other than .url (esbuild makes it `{}` in CommonJS) would misresolve silently. */
function refuseImportMeta(file) {
  const source = readFileSync(file, 'utf8')
  const at = source.search(/\bimport_meta\d*\b/)
  if (at >= 0)
    throw new Error(
      `${file} uses import.meta, which a CommonJS bundle lacks: ${source.slice(Math.max(0, at - 80), at + 60)}`,
    )
}

await build({
  ...common,
  entryPoints: ['dist/supervisor/supervisor-load.js'],
  outfile: 'dist/supervisor-core.cjs',
  banner: { js: banner },
  plugins: [lazyGrpc, packageUrls],
})
refuseImportMeta('dist/supervisor-core.cjs')
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
refuseImportMeta('dist/supervisor.cjs')
