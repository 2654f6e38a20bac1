/*
 * sandbox - see sandbox.h for the steps and docs/security.md for what each layer stops.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "common/view.h"
#include "transport/channel.h"

#if defined(__SANITIZE_ADDRESS__)
#define SHOAL_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_ASAN_BUILD 1
#endif
#endif
#ifndef SHOAL_ASAN_BUILD
#define SHOAL_ASAN_BUILD 0
#endif

#if !defined(__x86_64__)
#error "the sandbox's seccomp filter is written for x86-64"
#endif

/* Landlock, declared here so that older kernel headers do not limit what a newer kernel gives. */
#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */
#define LL_NET_BIND_TCP (1ull << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ull << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ull << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ull << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP (1 << 2)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS (1 << 4)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)
#endif

/* The new root is built on a tmpfs mounted here (in the stem's own mount namespace), then
 * pivoted into; any existing directory would do. */
#define STAGE "/tmp"

int shoal_sandbox_asan(void)
{
    return SHOAL_ASAN_BUILD;
}

static int set_limit(int resource, rlim_t v)
{
    struct rlimit rl = {.rlim_cur = v, .rlim_max = v};

    return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Closes every fd >= 3 that is not in keep. */
static int close_others(const int *keep, int nkeep)
{
    int sorted[8], i, n = 0;
    unsigned from = 3;

    if (nkeep > 8)
        return -EINVAL;
    for (i = 0; i < nkeep; i++)
        if (keep[i] >= 3)
            sorted[n++] = keep[i];
    qsort(sorted, (size_t)n, sizeof(int), cmp_int);
    for (i = 0; i < n; i++) {
        if ((unsigned)sorted[i] > from &&
            syscall(SYS_close_range, from, (unsigned)sorted[i] - 1, 0) < 0)
            return -errno;
        from = (unsigned)sorted[i] + 1;
    }
    if (syscall(SYS_close_range, from, ~0u, 0) < 0)
        return -errno;
    return 0;
}

/* ---- seccomp ---- */

/* Namespace flags a function may not pass to clone (CLONE_NEWTIME shares its bit with the exit
 * signal in clone's flags, so it is clone3-only, and clone3 is not allowed at all). */
#define NS_FLAGS                                                                                   \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET)

/* What libc, the dynamic loader, malloc, threads, the runtime and ordinary computing need. Files
 * are confined by the mount namespace and Landlock, not here. */
/* clang-format off */
static const int allowed[] = {
    /* files and fds */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2), SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(close), SCMP_SYS(close_range),
    SCMP_SYS(stat), SCMP_SYS(fstat), SCMP_SYS(lstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
    SCMP_SYS(lseek), SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2),
    SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(getdents64), SCMP_SYS(getcwd),
    SCMP_SYS(chdir), SCMP_SYS(fchdir), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup2),
    SCMP_SYS(dup3), SCMP_SYS(pipe), SCMP_SYS(pipe2), SCMP_SYS(ftruncate), SCMP_SYS(truncate),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(fallocate), SCMP_SYS(fadvise64),
    SCMP_SYS(readahead), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(mkdir),
    SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(rename), SCMP_SYS(renameat),
    SCMP_SYS(renameat2), SCMP_SYS(symlink), SCMP_SYS(symlinkat), SCMP_SYS(link),
    SCMP_SYS(linkat), SCMP_SYS(mknod), SCMP_SYS(mknodat), SCMP_SYS(chmod), SCMP_SYS(fchmod),
    SCMP_SYS(fchmodat), SCMP_SYS(umask), SCMP_SYS(utimensat), SCMP_SYS(statfs),
    SCMP_SYS(fstatfs), SCMP_SYS(flock), SCMP_SYS(sendfile), SCMP_SYS(copy_file_range),
    SCMP_SYS(splice), SCMP_SYS(tee), SCMP_SYS(memfd_create),
    /* waiting on fds */
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
    SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(eventfd), SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(signalfd), SCMP_SYS(signalfd4),
    /* memory */
    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap),
    SCMP_SYS(madvise), SCMP_SYS(msync), SCMP_SYS(mincore), SCMP_SYS(membarrier),
    SCMP_SYS(get_mempolicy), SCMP_SYS(pkey_alloc), SCMP_SYS(pkey_free), SCMP_SYS(pkey_mprotect),
    /* processes and threads (clone and kill are filtered below) */
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(wait4), SCMP_SYS(waitid), SCMP_SYS(tgkill),
    SCMP_SYS(tkill), SCMP_SYS(rt_tgsigqueueinfo), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
    SCMP_SYS(getegid), SCMP_SYS(getgroups), SCMP_SYS(getresuid), SCMP_SYS(getresgid),
    SCMP_SYS(getpgrp), SCMP_SYS(getpgid), SCMP_SYS(getsid), SCMP_SYS(set_tid_address),
    SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq), SCMP_SYS(futex),
    SCMP_SYS(futex_waitv), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
    SCMP_SYS(sched_setaffinity), SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler),
    SCMP_SYS(sched_get_priority_max), SCMP_SYS(sched_get_priority_min),
    SCMP_SYS(sched_rr_get_interval), SCMP_SYS(getpriority),
    SCMP_SYS(getcpu), SCMP_SYS(getrlimit), SCMP_SYS(setrlimit), SCMP_SYS(getrusage),
    SCMP_SYS(times), SCMP_SYS(sysinfo), SCMP_SYS(uname), SCMP_SYS(arch_prctl), SCMP_SYS(capget),
    SCMP_SYS(restart_syscall),
    /* signals and time */
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigpending), SCMP_SYS(rt_sigtimedwait), SCMP_SYS(rt_sigsuspend),
    SCMP_SYS(sigaltstack), SCMP_SYS(pause), SCMP_SYS(alarm), SCMP_SYS(setitimer),
    SCMP_SYS(getitimer), SCMP_SYS(timer_create), SCMP_SYS(timer_settime),
    SCMP_SYS(timer_gettime), SCMP_SYS(timer_getoverrun), SCMP_SYS(timer_delete),
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(getrandom),
    /* the sockets the stem was given (its control socket): no new ones */
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
    SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
    /* Landlock only ever restricts its caller; the stem itself uses it after the filter is in
     * place (the filter goes in at step 1, Landlock at step 2). */
    SCMP_SYS(landlock_create_ruleset), SCMP_SYS(landlock_add_rule),
    SCMP_SYS(landlock_restrict_self),
};
/* clang-format on */

/* Named and refused with EPERM: creating sockets, io_uring (seccomp cannot see inside a ring),
 * debugging or reading other processes, file systems and namespaces, new programs, the kernel's
 * keyrings, BPF, perf, userfaultfd, the machine itself, identities and privileged I/O. */
/* clang-format off */
static const int denied[] = {
    SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(connect), SCMP_SYS(bind),
    SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
    SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
    SCMP_SYS(io_setup), SCMP_SYS(io_submit),
    SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(kcmp),
    SCMP_SYS(pidfd_open), SCMP_SYS(pidfd_getfd), SCMP_SYS(pidfd_send_signal),
    SCMP_SYS(rt_sigqueueinfo), SCMP_SYS(process_madvise),
    SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
    SCMP_SYS(move_mount), SCMP_SYS(open_tree), SCMP_SYS(fsopen), SCMP_SYS(fsconfig),
    SCMP_SYS(fsmount), SCMP_SYS(fspick), SCMP_SYS(mount_setattr), SCMP_SYS(name_to_handle_at),
    SCMP_SYS(open_by_handle_at), SCMP_SYS(unshare), SCMP_SYS(setns),
    SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(vfork), SCMP_SYS(fork),
    SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
    SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(fanotify_init),
    SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(reboot), SCMP_SYS(init_module),
    SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(swapon), SCMP_SYS(swapoff),
    SCMP_SYS(acct), SCMP_SYS(quotactl), SCMP_SYS(syslog), SCMP_SYS(iopl), SCMP_SYS(ioperm),
    SCMP_SYS(modify_ldt), SCMP_SYS(personality), SCMP_SYS(vhangup), SCMP_SYS(sync),
    SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime),
    SCMP_SYS(adjtimex), SCMP_SYS(sethostname), SCMP_SYS(setdomainname),
    SCMP_SYS(migrate_pages), SCMP_SYS(move_pages), SCMP_SYS(mbind), SCMP_SYS(set_mempolicy),
    SCMP_SYS(mlock), SCMP_SYS(mlock2), SCMP_SYS(mlockall),
    SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid),
    SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(setfsuid), SCMP_SYS(setfsgid),
    SCMP_SYS(setgroups), SCMP_SYS(capset), SCMP_SYS(chown), SCMP_SYS(fchown),
    SCMP_SYS(lchown), SCMP_SYS(fchownat), SCMP_SYS(seccomp),
};
/* clang-format on */

/* prctl options a function may use: names, a few harmless queries and knobs. */
static const int prctl_ok[] = {
    PR_SET_NAME,
    PR_GET_NAME,
    PR_GET_DUMPABLE,
    PR_GET_NO_NEW_PRIVS,
    PR_SET_NO_NEW_PRIVS,
    PR_GET_SECCOMP,
    PR_CAPBSET_READ,
    PR_GET_TIMERSLACK,
    PR_SET_TIMERSLACK,
    PR_GET_PDEATHSIG,
    PR_GET_THP_DISABLE,
    PR_SET_THP_DISABLE,
    PR_GET_SPECULATION_CTRL,
    PR_SET_SPECULATION_CTRL,
    PR_SET_VMA,
};

/* ioctl requests a function may make (on its own pipes, files and /dev nodes): terminal queries
 * (isatty), byte counts and fd flags. */
static const unsigned long ioctl_ok[] = {TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX};

/* Builds the filter and exports it as a BPF program into sb. */
static int build_filter(shoal_sandbox_t *sb)
{
    scmp_filter_ctx ctx;
    struct stat st;
    size_t i;
    int err = -ENOMEM, fd = -1;
    void *prog = NULL;

    if ((ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS))) == NULL)
        return -ENOMEM;
    /* Anything but native x86-64 (i386 through int 0x80, x32) kills the process; libseccomp's
     * x86-64 filter treats x32 syscall numbers as a bad architecture. */
    if ((err = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
        goto out;
    /* A binary tree of syscall numbers rather than a chain: a third of the kernel's time to
     * attach the filter (it evaluates it for every syscall number to build its cache) and
     * fewer instructions per syscall. */
    if ((err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
        goto out;
    /* The filter is installed with prctl by the stem itself: no_new_privs is already set. */
    if ((err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
        goto out;
    for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (allowed[i] >= 0 && (err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0)) < 0)
            goto out;
    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
        if (denied[i] >= 0 &&
            (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0)) < 0)
            goto out;
    /* clone3's arguments are in memory, out of the filter's sight, so it stays off the list:
     * its ENOSYS (the default) makes glibc fall back to clone, whose flags the filter sees.
     * Threads and plain forks are fine (the pids limit bounds them); new namespaces are not. */
    if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS, 0))) < 0)
        goto out;
    for (i = 0; i < 32; i++) {
        unsigned long f = 1ul << i;
        if ((NS_FLAGS & f) && (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone),
                                                      1, SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
            goto out;
    }
    /* kill only names single processes: no process groups (0, < -1) and no "everyone" (-1). In
     * its PID namespace a function sees nothing else anyway. The upper half of the register is
     * included in the comparison, so a pid with junk above bit 31 is refused. */
    if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_GT, 0))) <
            0 ||
        (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                                SCMP_A0(SCMP_CMP_GT, 0x7fffffff))) < 0 ||
        (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                                SCMP_A0(SCMP_CMP_EQ, 0))) < 0)
        goto out;
    /* setpriority of single processes (its own namespace's): PRIO_USER would reach every
     * process of its uid on the host, PRIO_PGRP a process group. */
    if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setpriority), 1,
                                SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS))) < 0 ||
        (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setpriority), 1,
                                SCMP_A0(SCMP_CMP_NE, PRIO_PROCESS))) < 0)
        goto out;
    /* prlimit64 on oneself only. */
    if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
                                SCMP_A0(SCMP_CMP_EQ, 0))) < 0)
        goto out;
    for (i = 0; i < sizeof(prctl_ok) / sizeof(prctl_ok[0]); i++)
        if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctl_ok[i]))) < 0)
            goto out;
    /* The request is an unsigned int: compare its low 32 bits only. */
    for (i = 0; i < sizeof(ioctl_ok) / sizeof(ioctl_ok[0]); i++)
        if ((err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, ioctl_ok[i]))) < 0)
            goto out;

    /* libseccomp 2.5 exports to an fd only. */
    if ((fd = memfd_create("shoal-seccomp", MFD_CLOEXEC)) < 0) {
        err = -errno;
        goto out;
    }
    if ((err = seccomp_export_bpf(ctx, fd)) < 0)
        goto out;
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto out;
    }
    if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
        st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        err = -EPROTO;
        goto out;
    }
    if ((prog = malloc((size_t)st.st_size)) == NULL) {
        err = -ENOMEM;
        goto out;
    }
    if (pread(fd, prog, (size_t)st.st_size, 0) != st.st_size) {
        err = -EIO;
        goto out;
    }
    free(sb->bpf);
    sb->bpf = prog;
    sb->bpf_len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
    prog = NULL;
    err = 0;
out:
    free(prog);
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return err;
}

static int load_filter(const shoal_sandbox_t *sb)
{
    struct sock_fprog fp = {.len = sb->bpf_len, .filter = sb->bpf};

    if (sb->bpf == NULL)
        return -EINVAL;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) < 0 ? -errno : 0;
}

/* ---- the zygote ---- */

static int landlock_abi(void)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);

    return v > 0 ? (int)v : 0;
}

static void probe(shoal_sandbox_t *sb);

int shoal_sandbox_init(shoal_sandbox_t *sb)
{
    int i, err;

    memset(sb, 0, sizeof(*sb));
    sb->cfg.magic = SHOAL_CTL_MAGIC;
    sb->cfg.type = SHOAL_CTL_CONFIG;
    sb->cfg.uid_base = SHOAL_SANDBOX_UID_BASE;
    sb->cfg.uid_count = SHOAL_SANDBOX_UID_COUNT;
    sb->cfg.tasks = SHOAL_SANDBOX_TASKS;
    sb->cfg.nofile = SHOAL_SANDBOX_NOFILE;
    for (i = 0; i < SHOAL_SANDBOX_CGROUPS_MAX; i++)
        sb->cg_fds[i] = -1;
    sb->privileged = geteuid() == 0;
    sb->namespaces = 1;
    sb->view = 1;
    sb->landlock_abi = landlock_abi();
    if ((err = build_filter(sb)) < 0) {
        SHOAL_ERROR("sandbox: cannot build the seccomp filter: %s", strerror(-err));
        return err;
    }
    probe(sb);
    if (sb->landlock_abi == 0)
        SHOAL_WARN("sandbox: this kernel has no Landlock; %s",
                   sb->view ? "files are confined by the mount namespace alone"
                            : "stems see the host's files");
    return 0;
}

int shoal_sandbox_configure(shoal_sandbox_t *sb, const shoal_sandbox_config_t *cfg, const int *fds,
                            int nfds)
{
    int i;

    if (cfg->uid_count == 0 || cfg->uid_base == 0 ||
        (uint64_t)cfg->uid_base + cfg->uid_count > 0xfffffffeull || cfg->tasks == 0 ||
        cfg->nofile < 16 || nfds != (int)cfg->ncgroups || nfds > SHOAL_SANDBOX_CGROUPS_MAX) {
        for (i = 0; i < nfds; i++)
            close(fds[i]);
        return -EINVAL;
    }
    for (i = 0; i < sb->ncg; i++)
        close(sb->cg_fds[i]);
    sb->cfg = *cfg;
    sb->ncg = nfds;
    for (i = 0; i < nfds; i++)
        sb->cg_fds[i] = fds[i];
    if (cfg->flags & SHOAL_SANDBOX_NO_NAMESPACES)
        sb->namespaces = sb->view = 0;
    return 0;
}

void shoal_sandbox_free(shoal_sandbox_t *sb)
{
    int i;

    for (i = 0; i < sb->ncg; i++)
        close(sb->cg_fds[i]);
    sb->ncg = 0;
    free(sb->bpf);
    sb->bpf = NULL;
}

/* The uid of the stem for request req: one of its own when the zygote is root, else the
 * zygote's (which is all an unprivileged process may map). */
static uid_t stem_uid(const shoal_sandbox_t *sb, uint64_t req)
{
    return sb->privileged ? (uid_t)(sb->cfg.uid_base + req % sb->cfg.uid_count) : geteuid();
}

static gid_t stem_gid(const shoal_sandbox_t *sb, uint64_t req)
{
    return sb->privileged ? (gid_t)stem_uid(sb, req) : getegid();
}

/* Maps the stem's one uid and gid into its user namespace, the same inside and out. A root
 * zygote leaves setgroups allowed so that the stem can drop its supplementary groups (which
 * would otherwise keep root's group 0); an unprivileged one must deny it to map a gid at all. */
static int map_ids(const shoal_sandbox_t *sb, pid_t pid, uint64_t req)
{
    char path[64], map[64];
    int err;

    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)stem_uid(sb, req),
             (unsigned)stem_uid(sb, req));
    snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
    if ((err = shoal_util_write_at(AT_FDCWD, path, map)) < 0)
        return err;
    if (!sb->privileged) {
        snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
        if ((err = shoal_util_write_at(AT_FDCWD, path, "deny")) < 0)
            return err;
    }
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)stem_gid(sb, req),
             (unsigned)stem_gid(sb, req));
    snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
    return shoal_util_write_at(AT_FDCWD, path, map);
}

pid_t shoal_sandbox_fork(shoal_sandbox_t *sb, uint64_t req, int *go_fd)
{
    const long ns =
        CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    int p[2];
    long pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    /* Raw clone: glibc's fork() has no CLONE_PARENT. The zygote is single-threaded, so no lock is
     * held and the child's copy of the process is consistent. */
    pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD | (sb->namespaces ? ns : 0), 0, NULL, NULL, 0);
    if (pid < 0 && sb->namespaces &&
        (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EUSERS ||
         errno == ENOSYS)) {
        SHOAL_WARN("sandbox: the kernel refuses new namespaces (%s); stems run without them: "
                   "no private file system view, PID space or network",
                   strerror(errno));
        sb->namespaces = 0;
        pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
    }
    if (pid == 0) {
        close(p[1]);
        *go_fd = p[0];
        sb->uid = stem_uid(sb, req);
        sb->gid = stem_gid(sb, req);
        return 0;
    }
    if (pid < 0) {
        int err = -errno;
        close(p[0]);
        close(p[1]);
        return err;
    }
    close(p[0]);
    *go_fd = p[1];
    return (pid_t)pid;
}

int shoal_sandbox_release(shoal_sandbox_t *sb, pid_t pid, uint64_t req, int go_fd)
{
    char map[64], name[32];
    int i, err = 0;

    if (sb->namespaces && (err = map_ids(sb, pid, req)) < 0)
        goto fail;
    snprintf(name, sizeof(name), "i%llu/cgroup.procs", (unsigned long long)req);
    snprintf(map, sizeof(map), "%d", (int)pid);
    for (i = 0; i < sb->ncg; i++)
        if ((err = shoal_util_write_at(sb->cg_fds[i], name, map)) < 0)
            goto fail;
    if (write(go_fd, "g", 1) != 1) {
        err = -errno;
        goto fail;
    }
    close(go_fd);
    return 0;
fail:
    kill(pid, SIGKILL);
    close(go_fd);
    return err;
}

/* ---- the stem: step 1 ---- */

static int drop_caps(const shoal_sandbox_t *sb);

/* Default-fatal signals (all but SIGKILL and SIGSTOP, which cannot be caught, and SIGPIPE, which
 * PID 1 ignoring is the friendlier behaviour: writes fail with EPIPE). Real-time signals are left
 * alone: glibc uses the first two itself. */
static const int fatal_signals[] = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP,   SIGABRT,
                                    SIGBUS,  SIGFPE,    SIGUSR1, SIGSEGV, SIGUSR2,   SIGALRM,
                                    SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
                                    SIGIO,   SIGPWR,    SIGSYS};

static int fatal_ctl_fd = -1;

/* Async-signal-safe. Every signal is blocked while it runs (sa_mask), so only SIGKILL ends the
 * wait. Without a worker to tell, the stem exits with 128 + sig, as a shell would show it. */
static void on_fatal(int sig)
{
    shoal_ctl_fatal_t m = {SHOAL_CTL_MAGIC, SHOAL_CTL_FATAL, sig, 0};
    struct timespec ts = {5, 0};

    if (fatal_ctl_fd >= 0 &&
        send(fatal_ctl_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(m))
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    _exit(128 + sig);
}

static int catch_fatal_signals(int ctl_fd)
{
    struct sigaction sa;
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sigfillset(&sa.sa_mask);
    fatal_ctl_fd = ctl_fd;
    for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        if (sigaction(fatal_signals[i], &sa, NULL) < 0)
            return -errno;
    return 0;
}

/* Takes the uid (and its gid) and drops every supplementary group. With namespaces the stem
 * keeps its capabilities inside its user namespace (KEEP_CAPS) to build its file system view,
 * and drop_caps takes them afterwards. Without, a root zygote's stem loses them here, by
 * becoming the uid. */
static int take_uid(shoal_sandbox_t *sb)
{
    uid_t uid = sb->uid;
    gid_t gid = sb->gid;

    if (!sb->namespaces && !sb->privileged) {
        sb->uid = 0; /* nothing to switch to: the stem keeps the worker's uid */
        return 0;
    }
    if (sb->namespaces && prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS) < 0)
        return -errno;
    if (sb->privileged && setgroups(0, NULL) < 0)
        return -errno;
    if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return -errno;
    return 0;
}

/* Binds the host's src at STAGE/src (read-only; dev: a device node kept usable), with the helpers
 * the controller's compile jail shares (common/view.h). A host path that does not exist is
 * skipped. */
static int bind_host(const char *src, int dev)
{
    return shoal_view_bind(STAGE, src, NULL, dev ? SHOAL_VIEW_DEV : 0);
}

/* The stem's whole file system: a read-only tmpfs root with the shared libraries, the loader's
 * cache, a few device nodes, its own /proc and a private /tmp; the host's tree is detached. */
static int build_view(const shoal_sandbox_t *sb)
{
    static const char *const ro[] = {"/usr", "/lib", "/lib64", "/etc/ld.so.cache"};
    static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                       "/dev/urandom"};
    static const char *const links[][2] = {{"/proc/self/fd", STAGE "/dev/fd"},
                                           {"/proc/self/fd/0", STAGE "/dev/stdin"},
                                           {"/proc/self/fd/1", STAGE "/dev/stdout"},
                                           {"/proc/self/fd/2", STAGE "/dev/stderr"}};
    size_t i;
    int err;

    /* Nothing done here may reach the host's mounts. */
    if ((err = shoal_view_stage(STAGE, 1)) < 0)
        return err;
    if (mkdir(STAGE "/etc", 0755) < 0 || mkdir(STAGE "/dev", 0755) < 0 ||
        mkdir(STAGE "/proc", 0555) < 0 || mkdir(STAGE "/tmp", 0700) < 0)
        return -errno;
    for (i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        if ((err = bind_host(ro[i], 0)) < 0)
            return err;
    for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if ((err = bind_host(devs[i], 1)) < 0)
            return err;
    for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (symlink(links[i][0], links[i][1]) < 0)
            return -errno;
    /* The stem is PID 1 of its namespace: this /proc shows it, its threads and its children,
     * nothing of the host; subset=pid leaves out the system-wide files too (/proc/sys, ...). */
    if (mount("proc", STAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0 &&
        (errno != EINVAL ||
         mount("proc", STAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0))
        return -errno;
    /* tmpfs pages are charged to the writer's memory cgroup, which bounds /tmp by the
     * function's memory limit; without cgroups a fixed size does. */
    if (mount("tmp", STAGE "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              sb->ncg > 0 ? "nr_inodes=4096,mode=0700" : "size=64m,nr_inodes=4096,mode=0700") < 0)
        return -errno;
    return shoal_view_enter(STAGE);
}

#if SHOAL_ASAN_BUILD
void __sanitizer_set_report_fd(void *fd);
#endif

/* 0, 1 and 2 to /dev/null: output of a function goes through shoal_log, which is bounded. Under
 * AddressSanitizer its reports keep going to the worker's stderr, through an fd of their own. */
static int quiet_stdio(void)
{
    int fd, i;

#if SHOAL_ASAN_BUILD
    if ((fd = fcntl(2, F_DUPFD_CLOEXEC, 100)) >= 0)
        __sanitizer_set_report_fd((void *)(intptr_t)fd);
#endif
    if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        return -errno;
    for (i = 0; i <= 2; i++)
        if (dup2(fd, i) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    close(fd);
    return 0;
}

int shoal_sandbox_stem_init(shoal_sandbox_t *sb, int go_fd, pid_t worker_pid, const int *keep,
                            int nkeep, int ctl_fd)
{
    char go;
    ssize_t n;
    int err;

    /* Wait for the zygote to map our ids and attach us to our cgroups. */
    do
        n = read(go_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    close(go_fd);
    if (n != 1)
        return -ECANCELED;
    if ((err = close_others(keep, nkeep)) < 0)
        return err;
    /* A session of its own: no signal for the worker's process group or terminal reaches it,
     * and kill(0, ...) from it reaches nothing else. */
    if (setsid() < 0)
        return -errno;
    if ((err = set_limit(RLIMIT_CORE, 0)) < 0 ||
        (err = set_limit(RLIMIT_NOFILE, sb->cfg.nofile)) < 0)
        return err;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (sb->namespaces) {
        /* Its cgroup as its root: /proc/self/cgroup says "/" (best effort: the kernel may have no
         * cgroup namespaces). */
        (void)unshare(CLONE_NEWCGROUP);
    }
    /* The uid comes first: files the view creates must belong to a mapped id. */
    if ((err = take_uid(sb)) < 0)
        return err;
    /* Die with the worker. After the uid: a change of credentials clears this setting. In a PID
     * namespace the parent is outside it (getppid() is 0), so a worker that died before this
     * point shows as the control socket's end of file instead. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return -errno;
    if (!sb->namespaces && getppid() != worker_pid)
        return -ESRCH;
    if (sb->namespaces && sb->view && (err = build_view(sb)) < 0)
        return err;
    if (sb->namespaces && sethostname("shoal", 5) < 0)
        return -errno;
    if ((err = quiet_stdio()) < 0)
        return err;
    /* Tasks count per uid (per user namespace): only a stem with a uid of its own may get the
     * tasks limit, else it would count the worker's user's every process. With cgroups the pids
     * controller is the limit (it counts what the stem forked, and says so in pids.events) and
     * this is a looser second layer; it is checked first, so it must not be the tighter one. */
    if ((sb->namespaces || sb->uid != 0) &&
        (err = set_limit(RLIMIT_NPROC, sb->ncg > 0 ? 2 * (rlim_t)sb->cfg.tasks : sb->cfg.tasks)) <
            0)
        return err;
    if ((err = drop_caps(sb)) < 0 || (err = catch_fatal_signals(ctl_fd)) < 0)
        return err;
    /* Last: from here on the stem runs under the filter (what is left to do - mapping the
     * channel, waiting for SPECIALIZE, Landlock, rlimits - is on the list). */
    return load_filter(sb);
}

/* Finds out, once, what this kernel lets stems have, with a throw-away stem that takes its ids
 * and builds the view: without this, every stem would fail the same way, one after another.
 * Namespaces refused: stems go without (sb->namespaces = 0). The view refused (a container's
 * masked /proc, no tmpfs, ...): stems get the namespaces but see the host's files, which
 * Landlock confines (sb->view = 0). */
static void probe(shoal_sandbox_t *sb)
{
    const long ns =
        CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    int p[2], st, err;
    long pid;
    char go;

    if (pipe2(p, O_CLOEXEC) < 0)
        return;
    if ((pid = syscall(SYS_clone, SIGCHLD | ns, 0, NULL, NULL, 0)) == 0) {
        close(p[1]);
        if (read(p[0], &go, 1) != 1)
            _exit(ECANCELED);
        sb->uid = stem_uid(sb, 0);
        sb->gid = stem_gid(sb, 0);
        if ((err = take_uid(sb)) < 0 || (err = build_view(sb)) < 0)
            _exit(-err & 0x7f);
        _exit(0);
    }
    close(p[0]);
    if (pid < 0) {
        SHOAL_WARN("sandbox: the kernel refuses new namespaces (%s); stems run without them: no "
                   "private file system view, PID space or network",
                   strerror(errno));
        sb->namespaces = sb->view = 0;
        close(p[1]);
        return;
    }
    err = map_ids(sb, (pid_t)pid, 0);
    if (err == 0 && write(p[1], "g", 1) != 1)
        err = -errno;
    close(p[1]);
    while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (err < 0) {
        SHOAL_WARN("sandbox: cannot map a uid into a user namespace (%s); stems run without "
                   "namespaces",
                   strerror(-err));
        sb->namespaces = sb->view = 0;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        SHOAL_WARN("sandbox: cannot build a stem's private file system view (%s); stems see the "
                   "host's files, confined by Landlock",
                   WIFEXITED(st) ? strerror(WEXITSTATUS(st)) : "killed");
        sb->view = 0;
    }
}

/* ---- the stem: step 2 ---- */

/* Drops every capability for good: securebits first (they need CAP_SETPCAP), then the bounding
 * set, the ambient set, and effective/permitted/inheritable. */
static int drop_caps(const shoal_sandbox_t *sb)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    int cap;

    if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                     SECBIT_NO_CAP_AMBIENT_RAISE |
                                     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0 &&
        errno != EPERM)
        return -errno;
    for (cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the last capability this kernel knows */
            /* EPERM without namespaces: no CAP_SETPCAP, because the stem has no capability at
             * all (a uid it switched to, or an unprivileged worker's); no_new_privs keeps it so
             * and execve is refused anyway. */
            if (errno == EPERM && !sb->namespaces)
                break;
            return -errno;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d) < 0)
        return -errno;
    return 0;
}

/* The environment may hold the worker's secrets: clear it, and zero the strings themselves (the
 * original block stays in memory and in /proc/self/environ). */
static void scrub_environ(void)
{
    extern char **environ;
    char **e;

    for (e = environ; e != NULL && *e != NULL; e++)
        memset(*e, 0, strlen(*e));
    clearenv();
}

static int ll_add(int rs, int fd, uint64_t access)
{
    struct ll_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};

    return syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) < 0 ? -errno : 0;
}

static int ll_add_path(int rs, const char *path, uint64_t dir_access, uint64_t file_access)
{
    struct stat st;
    int fd, err;

    if ((fd = open(path, O_PATH | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0)
        err = -errno;
    else
        err = ll_add(rs, fd, S_ISDIR(st.st_mode) ? dir_access : file_access);
    close(fd);
    return err;
}

/* Landlock: the paths the view holds (or, without the private view, the same paths of the host,
 * and /proc/self only), the artifact, and nothing else; with ABI 4 no TCP, with ABI 6 no signal
 * to and no abstract socket of a process outside this domain. */
static int landlock(const shoal_sandbox_t *sb, int artifact_fd)
{
    const uint64_t file_rw = LL_FS_READ_FILE | LL_FS_WRITE_FILE;
    const uint64_t ro = LL_FS_READ_FILE | LL_FS_READ_DIR;
    uint64_t all = (1ull << 13) - 1, trunc = 0;
    struct ll_ruleset_attr ra;
    size_t size = sizeof(ra.handled_access_fs);
    int rs, err, abi = sb->landlock_abi, view = sb->namespaces && sb->view;

    if (abi >= 2)
        all |= LL_FS_REFER;
    if (abi >= 3)
        all |= trunc = LL_FS_TRUNCATE;
    if (abi >= 5)
        all |= LL_FS_IOCTL_DEV;
    memset(&ra, 0, sizeof(ra));
    ra.handled_access_fs = all;
    if (abi >= 4) {
        ra.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        ra.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = sizeof(ra);
    }
    if ((rs = (int)syscall(SYS_landlock_create_ruleset, &ra, size, 0)) < 0)
        return -errno;
    if ((err = ll_add_path(rs, "/usr", ro, LL_FS_READ_FILE)) < 0 ||
        (err = ll_add_path(rs, "/lib", ro, LL_FS_READ_FILE)) < 0 ||
        (err = ll_add_path(rs, "/lib64", ro, LL_FS_READ_FILE)) < 0 ||
        (err = ll_add_path(rs, "/etc/ld.so.cache", ro, LL_FS_READ_FILE)) < 0 ||
        (err = ll_add_path(rs, "/dev/null", 0, file_rw | trunc)) < 0 ||
        (err = ll_add_path(rs, "/dev/zero", 0, file_rw | trunc)) < 0 ||
        (err = ll_add_path(rs, "/dev/full", 0, file_rw | trunc)) < 0 ||
        (err = ll_add_path(rs, "/dev/random", 0, LL_FS_READ_FILE)) < 0 ||
        (err = ll_add_path(rs, "/dev/urandom", 0, LL_FS_READ_FILE)) < 0)
        goto out;
    /* /proc/self resolves to this process's own directory: without a PID namespace that is the
     * only one it may read. */
    if ((err = ll_add_path(rs, view ? "/proc" : "/proc/self", ro, LL_FS_READ_FILE)) < 0)
        goto out;
    if (view && (err = ll_add_path(rs, "/tmp",
                                   all & ~(LL_FS_EXECUTE | LL_FS_MAKE_CHAR | LL_FS_MAKE_BLOCK |
                                           LL_FS_MAKE_SOCK | LL_FS_IOCTL_DEV),
                                   file_rw | trunc)) < 0)
        goto out;
    /* The artifact: dlopen reopens it through /proc/self/fd/N, which resolves to the file
     * itself, wherever it lies; a rule on the file allows exactly that file. */
    if (artifact_fd >= 0 && (err = ll_add(rs, artifact_fd, LL_FS_READ_FILE)) < 0)
        goto out;
    if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        err = -errno;
out:
    close(rs);
    return err;
}

int shoal_sandbox_lockdown(shoal_sandbox_t *sb, const shoal_sandbox_limits_t *limits,
                           const char **why)
{
    const char *step = "";
    int err;

    scrub_environ();
    if (!SHOAL_ASAN_BUILD) {
        rlim_t as = (rlim_t)limits->memory_mb << 20;
        as += limits->channel_size + SHOAL_SANDBOX_AS_BASE;
        as += shoal_channel_group_map_max(limits->memory_mb);
        step = "RLIMIT_AS";
        if ((err = set_limit(RLIMIT_AS, as)) < 0)
            goto fail;
    }
    if (sb->landlock_abi > 0) {
        step = "Landlock";
        if ((err = landlock(sb, limits->artifact_fd)) < 0)
            goto fail;
    }
    return 0;
fail:
    if (why != NULL)
        *why = step;
    return err;
}
