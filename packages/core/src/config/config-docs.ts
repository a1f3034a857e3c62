import { type FieldSchema, IMAGE_FIELDS, MOUNT_FIELDS, NETWORK_FIELDS, VM_FIELDS } from './config-schema.js'

/** docs/config.md, generated from the schema (config-file.test.ts fails when the page is stale). */
export function renderConfigDocs(): string {
  return `<!-- Generated from packages/core/src/config/config-schema.ts; do not edit. Regenerate: UPDATE_DOCS=1 npx vitest run packages/core/src/config -->
# vmctl.toml

A \`vmctl.toml\` describes a VM (or several) for \`VM.up('vmctl.toml')\`, \`vmctl run -c vmctl.toml\`
and \`vmctl up -c vmctl.toml\`; the CLI also picks up \`./vmctl.toml\` by itself. Options passed in
code (or as flags) override the file's fields; \`env\` is merged key by key.

\`\`\`toml
memoryMiB = 2048
ports = [5432]
provision = ["apt-get install -y --no-install-recommends postgresql"]

[image]
distribution = "bookworm"
packages = ["jq"]

[[mounts]]
host = "."
guest = "/mnt/project"
\`\`\`

Field names are the same as \`VmOptions\` in code. Relative paths are relative to the file.
Every field is checked: an unknown field, a wrong type or a missing file is an error naming the
file, the line and the field, and saying what was expected:

\`\`\`
vmctl.toml:3: memoryMiB: expected a positive integer (MiB), got the string "2G"
vmctl.toml:7: image.pakages: unknown field (did you mean packages?); known fields here: distribution, packages, mirror, diskGiB
\`\`\`

**Several VMs**: the top-level fields are shared defaults; each \`[vm.NAME]\` table describes one
VM and overrides them. Pick one with \`VM.up('vmctl.toml', { name: 'db' })\`,
\`vmctl run -c vmctl.toml --vm db\` or \`vmctl up -c vmctl.toml --name db\` (the only one is picked by
itself).

\`\`\`toml
memoryMiB = 1024
[vm.db]
image = "images/postgres.qcow2"
ports = [5432]
[vm.kernel]
kernelArgs = ["nokaslr"]
\`\`\`

## VM fields

${table(VM_FIELDS)}

## \`[image]\`: a Debian image built by vmctl

\`image\` may be a table instead of a path. vmctl builds the image with mmdebstrap on first use,
caches it by a hash of these fields, and every later use is instant. See [images.md](images.md).

${table(IMAGE_FIELDS)}

## \`[[mounts]]\`

Host directories shared with the guest over 9p, mounted before the VM is ready. A VM with mounts
still boots from templates (they are mounted after the restore), but \`vm.snapshot()\` refuses while
they are mounted (QEMU cannot migrate a mounted 9p share).

${table(MOUNT_FIELDS)}

## \`[[networks]]\`

Networks between VMs, joined by name: the first VM that names one creates it, every other VM
that names it (from this file, another file, \`vmctl up --network\`, or code) joins it, and it ends
with its last member. A name alone (\`networks = ["cluster"]\`) joins with the VM's name as its
hostname; a table gives it names of its own. See [networks.md](networks.md).

\`\`\`toml
[vm.db]
[[vm.db.networks]]
network = "cluster"
hostname = "db"
aliases = ["primary"]

[vm.app]
networks = ["cluster"]
\`\`\`

${table(NETWORK_FIELDS)}
`
}

function table(fields: Record<string, FieldSchema>): string {
  const rows = Object.entries(fields).map(
    ([name, f]) =>
      `| \`${name}\` | ${f.expected}${f.path ? ' (relative to the file)' : ''} | ${f.default ? `\`${f.default}\``.replace('`Debian kernel, fetched on first use`', 'Debian kernel, fetched on first use ([kernels.md](kernels.md))').replace(/`(\d+ \(KVM\).*)`/, '$1') : '—'} | \`${name} = ${f.example}\` | ${f.doc} |`,
  )
  return ['| field | type | default | example | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join(
    '\n',
  )
}
