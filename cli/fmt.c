/*
 * fmt - see fmt.h.
 */
#include "fmt.h"

#include <stdio.h>
#include <string.h>

char *shoal_cli_fmt_bytes(uint64_t n, char *out, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    size_t u = 0;

    if (n < 1024) {
        snprintf(out, size, "%llu B", (unsigned long long)n);
        return out;
    }
    v /= 1024;
    /* Move up a unit before printf would round 1023.96 up to "1024.0". */
    while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, "%.1f %s", v, units[u]);
    return out;
}

char *shoal_cli_fmt_ms(uint64_t ms, char *out, size_t size)
{
    if (ms >= 60000 && ms % 60000 == 0)
        snprintf(out, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms >= 1000 && ms % 1000 == 0)
        snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, size, "%llums", (unsigned long long)ms);
    return out;
}

char *shoal_cli_fmt_progress(uint64_t done, uint64_t total, int width, char *out, size_t size)
{
    char bar[256], a[32], b[32];
    int filled = 0, pct = 0;

    if (width < 1)
        width = 1;
    if (width > (int)sizeof(bar) - 1)
        width = (int)sizeof(bar) - 1;
    if (total > 0) {
        if (done > total)
            done = total;
        /* In floating point: done * 100 could overflow 64 bits for absurd sizes. */
        pct = (int)((double)done * 100.0 / (double)total);
        filled = (int)((double)done * width / (double)total);
    }
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(width - filled));
    bar[width] = '\0';
    shoal_cli_fmt_bytes(done, a, sizeof(a));
    if (total > 0)
        snprintf(out, size, "[%s] %3d%%  %s / %s", bar, pct, a,
                 shoal_cli_fmt_bytes(total, b, sizeof(b)));
    else
        snprintf(out, size, "[%s]  %s", bar, a);
    return out;
}

char *shoal_cli_fmt_line(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;
    int space = 0;

    if (size == 0)
        return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = o > 0; /* collapse runs, drop leading blanks */
            continue;
        }
        if (o + space + 1 >= size) {
            /* Does not fit: end with "..." where there is room for it. */
            size_t keep = size > 4 ? size - 4 : 0;
            if (o > keep) {
                o = keep;
                /* Do not cut a UTF-8 sequence in half: drop all of a cut one. */
                while (o > 0 && ((unsigned char)out[o] & 0xc0) == 0x80)
                    o--;
            }
            if (size > 4) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            out[o] = '\0';
            return out;
        }
        if (space) {
            out[o++] = ' ';
            space = 0;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}
