/**
 * jest's main process, which names the run: the parent of a pool worker (a child process with an
 * IPC channel), else this process (a run in band, or a worker thread).
 */
export function jestRunPid(): number {
  return process.send ? process.ppid : process.pid
}
