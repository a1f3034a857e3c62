import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { parse, TomlError } from 'smol-toml'
import { closestName } from '../closest-name.js'
import { VmctlError } from '../errors.js'
import { inspectImage } from '../images/image-file.js'
import { isKernelName, parseKernelName } from '../kernels/kernel-name.js'
import { firstLine } from '../util/first-line.js'
import type { VmOptions } from '../vm/vm-options.js'
import { type FieldSchema, VM_FIELDS } from './config-schema.js'
import { formatPath, type KeyPath, keyLines, lineOf } from './key-lines.js'

export const CONFIG_FILE_NAME = 'vmctl.toml'

/** A config file that cannot be used: names the file, the line, the field and what was expected. */
export class ConfigError extends VmctlError {
  readonly file: string
  readonly line: number | undefined
  readonly field: string | undefined
  /** The CLI exits with 2, as for any usage error. */
  readonly exitCode = 2
  constructor(file: string, line: number | undefined, field: string | undefined, message: string) {
    super(
      'INVALID_CONFIG',
      `${displayPath(file)}${line !== undefined ? `:${line}` : ''}: ${field ? `${field}: ` : ''}${message}`,
    )
    this.file = file
    this.line = line
    this.field = field
  }
}

export interface LoadedConfig {
  file: string
  /** Names of the [vm.NAME] tables, in file order. */
  names: string[]
  /** The options of the chosen VM, paths resolved against the file's directory. */
  options: VmOptions
}

/**
 * Reads vmctl.toml. The top-level fields describe one VM; `[vm.NAME]` tables describe named VMs,
 * each taking the top-level fields as defaults. `name` picks one of them (required when there
 * are several); it is also the VM's name.
 */
export function loadConfig(file: string, select?: { name?: string | undefined }): LoadedConfig {
  const path = resolve(file)
  let source: string
  try {
    if (statSync(path).isDirectory()) return loadConfig(resolve(path, CONFIG_FILE_NAME), select)
    source = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(
      path,
      undefined,
      undefined,
      code === 'ENOENT'
        ? `no such file. Fix: create it (see docs/config.md) or pass the right path`
        : `cannot read it (${(error as Error).message})`,
    )
  }
  let document: Record<string, unknown>
  try {
    document = parse(source) as Record<string, unknown>
  } catch (error) {
    if (error instanceof TomlError) {
      const first = firstLine(error.message).replace(/^Invalid TOML document: /, '')
      throw new ConfigError(path, error.line, undefined, `invalid TOML: ${first} (column ${error.column})`)
    }
    throw error
  }
  const lines = keyLines(source)
  const fail = (at: KeyPath, message: string): never => {
    throw new ConfigError(path, lineOf(lines, at), formatPath(at), message)
  }
  const base = dirname(path)
  const { vm: named, ...top } = document
  const defaults = validateTable(top, VM_FIELDS, [], fail, base)
  const names: string[] = []
  const byName = new Map<string, VmOptions>()
  if (named !== undefined) {
    if (!isTable(named)) fail(['vm'], `expected [vm.NAME] tables, got ${describe(named)}`)
    for (const [name, table] of Object.entries(named as Record<string, unknown>)) {
      if (!isTable(table)) fail(['vm', name], `expected a table of VM fields, got ${describe(table)}`)
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name))
        fail(['vm', name], 'VM names are letters, digits, ".", "_" and "-" (up to 63)')
      names.push(name)
      byName.set(name, validateTable(table as Record<string, unknown>, VM_FIELDS, ['vm', name], fail, base))
    }
  }
  let options: VmOptions = defaults
  if (names.length > 0) {
    const wanted = select?.name
    const chosen = wanted ?? (names.length === 1 ? names[0] : undefined)
    if (chosen === undefined)
      throw new ConfigError(
        path,
        undefined,
        undefined,
        `defines several VMs (${names.join(', ')}); pick one: VM.up(file, { name: NAME }), vmctl run -c FILE --vm NAME or vmctl up -c FILE --vm NAME`,
      )
    const own = byName.get(chosen)
    if (own) options = { ...mergeOptions(defaults, own), name: own.name ?? chosen }
    else if (wanted === undefined || defaults.name !== wanted)
      // A name that is not a table is just the VM's name, for the top-level VM.
      options = defaults
  }
  return { file: path, names, options }
}

/** Options in code override the file's; env is merged key by key. */
export function mergeOptions(file: VmOptions, code: VmOptions | undefined): VmOptions {
  const merged: VmOptions = { ...file }
  for (const [key, value] of Object.entries(code ?? {})) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value
  }
  if (file.env && code?.env) merged.env = { ...file.env, ...code.env }
  return merged
}

/** vmctl.toml in `dir`, if there is one. */
export function findConfig(dir: string = process.cwd()): string | undefined {
  const candidate = resolve(dir, CONFIG_FILE_NAME)
  return existsSync(candidate) ? candidate : undefined
}

function validateTable(
  table: Record<string, unknown>,
  schema: Record<string, FieldSchema>,
  at: KeyPath,
  fail: (at: KeyPath, message: string) => never,
  base: string,
): Record<string, never> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(table)) {
    const field = schema[key]
    const here = [...at, key]
    if (!field) {
      const suggestion = closestName(key, Object.keys(schema))
      fail(
        here,
        `unknown field${suggestion ? ` (did you mean ${suggestion}?)` : ''}; known fields here: ${Object.keys(schema).join(', ')}`,
      )
    }
    out[key] = validateValue(value, field!, here, fail, base)
  }
  return out as Record<string, never>
}

function validateValue(
  value: unknown,
  field: FieldSchema,
  at: KeyPath,
  fail: (at: KeyPath, message: string) => never,
  base: string,
): unknown {
  if (field.stringOrTable && isTable(value)) return validateTable(value, field.fields!, at, fail, base)
  if (field.arrayOfTables) {
    if (!Array.isArray(value)) fail(at, `expected ${field.expected}, got ${describe(value)}`)
    return (value as unknown[]).map((entry, i) => {
      const { stringEntry } = field
      if (stringEntry && typeof entry === 'string') {
        if (!stringEntry.check(entry)) fail([...at, i], `expected ${stringEntry.expected}, got "${entry}"`)
        return entry
      }
      if (!isTable(entry))
        fail(
          [...at, i],
          `expected a table${stringEntry ? ` or ${stringEntry.expected}` : ''}, got ${describe(entry)}`,
        )
      const table = validateTable(entry as Record<string, unknown>, field.fields!, [...at, i], fail, base)
      for (const [name, spec] of Object.entries(field.fields!))
        if (spec.default === undefined && !(name in table))
          fail([...at, i], `missing field ${name} (${spec.expected})`)
      return table
    })
  }
  if (!field.check(value)) fail(at, `expected ${field.expected}, got ${describe(value)}`)
  if (typeof value === 'bigint') return Number(value)
  if (field.path && typeof value === 'string') {
    // A kernel name (`debian:trixie`) is not a path: checked by its parser, at the line it is on.
    if (field.kernelName && isKernelName(value)) {
      try {
        return parseKernelName(value).text
      } catch (error) {
        fail(at, (error as Error).message)
      }
    }
    const resolved = isAbsolute(value) ? value : resolve(base, value)
    if (!existsSync(resolved))
      fail(
        at,
        `${resolved} does not exist. Fix: correct the path (relative paths start at the config file's directory)`,
      )
    if (field.diskImage) {
      try {
        inspectImage(resolved)
      } catch (error) {
        fail(at, (error as Error).message)
      }
    }
    return resolved
  }
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'bigint' ? Number(v) : v))
  return value
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `an array ${JSON.stringify(value).slice(0, 60)}`
  if (isTable(value)) return 'a table'
  if (typeof value === 'bigint') return `the integer ${value}`
  if (value instanceof Date) return `a date`
  return `${typeof value === 'string' ? 'the string' : `the ${typeof value}`} ${JSON.stringify(value)?.slice(0, 60)}`
}

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file)
  return rel && !rel.startsWith('..') ? rel : file
}
