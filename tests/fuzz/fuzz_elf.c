/*
 * libFuzzer target for the ELF validator (controller/elf.c), which sees every uploaded artifact
 * before anything else does. Any input must be answered without reading out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include "controller/elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    char err[256];
    shoal_elf_validate(buf, len, err, sizeof(err));
    return 0;
}
