/*
 * fmt - how the CLI shows numbers and server text to people: sizes, durations, the upload
 * progress bar, and text made safe for one terminal line. Pure functions of their arguments,
 * safe from any thread.
 */
#ifndef SHOAL_CLI_FMT_H
#define SHOAL_CLI_FMT_H

#include <stddef.h>
#include <stdint.h>

/* A byte count for people: "512 B", "15.5 KiB", "64.0 MiB". Returns out. */
char *shoal_cli_fmt_bytes(uint64_t n, char *out, size_t size);

/* A duration in milliseconds: "250ms", "1500ms", "30s", "1m", "15m". Returns out. */
char *shoal_cli_fmt_ms(uint64_t ms, char *out, size_t size);

/* One frame of the upload progress bar, without a line ending:
 * "[#########.........]  50%  12.0 MiB / 24.0 MiB" with a bar of width cells. total 0 means
 * unknown. Returns out. */
char *shoal_cli_fmt_progress(uint64_t done, uint64_t total, int width, char *out, size_t size);

/* Copies len bytes of untrusted text into out as one printable line: control characters
 * (including newlines and escape sequences) become spaces, runs of them collapse, and the ends
 * are trimmed; text that does not fit ends in "...". Bytes >= 0x80 (UTF-8) are kept. Returns
 * out. */
char *shoal_cli_fmt_line(const char *in, size_t len, char *out, size_t size);

#endif
