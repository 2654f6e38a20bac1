/*
 * cgroup - memory, task and CPU limits of instances through cgroups, and their clean-up.
 *
 * Layout: in each hierarchy that has the memory, pids or cpu controller (cgroup v1: one per
 * mount; v2: the unified one, used when it offers memory and pids), a directory
 * <parent>/w<worker pid> for this worker and in it one directory i<instance id> per instance:
 *
 *   /sys/fs/cgroup/memory/shoal/w4242/i17     (v1)      /sys/fs/cgroup/shoal/w4242/i17   (v2)
 *
 * The worker makes an instance's directories when it asks the zygote for its stem, with the
 * task and CPU limits already written; the zygote writes the stem's pid into them before the
 * stem runs (the directory fds go to the zygote in the sandbox's CONFIG, see runtime/sandbox.h).
 * The memory limit depends on the function and is written when the stem specialises, before the
 * function is loaded. The directories are removed when the instance's process has been reaped
 * (a removal the kernel refuses because the group is still emptying is retried later), and the
 * worker's own directory when it stops; at start the directories of workers that died without
 * cleaning up are removed.
 *
 * When no hierarchy can be used (none mounted, not root, a read-only /sys), shoal_cgroup_open
 * says why and the worker goes on with rlimits alone. Loop thread only.
 */
#ifndef SHOAL_WORKER_CGROUP_H
#define SHOAL_WORKER_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#define SHOAL_CGROUP_PARENT "shoal"
#define SHOAL_CGROUP_MAX 4 /* hierarchies used at once (v1: memory, pids, cpu) */

typedef struct shoal_cgroup shoal_cgroup_t;

typedef struct {
    const char *parent;    /* directory below each hierarchy's root, e.g. "shoal" */
    const char *mountinfo; /* NULL: /proc/self/mountinfo (tests pass their own) */
    unsigned tasks;        /* pids.max of an instance */
    unsigned cpu_percent;  /* CPU quota of an instance in percent of one CPU; 0: none */
    unsigned long id;      /* names this worker's directory, w<id> (its pid) */
} shoal_cgroup_opts_t;

/* One usable hierarchy found in a mount table. */
typedef struct {
    char path[256];    /* its mount point */
    int version;       /* 1 or 2 */
    unsigned controls; /* SHOAL_CGROUP_MEMORY | ... that it offers */
} shoal_cgroup_mount_t;

enum { SHOAL_CGROUP_MEMORY = 1, SHOAL_CGROUP_PIDS = 2, SHOAL_CGROUP_CPU = 4 };

/* Pure (but for reading a v2 mount's cgroup.controllers): picks the hierarchies to use from a
 * mount table in /proc/self/mountinfo format: v2 when it offers memory and pids, else the v1
 * mounts of memory, pids and cpu. Returns how many (0: none usable) and fills out. */
int shoal_cgroup_pick(const char *mountinfo, size_t len, shoal_cgroup_mount_t *out, int max);

/* Finds the hierarchies and makes this worker's directories. NULL when cgroups cannot be used,
 * with the reason in why. */
shoal_cgroup_t *shoal_cgroup_open(const shoal_cgroup_opts_t *opts, char *why, size_t why_len);
/* Removes every directory this worker made (instances still in them are killed first) and frees
 * cg. NULL is fine. */
void shoal_cgroup_close(shoal_cgroup_t *cg);

/* 1 or 2. */
int shoal_cgroup_version(const shoal_cgroup_t *cg);
/* The worker's directories (O_PATH fds, owned by cg), one per hierarchy, for the zygote. Returns
 * their number. */
int shoal_cgroup_dirs(const shoal_cgroup_t *cg, int *fds, int max);

/* Makes instance id's directories with the task and CPU limits. 0 or -errno (nothing left). */
int shoal_cgroup_create(shoal_cgroup_t *cg, uint64_t id);
/* The memory limit of an instance of a function with memory_mb: that plus room for the runtime
 * itself (more under AddressSanitizer, whose shadow and quarantine are the runtime's too). */
uint64_t shoal_cgroup_memory_for(uint32_t memory_mb);
/* Sets instance id's memory limit (and no swap). 0 or -errno. */
int shoal_cgroup_set_memory(shoal_cgroup_t *cg, uint64_t id, uint64_t bytes);
/* How many times the kernel's OOM killer killed in instance id's group (0 when it never did),
 * or -errno. */
int shoal_cgroup_oom_kills(shoal_cgroup_t *cg, uint64_t id);
/* How many forks instance id's group refused at its task limit, or -errno. */
int shoal_cgroup_task_limit_hits(shoal_cgroup_t *cg, uint64_t id);
/* Removes instance id's directories; a group that is still emptying is retried on later calls
 * and at close. */
void shoal_cgroup_remove(shoal_cgroup_t *cg, uint64_t id);
/* Directories whose removal is still pending (tests). */
int shoal_cgroup_pending(const shoal_cgroup_t *cg);

#endif
