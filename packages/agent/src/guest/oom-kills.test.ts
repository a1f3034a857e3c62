import { expect, test } from 'vitest'
import { parseKmsgRecord } from './kernel-log.js'
import { oomKillCounter, oomKillIn } from './oom-kills.js'

const parseOomKill = (record: string) => {
  const entry = parseKmsgRecord(record)
  return entry && oomKillIn(entry)
}

test("the kernel's OOM kill lines, global and a memory cgroup's, as /dev/kmsg gives them", () => {
  expect(
    parseOomKill(
      '3,612,8123456,-;Out of memory: Killed process 312 (python3) total-vm:612340kB, anon-rss:201232kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:460kB oom_score_adj:0',
    ),
  ).toEqual({ pid: 312, command: 'python3', cgroup: false, atUs: 8123456 })
  expect(
    parseOomKill('3,700,9000000,-;Memory cgroup out of memory: Killed process 77 (my worker) total-vm:1kB'),
  ).toEqual({ pid: 77, command: 'my worker', cgroup: true, atUs: 9000000 })
  // The report's other lines name the task too, but are not the kill.
  expect(
    parseOomKill('6,611,8123400,-;oom-kill:constraint=CONSTRAINT_NONE,task=python3,pid=312,uid=0'),
  ).toBeUndefined()
  expect(parseOomKill('no semicolon')).toBeUndefined()
})

test("/proc/vmstat's count of OOM kills", () => {
  expect(oomKillCounter('pgfault 100\noom_kill 3\nnr_free_pages 5\n')).toBe(3)
  expect(oomKillCounter('pgfault 100\n')).toBeUndefined()
})
