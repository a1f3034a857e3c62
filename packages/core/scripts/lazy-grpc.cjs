// Stands in for @grpc/grpc-js inside the supervisor's core (dist/supervisor-core.cjs) and the
// `vmctl` command's bundle (lazy-grpc-plugin.mjs): grpc-js's 65 modules are ~half of either file's
// load, and neither a restore (the agent's own transport is a MuxSession) nor `vmctl run`'s command
// (the call lane) needs them: gRPC is the old agent's fallback, the template maker's health check,
// the disk and power calls, VMCTL_AGENT_TRANSPORT=grpc.
// What every call touches is taken from grpc-js's own small modules at once (the status codes,
// Metadata: the same modules the package's index re-exports, so one class and one enum); every other
// export is a getter that requires the whole package on first use, and
// `makeGenericClientConstructor`, which the agent's generated clients call at their module's top
// level, returns a constructor that makes the real one on its first use.
const constants = require('@grpc/grpc-js/build/src/constants')
const { Metadata } = require('@grpc/grpc-js/build/src/metadata')
const { ConnectivityState } = require('@grpc/grpc-js/build/src/connectivity-state')

let real
function grpc() {
  real ??= require('@grpc/grpc-js')
  return real
}
const light = {
  Metadata,
  status: constants.Status,
  logVerbosity: constants.LogVerbosity,
  propagate: constants.Propagate,
  connectivityState: ConnectivityState,
}
for (const name of GRPC_EXPORTS) {
  if (name === 'makeGenericClientConstructor' || name === 'makeClientConstructor') continue
  if (name in light) Object.defineProperty(exports, name, { enumerable: true, value: light[name] })
  else Object.defineProperty(exports, name, { enumerable: true, get: () => grpc()[name] })
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
