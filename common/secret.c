/*
 * secret - see secret.h.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"

int shoal_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[32], db[32];
    unsigned int la = sizeof(da), lb = sizeof(db);

    /* Digests of equal length make the comparison independent of where the inputs differ and
     * of whether their lengths do; comparing digests is as strong as comparing the inputs. */
    if (EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(b, blen, db, &lb, EVP_sha256(), NULL) != 1)
        return 0;
    /* Both digests are checked in full; the length test below is not secret-dependent. */
    return (CRYPTO_memcmp(da, db, sizeof(da)) == 0) & (alen == blen);
}

static int token68(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int shoal_secret_valid(const char *s, size_t len)
{
    size_t i = 0;

    if (s == NULL || len < SHOAL_SECRET_MIN || len > SHOAL_SECRET_MAX)
        return 0;
    while (i < len && token68((unsigned char)s[i]))
        i++;
    if (i == 0)
        return 0;
    while (i < len && s[i] == '=')
        i++;
    return i == len;
}

int shoal_secret_generate(char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    size_t got = 0;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int shoal_secret_load(const char *path, char *out, size_t size, int *loose)
{
    char buf[SHOAL_SECRET_MAX + 3];
    struct stat st;
    ssize_t n;
    size_t len;
    int fd, err = 0;

    if (loose != NULL)
        *loose = 0;
    if (size <= SHOAL_SECRET_MAX)
        return -ENOBUFS;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = -EINVAL;
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        /* Someone widened it (or copied it with a loose umask): close the gap for the future. */
        if (loose != NULL)
            *loose = 1;
        (void)fchmod(fd, 0600);
    }
    do
        n = read(fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        err = -errno;
        goto out;
    }
    len = (size_t)n;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (!shoal_secret_valid(buf, len)) {
        err = -EINVAL;
        goto out;
    }
    memcpy(out, buf, len);
    out[len] = '\0';
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return err;
}

int shoal_secret_store(const char *path, const char *secret)
{
    char buf[SHOAL_SECRET_MAX + 2];
    size_t len = strlen(secret);
    int err;

    if (!shoal_secret_valid(secret, len))
        return -EINVAL;
    memcpy(buf, secret, len);
    buf[len] = '\n';
    err = shoal_util_write_file_durable(path, buf, len + 1, 0600);
    OPENSSL_cleanse(buf, sizeof(buf));
    return err;
}

int shoal_secret_init(const char *path, const char *given, char *out, size_t size,
                      shoal_secret_origin_t *origin)
{
    char stored[SHOAL_SECRET_MAX + 1];
    int err, loose = 0;

    if (size <= SHOAL_SECRET_MAX)
        return -ENOBUFS;
    err = shoal_secret_load(path, stored, sizeof(stored), &loose);
    if (err < 0 && err != -ENOENT && !(given != NULL && given[0] != '\0' && err == -EINVAL))
        return err;
    if (loose)
        SHOAL_WARN("%s was readable by others; its mode is now 0600", path);
    if (given != NULL && given[0] != '\0') {
        size_t len = strlen(given);
        if (!shoal_secret_valid(given, len))
            return -EINVAL;
        /* The given secret replaces the stored one: that is how it is rotated. */
        if (err < 0 || !shoal_secret_equal(stored, strlen(stored), given, len)) {
            if ((err = shoal_secret_store(path, given)) < 0)
                return err;
        }
        memcpy(out, given, len + 1);
        if (origin != NULL)
            *origin = SHOAL_SECRET_GIVEN;
    } else if (err == 0) {
        memcpy(out, stored, strlen(stored) + 1);
        if (origin != NULL)
            *origin = SHOAL_SECRET_LOADED;
    } else {
        if ((err = shoal_secret_generate(out)) < 0 || (err = shoal_secret_store(path, out)) < 0)
            return err;
        if (origin != NULL)
            *origin = SHOAL_SECRET_CREATED;
    }
    OPENSSL_cleanse(stored, sizeof(stored));
    return 0;
}
