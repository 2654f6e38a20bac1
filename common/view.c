/*
 * view - see view.h. The mechanism is the one the zygote's stems have used from the start
 * (runtime/sandbox.c): a tmpfs root, read-only binds, pivot_root and a lazy detach of the old
 * root. Paths are built with memcpy into stack buffers: no allocation, no locale, no locks.
 */
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* The kernel's struct mount_attr, declared here so that old headers do not matter; the
 * SHOAL_VIEW_ATTR_* values are the kernel's MOUNT_ATTR_* values. */
struct view_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* out = a + b, or -ENAMETOOLONG. */
static int join(char out[SHOAL_VIEW_PATH_MAX], const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la + lb + 1 > SHOAL_VIEW_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return 0;
}

int shoal_view_seal(const char *path, uint64_t attrs)
{
    struct view_mount_attr a = {.attr_set = attrs};
    unsigned long fl = MS_REMOUNT | MS_BIND;
    struct statvfs sv;

    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof(a)) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    /* The older MS_REMOUNT must repeat the flags the mount has locked (its atime mode), which
     * statvfs reports; mount_setattr changes only what it is told. */
    if (statvfs(path, &sv) < 0)
        return -errno;
    fl |= sv.f_flag & (ST_NOATIME | ST_NODIRATIME | ST_RELATIME | ST_NODEV | ST_NOEXEC);
    fl |= (attrs & SHOAL_VIEW_ATTR_RDONLY ? MS_RDONLY : 0) |
          (attrs & SHOAL_VIEW_ATTR_NOSUID ? MS_NOSUID : 0) |
          (attrs & SHOAL_VIEW_ATTR_NODEV ? MS_NODEV : 0) |
          (attrs & SHOAL_VIEW_ATTR_NOEXEC ? MS_NOEXEC : 0);
    return mount(NULL, path, NULL, fl, NULL) < 0 ? -errno : 0;
}

int shoal_view_stage(const char *stage, int tmpfs)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -errno;
    if (tmpfs)
        return mount("shoal", stage, "tmpfs", MS_NOSUID | MS_NODEV,
                     "size=1m,nr_inodes=64,mode=0755") < 0
                   ? -errno
                   : 0;
    /* pivot_root needs a mount point: the prepared directory, bound onto itself. */
    return mount(stage, stage, NULL, MS_BIND, NULL) < 0 ? -errno : 0;
}

int shoal_view_mkdir(const char *stage, const char *dir, unsigned mode)
{
    char path[SHOAL_VIEW_PATH_MAX];
    int err;

    if ((err = join(path, stage, dir)) < 0)
        return err;
    return mkdir(path, mode) < 0 && errno != EEXIST ? -errno : 0;
}

int shoal_view_point(const char *stage, const char *src, const char *dst)
{
    char path[SHOAL_VIEW_PATH_MAX];
    struct stat st;
    int fd, err;

    if (lstat(src, &st) < 0)
        return errno == ENOENT ? 1 : -errno;
    if ((err = join(path, stage, dst ? dst : src)) < 0)
        return err;
    if (S_ISLNK(st.st_mode)) {
        char target[SHOAL_VIEW_PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        return symlink(target, path) < 0 && errno != EEXIST ? -errno : 1;
    }
    if (S_ISDIR(st.st_mode))
        return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
    if (lstat(path, &st) == 0)
        return 0;
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return -errno;
    close(fd);
    return 0;
}

int shoal_view_bind(const char *stage, const char *src, const char *dst, unsigned flags)
{
    char path[SHOAL_VIEW_PATH_MAX];
    int err;

    if ((err = shoal_view_point(stage, src, dst)) != 0)
        return err < 0 ? err : 0;
    if ((err = join(path, stage, dst ? dst : src)) < 0)
        return err;
    if (mount(src, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    if (flags & SHOAL_VIEW_DEV)
        return shoal_view_seal(path, SHOAL_VIEW_ATTR_NOSUID | SHOAL_VIEW_ATTR_NOEXEC);
    if (flags & SHOAL_VIEW_RW)
        return shoal_view_seal(path, SHOAL_VIEW_ATTR_NOSUID | SHOAL_VIEW_ATTR_NODEV |
                                         SHOAL_VIEW_ATTR_NOEXEC);
    return shoal_view_seal(path,
                           SHOAL_VIEW_ATTR_RDONLY | SHOAL_VIEW_ATTR_NOSUID | SHOAL_VIEW_ATTR_NODEV);
}

int shoal_view_enter(const char *stage)
{
    if (chdir(stage) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        return -errno;
    /* mount_setattr only adds flags: a bind of a host file system keeps the atime mode it has
     * locked, which a plain MS_REMOUNT would have to repeat. Not recursive here: the binds below
     * have their own flags (the writable /build stays writable). */
    struct view_mount_attr a = {.attr_set = SHOAL_VIEW_ATTR_RDONLY | SHOAL_VIEW_ATTR_NOSUID |
                                            SHOAL_VIEW_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &a, sizeof(a)) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    return mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0
               ? -errno
               : 0;
}
