// Bundles the `vmctl` command (src/cli-main.ts with @vmctl/core, @vmctl/agent and their
// dependencies) into one CommonJS file, dist/cli-main.cjs, beside tsc's dist/cli-main.js (which
// main.ts imports only when the bundle is missing). CommonJS, not an ES module, so that main.ts can
// load it through V8's code cache (@vmctl/core/code-cache: Node 20 has no compile cache of its
// own): ~110 ms of CPU to load as an ES module, ~60 ms with the cache (n=5 each, one run). Node
// resolving and loading the ~200 modules of the CLI, core and grpc-js one by one was most of the
// CLI's own start-up: loading took 342 ms of CPU in `vmctl run -- true`, 143 ms as one file (medians,
// n=6, interleaved in one run of scripts/bench-cli.mjs; `node -e 0` is ~140 ms more in each). The
// commands the CLI does not run are imported lazily (run-cli.ts): their code is in the file but
// not run. Not split into chunks: that saved another ~25 ms, but esbuild's chunk for a dynamically
// imported CommonJS package (undici, for fetching kernels) exports only `default`, so
// `import('undici')` lost its named exports (setup-command.test.ts caught it).
// dist/main.js, the bin, stays tsc's (it turns on V8's compile cache first); so does dist/index.js
// (runCli for embedding), which imports @vmctl/core as a library user would.
//
// Core and the agent find files of their own packages through `import.meta.url`: the supervisor
// bundle, the switch entry, the xz worker, the native guest helpers, package.json. In the bundle
// import.meta.url is this CLI's file, so each of those modules gets, in its place, the URL it would
// have in the installed package: the package is found from here as Node finds it (the CLI depends
// on @vmctl/core, core on @vmctl/agent), which is the workspace's in the repository and
// node_modules' after `npm i vmctl`, and the same version the bundle was built from.
import { readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dynamicImportAt } from '@vmctl/core/code-cache'
import { build } from 'esbuild'
// A script of core's build, not part of its package: the CLI is bundled in this repository only.
import { lazyGrpc } from '../../core/scripts/lazy-grpc-plugin.mjs'

const require = createRequire(import.meta.url)
const packageRoot = (entry) => dirname(dirname(entry)) // <root>/dist/index.js → <root>
const coreEntry = require.resolve('@vmctl/core')
const agentEntry = createRequire(coreEntry).resolve('@vmctl/agent')
const roots = { core: packageRoot(coreEntry), agent: packageRoot(agentEntry) }

// import.meta.url in core's and the agent's modules → the URL the module has in its package.
const IMPORT_META_URL = /\bimport\.meta\.url\b/g
// A dynamic import of a package (not of a relative path): what core loads only when it needs it.
const DYNAMIC_PACKAGE_IMPORT = /\bimport\((['"])([^'"./][^'"]*)\1\)/g

/** The directory of the package named `name` that holds `file`. */
async function packageRootOf(file, name) {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      if (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')).name === name) return dir
    } catch {}
  }
  throw new Error(`no package.json of ${name} above ${file}`)
}

// Packages that only some commands need (tar: kernel .debs and copyDirTo/From; xz-decompress:
// kernel .debs and modules; smol-toml: a vmctl.toml), bundled behind a stand-in whose exports are
// getters that require the package on first use: esbuild evaluates a required CommonJS module when
// it is first required, but hoists an imported ES module's top level into the bundle's, so before
// this `vmctl run -- true` ran tar's (~80 modules), smol-toml's and xz-decompress's on every start.
// A require, not an import(): the bundle may hold no import() (see __vmctlImport below). The
// require resolves the package's CommonJS build from core's directory, as core's own import would
// find the package. The export names are the real package's, read here, so an update cannot miss one.
const LAZY_PACKAGES = ['tar', 'xz-decompress', 'smol-toml']
const STAND_IN = 'vmctl-lazy-package'
const lazyPackages = {
  name: 'lazy-packages',
  setup(build) {
    if (process.env.VMCTL_BUNDLE_LAZY_PACKAGES === '0') return
    const filter = new RegExp(`^(${LAZY_PACKAGES.join('|')})$`)
    build.onResolve({ filter }, (args) =>
      args.namespace === STAND_IN ? undefined : { path: args.path, namespace: STAND_IN },
    )
    build.onLoad({ filter: /.*/, namespace: STAND_IN }, (args) => {
      const names = Object.keys(createRequire(coreEntry)(args.path))
      return {
        contents: `let real
const load = () => (real ??= require(${JSON.stringify(args.path)}))
Object.defineProperty(exports, '__esModule', { value: true })
for (const name of ${JSON.stringify(names)}) Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] })
`,
        loader: 'js',
        resolveDir: roots.core,
      }
    })
  },
}

const packageUrls = {
  name: 'package-urls',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      const owner = Object.entries(roots).find(([, root]) => args.path.startsWith(`${root}/dist/`))
      if (!owner) return undefined
      const [name, root] = owner
      let contents = await readFile(args.path, 'utf8')
      const file = JSON.stringify(relative(root, args.path))
      contents = contents.replace(IMPORT_META_URL, `__vmctlPackageUrl(${JSON.stringify(name)}, ${file})`)
      // Left out of the bundle: each is imported, when core calls for it, from where core's own
      // import would find it (undici for fetching kernels, openpgp for checking their signatures,
      // execa for host commands: ~1.5 MB that every start-up parsed, ~40 ms of CPU).
      for (const [call, , specifier] of [...contents.matchAll(DYNAMIC_PACKAGE_IMPORT)]) {
        const packageName = specifier
          .split('/')
          .slice(0, specifier.startsWith('@') ? 2 : 1)
          .join('/')
        const resolved = await build.resolve(specifier, {
          kind: 'dynamic-import',
          resolveDir: dirname(args.path),
        })
        if (resolved.errors.length > 0) throw new Error(`${args.path}: cannot resolve ${specifier}`)
        const entry = relative(await packageRootOf(resolved.path, packageName), resolved.path)
        contents = contents.replace(
          call,
          `__vmctlImport(__vmctlDependencyUrl(${JSON.stringify(name)}, ${JSON.stringify(specifier)}, ${JSON.stringify(packageName)}, ${JSON.stringify(entry)}))`,
        )
      }
      return { contents, loader: 'js' }
    })
  },
}

// __vmctlImport: the bundle holds no import() of its own. main.ts loads it through V8's code cache on
// Node 20, and there a function deserialized from the cache has lost its script's dynamic-import
// callback (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING on every run after the one that wrote the cache).
// The import() is in cli-import.cjs, a 1-line file Node's own CommonJS loader compiles (no cache),
// required the first time a lazily loaded package is wanted: the same ES module entries as before.
// __vmctlPackageUrl resolves each package once. __vmctlDependencyUrl finds the
// package from its owner as Node's require would, and imports the ES module entry the build
// resolved (`import` conditions, which require.resolve does not apply), or what require found if
// an installed version lays its files out otherwise.
// import.meta.url of the CLI's own modules (version.ts) is the bundle's URL (`define` below).
const banner = `const { createRequire: __vmctlCreateRequire } = require('node:module');
const { existsSync: __vmctlExists, readFileSync: __vmctlRead } = require('node:fs');
const { dirname: __vmctlDirname, join: __vmctlJoin } = require('node:path');
const { pathToFileURL: __vmctlPathToFileURL } = require('node:url');
const __vmctlBundleUrl = __vmctlPathToFileURL(__filename).href;
const __vmctlRoots = {};
function __vmctlImport(url) { return require('./cli-import.cjs')(url); }
function __vmctlPackageUrl(name, file) {
  if (!__vmctlRoots[name]) {
    const core = require.resolve('@vmctl/core');
    const entry = name === 'core' ? core : __vmctlCreateRequire(core).resolve('@vmctl/agent');
    __vmctlRoots[name] = __vmctlDirname(__vmctlDirname(entry));
  }
  return __vmctlPathToFileURL(__vmctlRoots[name] + '/' + file).href;
}
function __vmctlDependencyUrl(owner, specifier, name, entry) {
  const found = __vmctlCreateRequire(__vmctlPackageUrl(owner, 'package.json')).resolve(specifier);
  for (let dir = __vmctlDirname(found); dir !== __vmctlDirname(dir); dir = __vmctlDirname(dir)) {
    try {
      if (JSON.parse(__vmctlRead(__vmctlJoin(dir, 'package.json'), 'utf8')).name !== name) continue;
    } catch { continue; }
    const file = __vmctlJoin(dir, entry);
    return __vmctlPathToFileURL(__vmctlExists(file) ? file : found).href;
  }
  return __vmctlPathToFileURL(found).href;
}`

const outfile = fileURLToPath(new URL('../dist/cli-main.cjs', import.meta.url))
await build({
  entryPoints: [fileURLToPath(new URL('../src/cli-main.ts', import.meta.url))],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  define: { 'import.meta.url': '__vmctlBundleUrl' },
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: banner },
  plugins: [lazyGrpc, lazyPackages, packageUrls],
})

await writeFile(
  new URL('../dist/cli-import.cjs', import.meta.url),
  "// The bundle's dynamic imports (scripts/bundle-cli.mjs): compiled by Node, never through a code cache.\nmodule.exports = (url) => import(url)\n",
)
// An import() left in the bundle (a new lazy import of a relative path, a package's own) would work
// on the run that writes the code cache and fail on every run after it: refused here, at build time.
// The same test as the code cache's skip (code-cache.ts), so the two cannot disagree.
const bundle = await readFile(outfile)
const at = dynamicImportAt(bundle)
if (at >= 0)
  throw new Error(
    `dist/cli-main.cjs has an import(), which fails once loaded from a code cache on Node 20: ${bundle.subarray(Math.max(0, at - 60), at + 60)}`,
  )
