/*
 * util - see util.h.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t shoal_util_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shoal_util_now_ms(void)
{
    return shoal_util_now_ns() / 1000000u;
}

uint64_t shoal_util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int shoal_util_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int shoal_util_write_at(int dirfd, const char *path, const char *s)
{
    int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC), err = 0;
    size_t len = strlen(s);
    ssize_t n;

    if (fd < 0)
        return -errno;
    /* One write, not write_all: a kernel file takes the whole value or rejects it. It may give
     * up with EINTR when a signal is pending (a cgroup v1 memory limit reclaims first, and a
     * worker gets SIGCHLD all the time), so that one is retried. */
    while ((n = write(fd, s, len)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        err = -errno;
    else if ((size_t)n != len)
        err = -EIO;
    close(fd);
    return err;
}

int shoal_util_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int shoal_util_read_file(const char *path, size_t max, char **out, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    int fd, err;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto fail;
    }
    if ((size_t)st.st_size > max) {
        err = -EFBIG;
        goto fail;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    if ((err = shoal_util_read_all(fd, buf, (size_t)st.st_size)) < 0)
        goto fail;
    buf[st.st_size] = '\0';
    close(fd);
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
fail:
    free(buf);
    close(fd);
    return err;
}

static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd, err = 0;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if ((size_t)(slash - path) >= sizeof(dir))
        return -ENAMETOOLONG;
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (fsync(fd) < 0)
        err = -errno;
    close(fd);
    return err;
}

int shoal_util_write_file_durable(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd = -1, err;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    /* A fresh file, never a leftover of a crash: the leftover's mode could be wider than mode,
     * and secrets (common/secret.h) must never be readable by others, not even briefly. */
    unlink(tmp);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0)
        return -errno;
    if ((err = shoal_util_write_all(fd, data, len)) < 0)
        goto fail;
    if (fsync(fd) < 0) {
        err = -errno;
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        err = -errno;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        err = -errno;
        goto fail;
    }
    return fsync_parent(path);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return err;
}

size_t shoal_util_vfmt(char *buf, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size, fmt, ap);

    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

int shoal_util_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int shoal_util_name_valid(const char *name)
{
    size_t i;

    if (name == NULL || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return 0;
    for (i = 1; name[i] != '\0'; i++) {
        char c = name[i];
        if (i >= SHOAL_NAME_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void shoal_util_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = sizeof(md);

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int shoal_util_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int shoal_util_exe_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    char *slash;

    if (n < 0)
        return -errno;
    if ((size_t)n >= size - 1)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    if ((slash = strrchr(buf, '/')) == NULL)
        return -EINVAL;
    *slash = '\0';
    return 0;
}

void shoal_util_errout_open(shoal_util_errout_t *o)
{
    struct stat st;

    o->fd = STDERR_FILENO;
    o->sock = 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return;
    o->sock = S_ISSOCK(st.st_mode);
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd > STDERR_FILENO)
            o->fd = fd;
        else if (fd >= 0)
            close(fd);
    }
}

ssize_t shoal_util_errout_put(const shoal_util_errout_t *o, const void *p, size_t len)
{
    return o->sock ? send(o->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL) : write(o->fd, p, len);
}

void shoal_util_errout_close(shoal_util_errout_t *o)
{
    if (o->fd > STDERR_FILENO)
        close(o->fd);
    o->fd = STDERR_FILENO;
}

int shoal_util_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}
