/*
 * shoal-worker - the node agent. Parses flags and runs the worker (worker.h).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/secret.h"
#include "common/trace.h"
#include "common/util.h"
#include "runtime/sandbox.h"
#include "worker/cgroup.h"
#include "worker/worker.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal-worker [--controller ADDR:PORT] [--node NAME] [--slots N] [--home DIR]\n"
            "                    [--stems N] [--keep-alive-ms MS] [--runtime PATH] [--fds N]\n"
            "                    [--tasks N] [--cpu-percent P] [--uid-base UID]\n"
            "                    [--cgroup PARENT|none] [--cluster-key-file PATH]\n"
            "                    [--peer-listen ADDR:PORT]\n"
            "Runs functions for a Shoal controller on this node.\n"
            "  --controller ADDR:PORT  controller's worker port (default 127.0.0.1:8081)\n"
            "  --node NAME             this node's name (default: the host name)\n"
            "  --slots N               most instances at once, warm or busy (default 64)\n"
            "  --home DIR              state; artifacts cached in DIR/artifacts\n"
            "                          (default ./.shoal/worker-NODE)\n"
            "  --stems N               idle sandboxes forked ahead of demand (default 2)\n"
            "  --keep-alive-ms MS      an idle warm instance retires after MS (default 60000)\n"
            "  --runtime PATH          the shoal-runtime binary (default: beside this one)\n"
            "  --cluster-key-file PATH the cluster key the controller demands (its\n"
            "                          HOME/cluster.key; default: $SHOAL_CLUSTER_KEY)\n"
            "  --peer-listen ADDR:PORT where other workers connect for groups spread over\n"
            "                          nodes (default 127.0.0.1:0, any free port; it is\n"
            "                          announced to the controller; peers present the\n"
            "                          cluster key)\n"
            "Sandbox limits of every instance (see docs/security.md):\n"
            "  --fds N                 open files (default 1024)\n"
            "  --tasks N               processes and threads (default 64)\n"
            "  --cpu-percent P         CPU quota in percent of one CPU, 0 for none (default 100)\n"
            "  --uid-base UID          instance i runs as UID + i %% 65536 (default 1000000000)\n"
            "  --cgroup PARENT|none    cgroup directory under each hierarchy (default shoal);\n"
            "                          none: no cgroups (memory and tasks bounded by rlimits)\n");
}

static int parse_num(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (shoal_util_parse_u64(s, strlen(s), min, max, out) < 0) {
        fprintf(stderr, "shoal-worker: %s must be a number in %llu..%llu\n", flag,
                (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"controller", required_argument, NULL, 'c'},
                                         {"node", required_argument, NULL, 'n'},
                                         {"slots", required_argument, NULL, 's'},
                                         {"home", required_argument, NULL, 'H'},
                                         {"stems", required_argument, NULL, 'S'},
                                         {"keep-alive-ms", required_argument, NULL, 'k'},
                                         {"runtime", required_argument, NULL, 'r'},
                                         {"fds", required_argument, NULL, 'F'},
                                         {"tasks", required_argument, NULL, 'T'},
                                         {"cpu-percent", required_argument, NULL, 'P'},
                                         {"uid-base", required_argument, NULL, 'U'},
                                         {"cgroup", required_argument, NULL, 'G'},
                                         {"cluster-key-file", required_argument, NULL, 'K'},
                                         {"peer-listen", required_argument, NULL, 'L'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    shoal_worker_config_t cfg;
    char dir[PATH_MAX];
    const char *key_file = NULL, *env;
    uint64_t v;
    int c, err;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.controller, sizeof(cfg.controller), "127.0.0.1:8081");
    cfg.slots = 64;
    cfg.stems = 2;
    cfg.keep_alive_ms = 60000;
    cfg.fds = SHOAL_SANDBOX_NOFILE;
    cfg.tasks = SHOAL_SANDBOX_TASKS;
    cfg.cpu_percent = 100;
    cfg.uid_base = SHOAL_SANDBOX_UID_BASE;
    snprintf(cfg.cgroup_parent, sizeof(cfg.cgroup_parent), "%s", SHOAL_CGROUP_PARENT);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (strlen(optarg) >= sizeof(cfg.controller) || strchr(optarg, ':') == NULL) {
                fprintf(stderr, "shoal-worker: --controller wants ADDR:PORT\n");
                return 2;
            }
            snprintf(cfg.controller, sizeof(cfg.controller), "%s", optarg);
            break;
        case 'n':
            if (!shoal_util_name_valid(optarg)) {
                fprintf(stderr, "shoal-worker: --node must match [a-z0-9][a-z0-9_-]{0,62}\n");
                return 2;
            }
            snprintf(cfg.node, sizeof(cfg.node), "%s", optarg);
            break;
        case 's':
            if (parse_num("--slots", optarg, 1, 4096, &v) < 0)
                return 2;
            cfg.slots = (unsigned)v;
            break;
        case 'H':
            if (strlen(optarg) >= sizeof(cfg.home) - 64) {
                fprintf(stderr, "shoal-worker: --home is too long\n");
                return 2;
            }
            snprintf(cfg.home, sizeof(cfg.home), "%s", optarg);
            break;
        case 'S':
            if (parse_num("--stems", optarg, 0, 256, &v) < 0)
                return 2;
            cfg.stems = (unsigned)v;
            break;
        case 'k':
            if (parse_num("--keep-alive-ms", optarg, 0, 86400000ull * 365, &v) < 0)
                return 2;
            cfg.keep_alive_ms = v;
            break;
        case 'r':
            if (strlen(optarg) >= sizeof(cfg.runtime)) {
                fprintf(stderr, "shoal-worker: --runtime is too long\n");
                return 2;
            }
            snprintf(cfg.runtime, sizeof(cfg.runtime), "%s", optarg);
            break;
        case 'F':
            if (parse_num("--fds", optarg, 16, 1 << 20, &v) < 0)
                return 2;
            cfg.fds = (unsigned)v;
            break;
        case 'T':
            if (parse_num("--tasks", optarg, 1, 1 << 20, &v) < 0)
                return 2;
            cfg.tasks = (unsigned)v;
            break;
        case 'P':
            if (parse_num("--cpu-percent", optarg, 0, 100000, &v) < 0)
                return 2;
            cfg.cpu_percent = (unsigned)v;
            break;
        case 'U':
            /* Never 0, and room for the 65536 ids above it. */
            if (parse_num("--uid-base", optarg, 1, 0xfffffffeull - SHOAL_SANDBOX_UID_COUNT, &v) < 0)
                return 2;
            cfg.uid_base = (uint32_t)v;
            break;
        case 'G':
            if (strcmp(optarg, "none") != 0 &&
                (optarg[0] == '\0' || optarg[0] == '/' || strstr(optarg, "..") != NULL ||
                 strlen(optarg) >= sizeof(cfg.cgroup_parent))) {
                fprintf(stderr, "shoal-worker: --cgroup wants a relative directory name or none\n");
                return 2;
            }
            snprintf(cfg.cgroup_parent, sizeof(cfg.cgroup_parent), "%s", optarg);
            break;
        case 'K':
            key_file = optarg;
            break;
        case 'L': {
            const char *colon = strrchr(optarg, ':');
            char ip[64];
            struct in_addr in;
            if (strlen(optarg) >= sizeof(cfg.peer_listen) || colon == NULL ||
                (size_t)(colon - optarg) >= sizeof(ip) ||
                shoal_util_parse_u64(colon + 1, strlen(colon + 1), 0, 65535, &v) < 0 ||
                (snprintf(ip, sizeof(ip), "%.*s", (int)(colon - optarg), optarg),
                 inet_pton(AF_INET, ip, &in) != 1)) {
                fprintf(stderr, "shoal-worker: --peer-listen wants IPV4:PORT (10.0.0.5:7070)\n");
                return 2;
            }
            snprintf(cfg.peer_listen, sizeof(cfg.peer_listen), "%s", optarg);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "shoal-worker: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shoal-worker: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (cfg.node[0] == '\0') {
        char host[256];
        size_t i, n = 0;
        if (gethostname(host, sizeof(host)) < 0)
            snprintf(host, sizeof(host), "node");
        host[sizeof(host) - 1] = '\0';
        /* The host name made into a valid node name. */
        for (i = 0; host[i] != '\0' && n < SHOAL_NAME_MAX; i++) {
            char ch = host[i];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                (n > 0 && (ch == '-' || ch == '_')))
                cfg.node[n++] = ch;
            else if (n > 0 && ch == '.')
                break;
        }
        if (n == 0)
            snprintf(cfg.node, sizeof(cfg.node), "node");
    }
    if (cfg.home[0] == '\0')
        snprintf(cfg.home, sizeof(cfg.home), "./.shoal/worker-%s", cfg.node);
    /* The cluster key: the file wins over the environment. The variable is removed either way,
     * so that nothing this worker starts inherits it. */
    env = getenv("SHOAL_CLUSTER_KEY");
    if (key_file != NULL) {
        if ((err = shoal_secret_load(key_file, cfg.cluster_key, sizeof(cfg.cluster_key), NULL)) <
            0) {
            fprintf(stderr, "shoal-worker: --cluster-key-file %s: %s\n", key_file,
                    err == -EINVAL ? "not a cluster key (16..256 characters of [A-Za-z0-9-._~+/=])"
                                   : strerror(-err));
            return 2;
        }
    } else if (env != NULL && env[0] != '\0') {
        if (!shoal_secret_valid(env, strlen(env))) {
            fprintf(stderr, "shoal-worker: SHOAL_CLUSTER_KEY is not a cluster key (16..256 "
                            "characters of [A-Za-z0-9-._~+/=])\n");
            return 2;
        }
        snprintf(cfg.cluster_key, sizeof(cfg.cluster_key), "%s", env);
    } else {
        fprintf(stderr, "shoal-worker: warning: no cluster key (--cluster-key-file PATH or "
                        "SHOAL_CLUSTER_KEY); a controller will refuse this worker\n");
    }
    unsetenv("SHOAL_CLUSTER_KEY");
    if (cfg.runtime[0] == '\0') {
        if (shoal_util_exe_dir(dir, sizeof(dir)) < 0) {
            fprintf(stderr, "shoal-worker: cannot find my own directory; pass --runtime\n");
            return 2;
        }
        if (snprintf(cfg.runtime, sizeof(cfg.runtime), "%s/shoal-runtime", dir) >=
            (int)sizeof(cfg.runtime))
            return 2;
    }
    shoal_trace_init("shoal-worker");
    /* The worker's loop carries every invocation of its node: it must not wait on its stderr. */
    shoal_trace_nonblocking();
    return shoal_worker_run(&cfg);
}
