/*
 * compile - turns an uploaded C source file into a shared object with the system compiler, under
 * limits, without ever blocking the event loop (callers run it on a thread-pool thread).
 *
 * Each compile gets a fresh directory <home>/tmp/cc-XXXXXX holding the source, the output, the
 * compiler's diagnostics and (through TMPDIR) its scratch files; the directory is removed before
 * shoal_compile_run returns, whatever happened.
 *
 * The compiler is untrusted input's first reader: `#include "/proc/self/environ"`, an include of
 * <home>/token or an `.incbin` of any file would put that file into the diagnostics or the shared
 * object. So it runs in a jail: cloned into new user, mount, PID, network, IPC and UTS
 * namespaces, it sees a root (a directory of mount points the controller prepares beside the
 * compile directory) holding read-only binds of /usr (and /lib*, /bin, /sbin, which
 * are links into it on merged-/usr systems), /etc/alternatives and /etc/ld.so.cache, /dev/null,
 * <home>/include as /include and the compile directory as /build (read-write, noexec) - no /proc,
 * no rest of /etc, nothing of the controller's home, no network. A root controller runs it as
 * SHOAL_COMPILE_UID with no supplementary groups (the uid owns /build), an unprivileged one as
 * itself; either way it has no capabilities after exec, and no_new_privs. Its environment is a
 * fixed PATH, TMPDIR, HOME and LC_ALL=C: the controller's own (which may hold SHOAL_TOKEN) never
 * reaches it. The command is
 *     cc -shared -fPIC -O2 -I /include -o <name>.so <name>.c
 * in /build, in its own process group (and as PID 1 of its PID namespace, so when cc ends or is
 * killed the kernel kills cc1, as and ld with it), with RLIMIT_CPU 30 s, RLIMIT_AS 2 GiB,
 * RLIMIT_FSIZE 256 MiB, no core dumps, stdin from /dev/null, stdout and stderr into a file, and a
 * 60 s wall-clock limit after which the whole process group is killed. An absolute opts.cc is
 * bound into the jail as /cc (it must only need what the jail has). If the kernel refuses the
 * namespaces, the compile fails with -EOPNOTSUPP (logged): C source is never compiled
 * unconfined. The child is started with a raw clone (fork cannot make namespaces) rather than
 * uv_spawn, which would install a SIGCHLD handler that reaps children the controller does not
 * own; we wait for exactly our pid.
 *
 * Relative file names make the diagnostics read "hello.c:3:5: error: ..." instead of exposing the
 * temporary path, and LC_ALL=C keeps them plain ASCII.
 */
#ifndef SHOAL_CONTROLLER_COMPILE_H
#define SHOAL_CONTROLLER_COMPILE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What an upload is. */
typedef enum {
    SHOAL_ARTIFACT_ELF,     /* starts with the ELF magic: validate it as a shared object */
    SHOAL_ARTIFACT_SOURCE,  /* text: no NUL and no control bytes other than \t \n \v \f \r */
    SHOAL_ARTIFACT_UNKNOWN, /* anything else: refused as "neither an ELF shared object nor C source"
                             */
} shoal_artifact_kind_t;

/* Classifies an upload by its bytes (never by a name or a header). Thread-safe. */
shoal_artifact_kind_t shoal_compile_classify(const void *buf, size_t len);

/* The uid a root controller's compiler runs as: outside the worker's instance uids
 * (SHOAL_SANDBOX_UID_BASE + 0..65535) and any ordinary account's. */
#define SHOAL_COMPILE_UID 999999999u

/* Diagnostics longer than this are cut (and say so). */
#define SHOAL_COMPILE_DIAG_MAX (64u * 1024u)

typedef struct {
    const char *home;         /* <home>/include/shoal.h is on the include path; work under tmp/ */
    const char *cc;           /* the compiler to run; NULL means "cc" (found through PATH) */
    uint32_t cpu_s;           /* RLIMIT_CPU per process; 0 means 30 */
    uint64_t as_bytes;        /* RLIMIT_AS; 0 means 2 GiB */
    uint64_t fsize_bytes;     /* RLIMIT_FSIZE; 0 means 256 MiB */
    uint32_t wall_ms;         /* wall-clock limit; 0 means 60000 */
    size_t max_output;        /* largest shared object accepted; 0 means 256 MiB */
    const atomic_int *cancel; /* optional: when it becomes nonzero a running compile is killed */
} shoal_compile_opts_t;

/* Compiles src[0..len) as <name>.c. Returns 0 with the shared object in *so (malloc'd), or
 * -ENOEXEC when the compiler refused it, ran out of a limit or was cancelled, with the
 * diagnostics (bounded by SHOAL_COMPILE_DIAG_MAX) in *diag (malloc'd, NUL-terminated), -EFBIG
 * when the shared object is larger than max_output, -EOPNOTSUPP when the jail cannot be built
 * (the kernel refuses user namespaces; logged), or another -errno for a failure of our own
 * (no diagnostics then). The caller frees *so and *diag. Call it
 * from a thread-pool thread: it blocks for as long as the compiler runs. */
int shoal_compile_run(const shoal_compile_opts_t *o, const char *name, const void *src, size_t len,
                      void **so, size_t *so_len, char **diag, size_t *diag_len);

/* Removes everything under <home>/tmp (compile directories a crash left behind) and recreates
 * it. Call once at start-up, before any compile runs. */
int shoal_compile_clean(const char *home);

#endif
