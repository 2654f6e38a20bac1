/*
 * tar.c - ustar writer. Each member is a 512-byte header (name, octal mode/uid/gid/size/mtime,
 * checksum, type '0', magic "ustar\0" version "00") followed by its data zero-padded to a
 * multiple of 512; the archive ends with two zero blocks.
 */
#include "tar.h"

#include <errno.h>
#include <string.h>

#define BLOCK 512

static size_t padded(size_t n)
{
    return (n + BLOCK - 1) / BLOCK * BLOCK;
}

size_t vid_tar_size(const vid_tar_entry *e, int n)
{
    size_t total = 2 * BLOCK;
    for (int i = 0; i < n; i++)
        total += BLOCK + padded(e[i].len);
    return total;
}

/* Writes v as a NUL-terminated, zero-padded octal number filling a field of width bytes (the
 * caller has checked that it fits). */
static void octal(char *field, size_t width, unsigned long long v)
{
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

long long vid_tar_write(uint8_t *dst, size_t cap, const vid_tar_entry *e, int n, long long mtime)
{
    size_t need = vid_tar_size(e, n), o = 0;
    if (need > cap)
        return -ENOSPC;
    for (int i = 0; i < n; i++) {
        size_t nlen = strlen(e[i].name);
        if (nlen == 0 || nlen > 99 || e[i].name[0] == '/' || e[i].len >= (1ULL << 33) ||
            mtime >= (1LL << 33))
            return -EINVAL;
    }
    for (int i = 0; i < n; i++) {
        char *h = (char *)dst + o;
        memset(h, 0, BLOCK);
        memcpy(h, e[i].name, strlen(e[i].name));
        octal(h + 100, 8, 0644);
        octal(h + 108, 8, 0);
        octal(h + 116, 8, 0);
        octal(h + 124, 12, e[i].len);
        octal(h + 136, 12, mtime < 0 ? 0 : (unsigned long long)mtime);
        h[156] = '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        /* The checksum is computed with its own field set to spaces. */
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int k = 0; k < BLOCK; k++)
            sum += (unsigned char)h[k];
        octal(h + 148, 7, sum);
        h[155] = ' ';
        o += BLOCK;
        if (e[i].len)
            memcpy(dst + o, e[i].data, e[i].len);
        memset(dst + o + e[i].len, 0, padded(e[i].len) - e[i].len);
        o += padded(e[i].len);
    }
    memset(dst + o, 0, 2 * BLOCK);
    o += 2 * BLOCK;
    return (long long)o;
}
