/**
 * The smallest x86-64 Linux program that exits 0: one ELF header, one loadable segment, and
 * `mov eax, 60; xor edi, edi; syscall` (exit(0)). 129 bytes, static, nothing to load or link, so
 * it starts in any directory, the empty mount point of a VM whose root is not mounted included
 * (the agent's warm-up runs it there: agent-warm-up.ts). vmctl's guests are x86-64 (qemu-system-x86_64).
 */
export function exitZeroProgram(): Buffer {
  const base = 0x400000n
  const code = Buffer.from([0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05])
  const program = Buffer.alloc(64 + 56 + code.length)
  // ELF header: 64-bit, little-endian, version 1, System V; an executable for x86-64.
  program.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0)
  program.writeUInt16LE(2, 16) // e_type: ET_EXEC
  program.writeUInt16LE(0x3e, 18) // e_machine: EM_X86_64
  program.writeUInt32LE(1, 20) // e_version
  program.writeBigUInt64LE(base + 120n, 24) // e_entry: the code, after both headers
  program.writeBigUInt64LE(64n, 32) // e_phoff
  program.writeUInt16LE(64, 52) // e_ehsize
  program.writeUInt16LE(56, 54) // e_phentsize
  program.writeUInt16LE(1, 56) // e_phnum
  // The one segment: the whole file, readable and executable, at `base`.
  program.writeUInt32LE(1, 64) // p_type: PT_LOAD
  program.writeUInt32LE(5, 68) // p_flags: R + X
  program.writeBigUInt64LE(0n, 72) // p_offset
  program.writeBigUInt64LE(base, 80) // p_vaddr
  program.writeBigUInt64LE(base, 88) // p_paddr
  program.writeBigUInt64LE(BigInt(program.length), 96) // p_filesz
  program.writeBigUInt64LE(BigInt(program.length), 104) // p_memsz
  program.writeBigUInt64LE(0x1000n, 112) // p_align
  code.copy(program, 120)
  return program
}
