/*
 * elf - see elf.h. Fields are read with explicit little-endian loads from byte offsets rather than
 * by casting the buffer to <elf.h> structs: the buffer may be unaligned and the struct layouts
 * are only used for their sizes and offsets (offsetof), which are fixed by the ELF64 spec.
 *
 * Every range check has the form `off <= len && size <= len - off`, which cannot overflow.
 */
#include "elf.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SYMBOL "shoal_main"

typedef struct {
    const uint8_t *p;
    size_t len;
    char *err;
    size_t errlen;
} elf_t;

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

__attribute__((format(printf, 3, 4))) static int fail(elf_t *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(e->err, e->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Whether [off, off+size) lies inside the buffer. */
static int in_file(const elf_t *e, uint64_t off, uint64_t size)
{
    return off <= e->len && size <= e->len - off;
}

/* Whether a table of n entries of entsize bytes at off lies inside the buffer. */
static int table_in_file(const elf_t *e, uint64_t off, uint64_t n, uint64_t entsize)
{
    if (entsize != 0 && n > e->len / entsize)
        return 0;
    return in_file(e, off, n * entsize);
}

static const char *machine_name(unsigned m, char *buf, size_t size)
{
    switch (m) {
    case EM_AARCH64:
        return "aarch64";
    case EM_386:
        return "i386";
    case EM_ARM:
        return "arm";
    case EM_RISCV:
        return "riscv";
    case EM_PPC64:
        return "ppc64";
    case EM_PPC:
        return "ppc";
    case EM_S390:
        return "s390";
    case EM_MIPS:
        return "mips";
    case EM_SPARCV9:
        return "sparcv9";
    case 258: /* EM_LOONGARCH, absent from older <elf.h> */
        return "loongarch";
    default:
        snprintf(buf, size, "machine %u", m);
        return buf;
    }
}

static const char *type_name(unsigned t, char *buf, size_t size)
{
    switch (t) {
    case ET_NONE:
        return "ET_NONE";
    case ET_REL:
        return "ET_REL, an object file that was not linked";
    case ET_EXEC:
        return "ET_EXEC";
    case ET_CORE:
        return "ET_CORE";
    default:
        snprintf(buf, size, "type %u", t);
        return buf;
    }
}

/* Offsets of the Elf64 fields we read. */
#define EH(f) offsetof(Elf64_Ehdr, f)
#define PH(f) offsetof(Elf64_Phdr, f)
#define SH(f) offsetof(Elf64_Shdr, f)
#define SYM(f) offsetof(Elf64_Sym, f)

/* Whether the symbol at off (inside a checked table) is a defined, visible function named
 * shoal_main whose name lies inside the string table [str, str+strsz). */
static int is_entry_symbol(const elf_t *e, uint64_t off, uint64_t str, uint64_t strsz)
{
    const uint8_t *s = e->p + off;
    uint32_t name = rd32(s + SYM(st_name));
    unsigned char info = s[SYM(st_info)], other = s[SYM(st_other)];
    uint16_t shndx = rd16(s + SYM(st_shndx));
    unsigned bind = ELF64_ST_BIND(info), type = ELF64_ST_TYPE(info),
             vis = ELF64_ST_VISIBILITY(other);

    if (type != STT_FUNC || (bind != STB_GLOBAL && bind != STB_WEAK) || shndx == SHN_UNDEF)
        return 0;
    if (vis != STV_DEFAULT && vis != STV_PROTECTED)
        return 0;
    /* The name plus its NUL must fit in the string table. */
    if (name >= strsz || strsz - name < sizeof(SYMBOL))
        return 0;
    return memcmp(e->p + str + name, SYMBOL, sizeof(SYMBOL)) == 0;
}

/* Looks for the symbol through SHT_DYNSYM sections. 1 found, 0 not found, <0 error. */
static int find_by_sections(elf_t *e, uint64_t shoff, uint64_t shnum)
{
    for (uint64_t i = 0; i < shnum; i++) {
        const uint8_t *sh = e->p + shoff + i * sizeof(Elf64_Shdr);
        if (rd32(sh + SH(sh_type)) != SHT_DYNSYM)
            continue;
        uint64_t off = rd64(sh + SH(sh_offset)), size = rd64(sh + SH(sh_size));
        uint64_t entsize = rd64(sh + SH(sh_entsize));
        uint32_t link = rd32(sh + SH(sh_link));
        if (entsize != sizeof(Elf64_Sym))
            return fail(e, -EINVAL, "corrupt ELF: .dynsym entry size %llu",
                        (unsigned long long)entsize);
        if (!in_file(e, off, size))
            return fail(e, -EINVAL, "truncated ELF: .dynsym (section %llu) extends past the end",
                        (unsigned long long)i);
        if (link == 0 || link >= shnum)
            return fail(e, -EINVAL, "corrupt ELF: .dynsym links to section %u of %llu", link,
                        (unsigned long long)shnum);
        const uint8_t *ss = e->p + shoff + (uint64_t)link * sizeof(Elf64_Shdr);
        uint64_t str = rd64(ss + SH(sh_offset)), strsz = rd64(ss + SH(sh_size));
        if (rd32(ss + SH(sh_type)) != SHT_STRTAB)
            return fail(e, -EINVAL, "corrupt ELF: .dynsym string table is not a string table");
        if (!in_file(e, str, strsz))
            return fail(e, -EINVAL, "truncated ELF: .dynstr extends past the end");
        for (uint64_t k = 0; k < size / sizeof(Elf64_Sym); k++)
            if (is_entry_symbol(e, off + k * sizeof(Elf64_Sym), str, strsz))
                return 1;
        /* An object has one dynamic symbol table (the loader reads only the one PT_DYNAMIC
         * names). Scanning just the first also keeps the work linear: a crafted file with
         * many SHT_DYNSYM headers all covering the whole file would otherwise be quadratic. */
        return 0;
    }
    return fail(e, -EINVAL, "does not export " SYMBOL " (no dynamic symbol table)");
}

/* Translates a virtual address to a file offset through the PT_LOAD segments (checked to lie
 * in the file by the caller). Returns 0 and *off, or -1 if no segment's file image covers it. */
static int vaddr_to_off(const elf_t *e, uint64_t phoff, uint64_t phnum, uint64_t vaddr,
                        uint64_t *off)
{
    for (uint64_t i = 0; i < phnum; i++) {
        const uint8_t *ph = e->p + phoff + i * sizeof(Elf64_Phdr);
        if (rd32(ph + PH(p_type)) != PT_LOAD)
            continue;
        uint64_t va = rd64(ph + PH(p_vaddr)), filesz = rd64(ph + PH(p_filesz));
        if (vaddr >= va && vaddr - va < filesz) {
            *off = rd64(ph + PH(p_offset)) + (vaddr - va);
            return 0;
        }
    }
    return -1;
}

/* Number of symbols in the dynamic symbol table from DT_HASH (nchain) or DT_GNU_HASH (highest
 * symbol reachable from a bucket), as the dynamic loader sees them. -1 if it cannot tell. */
static int64_t count_dynsyms(const elf_t *e, uint64_t hash, uint64_t gnu_hash)
{
    if (hash != UINT64_MAX) {
        if (!in_file(e, hash, 8))
            return -1;
        return rd32(e->p + hash + 4);
    }
    if (gnu_hash == UINT64_MAX || !in_file(e, gnu_hash, 16))
        return -1;
    uint32_t nbuckets = rd32(e->p + gnu_hash), symoffset = rd32(e->p + gnu_hash + 4);
    uint32_t bloom_size = rd32(e->p + gnu_hash + 8);
    uint64_t buckets = gnu_hash + 16 + (uint64_t)bloom_size * 8;
    if (!table_in_file(e, buckets, nbuckets, 4))
        return -1;
    uint64_t chains = buckets + (uint64_t)nbuckets * 4;
    uint32_t last = 0;
    for (uint32_t b = 0; b < nbuckets; b++) {
        uint32_t v = rd32(e->p + buckets + (uint64_t)b * 4);
        if (v > last)
            last = v;
    }
    if (last < symoffset)
        return symoffset;
    /* Walk the last chain to its end marker (low bit set); bounded by the file length. */
    for (;;) {
        uint64_t at = chains + ((uint64_t)last - symoffset) * 4;
        if (!in_file(e, at, 4))
            return -1;
        if (rd32(e->p + at) & 1)
            return (int64_t)last + 1;
        last++;
    }
}

/* Reads PT_DYNAMIC: rejects PIEs and, when needed, looks the symbol up through DT_SYMTAB.
 * 1 found, 0 not found, <0 error. */
static int check_dynamic(elf_t *e, uint64_t phoff, uint64_t phnum, uint64_t dyn, uint64_t dynsz,
                         int lookup)
{
    uint64_t symtab = 0, strtab = 0, strsz = 0, syment = sizeof(Elf64_Sym);
    uint64_t hash = UINT64_MAX, gnu_hash = UINT64_MAX, flags1 = 0;
    int have_symtab = 0, have_strtab = 0;

    for (uint64_t k = 0; k < dynsz / sizeof(Elf64_Dyn); k++) {
        const uint8_t *d = e->p + dyn + k * sizeof(Elf64_Dyn);
        int64_t tag = (int64_t)rd64(d);
        uint64_t val = rd64(d + 8);
        if (tag == DT_NULL)
            break;
        switch (tag) {
        case DT_FLAGS_1:
            flags1 = val;
            break;
        case DT_SYMTAB:
            symtab = val;
            have_symtab = 1;
            break;
        case DT_STRTAB:
            strtab = val;
            have_strtab = 1;
            break;
        case DT_STRSZ:
            strsz = val;
            break;
        case DT_SYMENT:
            syment = val;
            break;
        case DT_HASH:
            hash = val;
            break;
        case DT_GNU_HASH:
            gnu_hash = val;
            break;
        }
    }
    if (flags1 & DF_1_PIE)
        return fail(e, -EINVAL, "not a shared object (a position-independent executable)");
    if (!lookup)
        return 0;

    /* No section headers: do what the dynamic loader does. */
    uint64_t sym_off, str_off, h_off = UINT64_MAX, g_off = UINT64_MAX;
    if (!have_symtab || !have_strtab || syment != sizeof(Elf64_Sym))
        return fail(e, -EINVAL, "does not export " SYMBOL " (no dynamic symbol table)");
    if (vaddr_to_off(e, phoff, phnum, symtab, &sym_off) < 0 ||
        vaddr_to_off(e, phoff, phnum, strtab, &str_off) < 0 || !in_file(e, str_off, strsz))
        return fail(e, -EINVAL, "truncated ELF: dynamic symbol table outside the file");
    if (hash != UINT64_MAX && vaddr_to_off(e, phoff, phnum, hash, &h_off) < 0)
        return fail(e, -EINVAL, "corrupt ELF: DT_HASH outside the file");
    if (gnu_hash != UINT64_MAX && vaddr_to_off(e, phoff, phnum, gnu_hash, &g_off) < 0)
        return fail(e, -EINVAL, "corrupt ELF: DT_GNU_HASH outside the file");
    int64_t nsyms = count_dynsyms(e, h_off, g_off);
    if (nsyms < 0)
        return fail(e, -EINVAL, "corrupt ELF: cannot size the dynamic symbol table");
    if (!table_in_file(e, sym_off, (uint64_t)nsyms, sizeof(Elf64_Sym)))
        return fail(e, -EINVAL, "truncated ELF: dynamic symbol table extends past the end");
    for (int64_t k = 0; k < nsyms; k++)
        if (is_entry_symbol(e, sym_off + (uint64_t)k * sizeof(Elf64_Sym), str_off, strsz))
            return 1;
    return 0;
}

int shoal_elf_validate(const void *buf, size_t len, char *err, size_t errlen)
{
    elf_t e = {buf, len, err, errlen};
    const uint8_t *p = buf;
    char tmp[32];
    int found;

    if (errlen > 0)
        err[0] = '\0';
    if (len < SELFMAG || memcmp(p, ELFMAG, SELFMAG) != 0)
        return fail(&e, -EINVAL, "not an ELF file");
    if (len < EI_NIDENT)
        return fail(&e, -EINVAL, "truncated ELF: identification");
    if (p[EI_CLASS] == ELFCLASS32) {
        /* e_machine sits at the same offset in both classes: name it when it is there. */
        if (len >= 20)
            return fail(&e, -ENOEXEC, "32-bit ELF for %s, need ELF64 x86-64",
                        machine_name(rd16(p + 18), tmp, sizeof(tmp)));
        return fail(&e, -ENOEXEC, "32-bit ELF, need ELF64 x86-64");
    }
    if (p[EI_CLASS] != ELFCLASS64)
        return fail(&e, -EINVAL, "corrupt ELF: unknown class %u", p[EI_CLASS]);
    if (p[EI_DATA] == ELFDATA2MSB)
        return fail(&e, -ENOEXEC, "big-endian ELF, need little-endian x86-64");
    if (p[EI_DATA] != ELFDATA2LSB)
        return fail(&e, -EINVAL, "corrupt ELF: unknown byte order %u", p[EI_DATA]);
    if (p[EI_VERSION] != EV_CURRENT)
        return fail(&e, -EINVAL, "corrupt ELF: version %u", p[EI_VERSION]);
    if (len < sizeof(Elf64_Ehdr))
        return fail(&e, -EINVAL, "truncated ELF: ELF header");

    unsigned machine = rd16(p + EH(e_machine)), type = rd16(p + EH(e_type));
    if (machine != EM_X86_64)
        return fail(&e, -ENOEXEC, "ELF for %s, need x86-64",
                    machine_name(machine, tmp, sizeof(tmp)));
    if (type != ET_DYN)
        return fail(&e, -EINVAL, "not a shared object (%s)", type_name(type, tmp, sizeof(tmp)));

    uint64_t phoff = rd64(p + EH(e_phoff)), shoff = rd64(p + EH(e_shoff));
    uint64_t phnum = rd16(p + EH(e_phnum)), shnum = rd16(p + EH(e_shnum));
    unsigned phentsize = rd16(p + EH(e_phentsize)), shentsize = rd16(p + EH(e_shentsize));

    /* Program headers: the loader needs them, so they must all be in the file. */
    if (phnum == 0)
        return fail(&e, -EINVAL, "corrupt ELF: no program headers");
    if (phentsize != sizeof(Elf64_Phdr))
        return fail(&e, -EINVAL, "corrupt ELF: program header size %u", phentsize);
    if (!table_in_file(&e, phoff, phnum, sizeof(Elf64_Phdr)))
        return fail(&e, -EINVAL, "truncated ELF: program headers");
    uint64_t dyn = 0, dynsz = 0;
    int loads = 0, have_dyn = 0;
    for (uint64_t i = 0; i < phnum; i++) {
        const uint8_t *ph = p + phoff + i * sizeof(Elf64_Phdr);
        uint32_t ptype = rd32(ph + PH(p_type));
        uint64_t off = rd64(ph + PH(p_offset)), filesz = rd64(ph + PH(p_filesz));
        if (ptype != PT_LOAD && ptype != PT_DYNAMIC)
            continue;
        if (!in_file(&e, off, filesz))
            return fail(&e, -EINVAL, "truncated ELF: segment %llu extends past the end",
                        (unsigned long long)i);
        if (ptype == PT_LOAD) {
            loads++;
        } else if (!have_dyn) {
            have_dyn = 1;
            dyn = off;
            dynsz = filesz;
        }
    }
    if (loads == 0)
        return fail(&e, -EINVAL, "corrupt ELF: no loadable segments");
    if (!have_dyn)
        return fail(&e, -EINVAL, "not a shared object (no dynamic segment)");

    /* Section headers. Extended numbering keeps the real count in section 0's sh_size. */
    if (shoff != 0) {
        if (shentsize != sizeof(Elf64_Shdr))
            return fail(&e, -EINVAL, "corrupt ELF: section header size %u", shentsize);
        if (!in_file(&e, shoff, sizeof(Elf64_Shdr)))
            return fail(&e, -EINVAL, "truncated ELF: section headers");
        if (shnum == 0)
            shnum = rd64(p + shoff + SH(sh_size));
        if (!table_in_file(&e, shoff, shnum, sizeof(Elf64_Shdr)))
            return fail(&e, -EINVAL, "truncated ELF: section headers");
    } else {
        shnum = 0;
    }

    if ((found = check_dynamic(&e, phoff, phnum, dyn, dynsz, shnum == 0)) < 0)
        return found;
    if (shnum != 0 && (found = find_by_sections(&e, shoff, shnum)) < 0)
        return found;
    if (!found)
        return fail(&e, -EINVAL, "does not export " SYMBOL);
    return 0;
}
