// The esbuild plugin that bundles lazy-grpc.cjs in place of @grpc/grpc-js: the supervisor's core
// (bundle-supervisor.mjs) and the `vmctl` command's bundle (packages/cli/scripts/bundle-cli.mjs).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const lazyGrpcFile = fileURLToPath(new URL('./lazy-grpc.cjs', import.meta.url))

/**
 * Every `@grpc/grpc-js` import but lazy-grpc.cjs's own resolves to lazy-grpc.cjs, which requires
 * the real package on first use. Its export names are the real package's, read here, so that a name
 * added by a grpc-js update is not missed. VMCTL_BUNDLE_LAZY_GRPC=0 bundles grpc-js as it is (an
 * A/B in one build, or a host where the lazy one misbehaves).
 */
export const lazyGrpc = {
  name: 'lazy-grpc',
  setup(build) {
    if (process.env.VMCTL_BUNDLE_LAZY_GRPC === '0') return
    build.onResolve({ filter: /^@grpc\/grpc-js$/ }, (args) =>
      args.importer === lazyGrpcFile ? undefined : { path: lazyGrpcFile },
    )
    build.onLoad({ filter: /lazy-grpc\.cjs$/ }, () => ({
      contents: `const GRPC_EXPORTS = ${JSON.stringify(Object.keys(require('@grpc/grpc-js')))}\n${readFileSync(lazyGrpcFile, 'utf8')}`,
      loader: 'js',
      resolveDir: fileURLToPath(new URL('.', import.meta.url)),
    }))
  },
}
