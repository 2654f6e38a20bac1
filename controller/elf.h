/*
 * elf - validates an uploaded artifact as a loadable x86-64 shared object exporting shoal_main,
 * without loading it: the controller never maps or runs user code, it only reads bytes.
 *
 * The checks, in order: ELF magic, ELF64, little-endian, EM_X86_64, ET_DYN and not a
 * position-independent executable (a PIE is ET_DYN too, but glibc's dlopen refuses objects
 * flagged DF_1_PIE, so we refuse them up front), program headers and loadable segments inside the
 * file, and a defined global or weak FUNC symbol `shoal_main` with default or protected
 * visibility in the dynamic symbol table. The symbol table is found through the section headers;
 * an object without section headers (sstrip'd) is checked through PT_DYNAMIC and its hash table
 * instead, which is what the dynamic loader itself uses.
 *
 * Safety: the input is untrusted (and fuzzed). Every offset, size and count read from it is
 * checked against the buffer length with overflow-free arithmetic before use; the validator
 * allocates nothing and its work is linear in the input length.
 */
#ifndef SHOAL_CONTROLLER_ELF_H
#define SHOAL_CONTROLLER_ELF_H

#include <stddef.h>

/* Returns 0 when buf[0..len) is acceptable. Otherwise writes a one-line reason into err (always
 * NUL-terminated when errlen > 0) and returns -ENOEXEC when the object is for another
 * architecture (wrong class, byte order or machine: HTTP wrong_architecture) or -EINVAL for any
 * other defect (HTTP bad_artifact). Thread-safe, no allocation. */
int shoal_elf_validate(const void *buf, size_t len, char *err, size_t errlen);

#endif
