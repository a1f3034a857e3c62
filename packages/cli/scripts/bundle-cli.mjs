// Bundles the `vmctl` command (src/cli-main.ts with @vmctl/core, @vmctl/agent and their
// dependencies) into one ES module, dist/cli-main.js, in place of tsc's output there. Node
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
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const require = createRequire(import.meta.url)
const packageRoot = (entry) => dirname(dirname(entry)) // <root>/dist/index.js → <root>
const coreEntry = require.resolve('@vmctl/core')
const agentEntry = createRequire(coreEntry).resolve('@vmctl/agent')
const roots = { core: packageRoot(coreEntry), agent: packageRoot(agentEntry) }

const packageUrls = {
  name: 'package-urls',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      const owner = Object.entries(roots).find(([, root]) => args.path.startsWith(`${root}/dist/`))
      if (!owner) return undefined
      const contents = await readFile(args.path, 'utf8')
      if (!contents.includes('import.meta.url')) return { contents, loader: 'js' }
      const [name, root] = owner
      const file = JSON.stringify(relative(root, args.path))
      return {
        contents: contents.replaceAll(
          'import.meta.url',
          `__vmctlPackageUrl(${JSON.stringify(name)}, ${file})`,
        ),
        loader: 'js',
      }
    })
  },
}

// Bundled CommonJS (grpc-js, debug) calls require() for Node's own modules, which an ES module has
// no global of; and __vmctlPackageUrl, resolved once per package.
const banner = `import { createRequire as __vmctlCreateRequire } from 'node:module';
import { dirname as __vmctlDirname } from 'node:path';
import { pathToFileURL as __vmctlPathToFileURL } from 'node:url';
const require = __vmctlCreateRequire(import.meta.url);
const __vmctlRoots = {};
function __vmctlPackageUrl(name, file) {
  if (!__vmctlRoots[name]) {
    const core = require.resolve('@vmctl/core');
    const entry = name === 'core' ? core : __vmctlCreateRequire(core).resolve('@vmctl/agent');
    __vmctlRoots[name] = __vmctlDirname(__vmctlDirname(entry));
  }
  return __vmctlPathToFileURL(__vmctlRoots[name] + '/' + file).href;
}`

await build({
  entryPoints: [fileURLToPath(new URL('../src/cli-main.ts', import.meta.url))],
  outfile: fileURLToPath(new URL('../dist/cli-main.js', import.meta.url)),
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: banner },
  plugins: [packageUrls],
})
