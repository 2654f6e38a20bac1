/* Tests controller/elf.c against real objects built by the system compiler (a good shared
 * object, one without shoal_main, data/hidden/undefined shoal_main, executables with and without
 * PIE, an object file, a 32-bit object), hand-patched headers (class, byte order, machines,
 * stripped section headers), every truncation of a good object, and random mutations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "controller/elf.h"

static char dir[] = "/tmp/shoal-test-elf-XXXXXX";

typedef struct {
    char *buf;
    size_t len;
} blob_t;

/* Compiles src with the given flags into dir/name and reads it back; skips the test when the
 * compiler is missing (or lacks, for example, 32-bit support). */
static int build(const char *name, const char *src, const char *flags, blob_t *out)
{
    char path[512], cmd[1536];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.c", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(src, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "cc %s -o %s/%s %s 2>/dev/null", flags, dir, name, path);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(shoal_util_read_file(path, 64u << 20, &out->buf, &out->len), 0);
    return 0;
}

static const char GOOD[] = "int shoal_main(void *ctx) { (void)ctx; return 0; }\n";

static int validate(const blob_t *b, char *err, size_t errlen)
{
    return shoal_elf_validate(b->buf, b->len, err, errlen);
}

static void expect(const blob_t *b, int code, const char *needle)
{
    char err[256];
    int r = validate(b, err, sizeof(err));
    if (r != code || (needle && strstr(err, needle) == NULL))
        fail_msg("expected %d containing '%s', got %d: '%s'", code, needle ? needle : "", r, err);
}

static void test_good_shared_object(void **state)
{
    blob_t b;
    char err[256] = "junk";
    (void)state;

    assert_int_equal(build("good.so", GOOD, "-shared -fPIC -O2", &b), 0);
    assert_int_equal(validate(&b, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    free(b.buf);
}

static void test_weak_and_protected_are_accepted(void **state)
{
    blob_t b;
    (void)state;

    assert_int_equal(build("weak.so",
                           "__attribute__((weak)) int shoal_main(void *c) { (void)c; return 0; }\n",
                           "-shared -fPIC", &b),
                     0);
    expect(&b, 0, NULL);
    free(b.buf);
    assert_int_equal(build("prot.so",
                           "__attribute__((visibility(\"protected\"))) int shoal_main(void *c)"
                           " { (void)c; return 0; }\n",
                           "-shared -fPIC", &b),
                     0);
    expect(&b, 0, NULL);
    free(b.buf);
}

static void test_missing_or_wrong_symbol(void **state)
{
    blob_t b;
    (void)state;

    assert_int_equal(build("nomain.so", "int other(void) { return 1; }\n", "-shared -fPIC", &b), 0);
    expect(&b, -EINVAL, "does not export shoal_main");
    free(b.buf);
    /* A data object named shoal_main is not a function. */
    assert_int_equal(build("data.so", "int shoal_main = 3;\n", "-shared -fPIC", &b), 0);
    expect(&b, -EINVAL, "does not export shoal_main");
    free(b.buf);
    /* Hidden: not visible to dlsym. */
    assert_int_equal(build("hidden.so",
                           "__attribute__((visibility(\"hidden\"))) int shoal_main(void *c)"
                           " { (void)c; return 0; }\nint other(void) { return shoal_main(0); }\n",
                           "-shared -fPIC", &b),
                     0);
    expect(&b, -EINVAL, "does not export shoal_main");
    free(b.buf);
    /* Referenced but not defined: an undefined symbol in .dynsym. */
    assert_int_equal(build("undef.so",
                           "int shoal_main(void *c);\nint other(void) { return shoal_main(0); }\n",
                           "-shared -fPIC", &b),
                     0);
    expect(&b, -EINVAL, "does not export shoal_main");
    free(b.buf);
}

/* A PIE is ET_DYN like a shared object, but dlopen refuses it (DF_1_PIE): so do we. */
static void test_executables_and_objects(void **state)
{
    blob_t b;
    (void)state;

    assert_int_equal(build("pie",
                           "int shoal_main(void *c) { (void)c; return 0; }\n"
                           "int main(void) { return shoal_main(0); }\n",
                           "-fPIE -pie -rdynamic", &b),
                     0);
    expect(&b, -EINVAL, "position-independent executable");
    free(b.buf);
    assert_int_equal(build("nopie", "int main(void) { return 0; }\n", "-no-pie", &b), 0);
    expect(&b, -EINVAL, "not a shared object (ET_EXEC)");
    free(b.buf);
    assert_int_equal(build("obj.o", GOOD, "-c -fPIC", &b), 0);
    expect(&b, -EINVAL, "ET_REL");
    free(b.buf);
}

static void test_32bit_object(void **state)
{
    blob_t b;
    (void)state;

    /* Linking 32-bit needs multilib; compiling an object does not always either. */
    if (build("m32.o", GOOD, "-m32 -c", &b) < 0)
        skip();
    expect(&b, -ENOEXEC, "32-bit ELF for i386, need ELF64");
    free(b.buf);
}

static void test_patched_headers(void **state)
{
    static const struct {
        uint16_t machine;
        const char *name;
    } MACHINES[] = {{EM_AARCH64, "ELF for aarch64, need x86-64"},
                    {EM_386, "ELF for i386"},
                    {EM_ARM, "ELF for arm"},
                    {EM_RISCV, "ELF for riscv"},
                    {EM_PPC64, "ELF for ppc64"},
                    {EM_S390, "ELF for s390"},
                    {9999, "ELF for machine 9999"}};
    blob_t b;
    (void)state;

    assert_int_equal(build("p.so", GOOD, "-shared -fPIC", &b), 0);
    for (size_t i = 0; i < sizeof(MACHINES) / sizeof(MACHINES[0]); i++) {
        b.buf[18] = (char)(MACHINES[i].machine & 0xff);
        b.buf[19] = (char)(MACHINES[i].machine >> 8);
        expect(&b, -ENOEXEC, MACHINES[i].name);
    }
    b.buf[18] = EM_X86_64;
    b.buf[19] = 0;
    expect(&b, 0, NULL);

    b.buf[EI_CLASS] = ELFCLASS32;
    expect(&b, -ENOEXEC, "32-bit ELF");
    b.buf[EI_CLASS] = 7;
    expect(&b, -EINVAL, "unknown class");
    b.buf[EI_CLASS] = ELFCLASS64;
    b.buf[EI_DATA] = ELFDATA2MSB;
    expect(&b, -ENOEXEC, "big-endian");
    b.buf[EI_DATA] = ELFDATA2LSB;
    b.buf[EI_VERSION] = 0;
    expect(&b, -EINVAL, "version");
    b.buf[EI_VERSION] = EV_CURRENT;
    b.buf[16] = ET_CORE;
    expect(&b, -EINVAL, "not a shared object (ET_CORE)");
    b.buf[16] = ET_DYN;
    expect(&b, 0, NULL);
    free(b.buf);
}

/* Without section headers the validator reads PT_DYNAMIC and the hash table, like ld.so. */
static void test_without_section_headers(void **state)
{
    blob_t b;
    Elf64_Ehdr eh;
    (void)state;

    /* Both hash styles: DT_HASH (sysv) and DT_GNU_HASH. */
    const char *styles[] = {"-Wl,--hash-style=sysv", "-Wl,--hash-style=gnu"};
    for (int s = 0; s < 2; s++) {
        char flags[96];
        snprintf(flags, sizeof(flags), "-shared -fPIC %s", styles[s]);
        assert_int_equal(build("ns.so",
                               "int a(void){return 1;} int shoal_main(void *c){(void)c;return 0;}"
                               " int z(void){return 2;}\n",
                               flags, &b),
                         0);
        memcpy(&eh, b.buf, sizeof(eh));
        eh.e_shoff = 0;
        eh.e_shnum = 0;
        eh.e_shstrndx = 0;
        memcpy(b.buf, &eh, sizeof(eh));
        expect(&b, 0, NULL);
        free(b.buf);

        assert_int_equal(build("ns2.so", "int other(void) { return 1; }\n", flags, &b), 0);
        memcpy(&eh, b.buf, sizeof(eh));
        eh.e_shoff = 0;
        eh.e_shnum = 0;
        memcpy(b.buf, &eh, sizeof(eh));
        expect(&b, -EINVAL, "does not export shoal_main");
        free(b.buf);
    }
}

/* Every prefix of a good object is refused as truncated or corrupt, never accepted, never read
 * past its end (the sanitizer build checks the latter). */
static void test_every_truncation(void **state)
{
    blob_t b;
    char err[256];
    (void)state;

    assert_int_equal(build("t.so", GOOD, "-shared -fPIC", &b), 0);
    for (size_t len = 0; len < b.len; len++) {
        /* A fresh heap copy of exactly len bytes, so that ASan sees any overread. */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, b.buf, len);
        err[0] = '\0';
        int r = shoal_elf_validate(copy, len, err, sizeof(err));
        if (r == 0)
            fail_msg("a %zu-byte prefix of a %zu-byte object was accepted", len, b.len);
        assert_true(r == -EINVAL || r == -ENOEXEC);
        assert_true(err[0] != '\0');
        if (len >= 4 && len < 64)
            assert_non_null(strstr(err, "truncated"));
        free(copy);
    }
    /* Cutting the section header table (at the end of the file) is reported as truncation. */
    char *copy = malloc(b.len - 1);
    memcpy(copy, b.buf, b.len - 1);
    assert_int_equal(shoal_elf_validate(copy, b.len - 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "truncated ELF"));
    free(copy);
    free(b.buf);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random garbage, and a good object with random bytes and fields overwritten: the validator
 * must answer something for each, within bounds. */
static void test_garbage_and_mutations(void **state)
{
    blob_t b;
    char err[128];
    int accepted = 0;
    (void)state;

    for (int i = 0; i < 2000; i++) {
        size_t len = next_rand() % 4096;
        char *g = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++)
            g[k] = (char)next_rand();
        if (len >= 4 && (i & 1))
            memcpy(g, "\177ELF\2\1\1", len < 7 ? len : 7);
        assert_true(shoal_elf_validate(g, len, err, sizeof(err)) < 0);
        free(g);
    }
    assert_int_equal(build("m.so", GOOD, "-shared -fPIC", &b), 0);
    for (int i = 0; i < 3000; i++) {
        char *m = malloc(b.len);
        memcpy(m, b.buf, b.len);
        int edits = 1 + (int)(next_rand() % 8);
        for (int e = 0; e < edits; e++) {
            size_t at = (i & 1) ? next_rand() % 64 + 0 : next_rand() % b.len;
            if (i % 3 == 0) {
                /* Plant an extreme 64-bit value in a header field position. */
                uint64_t v = (next_rand() & 1) ? UINT64_MAX - (next_rand() % 16) : next_rand();
                at = next_rand() % (b.len - 8);
                memcpy(m + at, &v, 8);
            } else {
                m[at] = (char)next_rand();
            }
        }
        int r = shoal_elf_validate(m, b.len, err, sizeof(err));
        assert_true(r == 0 || r == -EINVAL || r == -ENOEXEC);
        accepted += r == 0;
        free(m);
    }
    /* Most single-byte edits of code or padding are harmless: the validator is not so strict
     * that it refuses everything. */
    assert_true(accepted > 0);
    free(b.buf);
}

static void test_error_buffer_edges(void **state)
{
    char small[8];
    (void)state;

    assert_int_equal(shoal_elf_validate("nope", 4, small, sizeof(small)), -EINVAL);
    assert_int_equal(strlen(small), 7); /* cut, still terminated */
    assert_int_equal(shoal_elf_validate("nope", 4, NULL, 0), -EINVAL);
    assert_int_equal(shoal_elf_validate("", 0, small, sizeof(small)), -EINVAL);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_shared_object),
        cmocka_unit_test(test_weak_and_protected_are_accepted),
        cmocka_unit_test(test_missing_or_wrong_symbol),
        cmocka_unit_test(test_executables_and_objects),
        cmocka_unit_test(test_32bit_object),
        cmocka_unit_test(test_patched_headers),
        cmocka_unit_test(test_without_section_headers),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_garbage_and_mutations),
        cmocka_unit_test(test_error_buffer_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
