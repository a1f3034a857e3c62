/**
 * @vmctl/jest: jest integration for vmctl. A placeholder until the adapters issue fills it; for now
 * it re-exports the core API so test files can already import from here.
 */
export { VM, type VmOptions, type ExecResult, type ExecOptions } from '@vmctl/core'
