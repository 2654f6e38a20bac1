/*
 * view - a private file system view for a sandboxed process: a small tmpfs root (the stage)
 * holding read-only binds of the few host paths the process needs, entered with pivot_root so
 * that the host's tree is detached and nothing else of it can be named.
 *
 * The caller must already be in a mount namespace of its own, with CAP_SYS_ADMIN in the user
 * namespace that owns it (a fresh user namespace gives both). Typical use:
 *     shoal_view_stage(stage, 1)         - mounts private, a tmpfs on stage
 *     shoal_view_bind(stage, "/usr", NULL, 0) ...
 *     shoal_view_enter(stage)            - pivot_root, detach the old root, "/" read-only
 * A process whose file system uid is not mapped in its user namespace (root's child in a user
 * namespace that maps only an unprivileged uid) cannot create files, not even on its own tmpfs
 * (EOVERFLOW). For it, a privileged helper prepares the stage as a host directory beforehand
 * with shoal_view_point for every path, and the process stages it with tmpfs = 0 and only mounts.
 *
 * Every call is a short sequence of syscalls on caller-provided strings with no allocation and no
 * locks, so it may run in a child cloned from a multithreaded process (the controller's compile
 * jail) as well as in the zygote's single-threaded stems. Errors are -errno; a process whose view
 * failed halfway must not run untrusted code.
 */
#ifndef SHOAL_COMMON_VIEW_H
#define SHOAL_COMMON_VIEW_H

#include <stdint.h>

/* Longest path the view functions build (stage + destination). */
#define SHOAL_VIEW_PATH_MAX 1024

enum {
    SHOAL_VIEW_RW = 1u << 0,  /* writable and noexec (default: read-only, executable) */
    SHOAL_VIEW_DEV = 1u << 1, /* a device node: kept usable and writable (/dev/null), noexec */
};

/* Makes every mount of the caller's namespace private (nothing done later reaches the host) and
 * mounts on stage, an existing directory, a tmpfs (mode 0755, 1 MiB, 64 inodes) when tmpfs is
 * nonzero, else stage itself (a prepared directory) bound onto itself. */
int shoal_view_stage(const char *stage, int tmpfs);

/* Creates the mount point for src at stage/dst (dst NULL: the same path): a directory, an empty
 * file, or for a symlink the same link (so /lib -> usr/lib resolves inside the view). Existing
 * ones are fine. Returns 0 when a bind is due, 1 when not (a link, or src does not exist), or
 * -errno. */
int shoal_view_point(const char *stage, const char *src, const char *dst);

/* Binds the host path src at stage/dst (dst NULL: the same path as src) after shoal_view_point
 * (parents must exist: bind /etc/x after making stage/etc); a src that is a link or does not
 * exist is 0 without a mount. Read-only, nosuid and nodev unless flags say otherwise;
 * recursive. */
int shoal_view_bind(const char *stage, const char *src, const char *dst, unsigned flags);

/* Makes stage/dir (mode) for binds below it. */
int shoal_view_mkdir(const char *stage, const char *dir, unsigned mode);

/* Sets MOUNT_ATTR_* style flags (SHOAL_VIEW_ATTR_*) on path and the mounts below it. */
#define SHOAL_VIEW_ATTR_RDONLY 0x1u
#define SHOAL_VIEW_ATTR_NOSUID 0x2u
#define SHOAL_VIEW_ATTR_NODEV 0x4u
#define SHOAL_VIEW_ATTR_NOEXEC 0x8u
int shoal_view_seal(const char *path, uint64_t attrs);

/* pivot_root into stage, detaches the old root, chdir("/") and remounts the root read-only. */
int shoal_view_enter(const char *stage);

#endif
