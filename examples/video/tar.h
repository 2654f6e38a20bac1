/*
 * tar.h - writes a POSIX ustar archive of regular files into memory.
 *
 * Two calls so the caller can write the archive in place (e.g. into shoal_output_alloc): size it
 * with vid_tar_size, then fill it with vid_tar_write.
 */
#ifndef VID_TAR_H
#define VID_TAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name; /* member name, 1..99 bytes, no leading '/' */
    const void *data;
    size_t len;
} vid_tar_entry;

/* Bytes an archive of these n members takes (headers, data padded to 512, two end blocks). */
size_t vid_tar_size(const vid_tar_entry *e, int n);

/* Writes the archive (members mode 0644, owner 0/0, the given mtime) to dst, which has room for
 * cap bytes. Returns the bytes written, or -EINVAL (a bad name, a member of 8 GiB or more) or
 * -ENOSPC (cap too small). */
long long vid_tar_write(uint8_t *dst, size_t cap, const vid_tar_entry *e, int n, long long mtime);

#endif
