/*
 * sandbox - the box around every stem, built in three steps, all before any function code is
 * loaded (a shared object's constructors run inside dlopen). docs/security.md has the threat
 * model; this is the mechanism.
 *
 *  0. shoal_sandbox_fork / shoal_sandbox_release, in the zygote (root, single-threaded): the stem
 *     is cloned with CLONE_PARENT (it is the worker's child) into new user, PID, mount, network,
 *     IPC and UTS namespaces. While it waits on a pipe, the zygote maps one unprivileged uid and
 *     gid into its user namespace (base + request id % count, never 0, the same inside and out)
 *     and writes its pid into the cgroups the worker made for it, then lets it go. If the kernel
 *     refuses namespaces, stems are forked without them (logged once) and only take the uid.
 *  1. shoal_sandbox_stem_init, in the stem, ahead of demand: every inherited fd closed but the
 *     ones it needs, a session of its own, no_new_privs, the uid (all supplementary groups
 *     dropped), the parent-death signal (after the uid: a change of credentials clears it), a
 *     cgroup namespace, and the file system view: a read-only tmpfs root holding read-only binds
 *     of /usr (and /lib, /lib64 where they are not symlinks into it) and /etc/ld.so.cache,
 *     /dev/{null,zero,full,random,urandom}, a fresh /proc (subset=pid) of its own PID namespace
 *     and a private /tmp; pivot_root into it and the host's tree is detached. stdin, stdout and
 *     stderr become /dev/null (functions log through shoal_log, which is bounded). Then
 *     RLIMIT_NOFILE/NPROC/CORE, every capability dropped for good (bounding, ambient,
 *     inheritable, permitted; securebits locked), fatal signals caught (see below) and, last,
 *     the seccomp filter.
 *  2. shoal_sandbox_lockdown, when the stem specialises (the function's limits and artifact are
 *     known): the environment scrubbed, RLIMIT_AS, and Landlock - a second, path-based layer that
 *     allows the same few paths plus the artifact file itself (dlopen reopens it through
 *     /proc/self/fd), and where the ABI has it, no signal to and no abstract socket of anything
 *     outside the domain.
 * Everything that does not depend on the function happens in step 1, off the path of a cold
 * start; step 2 is a handful of syscalls.
 *
 * Why the stem is PID 1 of its namespace: a PID namespace is only entered at fork, and
 * CLONE_PARENT is refused to a namespace's init, so the worker's child must be that init. PID 1
 * ignores signals it has no handler for when they come from inside its namespace: an abort() or
 * raise() would not end it. So step 1 installs a handler for every signal whose default action
 * ends a process; the handler sends SHOAL_CTL_FATAL with the signal number on the control socket
 * and waits to be SIGKILLed by the worker, which reports the signal by name. When PID 1 ends,
 * the kernel kills everything else in its namespace: a function's forked processes cannot
 * outlive its instance.
 *
 * seccomp: an allowlist. A syscall not on it fails with ENOSYS, what an older kernel answers, so
 * that libc and libraries that probe newer calls (clone3, statx, rseq, ...) fall back; the ones
 * that are named because they are dangerous (socket creation, io_uring, ptrace, mount, bpf,
 * execve, namespaces, keys, module loading, ...) fail with EPERM, so a function sees a plain
 * "Operation not permitted" and can report it. Nothing on the list kills: a denied call is an
 * error, not a crash. Any other architecture (int 0x80) or the x32 ABI kills the process
 * (SIGSYS). The filter is compiled once, in the zygote, and each stem loads the ready BPF
 * program.
 *
 * All of it runs in the stem's single thread. A failure means the stem must not run code: it
 * reports the error in READY and exits.
 */
#ifndef SHOAL_RUNTIME_SANDBOX_H
#define SHOAL_RUNTIME_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

/* Address space granted beyond the function's memory_mb, the channel and the largest group
 * arena: the runtime, libc, the function's own code, thread stacks and malloc's reservations. */
#define SHOAL_SANDBOX_AS_BASE (512ull << 20)
/* Defaults of the worker-wide limits (shoal-worker --fds, --tasks, --uid-base). */
#define SHOAL_SANDBOX_NOFILE 1024u
#define SHOAL_SANDBOX_TASKS 64u
#define SHOAL_SANDBOX_UID_BASE 1000000000u
#define SHOAL_SANDBOX_UID_COUNT 65536u
/* The most cgroup hierarchies a stem is attached to (v1: memory, pids, cpu). */
#define SHOAL_SANDBOX_CGROUPS_MAX 4

/*
 * Control messages of the sandbox, on the sockets of transport/channel.h (their types are far
 * from channel.h's enum so that both can grow):
 * worker -> zygote: CONFIG (shoal_sandbox_config_t) + one directory fd per cgroup hierarchy, the
 *                   first message on the zygote's socket (a zygote that gets none uses the
 *                   defaults without cgroups).
 * stem -> worker:   FATAL (shoal_ctl_fatal_t): the function got fatal signal sig; the worker
 *                   fails the invocation with that signal's name and SIGKILLs the stem.
 */
#define SHOAL_CTL_CONFIG 0x100u
#define SHOAL_CTL_FATAL 0x101u

enum {
    SHOAL_SANDBOX_NO_NAMESPACES = 1u << 0, /* fork stems without namespaces (debugging) */
};

typedef struct {
    uint32_t magic;               /* SHOAL_CTL_MAGIC */
    uint32_t type;                /* SHOAL_CTL_CONFIG */
    uint32_t flags;               /* SHOAL_SANDBOX_* */
    uint32_t uid_base, uid_count; /* stem uid = base + request id % count (never 0) */
    uint32_t tasks;               /* RLIMIT_NPROC of a stem */
    uint32_t nofile;              /* RLIMIT_NOFILE of a stem */
    uint32_t ncgroups; /* directory fds sent with the message: the zygote writes each stem's pid
                          into <dir>/i<request id>/cgroup.procs, which the worker created */
} shoal_sandbox_config_t;

typedef struct {
    uint32_t magic; /* SHOAL_CTL_MAGIC */
    uint32_t type;  /* SHOAL_CTL_FATAL */
    int32_t sig;
    uint32_t pad;
} shoal_ctl_fatal_t;

/* The zygote's sandbox state; every stem inherits a copy. Fields are private. */
typedef struct {
    shoal_sandbox_config_t cfg;
    int cg_fds[SHOAL_SANDBOX_CGROUPS_MAX];
    int ncg;
    int privileged;   /* the zygote is root: stems get uids of their own */
    int namespaces;   /* stems get namespaces (1) or run in the fallback (0) */
    int view;         /* stems get the private file system view (1) or the host's (0) */
    int landlock_abi; /* 0: the kernel has no Landlock */
    void *bpf;        /* the compiled seccomp program (struct sock_filter[]) */
    unsigned short bpf_len;
    uid_t uid; /* in a stem: its uid, 0 when it kept the zygote's */
    gid_t gid;
} shoal_sandbox_t;

typedef struct {
    uint32_t memory_mb;    /* the function's memory limit */
    uint64_t channel_size; /* bytes of shared channel mapped into the stem */
    int artifact_fd;       /* the function's shared object (read-only), or -1 */
} shoal_sandbox_limits_t;

/* Zygote: prepares sb with the defaults (no cgroups) and compiles the seccomp program. 0 or
 * -errno. */
int shoal_sandbox_init(shoal_sandbox_t *sb);
/* Zygote: applies a CONFIG message; takes ownership of the fds (closed on error too). */
int shoal_sandbox_configure(shoal_sandbox_t *sb, const shoal_sandbox_config_t *cfg, const int *fds,
                            int nfds);
/* Zygote: frees what init and configure allocated. */
void shoal_sandbox_free(shoal_sandbox_t *sb);

/* Zygote: forks the stem for request id req like fork(): 0 in the stem (which must then call
 * shoal_sandbox_stem_init with *go_fd), its pid in the zygote (which must call
 * shoal_sandbox_release), -errno if no process was made. */
pid_t shoal_sandbox_fork(shoal_sandbox_t *sb, uint64_t req, int *go_fd);
/* Zygote: maps the stem's uid, attaches it to its cgroups and lets it go; closes go_fd. On an
 * error the stem is killed (its parent, the worker, reaps it) and -errno returned. */
int shoal_sandbox_release(shoal_sandbox_t *sb, pid_t pid, uint64_t req, int go_fd);

/* Stem, step 1. worker_pid is the expected parent; keep/nkeep the fds to keep (besides 0-2,
 * which become /dev/null); ctl_fd the control socket FATAL reports go to. 0 or -errno (-ESRCH:
 * the worker is gone). */
int shoal_sandbox_stem_init(shoal_sandbox_t *sb, int go_fd, pid_t worker_pid, const int *keep,
                            int nkeep, int ctl_fd);

/* Stem, step 2. 0 or -errno; why (may be NULL) names the step that failed. */
int shoal_sandbox_lockdown(shoal_sandbox_t *sb, const shoal_sandbox_limits_t *limits,
                           const char **why);

/* Whether this build runs under AddressSanitizer (which needs a huge address space, so the
 * RLIMIT_AS step is skipped). */
int shoal_sandbox_asan(void);

#endif
