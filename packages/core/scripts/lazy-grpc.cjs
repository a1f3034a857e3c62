// Stands in for @grpc/grpc-js inside dist/supervisor-core.cjs (bundle-supervisor.mjs): grpc-js is
// ~half of that file's load (its 65 modules' evaluation), and a restore needs none of it before the
// guest's `cont` (the agent's own transport is a MuxSession; gRPC is the old agent's fallback, the
// health check, the disk and power calls). Each export is a getter that requires the real package on
// first use; `makeGenericClientConstructor`, which the agent's generated clients call at their
// module's top level, returns a constructor that makes the real one on its first `new`.
let real
function grpc() {
  real ??= require('@grpc/grpc-js')
  return real
}
for (const name of GRPC_EXPORTS) {
  if (name === 'makeGenericClientConstructor' || name === 'makeClientConstructor') continue
  Object.defineProperty(exports, name, { enumerable: true, get: () => grpc()[name] })
}
function lazyClientConstructor(name) {
  return (...args) => {
    let made
    const client = () => {
      made ??= grpc()[name](...args)
      return made
    }
    // A plain function (not an arrow) so that `new` works; returning an object from it makes that
    // object the result of `new`. The Proxy forwards statics (`.service`) to the real constructor.
    return new Proxy(function LazyClient() {}, {
      construct: (_, callArgs) => Reflect.construct(client(), callArgs),
      get: (_, key) => client()[key],
    })
  }
}
exports.makeGenericClientConstructor = lazyClientConstructor('makeGenericClientConstructor')
exports.makeClientConstructor = lazyClientConstructor('makeClientConstructor')
