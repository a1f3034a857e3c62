import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { readXzLayout, singleBlockStream } from './xz-blocks.js'
import { unxzStream } from './xz-stream.js'

/**
 * Decodes an xz stream on several threads when it has several blocks (dpkg-deb compresses the
 * kernel's data.tar.xz into 17 blocks of 24 MiB), in order, a few blocks ahead of the reader.
 * Each block becomes a stream of its own for a worker. xz in WebAssembly is about 3x slower than
 * xz's C, and this is where the fetch spends most of its time. One block, or one core: streamed
 * on this thread.
 */
export async function* unxzParallel(
  stream: Buffer,
  threads = availableParallelism(),
): AsyncGenerator<Buffer> {
  const layout = readXzLayout(stream)
  const workerFile = workerPath()
  const count = layout.blocks.length
  if (count < 2 || threads < 2 || !workerFile) {
    for await (const chunk of unxzStream(Readable.from([stream]))) yield chunk as Buffer
    return
  }
  const workers = Array.from({ length: Math.min(threads, count) }, () => new Worker(workerFile))
  const waiting = new Map<number, { resolve: (out: Buffer) => void; reject: (error: Error) => void }>()
  for (const worker of workers) {
    worker.on('message', (message: { id: number; out?: Uint8Array; error?: string }) => {
      const entry = waiting.get(message.id)
      waiting.delete(message.id)
      if (message.out)
        entry?.resolve(Buffer.from(message.out.buffer, message.out.byteOffset, message.out.byteLength))
      else entry?.reject(new Error(`xz: ${message.error}`))
    })
    worker.on('error', (error) => {
      for (const entry of waiting.values()) entry.reject(error)
      waiting.clear()
    })
  }
  const submit = (i: number): Promise<Buffer> => {
    const result = new Promise<Buffer>((resolve, reject) => waiting.set(i, { resolve, reject }))
    result.catch(() => {}) // awaited in order below; this only keeps an early failure from being "unhandled"
    workers[i % workers.length]!.postMessage({
      id: i,
      data: singleBlockStream(stream, layout, layout.blocks[i]!),
    })
    return result
  }
  const ahead = workers.length * 2
  const inFlight: Promise<Buffer>[] = []
  try {
    for (let i = 0; i < Math.min(ahead, count); i++) inFlight.push(submit(i))
    for (let i = 0; i < count; i++) {
      const out = await inFlight[i]!
      inFlight[i] = Promise.resolve(Buffer.alloc(0)) // let the block go once it has been read
      if (i + ahead < count) inFlight.push(submit(i + ahead))
      yield out
    }
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()))
  }
}

/** The compiled worker (dist/ even when this module runs from src/ under a TS test runner). */
function workerPath(): string | undefined {
  const here = fileURLToPath(import.meta.url)
  const path = here
    .replace(/\/src\/kernels\/[^/]+$/, '/dist/kernels/xz-worker.js')
    .replace(/[^/]+\.js$/, 'xz-worker.js')
  return existsSync(path) ? path : undefined
}
