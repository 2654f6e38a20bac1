/*
 * cmd_up - `shoal up`: the embedded platform. Runs shoal-controller and one shoal-worker (found
 * beside the shoal binary) as children and supervises them; with --workers N, N workers, each its
 * own node (its own name, home and peer port), so that groups spread over nodes run on one
 * machine.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGCHLD are blocked and taken synchronously with
 * sigtimedwait, so there are no handlers and no races with the loop. The children run in
 * process groups of their own, so a Ctrl-C at the terminal reaches only `shoal up`, which then
 * sends each child exactly one SIGTERM; they get PR_SET_PDEATHSIG too, so they do not outlive a
 * `shoal up` that is killed outright. A child that does not stop within STOP_MS is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/secret.h"
#include "common/util.h"
#include "url.h"

#define READY_MS 10000
#define STOP_MS 10000
#define POLL_MS 100

enum {
    OPT_LISTEN = 1,
    OPT_HOME,
    OPT_WORKER_LISTEN,
    OPT_SLOTS,
    OPT_NODE,
    OPT_TOKEN,
    OPT_REDIS,
    OPT_WORKERS
};

/* Workers `shoal up --workers N` runs at most. */
#define UP_WORKERS_MAX 16

typedef struct {
    const char *name; /* "shoal-controller" */
    pid_t pid;        /* 0 once reaped */
    int status;       /* wait status once reaped */
} child_t;

static pid_t spawn(const char *path, char *const argv[], const sigset_t *mask)
{
    pid_t parent = getpid(), pid = fork();

    if (pid != 0)
        return pid < 0 ? -errno : pid;
    /* The child: own process group, dies with its parent, default signal state, no stdin. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        dup2(fd, STDIN_FILENO);
    execv(path, argv);
    dprintf(STDERR_FILENO, "shoal: up: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

/* "exited with status 1" or "was killed by signal 11 (Segmentation fault)". */
static const char *describe(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "ended (wait status %d)", status);
    return buf;
}

/* Reaps whichever children have ended; returns the first child found ended now, or NULL. */
static child_t *reap(child_t *kids, int n)
{
    child_t *first = NULL;
    pid_t pid;
    int st;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        for (int i = 0; i < n; i++)
            if (kids[i].pid == pid) {
                kids[i].pid = 0;
                kids[i].status = st;
                if (first == NULL)
                    first = &kids[i];
            }
    return first;
}

static int alive(const child_t *kids, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += kids[i].pid > 0;
    return k;
}

/* Waits up to ms for a signal in set; returns it, or 0 on time-out. */
static int wait_signal(const sigset_t *set, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    siginfo_t info;
    int sig;

    do
        sig = sigtimedwait(set, &info, &ts);
    while (sig < 0 && errno == EINTR);
    return sig < 0 ? 0 : sig;
}

/* Sends SIGTERM to every living child and reaps them, killing any still alive after STOP_MS.
 * Further SIGINT/SIGTERM meanwhile are absorbed: the children already have theirs. */
static void stop(child_t *kids, int n, const sigset_t *set)
{
    uint64_t deadline = shoal_util_now_ms() + STOP_MS;

    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0)
            kill(kids[i].pid, SIGTERM);
    reap(kids, n);
    while (alive(kids, n) && shoal_util_now_ms() < deadline) {
        wait_signal(set, POLL_MS);
        reap(kids, n);
    }
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0) {
            fprintf(stderr, "shoal: up: %s did not stop within %d s; killing it\n", kids[i].name,
                    STOP_MS / 1000);
            kill(kids[i].pid, SIGKILL);
            if (waitpid(kids[i].pid, &kids[i].status, 0) == kids[i].pid)
                kids[i].pid = 0;
        }
}

/* After a requested stop: 0 when every child ended cleanly (exit 0, or SIGTERM's default). */
static int stopped_cleanly(const child_t *kids, int n)
{
    int rc = SHOAL_CLI_EXIT_OK;
    char why[128];

    for (int i = 0; i < n; i++) {
        int st = kids[i].status;
        if ((WIFEXITED(st) && WEXITSTATUS(st) == 0) || (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
            continue;
        rc = shoal_cli_fail("up: %s %s while stopping", kids[i].name,
                            describe(st, why, sizeof(why)));
    }
    return rc;
}

/* Polls GET /healthz until it answers 200, a child ends, a stop signal comes, or READY_MS pass.
 * Returns 0 when ready, the signal number of a stop request, or -1 when a child ended or time
 * ran out (reported). */
static int wait_ready(const char *base, child_t *kids, int n, const sigset_t *set)
{
    shoal_cli_http_t *h = shoal_cli_http_create(base);
    shoal_cli_http_req_t req = {
        .method = "GET", .path = "/healthz", .max_mem = 65536, .timeout_ms = 1000};
    uint64_t deadline = shoal_util_now_ms() + READY_MS;
    int rc = -1;

    if (h == NULL) {
        shoal_cli_fail("up: cannot start libcurl");
        return -1;
    }
    for (;;) {
        shoal_cli_http_resp_t resp;
        char err[512], why[128];
        child_t *gone;
        int sig;

        if ((gone = reap(kids, n)) != NULL) {
            shoal_cli_fail("up: %s %s before it was ready (see its messages above)", gone->name,
                           describe(gone->status, why, sizeof(why)));
            break;
        }
        if (shoal_cli_http_do(h, &req, &resp, err, sizeof(err)) == SHOAL_CLI_HTTP_OK) {
            long status = resp.status;
            shoal_cli_http_resp_free(&resp);
            if (status == 200) {
                rc = 0;
                break;
            }
        }
        if (shoal_util_now_ms() >= deadline) {
            shoal_cli_fail("up: %s/healthz did not answer within %d s (see the messages above)",
                           base, READY_MS / 1000);
            break;
        }
        sig = wait_signal(set, POLL_MS);
        if (sig != 0 && sig != SIGCHLD) {
            rc = sig;
            break;
        }
    }
    shoal_cli_http_destroy(h);
    return rc;
}

static int up_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {
        {"listen", 0, 1, OPT_LISTEN},
        {"home", 0, 1, OPT_HOME},
        {"worker-listen", 0, 1, OPT_WORKER_LISTEN},
        {"slots", 0, 1, OPT_SLOTS},
        {"node", 0, 1, OPT_NODE},
        {"token", 0, 1, OPT_TOKEN},
        {"redis", 0, 1, OPT_REDIS},
        {"workers", 0, 1, OPT_WORKERS},
        {"help", 'h', 0, SHOAL_CLI_OPT_HELP},
    };
    const shoal_cli_cmd_t *self = &shoal_cli_cmd_up;
    const char *listen = "127.0.0.1:8080", *home = ".shoal", *wlisten = NULL, *slots = NULL;
    const char *node = "local", *redis = NULL;
    char host[256], whost[256], wl[300], wconnect[300], base[320], dir[PATH_MAX];
    char ctl_path[PATH_MAX + 32], wrk_path[PATH_MAX + 32], abs_home[PATH_MAX];
    char wrk_home[PATH_MAX + 16], err[256], key_path[PATH_MAX + 16], token_path[PATH_MAX + 16];
    char token[SHOAL_SECRET_MAX + 1];
    unsigned port, wport;
    shoal_cli_args_t a;
    sigset_t set, old;
    child_t kids[1 + UP_WORKERS_MAX] = {{"shoal-controller", 0, 0}};
    char wnames[UP_WORKERS_MAX][SHOAL_NAME_MAX + 1], wlabels[UP_WORKERS_MAX][SHOAL_NAME_MAX + 16];
    char whomes[UP_WORKERS_MAX][PATH_MAX + 96];
    unsigned nworkers = 1, nkids;
    int id, rc, sig;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        uint64_t v;
        switch (id) {
        case OPT_LISTEN:
            listen = a.arg;
            continue;
        case OPT_HOME:
            home = a.arg;
            continue;
        case OPT_WORKER_LISTEN:
            wlisten = a.arg;
            continue;
        case OPT_SLOTS:
            if (shoal_cli_args_u64(a.opt, a.arg, 1, 4096, &v, err, sizeof(err)) < 0)
                return shoal_cli_usage_error(self->name, "%s", err);
            slots = a.arg;
            continue;
        case OPT_NODE:
            node = a.arg;
            continue;
        case OPT_WORKERS:
            if (shoal_cli_args_u64(a.opt, a.arg, 1, UP_WORKERS_MAX, &v, err, sizeof(err)) < 0)
                return shoal_cli_usage_error(self->name, "%s", err);
            nworkers = (unsigned)v;
            continue;
        case OPT_REDIS: /* checked by the controller, which says what is wrong with it */
            redis = a.arg;
            continue;
        case OPT_TOKEN:
            if (!shoal_secret_valid(a.arg, strlen(a.arg)))
                return shoal_cli_usage_error(self->name, "--token: a token is 16..256 characters "
                                                         "of [A-Za-z0-9-._~+/=]");
            /* Handed to the controller through its environment, not its visible arguments. */
            if (setenv("SHOAL_TOKEN", a.arg, 1) < 0)
                return shoal_cli_fail("up: %s", strerror(errno));
            continue;
        }
        if ((rc = shoal_cli_common(cli, self, &a, id)) >= 0)
            return rc;
    }
    if (shoal_cli_url_hostport_parse(listen, host, sizeof(host), &port) < 0)
        return shoal_cli_usage_error(self->name, "--listen needs ADDR:PORT, not \"%.100s\"",
                                     listen);
    if (wlisten == NULL) {
        if (port == 65535)
            return shoal_cli_usage_error(self->name,
                                         "--listen uses port 65535: give --worker-listen");
        wlisten = shoal_cli_url_hostport_format(host, port + 1, wl, sizeof(wl));
    }
    if (shoal_cli_url_hostport_parse(wlisten, whost, sizeof(whost), &wport) < 0)
        return shoal_cli_usage_error(self->name, "--worker-listen needs ADDR:PORT, not \"%.100s\"",
                                     wlisten);
    if (!shoal_util_name_valid(node) || (nworkers > 1 && strlen(node) > SHOAL_NAME_MAX - 2))
        return shoal_cli_usage_error(self->name, "--node must match [a-z0-9][a-z0-9_-]{0,62}%s",
                                     nworkers > 1 ? " (at most 61 characters with --workers)" : "");
    shoal_cli_url_hostport_format(shoal_cli_url_connect_host(whost), wport, wconnect,
                                  sizeof(wconnect));
    {
        char hp[300];
        snprintf(
            base, sizeof(base), "http://%s",
            shoal_cli_url_hostport_format(shoal_cli_url_connect_host(host), port, hp, sizeof(hp)));
    }

    if ((rc = shoal_util_exe_dir(dir, sizeof(dir))) < 0)
        return shoal_cli_fail("up: cannot find the shoal binary's directory: %s", strerror(-rc));
    snprintf(ctl_path, sizeof(ctl_path), "%s/shoal-controller", dir);
    snprintf(wrk_path, sizeof(wrk_path), "%s/shoal-worker", dir);
    if (access(ctl_path, X_OK) < 0 || access(wrk_path, X_OK) < 0)
        return shoal_cli_fail("up: shoal-controller and shoal-worker must be beside shoal in %s "
                              "(run `make`)",
                              dir);
    if ((rc = shoal_util_mkdir_p(home, 0755)) < 0)
        return shoal_cli_fail("up: cannot create %s: %s", home, strerror(-rc));
    if (realpath(home, abs_home) == NULL)
        return shoal_cli_fail("up: cannot use %s: %s", home, strerror(errno));
    snprintf(wrk_home, sizeof(wrk_home), "%s/worker", abs_home);
    /* One worker keeps the name and home it always had; several are nodes NAME0..NAME<N-1>, each
     * with its own home (the peer port is an ephemeral one each picks). */
    nkids = 1 + nworkers;
    for (unsigned i = 0; i < nworkers; i++) {
        if (nworkers == 1)
            snprintf(wnames[i], sizeof(wnames[i]), "%s", node);
        else
            snprintf(wnames[i], sizeof(wnames[i]), "%s%u", node, i);
        if (nworkers == 1)
            snprintf(whomes[i], sizeof(whomes[i]), "%s", wrk_home);
        else
            snprintf(whomes[i], sizeof(whomes[i]), "%s/worker-%s", abs_home, wnames[i]);
        snprintf(wlabels[i], sizeof(wlabels[i]), "shoal-worker %s", wnames[i]);
        kids[1 + i] = (child_t){nworkers == 1 ? "shoal-worker" : wlabels[i], 0, 0};
    }
    snprintf(key_path, sizeof(key_path), "%s/cluster.key", abs_home);
    snprintf(token_path, sizeof(token_path), "%s/token", abs_home);

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    /* A shell starts background jobs with SIGINT ignored; an ignored signal is never delivered
     * to sigtimedwait, so take the default back (it cannot act while blocked). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);

    {
        char *cargv[] = {ctl_path,        "--listen", (char *)listen, "--worker-listen",
                         (char *)wlisten, "--home",   abs_home,       redis ? "--redis" : NULL,
                         (char *)redis,   NULL};
        char *wargv[] = {wrk_path,      "--controller",
                         wconnect,      "--home",
                         whomes[0],     "--node",
                         wnames[0],     "--cluster-key-file",
                         key_path,      slots ? "--slots" : NULL,
                         (char *)slots, NULL};
        if ((kids[0].pid = spawn(ctl_path, cargv, &old)) < 0) {
            rc = shoal_cli_fail("up: cannot start %s: %s", ctl_path, strerror((int)-kids[0].pid));
            kids[0].pid = 0;
            goto out;
        }
        /* The token is the controller's alone: the workers do not inherit it. */
        unsetenv("SHOAL_TOKEN");
        /* The worker starts once the controller answers: by then the controller has written
         * the cluster key the worker reads at start. */
        if ((sig = wait_ready(base, kids, 1, &set)) != 0) {
            stop(kids, 1, &set);
            rc = sig > 0 ? stopped_cleanly(kids, 1) : SHOAL_CLI_EXIT_FAIL;
            goto out;
        }
        for (unsigned i = 0; i < nworkers; i++) {
            wargv[4] = whomes[i];
            wargv[6] = wnames[i];
            if ((kids[1 + i].pid = spawn(wrk_path, wargv, &old)) < 0) {
                rc = shoal_cli_fail("up: cannot start %s: %s", wrk_path,
                                    strerror((int)-kids[1 + i].pid));
                kids[1 + i].pid = 0;
                stop(kids, nkids, &set);
                goto out;
            }
        }
    }

    printf("Shoal is up: http://%s  (home %s; Ctrl-C to stop)\n", listen, abs_home);
    /* Printed once, here; clients (the shoal command) read it from the home by themselves. */
    if (shoal_secret_load(token_path, token, sizeof(token), NULL) == 0)
        printf("token: %s (also in %s)\n", token, token_path);
    fflush(stdout);

    for (;;) {
        child_t *gone;
        char why[128];

        sig = wait_signal(&set, 1000);
        if ((gone = reap(kids, nkids)) != NULL) {
            int alive = 0;
            for (unsigned i = 0; i < nkids; i++)
                alive += kids[i].pid > 0;
            stop(kids, nkids, &set);
            rc = shoal_cli_fail("up: %s %s (see its messages above)%s", gone->name,
                                describe(gone->status, why, sizeof(why)),
                                alive == 0         ? ""
                                : alive > 1        ? "; stopped the others"
                                : gone == &kids[0] ? "; stopped shoal-worker"
                                                   : "; stopped shoal-controller");
            break;
        }
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            stop(kids, nkids, &set);
            rc = stopped_cleanly(kids, nkids);
            break;
        }
    }
out:
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

const shoal_cli_cmd_t shoal_cli_cmd_up = {
    "up",
    "run a controller and a local worker until Ctrl-C",
    "Usage: shoal up [--listen ADDR:PORT] [--home DIR] [--worker-listen ADDR:PORT]\n"
    "                [--slots N] [--node NAME] [--token TOKEN] [--redis URL]\n"
    "                [--workers N]\n"
    "\n"
    "Runs the platform on this machine: shoal-controller and one shoal-worker (N with\n"
    "--workers), found beside the shoal binary, with their logs on stderr. Prints \"Shoal is\n"
    "up: URL\" once the API answers, and runs until Ctrl-C or SIGTERM, which stops them all.\n"
    "If any one exits, the others are stopped and shoal up exits 1.\n"
    "\n"
    "The API needs a token: the controller uses --token or $SHOAL_TOKEN, else DIR/token,\n"
    "else makes a random one there (mode 0600); shoal up prints it once at start. Other shoal\n"
    "commands run from the same directory find it in ./.shoal/token by themselves. The worker\n"
    "authenticates with the cluster key in DIR/cluster.key.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT         the HTTP API (default 127.0.0.1:8080)\n"
    "  --home DIR                 where state is kept: functions, versions, artifacts; the\n"
    "                             worker's cache is DIR/worker (default ./.shoal)\n"
    "  --worker-listen ADDR:PORT  where workers connect (default: the --listen address with\n"
    "                             port + 1)\n"
    "  --slots N                  instances the worker runs at once, 1..4096 (default 64)\n"
    "  --node NAME                the worker's node name (default local)\n"
    "  --workers N                run N workers, 1..16 (default 1), each its own node:\n"
    "                             NAME0..NAME<N-1> (local0, local1, ...) with homes\n"
    "                             DIR/worker-NAMEi and peer ports of their own; groups\n"
    "                             invoked with ?spread=1 place their ranks round-robin over\n"
    "                             them, so the cross-node path runs on one machine.\n"
    "                             --slots applies to each\n"
    "  --token TOKEN              the API token to use (stored in DIR/token)\n"
    "  --redis URL                the controller's Redis server (redis://HOST:PORT), for\n"
    "                             groups invoked with ?transport=redis (the baseline)\n"
    "  -h, --help                 show this help\n",
    up_run,
};
