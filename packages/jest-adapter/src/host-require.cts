// jest runs test files in a sandbox whose `require`, `module` and `process.getBuiltinModule` are its
// own loader, and that loader cannot load ES modules before Node 24.9 (without
// --experimental-vm-modules). A function made by the host realm's Function constructor (Buffer comes
// from the host) sees the real `process`, whose getBuiltinModule gives Node's own require, which
// loads ES modules (Node 20.19+). Only the entry shims run in the sandbox; everything else runs here.
export function hostRequire(from: string): NodeJS.Require {
  const hostFunction = (Buffer as unknown as { constructor: FunctionConstructor }).constructor
  const hostProcess = hostFunction('return process')() as NodeJS.Process
  return hostProcess.getBuiltinModule('node:module').createRequire(from)
}
