import { parentPort } from 'node:worker_threads'
import { unxz } from './xz-stream.js'

/** A worker thread of parallel-unxz.ts: decodes the single-block xz streams it is sent. */
parentPort?.on('message', (message: { id: number; data: Uint8Array }) => {
  unxz(message.data).then(
    (out) => {
      const own = new Uint8Array(out) // a buffer of its own, to transfer rather than copy
      parentPort!.postMessage({ id: message.id, out: own }, [own.buffer])
    },
    (error: unknown) =>
      parentPort!.postMessage({ id: message.id, error: (error as Error).message ?? String(error) }),
  )
})
