import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import xzDecompress from 'xz-decompress'

/**
 * xz decompression through xz-decompress: XZ Embedded compiled to WebAssembly, streaming, no
 * native addon (nothing to compile, no per-platform optional package that npm may skip). It
 * decodes LZMA2 with CRC32/CRC64 checks, which is what Debian's archive uses (Packages.xz,
 * data.tar.xz, trixie's .ko.xz); it has no BCJ filters (see bzimage.ts for the kernel's payload).
 */
export function unxzStream(input: Readable): Readable {
  const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>
  const output = new xzDecompress.XzReadableStream(web) as unknown as WebReadableStream<Uint8Array>
  return Readable.fromWeb(output)
}

export async function unxz(data: Uint8Array): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of unxzStream(Readable.from([Buffer.from(data)]))) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
