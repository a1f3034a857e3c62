import { readFileSync } from 'node:fs'
import { KernelFetchError } from '../errors.js'
import { SETUP_COMMAND } from '../paths.js'
import { DEBIAN_ARCHIVE_KEYS } from './debian-keyring.js'

type OpenPgp = typeof import('openpgp')
type Key = Awaited<ReturnType<OpenPgp['readKeys']>>[number]

/** Where Debian and its derivatives install the archive's keys; newer releases' keys arrive there. */
const HOST_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'

/**
 * The text of a suite's InRelease file, once one of its signatures checks out against a Debian
 * archive key: what apt does before it trusts a Release file. The Packages index and every .deb
 * are then checked by the SHA256 chain that starts here, so a mirror or proxy can serve nothing
 * Debian did not sign. Keys: vmctl's copy of Debian's (debian-keyring.ts), the host's keyring if it
 * has one, and VMCTL_DEBIAN_KEYRING (a binary or armored keyring: a mirror that re-signs with its
 * own key). openpgp is loaded here only, when a kernel is fetched. `hostKeyring: false` leaves the
 * host's keyring out (tests of vmctl's own copy, on a Debian host that has the keyring anyway).
 */
export async function verifiedRelease(
  url: string,
  inRelease: string,
  env: NodeJS.ProcessEnv,
  hostKeyring: string | false = HOST_KEYRING,
): Promise<string> {
  const openpgp = await import('openpgp')
  let message: Awaited<ReturnType<OpenPgp['readCleartextMessage']>>
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: inRelease })
  } catch (error) {
    throw new KernelFetchError(
      url,
      `it is not a signed Release file (${(error as Error).message}): a mirror without InRelease, or a proxy's error page`,
      SETUP_COMMAND,
    )
  }
  const keys = await trustedKeys(openpgp, env, hostKeyring)
  const { signatures } = await openpgp.verify({ message, verificationKeys: keys })
  const problems: string[] = []
  for (const signature of signatures) {
    try {
      await signature.verified
      return message.getText()
    } catch (error) {
      problems.push(`key ${signature.keyID.toHex().toUpperCase()}: ${(error as Error).message}`)
    }
  }
  throw new KernelFetchError(
    url,
    `no signature on it checks out against a Debian archive key (${problems.join('; ') || 'it carries none'}). A mirror that signs with its own key: set VMCTL_DEBIAN_KEYRING to that key's file`,
    SETUP_COMMAND,
  )
}

async function trustedKeys(
  openpgp: OpenPgp,
  env: NodeJS.ProcessEnv,
  hostKeyring: string | false,
): Promise<Key[]> {
  const keys = await openpgp.readKeys({ armoredKeys: DEBIAN_ARCHIVE_KEYS })
  if (hostKeyring) keys.push(...(await keyringFile(openpgp, hostKeyring, false)))
  if (env.VMCTL_DEBIAN_KEYRING) keys.push(...(await keyringFile(openpgp, env.VMCTL_DEBIAN_KEYRING, true)))
  return keys
}

/** The keys in a keyring file; a missing or unreadable host keyring adds none, a named one must load. */
async function keyringFile(openpgp: OpenPgp, path: string, required: boolean): Promise<Key[]> {
  try {
    const bytes = readFileSync(path)
    const text = bytes.toString('latin1')
    return text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')
      ? await openpgp.readKeys({ armoredKeys: text })
      : await openpgp.readKeys({ binaryKeys: new Uint8Array(bytes) })
  } catch (error) {
    if (!required) return []
    throw new KernelFetchError(
      path,
      `VMCTL_DEBIAN_KEYRING names a file that holds no OpenPGP public keys vmctl can read (${(error as Error).message})`,
      SETUP_COMMAND,
    )
  }
}
