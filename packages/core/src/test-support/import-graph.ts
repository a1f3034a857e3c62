import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

/** One import of a module by another, as written. */
export interface ImportEdge {
  /** Paths relative to the repository root. */
  from: string
  to: string
  /** `import(...)` inside a function body: a circle through it still loads both halves in some order. */
  dynamic: boolean
}

/**
 * The import graph of every package's `src/` (`packages/<name>/src/**\/*.ts`): static imports,
 * re-exports and dynamic `import()`s that run, resolved to the `.ts` file they load. Imports that
 * load nothing at run time are left out: `import type`, `export type`, an import whose every
 * name is `type` (elided by the compiler), `import('x').T` in a type. `@vmctl/<package>` resolves
 * to that package's `src/index.ts`; other packages (node:, npm) are not part of the graph.
 * Parsed with the TypeScript compiler the repository builds with, so comments and strings that
 * look like imports are never taken for one.
 */
export function readImportGraph(root: string): { files: string[]; edges: ImportEdge[] } {
  const packages = new Map<string, string>()
  const files: string[] = []
  for (const dir of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', dir, 'src')
    try {
      const manifest = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8'))
      if (statSync(src).isDirectory()) packages.set(manifest.name, join(src, 'index.ts'))
    } catch {
      continue
    }
    files.push(...tsFiles(src))
  }
  const edges: ImportEdge[] = []
  for (const file of files) {
    for (const { specifier, dynamic } of importsOf(file)) {
      const target = resolveSpecifier(file, specifier, packages)
      if (target) edges.push({ from: relative(root, file), to: relative(root, target), dynamic })
    }
  }
  return { files: files.map((f) => relative(root, f)), edges }
}

/**
 * The circles of a graph: each strongly connected component of more than one file (or a file that
 * imports itself), as the files of one cycle through it, in import order, the first file repeated
 * at the end (`a.ts → b.ts → a.ts`).
 */
export function findCircles(edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>()
  for (const { from, to } of edges) next.set(from, [...(next.get(from) ?? []), to])
  // Tarjan's strongly connected components.
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []
  let counter = 0
  const visit = (node: string): void => {
    index.set(node, counter)
    low.set(node, counter)
    counter++
    stack.push(node)
    onStack.add(node)
    for (const to of next.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to)
        low.set(node, Math.min(low.get(node)!, low.get(to)!))
      } else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!))
    }
    if (low.get(node) !== index.get(node)) return
    const component: string[] = []
    let member: string
    do {
      member = stack.pop()!
      onStack.delete(member)
      component.push(member)
    } while (member !== node)
    if (component.length > 1 || next.get(node)?.includes(node)) components.push(component)
  }
  for (const node of [...next.keys()].sort()) if (!index.has(node)) visit(node)
  return components.map((component) => cycleThrough(component.sort(), next))
}

/** One cycle inside a strongly connected component, from its first file back to it (breadth-first). */
function cycleThrough(component: string[], next: Map<string, string[]>): string[] {
  const inside = new Set(component)
  const start = component[0]!
  const cameFrom = new Map<string, string>()
  const queue = [start]
  while (queue.length) {
    const node = queue.shift()!
    for (const to of next.get(node) ?? []) {
      if (!inside.has(to)) continue
      if (to === start) {
        const path = [node]
        while (path[0] !== start) path.unshift(cameFrom.get(path[0]!)!)
        return [...path, start]
      }
      if (!cameFrom.has(to)) {
        cameFrom.set(to, node)
        queue.push(to)
      }
    }
  }
  return [...component, start]
}

function tsFiles(dir: string): string[] {
  const found: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...tsFiles(path))
    else if (/\.(ts|mts|cts)$/.test(entry.name) && !/\.d\.[mc]?ts$/.test(entry.name)) found.push(path)
  }
  return found
}

function importsOf(file: string): { specifier: string; dynamic: boolean }[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false)
  const found: { specifier: string; dynamic: boolean }[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!importsOnlyTypes(node.importClause))
        found.push({ specifier: node.moduleSpecifier.text, dynamic: false })
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause : undefined
      const onlyTypes =
        node.isTypeOnly || (named && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly))
      if (!onlyTypes) found.push({ specifier: node.moduleSpecifier.text, dynamic: false })
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ specifier: node.arguments[0].text, dynamic: true })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** `import type`, or `import { type A, type B }`: nothing is loaded at run time. A bare `import 'x'` loads. */
function importsOnlyTypes(clause: ts.ImportClause | undefined): boolean {
  if (!clause) return false
  if (clause.isTypeOnly) return true
  if (clause.name) return false
  const bindings = clause.namedBindings
  return (
    !!bindings &&
    ts.isNamedImports(bindings) &&
    bindings.elements.length > 0 &&
    bindings.elements.every((e) => e.isTypeOnly)
  )
}

function resolveSpecifier(
  file: string,
  specifier: string,
  packages: Map<string, string>,
): string | undefined {
  if (packages.has(specifier)) return packages.get(specifier)
  if (!specifier.startsWith('.')) return undefined
  const base = resolve(dirname(file), specifier)
  // Sources import their siblings by the name they are built to (`./x.js` is `./x.ts`).
  for (const candidate of [
    base.replace(/\.(m|c)?js$/, '.$1ts'),
    base,
    `${base}.ts`,
    join(base, 'index.ts'),
  ]) {
    try {
      if (statSync(candidate).isFile()) return candidate
    } catch {}
  }
  return undefined
}
