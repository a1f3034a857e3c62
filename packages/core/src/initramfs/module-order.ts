/**
 * Load order for kernel modules from a `modules.dep` file, dependencies first. `insmod` in the
 * initramfs does no dependency resolution of its own.
 */
export function moduleLoadOrder(
  modulesDep: string,
  wanted: string[],
): { order: string[]; missing: string[] } {
  const deps = new Map<string, string[]>()
  const byName = new Map<string, string>()
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const path = line.slice(0, colon).trim()
    const rest = line.slice(colon + 1).trim()
    deps.set(path, rest ? rest.split(/\s+/) : [])
    byName.set(moduleName(path), path)
  }
  const order: string[] = []
  const missing: string[] = []
  const visited = new Set<string>()
  const visit = (path: string) => {
    if (visited.has(path)) return
    visited.add(path)
    for (const dep of deps.get(path) ?? []) visit(dep)
    order.push(path)
  }
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, '_'))
    if (path) visit(path)
    else missing.push(name)
  }
  return { order, missing }
}

/** `kernel/drivers/char/hw_random/virtio-rng.ko` → `virtio_rng` (the kernel treats - and _ alike). */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1)
  return base.replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_')
}
