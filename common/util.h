/*
 * util - small helpers every binary uses: clocks, whole reads and writes, durable files, and the
 * rules for function names. None keeps state; all are safe from any thread.
 */
#ifndef SHOAL_COMMON_UTIL_H
#define SHOAL_COMMON_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHOAL_NAME_MAX 63

/* Monotonic time in nanoseconds and milliseconds. */
uint64_t shoal_util_now_ns(void);
uint64_t shoal_util_now_ms(void);
/* Wall-clock time in milliseconds since the epoch. */
uint64_t shoal_util_wall_ms(void);

/* Writes or reads exactly len bytes, retrying on EINTR and short counts; 0 or -errno
 * (-EPIPE-like errors pass through; a read that meets end of file early returns -EIO). */
int shoal_util_write_all(int fd, const void *buf, size_t len);
int shoal_util_read_all(int fd, void *buf, size_t len);

/* Writes the string s to path, relative to dirfd (AT_FDCWD or a directory fd), in one write(2):
 * for existing kernel files (/proc, cgroupfs) that take a value per write and must not be
 * created or truncated; EINTR is retried. 0, -errno, or -EIO on a short write. */
int shoal_util_write_at(int dirfd, const char *path, const char *s);

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience) of at most max
 * bytes; -EFBIG when larger. The caller frees *out. */
int shoal_util_read_file(const char *path, size_t max, char **out, size_t *len);

/* Writes data to path durably: a temporary file beside it, fsync, rename, fsync of the directory.
 * On failure nothing is left at path or beside it. */
int shoal_util_write_file_durable(const char *path, const void *data, size_t len, mode_t mode);

/* A writer to stderr that never waits for a slow reader (a stuck pipe, a busy journald): for a
 * pipe, FIFO or terminal a non-blocking open file description of its own (reopened through
 * /proc/self/fd/2, so O_NONBLOCK does not leak to whoever shares fd 2), for a socket
 * send(MSG_DONTWAIT) on fd 2, for anything else fd 2 itself (a file's writes do not wait). */
typedef struct {
    int fd;
    int sock;
} shoal_util_errout_t;
/* Sets o up for the current fd 2. */
void shoal_util_errout_open(shoal_util_errout_t *o);
/* Writes what stderr takes now: bytes written, or -1 with errno (EAGAIN when it is full). A
 * write of at most PIPE_BUF bytes to a pipe is whole or nothing. */
ssize_t shoal_util_errout_put(const shoal_util_errout_t *o, const void *p, size_t len);
/* Closes the descriptor o opened (never fd 2). */
void shoal_util_errout_close(shoal_util_errout_t *o);

/* vsnprintf into buf (size > 0) that returns the length it kept, for callers that pass the text
 * on with its length: 0 after an encoding error, size - 1 when the text was truncated. */
size_t shoal_util_vfmt(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Creates a directory and its parents (like mkdir -p); 0 if it already exists. */
int shoal_util_mkdir_p(const char *path, mode_t mode);

/* Whether s[0..len) is all lower-case hex digits (ids, SHA-256s as Shoal writes them); true for
 * len 0. */
int shoal_util_lower_hex(const char *s, size_t len);

/* Whether name is a valid function/trigger name: [a-z0-9][a-z0-9_-]{0,62}. */
int shoal_util_name_valid(const char *name);

/* Lower-case hex SHA-256 of data into out (65 bytes with the NUL). */
void shoal_util_sha256_hex(const void *data, size_t len, char out[65]);

/* Parses a decimal unsigned integer that must fill the whole string and lie in [min, max];
 * 0 or -EINVAL (not a number) or -ERANGE. */
int shoal_util_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);

/* Directory containing the running executable (from /proc/self/exe) into buf; 0 or -errno. */
int shoal_util_exe_dir(char *buf, size_t size);

#endif
