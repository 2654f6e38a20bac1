/*
 * cgroup - see cgroup.h.
 */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"

#define PENDING_MAX 256
#define CPU_PERIOD_US 100000u

typedef struct {
    shoal_cgroup_mount_t m;
    int parent_fd; /* <mount>/<parent> */
    int fd;        /* <mount>/<parent>/w<id>, O_PATH */
} hier_t;

struct shoal_cgroup {
    shoal_cgroup_opts_t opts;
    char parent[128];
    char wname[32]; /* w<id> */
    hier_t h[SHOAL_CGROUP_MAX];
    int n;
    int version;
    uint64_t pending[PENDING_MAX]; /* instance ids whose directories are still to be removed */
    int npending;
};

/* ---- small file helpers (cgroup files are read and written whole) ---- */

/* Reads a small file into buf (NUL-terminated); its length or -errno. */
static ssize_t read_at(int dirfd, const char *path, char *buf, size_t size)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, size - 1);
    if (n < 0)
        n = -errno;
    else
        buf[n] = '\0';
    close(fd);
    return n;
}

/* The value of "key N" lines (memory.events, memory.oom_control, pids.events); -ENOENT when the
 * key is absent. */
static long long keyed_value(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
            return strtoll(p + klen + 1, NULL, 10);
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    }
    return -ENOENT;
}

/* ---- finding the hierarchies ---- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *d = s;

    while (*s != '\0') {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *d++ = *s++;
        }
    }
    *d = '\0';
}

/* Controllers named in a comma- or space-separated list. */
static unsigned controls_in(const char *list)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"memory", SHOAL_CGROUP_MEMORY}, {"pids", SHOAL_CGROUP_PIDS}, {"cpu", SHOAL_CGROUP_CPU}};
    unsigned bits = 0;
    const char *p = list;

    while (*p != '\0') {
        size_t len = strcspn(p, ", \n");
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (len == strlen(names[i].name) && strncmp(p, names[i].name, len) == 0)
                bits |= names[i].bit;
        p += len;
        p += strspn(p, ", \n");
    }
    return bits;
}

int shoal_cgroup_pick(const char *mountinfo, size_t len, shoal_cgroup_mount_t *out, int max)
{
    shoal_cgroup_mount_t v1[SHOAL_CGROUP_MAX], v2 = {.version = 0};
    unsigned v1_have = 0;
    int nv1 = 0, n = 0;
    char line[4096];
    size_t off = 0;

    while (off < len) {
        size_t l = 0;
        char *f[12], *sep, *save = NULL, *tok;
        int nf = 0;

        while (off + l < len && mountinfo[off + l] != '\n')
            l++;
        if (l < sizeof(line)) {
            memcpy(line, mountinfo + off, l);
            line[l] = '\0';
        } else {
            line[0] = '\0';
        }
        off += l + 1;
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        if ((sep = strstr(line, " - ")) == NULL)
            continue;
        *sep = '\0';
        for (tok = strtok_r(line, " ", &save); tok != NULL && nf < 5;
             tok = strtok_r(NULL, " ", &save))
            f[nf++] = tok;
        if (nf < 5)
            continue;
        save = NULL;
        for (tok = strtok_r(sep + 3, " ", &save); tok != NULL && nf < 8;
             tok = strtok_r(NULL, " ", &save))
            f[nf++] = tok;
        if (nf < 8 || strlen(f[4]) >= sizeof(v2.path))
            continue;
        unescape(f[4]);
        if (strcmp(f[5], "cgroup2") == 0 && v2.version == 0) {
            char path[300], ctl[512];
            int fd;
            ssize_t r;
            snprintf(path, sizeof(path), "%s/cgroup.controllers", f[4]);
            if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                continue;
            r = read(fd, ctl, sizeof(ctl) - 1);
            close(fd);
            if (r < 0)
                continue;
            ctl[r] = '\0';
            snprintf(v2.path, sizeof(v2.path), "%s", f[4]);
            v2.version = 2;
            v2.controls = controls_in(ctl);
        } else if (strcmp(f[5], "cgroup") == 0 && nv1 < SHOAL_CGROUP_MAX) {
            /* A hierarchy already picked through another of its controllers is not taken
             * twice, and a second mount of a controller is ignored. */
            unsigned c = controls_in(f[7]) & ~v1_have;
            if (c == 0)
                continue;
            snprintf(v1[nv1].path, sizeof(v1[nv1].path), "%s", f[4]);
            v1[nv1].version = 1;
            v1[nv1].controls = c;
            v1_have |= c;
            nv1++;
        }
    }
    if (v2.version == 2 && (v2.controls & (SHOAL_CGROUP_MEMORY | SHOAL_CGROUP_PIDS)) ==
                               (SHOAL_CGROUP_MEMORY | SHOAL_CGROUP_PIDS)) {
        if (max > 0)
            out[n++] = v2;
        return n;
    }
    if (nv1 > 0) {
        for (int i = 0; i < nv1 && n < max; i++)
            out[n++] = v1[i];
        return n;
    }
    if (v2.version == 2 && v2.controls != 0 && max > 0)
        out[n++] = v2;
    return n;
}

/* ---- directories ---- */

/* Kills what is left in a group (v2 and v1 alike list its processes in cgroup.procs). */
static void kill_members(int dirfd, const char *dir)
{
    char path[300], buf[4096], *p;

    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    if (read_at(dirfd, path, buf, sizeof(buf)) <= 0)
        return;
    for (p = buf; *p != '\0';) {
        long pid = strtol(p, &p, 10);
        if (pid > 1)
            kill((pid_t)pid, SIGKILL);
        while (*p == '\n')
            p++;
    }
}

/* rmdir dirfd/name, retrying briefly while the kernel is still emptying the group (EBUSY);
 * members are killed when wait is set. 0, or -errno. */
static int remove_dir(int dirfd, const char *name, int wait)
{
    struct timespec ms = {0, 2000000};

    for (int i = 0;; i++) {
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || !wait || i >= 500)
            return -errno;
        if (i % 50 == 0)
            kill_members(dirfd, name);
        nanosleep(&ms, NULL);
    }
}

/* Removes dirfd/name and the instance directories in it. */
static int remove_tree(int parent_fd, const char *name)
{
    struct dirent *e;
    DIR *d;
    int fd;

    if ((fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -errno;
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        return -errno;
    }
    while ((e = readdir(d)) != NULL)
        if (e->d_type == DT_DIR && e->d_name[0] == 'i')
            remove_dir(fd, e->d_name, 1);
    closedir(d);
    return remove_dir(parent_fd, name, 1);
}

/* Removes the directories of workers that are gone (killed without cleaning up). */
static void remove_stale(shoal_cgroup_t *cg, int parent_fd)
{
    struct dirent *e;
    DIR *d;
    int fd;

    if ((fd = dup(parent_fd)) < 0)
        return;
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long pid;
        if (e->d_type != DT_DIR || e->d_name[0] != 'w')
            continue;
        pid = strtoul(e->d_name + 1, &end, 10);
        if (*end != '\0' || pid == 0)
            continue;
        if (pid != cg->opts.id && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue; /* a live worker's */
        if (remove_tree(parent_fd, e->d_name) == 0)
            SHOAL_INFO("removed the cgroups of a worker that is gone (%s)", e->d_name);
    }
    closedir(d);
}

/* v2: lets the children of dir (an fd or, with path, below the mount) use the controllers. */
static int enable_controllers(int dirfd, const char *path, unsigned controls)
{
    char ctl[64] = "";

    if (controls & SHOAL_CGROUP_MEMORY)
        strcat(ctl, "+memory ");
    if (controls & SHOAL_CGROUP_PIDS)
        strcat(ctl, "+pids ");
    if (controls & SHOAL_CGROUP_CPU)
        strcat(ctl, "+cpu ");
    return shoal_util_write_at(dirfd, path, ctl);
}

static int open_hier(shoal_cgroup_t *cg, hier_t *h, char *why, size_t why_len)
{
    char path[512];
    int mnt = -1, err;

    h->parent_fd = h->fd = -1;
    if ((mnt = open(h->m.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = -errno;
        snprintf(why, why_len, "cannot open %s: %s", h->m.path, strerror(-err));
        return err;
    }
    if (h->m.version == 2)
        (void)enable_controllers(mnt, "cgroup.subtree_control", h->m.controls);
    if (mkdirat(mnt, cg->parent, 0755) < 0 && errno != EEXIST) {
        err = -errno;
        snprintf(why, why_len, "cannot create %s/%s: %s", h->m.path, cg->parent, strerror(-err));
        goto fail;
    }
    if ((h->parent_fd = openat(mnt, cg->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = -errno;
        snprintf(why, why_len, "cannot open %s/%s: %s", h->m.path, cg->parent, strerror(-err));
        goto fail;
    }
    remove_stale(cg, h->parent_fd);
    if (h->m.version == 2 &&
        (err = enable_controllers(h->parent_fd, "cgroup.subtree_control", h->m.controls)) < 0) {
        snprintf(why, why_len, "cannot enable controllers in %s/%s: %s", h->m.path, cg->parent,
                 strerror(-err));
        goto fail;
    }
    if (mkdirat(h->parent_fd, cg->wname, 0755) < 0 && errno != EEXIST) {
        err = -errno;
        snprintf(why, why_len, "cannot create %s/%s/%s: %s", h->m.path, cg->parent, cg->wname,
                 strerror(-err));
        goto fail;
    }
    if (h->m.version == 2) {
        snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cg->wname);
        if ((err = enable_controllers(h->parent_fd, path, h->m.controls)) < 0) {
            snprintf(why, why_len, "cannot enable controllers in %s/%s/%s: %s", h->m.path,
                     cg->parent, cg->wname, strerror(-err));
            goto fail;
        }
    }
    if ((h->fd = openat(h->parent_fd, cg->wname, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = -errno;
        goto fail;
    }
    close(mnt);
    return 0;
fail:
    if (h->parent_fd >= 0) {
        remove_dir(h->parent_fd, cg->wname, 0);
        close(h->parent_fd);
        h->parent_fd = -1;
    }
    close(mnt);
    return err;
}

shoal_cgroup_t *shoal_cgroup_open(const shoal_cgroup_opts_t *opts, char *why, size_t why_len)
{
    shoal_cgroup_mount_t m[SHOAL_CGROUP_MAX];
    const char *mi = opts->mountinfo != NULL ? opts->mountinfo : "/proc/self/mountinfo";
    shoal_cgroup_t *cg;
    char *text = NULL;
    size_t len = 0, cap = 0;
    ssize_t r;
    int fd, n, i;

    if (opts->parent == NULL || opts->parent[0] == '\0' || opts->parent[0] == '/' ||
        strstr(opts->parent, "..") != NULL || strlen(opts->parent) >= sizeof(cg->parent)) {
        snprintf(why, why_len, "bad cgroup parent '%s'", opts->parent ? opts->parent : "");
        return NULL;
    }
    if ((fd = open(mi, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(why, why_len, "cannot read %s: %s", mi, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len + 4096 > cap) {
            char *t = realloc(text, cap = cap ? cap * 2 : 16384);
            if (t == NULL) {
                free(text);
                close(fd);
                snprintf(why, why_len, "out of memory");
                return NULL;
            }
            text = t;
        }
        if ((r = read(fd, text + len, cap - len)) <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    n = shoal_cgroup_pick(text, len, m, SHOAL_CGROUP_MAX);
    free(text);
    if (n == 0) {
        snprintf(why, why_len,
                 "no cgroup hierarchy with the memory, pids or cpu controller is "
                 "mounted");
        return NULL;
    }
    if ((cg = calloc(1, sizeof(*cg))) == NULL) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    cg->opts = *opts;
    cg->opts.mountinfo = NULL;
    snprintf(cg->parent, sizeof(cg->parent), "%s", opts->parent);
    cg->opts.parent = cg->parent;
    snprintf(cg->wname, sizeof(cg->wname), "w%lu", opts->id);
    cg->version = m[0].version;
    for (i = 0; i < n; i++) {
        cg->h[i].m = m[i];
        if (open_hier(cg, &cg->h[i], why, why_len) < 0) {
            cg->n = i;
            shoal_cgroup_close(cg);
            return NULL;
        }
        cg->n = i + 1;
    }
    return cg;
}

void shoal_cgroup_close(shoal_cgroup_t *cg)
{
    int i;

    if (cg == NULL)
        return;
    for (i = 0; i < cg->n; i++) {
        int err;
        close(cg->h[i].fd);
        if ((err = remove_tree(cg->h[i].parent_fd, cg->wname)) < 0)
            SHOAL_WARN("cannot remove %s/%s/%s: %s", cg->h[i].m.path, cg->parent, cg->wname,
                       strerror(-err));
        close(cg->h[i].parent_fd);
        /* The shared parent goes too once no worker uses it. */
        {
            char path[600];
            snprintf(path, sizeof(path), "%s/%s", cg->h[i].m.path, cg->parent);
            (void)rmdir(path);
        }
    }
    free(cg);
}

int shoal_cgroup_version(const shoal_cgroup_t *cg)
{
    return cg->version;
}

int shoal_cgroup_dirs(const shoal_cgroup_t *cg, int *fds, int max)
{
    int i;

    for (i = 0; i < cg->n && i < max; i++)
        fds[i] = cg->h[i].fd;
    return i;
}

/* ---- instances ---- */

static void retry_pending(shoal_cgroup_t *cg)
{
    int i = 0;

    while (i < cg->npending) {
        char name[32];
        int left = 0;
        snprintf(name, sizeof(name), "i%llu", (unsigned long long)cg->pending[i]);
        for (int k = 0; k < cg->n; k++)
            if (remove_dir(cg->h[k].fd, name, 0) < 0)
                left = 1;
        if (left)
            i++;
        else
            cg->pending[i] = cg->pending[--cg->npending];
    }
}

void shoal_cgroup_remove(shoal_cgroup_t *cg, uint64_t id)
{
    char name[32];
    int left = 0;

    if (cg == NULL)
        return;
    retry_pending(cg);
    snprintf(name, sizeof(name), "i%llu", (unsigned long long)id);
    for (int k = 0; k < cg->n; k++)
        if (remove_dir(cg->h[k].fd, name, 0) < 0)
            left = 1;
    if (!left)
        return;
    if (cg->npending < PENDING_MAX)
        cg->pending[cg->npending++] = id;
    else
        SHOAL_WARN("cgroup %s/%s of an instance cannot be removed yet", cg->wname, name);
}

int shoal_cgroup_pending(const shoal_cgroup_t *cg)
{
    return cg != NULL ? cg->npending : 0;
}

/* Writes a limit file of instance id in the hierarchies that have control. Files a kernel may
 * lack (swap accounting) are skipped when optional. */
static int set_file(shoal_cgroup_t *cg, uint64_t id, unsigned control, int version,
                    const char *file, const char *value, int optional)
{
    char path[96];
    int err;

    for (int k = 0; k < cg->n; k++) {
        if (!(cg->h[k].m.controls & control) || cg->h[k].m.version != version)
            continue;
        snprintf(path, sizeof(path), "i%llu/%s", (unsigned long long)id, file);
        if ((err = shoal_util_write_at(cg->h[k].fd, path, value)) < 0 &&
            !(optional && err == -ENOENT))
            return err;
    }
    return 0;
}

int shoal_cgroup_create(shoal_cgroup_t *cg, uint64_t id)
{
    char name[32], v[32];
    int k, made = 0, err = 0;

    retry_pending(cg);
    snprintf(name, sizeof(name), "i%llu", (unsigned long long)id);
    for (k = 0; k < cg->n; k++, made++) {
        if (mkdirat(cg->h[k].fd, name, 0755) < 0) {
            /* Left over by a worker with our pid that died: start afresh. */
            if (errno != EEXIST || remove_dir(cg->h[k].fd, name, 1) < 0 ||
                mkdirat(cg->h[k].fd, name, 0755) < 0) {
                err = -errno;
                goto fail;
            }
        }
    }
    snprintf(v, sizeof(v), "%u", cg->opts.tasks);
    if ((err = set_file(cg, id, SHOAL_CGROUP_PIDS, 1, "pids.max", v, 0)) < 0 ||
        (err = set_file(cg, id, SHOAL_CGROUP_PIDS, 2, "pids.max", v, 0)) < 0)
        goto fail;
    if (cg->opts.cpu_percent > 0) {
        unsigned q = cg->opts.cpu_percent * (CPU_PERIOD_US / 100);
        snprintf(v, sizeof(v), "%u", CPU_PERIOD_US);
        if ((err = set_file(cg, id, SHOAL_CGROUP_CPU, 1, "cpu.cfs_period_us", v, 0)) < 0)
            goto fail;
        snprintf(v, sizeof(v), "%u", q);
        if ((err = set_file(cg, id, SHOAL_CGROUP_CPU, 1, "cpu.cfs_quota_us", v, 0)) < 0)
            goto fail;
        snprintf(v, sizeof(v), "%u %u", q, CPU_PERIOD_US);
        if ((err = set_file(cg, id, SHOAL_CGROUP_CPU, 2, "cpu.max", v, 0)) < 0)
            goto fail;
    }
    /* v2: an OOM kill takes the whole instance (its forked children too), and no swap. */
    if ((err = set_file(cg, id, SHOAL_CGROUP_MEMORY, 2, "memory.oom.group", "1", 1)) < 0 ||
        (err = set_file(cg, id, SHOAL_CGROUP_MEMORY, 2, "memory.swap.max", "0", 1)) < 0)
        goto fail;
    return 0;
fail:
    for (k = 0; k < made; k++)
        remove_dir(cg->h[k].fd, name, 0);
    return err;
}

#if defined(__SANITIZE_ADDRESS__)
#define MEM_SLACK (384ull << 20)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_SLACK (384ull << 20)
#endif
#endif
#ifndef MEM_SLACK
#define MEM_SLACK (32ull << 20)
#endif

uint64_t shoal_cgroup_memory_for(uint32_t memory_mb)
{
    return ((uint64_t)memory_mb << 20) + MEM_SLACK;
}

int shoal_cgroup_set_memory(shoal_cgroup_t *cg, uint64_t id, uint64_t bytes)
{
    char v[32];
    int err;

    snprintf(v, sizeof(v), "%llu", (unsigned long long)bytes);
    /* v1: the memory+swap limit may not be below the memory limit, so it comes second; both
     * start unlimited. */
    if ((err = set_file(cg, id, SHOAL_CGROUP_MEMORY, 1, "memory.limit_in_bytes", v, 0)) < 0 ||
        (err = set_file(cg, id, SHOAL_CGROUP_MEMORY, 1, "memory.memsw.limit_in_bytes", v, 1)) < 0)
        return err;
    return set_file(cg, id, SHOAL_CGROUP_MEMORY, 2, "memory.max", v, 0);
}

/* Reads "key N" from file of instance id in the hierarchy with control. */
static int read_counter(shoal_cgroup_t *cg, uint64_t id, unsigned control, const char *file_v1,
                        const char *file_v2, const char *key)
{
    char path[96], buf[1024];
    long long v;
    ssize_t n;

    for (int k = 0; k < cg->n; k++) {
        if (!(cg->h[k].m.controls & control))
            continue;
        snprintf(path, sizeof(path), "i%llu/%s", (unsigned long long)id,
                 cg->h[k].m.version == 1 ? file_v1 : file_v2);
        if ((n = read_at(cg->h[k].fd, path, buf, sizeof(buf))) < 0)
            return (int)n;
        v = keyed_value(buf, key);
        if (v < 0)
            return (int)v;
        return v > 0x7fffffff ? 0x7fffffff : (int)v;
    }
    return -ENOENT;
}

int shoal_cgroup_oom_kills(shoal_cgroup_t *cg, uint64_t id)
{
    return read_counter(cg, id, SHOAL_CGROUP_MEMORY, "memory.oom_control", "memory.events",
                        "oom_kill");
}

int shoal_cgroup_task_limit_hits(shoal_cgroup_t *cg, uint64_t id)
{
    return read_counter(cg, id, SHOAL_CGROUP_PIDS, "pids.events", "pids.events", "max");
}
