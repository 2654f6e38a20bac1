/*
 * shoal-controller - one per cluster: the HTTP API, the function registry and the scheduler on
 * one libuv loop.
 *
 * Start-up: parse flags, make --home absolute (the compiler runs in a directory of its own and
 * is given absolute include paths), write <home>/include/shoal.h from the copy embedded at build
 * time, clear compile leftovers, open the registry (which removes a crash's leftovers), load the
 * function table, then listen for HTTP and for workers.
 *
 * Shutdown (SIGINT or SIGTERM): stop accepting, answer everything in flight (shutting_down),
 * cancel queued deploys and kill running compiles, close worker connections and idle HTTP
 * connections, wait until every handle and thread-pool job is done (at most 10 s; a second
 * signal stops waiting), then free everything, so that LeakSanitizer finds nothing, and exit 0.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/secret.h"
#include "common/trace.h"
#include "common/util.h"
#include "controller/compile.h"
#include "controller/deploy.h"
#include "controller/events.h"
#include "controller/evhttp.h"
#include "controller/http.h"
#include "controller/logs.h"
#include "controller/registry.h"
#include "controller/sched.h"
#include "controller/store.h"
#include "controller/triggers.h"

extern const char shoal_header_blob[];
extern const char shoal_header_blob_end[];

#define SHUTDOWN_GRACE_MS 10000

static const char USAGE[] =
    "usage: shoal-controller [options]\n"
    "\n"
    "The Shoal controller: HTTP API, function registry and scheduler.\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT         HTTP API address (default 127.0.0.1:8080)\n"
    "  --worker-listen ADDR:PORT  address workers connect to (default: the --listen address\n"
    "                             with the port plus one)\n"
    "  --home DIR                 state directory: database, artifacts (default ./.shoal)\n"
    "  --max-body BYTES           largest request body, e.g. an upload (default 67108864)\n"
    "  --queue-max N              invocations that may wait for capacity before 429\n"
    "                             (default 1024)\n"
    "  --retention SECONDS        keep finished async invocations this long (default 86400)\n"
    "  --async-max N              async invocations accepted and not finished before 429\n"
    "                             (default 100000)\n"
    "  --async-concurrency N      async invocations running at once (default 32)\n"
    "  --log-kib N                KiB of recent log lines kept in memory per function, for\n"
    "                             GET /v1/functions/NAME/logs (default 256, 4..65536)\n"
    "  --token TOKEN              the API token clients send as \"Authorization: Bearer TOKEN\"\n"
    "                             (default: $SHOAL_TOKEN, else HOME/token, else a new random\n"
    "                             one written to HOME/token with mode 0600); a given token\n"
    "                             replaces the one in HOME/token\n"
    "  --cluster-key KEY          the key workers must present (default: $SHOAL_CLUSTER_KEY,\n"
    "                             else HOME/cluster.key, else a new random one written there)\n"
    "  --redis URL                the Redis server of the object-store baseline, as\n"
    "                             redis://HOST:PORT or HOST:PORT (resolved once, at start):\n"
    "                             lets groups ask for ?transport=redis\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Environment: SHOAL_LOG=error|warn|info|debug sets the log level (default info);\n"
    "SHOAL_TOKEN and SHOAL_CLUSTER_KEY as above (safer than flags: others can read a\n"
    "process's arguments). Tokens and keys are 16..256 characters of [A-Za-z0-9-._~+/=].\n";

typedef struct {
    struct sockaddr_storage listen, worker_listen;
    char listen_str[96], worker_str[96];
    char home[PATH_MAX];
    uint64_t max_body;
    uint64_t queue_max;
    uint64_t log_kib;
    uint64_t retention_s, async_max, async_concurrency;
    char token_arg[SHOAL_SECRET_MAX + 1], key_arg[SHOAL_SECRET_MAX + 1]; /* given, or "" */
    char token[SHOAL_SECRET_MAX + 1], cluster_key[SHOAL_SECRET_MAX + 1]; /* in use */
    char redis[80]; /* --redis resolved to "IP:PORT" / "[IPV6]:PORT", or "" */
} options_t;

typedef struct {
    uv_loop_t loop;
    options_t opt;
    shoal_registry_t *registry;
    shoal_sched_t *sched;
    shoal_deploy_t *deploy;
    shoal_deploy_opts_t deploy_opts;
    shoal_http_t *http;
    shoal_store_t *store;
    shoal_events_t *events;
    shoal_triggers_t *triggers;
    shoal_evhttp_t *evhttp;
    uv_signal_t sigint, sigterm;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_started;
    int shutting_down;
    int forced;
} controller_t;

/* Parses "ADDR:PORT", "[V6ADDR]:PORT", ":PORT" (all interfaces) or "localhost:PORT". */
static int parse_addr(const char *s, struct sockaddr_storage *ss, uint64_t *port_out)
{
    char host[64];
    const char *colon;
    uint64_t port;
    size_t hlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        colon = close + 1;
    } else {
        if ((colon = strrchr(s, ':')) == NULL)
            return -EINVAL;
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
    }
    if (shoal_util_parse_u64(colon + 1, strlen(colon + 1), 0, 65535, &port) < 0)
        return -EINVAL;
    if (host[0] == '\0')
        snprintf(host, sizeof(host), "0.0.0.0");
    else if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (s[0] == '[') {
        if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) < 0)
            return -EINVAL;
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) < 0) {
        return -EINVAL;
    }
    *port_out = port;
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void format_addr(const struct sockaddr_storage *ss, int port, char *buf, size_t size)
{
    char ip[64] = "?";

    if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
        snprintf(buf, size, "%s:%d", ip, port);
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%d", ip, port);
    }
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "shoal-controller: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", USAGE);
    return 2;
}

/* --redis URL: redis://HOST:PORT[/] or HOST:PORT (HOST a name, an IPv4 address or [IPV6]),
 * resolved here, once, so that workers connect to an address without a lookup of their own.
 * 0 with out = "IP:PORT" or "[IPV6]:PORT", or -EINVAL with the reason in why. */
static int parse_redis(const char *v, char *out, size_t size, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char host[256], ip[64], portstr[8];
    const char *s = v, *colon;
    size_t len, hlen;
    uint64_t port;
    int rc;

    if (strncmp(s, "redis://", 8) == 0)
        s += 8;
    else if (strstr(s, "://") != NULL) {
        snprintf(why, whylen, "'%s': only redis:// URLs (no TLS, no unix sockets) are supported",
                 v);
        return -EINVAL;
    }
    len = strlen(s);
    if (len > 0 && s[len - 1] == '/')
        len--;
    if (memchr(s, '@', len) != NULL || memchr(s, '/', len) != NULL) {
        snprintf(why, whylen, "'%s': give HOST:PORT only (no password, no database)", v);
        return -EINVAL;
    }
    colon = len > 0 ? memrchr(s, ':', len) : NULL;
    hlen = colon != NULL ? (size_t)(colon - s) : 0;
    if (colon == NULL || hlen == 0 ||
        shoal_util_parse_u64(colon + 1, len - hlen - 1, 1, 65535, &port) < 0) {
        snprintf(why, whylen, "'%s' is not redis://HOST:PORT or HOST:PORT (port 1..65535)", v);
        return -EINVAL;
    }
    if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        snprintf(why, whylen, "'%s': the host name is too long", v);
        return -EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0 || res == NULL) {
        snprintf(why, whylen, "cannot resolve '%.64s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    if (res->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
    else
        uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
    snprintf(out, size, res->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
    freeaddrinfo(res);
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 for a usage error. */
static int parse_options(int argc, char **argv, options_t *o)
{
    const char *listen = "127.0.0.1:8080", *worker = NULL, *home = "./.shoal", *env;
    uint64_t port;

    o->max_body = 64u << 20;
    o->queue_max = 1024;
    o->log_kib = SHOAL_LOGS_DEFAULT_CAP / 1024;
    o->retention_s = 86400;
    o->async_max = 100000;
    o->async_concurrency = 32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *eq;
        char flag[32];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", a);
        if ((eq = strchr(a, '=')) != NULL)
            snprintf(flag, sizeof(flag), "%.*s", (int)(eq - a), a);
        else
            snprintf(flag, sizeof(flag), "%s", a);
        if (strcmp(flag, "--listen") != 0 && strcmp(flag, "--worker-listen") != 0 &&
            strcmp(flag, "--home") != 0 && strcmp(flag, "--max-body") != 0 &&
            strcmp(flag, "--queue-max") != 0 && strcmp(flag, "--retention") != 0 &&
            strcmp(flag, "--async-max") != 0 && strcmp(flag, "--async-concurrency") != 0 &&
            strcmp(flag, "--token") != 0 && strcmp(flag, "--cluster-key") != 0 &&
            strcmp(flag, "--redis") != 0 && strcmp(flag, "--log-kib") != 0)
            return usage_error("unknown option '%s'", a);
        if (eq != NULL)
            v = eq + 1;
        else if (i + 1 >= argc)
            return usage_error("%s needs a value", a);
        else
            v = argv[++i];
        if (strcmp(flag, "--listen") == 0)
            listen = v;
        else if (strcmp(flag, "--worker-listen") == 0)
            worker = v;
        else if (strcmp(flag, "--home") == 0)
            home = v;
        else if (strcmp(flag, "--redis") == 0) {
            char why[512];
            if (parse_redis(v, o->redis, sizeof(o->redis), why, sizeof(why)) < 0)
                return usage_error("--redis: %s", why);
        } else if (strcmp(flag, "--token") == 0 || strcmp(flag, "--cluster-key") == 0) {
            int is_token = strcmp(flag, "--token") == 0;
            char *dst = is_token ? o->token_arg : o->key_arg;
            if (!shoal_secret_valid(v, strlen(v)))
                return usage_error("%s must be 16..256 characters of [A-Za-z0-9-._~+/=]",
                                   is_token ? "--token" : "--cluster-key");
            memcpy(dst, v, strlen(v) + 1);
            /* Out of /proc/PID/cmdline (it stays visible for the moment before this). */
            memset((char *)v, 'x', strlen(v));
        } else if (strcmp(flag, "--max-body") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), 1, 1u << 31, &o->max_body) < 0)
                return usage_error("--max-body must be a number of bytes in 1..2147483648, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(flag, "--queue-max") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), 0, 524288, &o->queue_max) < 0)
                return usage_error("--queue-max must be a number in 0..524288, not '%s'", v);
        } else if (strcmp(flag, "--log-kib") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), SHOAL_LOGS_MIN_CAP / 1024,
                                     SHOAL_LOGS_MAX_CAP / 1024, &o->log_kib) < 0)
                return usage_error("--log-kib must be a number in 4..65536, not '%s'", v);
        } else if (strcmp(flag, "--retention") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), 1, 10ull * 365 * 86400, &o->retention_s) < 0)
                return usage_error("--retention must be a number of seconds in 1..315360000, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(flag, "--async-max") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), 1, 10000000, &o->async_max) < 0)
                return usage_error("--async-max must be a number in 1..10000000, not '%s'", v);
        } else if (strcmp(flag, "--async-concurrency") == 0) {
            if (shoal_util_parse_u64(v, strlen(v), 1, 65536, &o->async_concurrency) < 0)
                return usage_error("--async-concurrency must be a number in 1..65536, not '%s'", v);
        }
    }
    if (home[0] == '\0')
        return usage_error("--home must not be empty%s", "");
    if (parse_addr(listen, &o->listen, &port) < 0)
        return usage_error("--listen wants ADDR:PORT, not '%s'", listen);
    if (worker != NULL) {
        if (parse_addr(worker, &o->worker_listen, &port) < 0)
            return usage_error("--worker-listen wants ADDR:PORT, not '%s'", worker);
    } else {
        /* Port 0 (any free port) stays 0 for workers too; otherwise the next port. */
        if (port == 65535)
            return usage_error("--listen port 65535 leaves no next port for workers; give "
                               "--worker-listen%s",
                               "");
        o->worker_listen = o->listen;
        set_port(&o->worker_listen, port == 0 ? 0 : (int)port + 1);
    }
    if (snprintf(o->home, sizeof(o->home), "%s", home) >= (int)sizeof(o->home))
        return usage_error("--home is too long: %s", home);
    /* Flags win over the environment. */
    if (o->token_arg[0] == '\0' && (env = getenv("SHOAL_TOKEN")) != NULL && env[0] != '\0') {
        if (!shoal_secret_valid(env, strlen(env)))
            return usage_error("SHOAL_TOKEN must be 16..256 characters of [A-Za-z0-9-._~+/=]%s",
                               "");
        memcpy(o->token_arg, env, strlen(env) + 1);
    }
    if (o->key_arg[0] == '\0' && (env = getenv("SHOAL_CLUSTER_KEY")) != NULL && env[0] != '\0') {
        if (!shoal_secret_valid(env, strlen(env)))
            return usage_error("SHOAL_CLUSTER_KEY must be 16..256 characters of "
                               "[A-Za-z0-9-._~+/=]%s",
                               "");
        memcpy(o->key_arg, env, strlen(env) + 1);
    }
    /* Nothing the controller starts (the compiler) inherits the secrets. */
    unsetenv("SHOAL_TOKEN");
    unsetenv("SHOAL_CLUSTER_KEY");
    return 0;
}

/* Settles the API token and the cluster key (common/secret.h), creating their files in the home
 * on first start. Neither value is ever logged, only where it came from. */
static int prepare_secrets(options_t *o)
{
    static const char *ORIGIN[] = {"", "given; stored in", "read from", "created in"};
    struct {
        const char *file, *what, *given;
        char *out;
    } s[2] = {{"token", "API token", o->token_arg, o->token},
              {"cluster.key", "cluster key", o->key_arg, o->cluster_key}};

    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX + 16];
        shoal_secret_origin_t origin;
        int err;
        snprintf(path, sizeof(path), "%s/%s", o->home, s[i].file);
        if ((err = shoal_secret_init(path, s[i].given, s[i].out, SHOAL_SECRET_MAX + 1, &origin)) <
            0) {
            SHOAL_ERROR("cannot set up the %s (%s): %s", s[i].what, path,
                        err == -EINVAL ? "the file does not hold 16..256 characters of "
                                         "[A-Za-z0-9-._~+/=]; delete it to get a new one"
                                       : strerror(-err));
            return err;
        }
        SHOAL_INFO("%s %s %s", s[i].what, ORIGIN[origin], path);
    }
    return 0;
}

/* Makes the home directory exist and its path absolute, and writes the function header there. */
static int prepare_home(options_t *o)
{
    char abs[PATH_MAX], inc[PATH_MAX];
    int err;

    if ((err = shoal_util_mkdir_p(o->home, 0755)) < 0) {
        SHOAL_ERROR("cannot create %s: %s", o->home, strerror(-err));
        return err;
    }
    if (realpath(o->home, abs) == NULL) {
        err = -errno;
        SHOAL_ERROR("cannot resolve %s: %s", o->home, strerror(errno));
        return err;
    }
    snprintf(o->home, sizeof(o->home), "%s", abs);
    if (snprintf(inc, sizeof(inc), "%s/include", o->home) >= (int)sizeof(inc))
        return -ENAMETOOLONG;
    if ((err = shoal_util_mkdir_p(inc, 0755)) < 0)
        return err;
    if (snprintf(inc, sizeof(inc), "%s/include/shoal.h", o->home) >= (int)sizeof(inc))
        return -ENAMETOOLONG;
    if ((err = shoal_util_write_file_durable(inc, shoal_header_blob,
                                             (size_t)(shoal_header_blob_end - shoal_header_blob),
                                             0644)) < 0) {
        SHOAL_ERROR("cannot write %s: %s", inc, strerror(-err));
        return err;
    }
    if ((err = shoal_compile_clean(o->home)) < 0) {
        SHOAL_ERROR("cannot prepare %s/tmp: %s", o->home, strerror(-err));
        return err;
    }
    return 0;
}

static void on_shutdown_tick(uv_timer_t *t)
{
    controller_t *c = t->data;
    int idle =
        shoal_http_idle(c->http) && shoal_sched_idle(c->sched) && shoal_deploy_busy(c->deploy) == 0;

    if (!idle && !c->forced && uv_now(&c->loop) - c->shutdown_started < SHUTDOWN_GRACE_MS)
        return;
    if (!idle) {
        SHOAL_WARN("shutdown: giving up waiting for %s", !shoal_http_idle(c->http) ? "HTTP clients"
                                                         : !shoal_sched_idle(c->sched) ? "workers"
                                                                                       : "deploys");
        c->forced = 1;
    }
    uv_stop(&c->loop);
}

static void begin_shutdown(controller_t *c, int signum)
{
    if (c->shutting_down) {
        SHOAL_WARN("second signal: stopping now");
        c->forced = 1;
        uv_stop(&c->loop);
        return;
    }
    SHOAL_INFO("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    c->shutting_down = 1;
    c->shutdown_started = uv_now(&c->loop);
    shoal_http_shutdown(c->http);
    /* Events first: what the scheduler's shutdown answers must stay not final in the store. */
    shoal_triggers_shutdown(c->triggers);
    shoal_events_shutdown(c->events);
    shoal_sched_shutdown(c->sched);
    shoal_deploy_shutdown(c->deploy);
    uv_timer_init(&c->loop, &c->shutdown_timer);
    c->shutdown_timer.data = c;
    uv_timer_start(&c->shutdown_timer, on_shutdown_tick, 0, 10);
}

static void on_signal(uv_signal_t *s, int signum)
{
    begin_shutdown(s->data, signum);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    static controller_t c;
    shoal_fn_t *fns = NULL;
    size_t nfns = 0;
    int err, rc = 1;

    shoal_trace_init("shoal-controller");
    if ((err = parse_options(argc, argv, &c.opt)) != 0)
        return err == 1 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    if (prepare_home(&c.opt) < 0 || prepare_secrets(&c.opt) < 0)
        return 1;
    if ((err = uv_loop_init(&c.loop)) < 0) {
        SHOAL_ERROR("cannot create the event loop: %s", uv_strerror(err));
        return 1;
    }
    if ((err = shoal_registry_open(c.opt.home, &c.registry)) < 0) {
        SHOAL_ERROR("cannot open the registry in %s: %s", c.opt.home,
                    err == -EBUSY ? "another controller is using it" : strerror(-err));
        goto out;
    }
    if ((err = shoal_registry_list(c.registry, &fns, &nfns)) < 0) {
        SHOAL_ERROR("cannot read the registry: %s", strerror(-err));
        goto out;
    }

    shoal_sched_opts_t so = {
        .queue_max = (uint32_t)c.opt.queue_max,
        .log_cap = (size_t)c.opt.log_kib * 1024,
        .max_payload = (uint32_t)(c.opt.max_body + (1u << 20)),
        .max_artifact = (size_t)c.opt.max_body,
        .max_body = c.opt.max_body,
        .registry = c.registry,
        .cluster_key = c.opt.cluster_key,
        .redis = c.opt.redis[0] != '\0' ? c.opt.redis : NULL,
    };
    if ((err = shoal_sched_create(&c.loop, &so, &c.sched)) < 0 ||
        (err = shoal_sched_load(c.sched, fns, nfns)) < 0) {
        SHOAL_ERROR("cannot start the scheduler: %s", strerror(-err));
        goto out;
    }
    free(fns);
    fns = NULL;

    c.deploy_opts.registry = c.registry;
    c.deploy_opts.compile.home = c.opt.home;
    c.deploy_opts.max_artifact = (size_t)c.opt.max_body;
    if ((err = shoal_deploy_create(&c.loop, &c.deploy_opts, 2, 64, &c.deploy)) < 0) {
        SHOAL_ERROR("cannot start the deployer: %s", strerror(-err));
        goto out;
    }
    shoal_events_opts_t eo = {
        .sched = c.sched,
        .concurrency = (uint32_t)c.opt.async_concurrency,
        .max_queued = (uint32_t)c.opt.async_max,
        .retention_ms = c.opt.retention_s * 1000,
    };
    if ((err = shoal_store_open(&c.loop, c.opt.home, 200, &c.store)) < 0) {
        SHOAL_ERROR("cannot open the event store in %s: %s", c.opt.home, strerror(-err));
        goto out;
    }
    eo.store = c.store;
    if ((err = shoal_events_create(&c.loop, &eo, &c.events)) < 0 ||
        (err = shoal_triggers_create(&c.loop, c.events, &c.triggers)) < 0 ||
        (err = shoal_evhttp_create(c.events, c.triggers, &c.evhttp)) < 0) {
        SHOAL_ERROR("cannot start the event runner: %s", strerror(-err));
        goto out;
    }
    shoal_http_opts_t ho = {.max_body = (size_t)c.opt.max_body,
                            .sched = c.sched,
                            .deploy = c.deploy,
                            .events = c.evhttp,
                            .token = c.opt.token};
    if ((err = shoal_http_create(&c.loop, &ho, &c.http)) < 0) {
        SHOAL_ERROR("cannot start the HTTP server: %s", strerror(-err));
        goto out;
    }
    if ((err = shoal_http_listen(c.http, (struct sockaddr *)&c.opt.listen)) < 0) {
        format_addr(&c.opt.listen, ntohs(((struct sockaddr_in *)&c.opt.listen)->sin_port),
                    c.opt.listen_str, sizeof(c.opt.listen_str));
        SHOAL_ERROR("cannot listen on %s: %s", c.opt.listen_str, uv_strerror(err));
        goto out;
    }
    if ((err = shoal_sched_listen(c.sched, (struct sockaddr *)&c.opt.worker_listen)) < 0) {
        format_addr(&c.opt.worker_listen,
                    ntohs(((struct sockaddr_in *)&c.opt.worker_listen)->sin_port), c.opt.worker_str,
                    sizeof(c.opt.worker_str));
        SHOAL_ERROR("cannot listen for workers on %s: %s", c.opt.worker_str, uv_strerror(err));
        goto out;
    }
    format_addr(&c.opt.listen, shoal_http_port(c.http), c.opt.listen_str, sizeof(c.opt.listen_str));
    format_addr(&c.opt.worker_listen, shoal_sched_port(c.sched), c.opt.worker_str,
                sizeof(c.opt.worker_str));

    uv_signal_init(&c.loop, &c.sigint);
    uv_signal_init(&c.loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);

    SHOAL_INFO("home %s: %zu function(s)", c.opt.home, nfns);
    SHOAL_INFO("listening on http://%s, workers on %s", c.opt.listen_str, c.opt.worker_str);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    rc = 0;

out:
    free(fns);
    if (!c.shutting_down) {
        /* A start-up failure: nothing is in flight, but the parts that exist still need to be
         * closed in order. */
        if (c.http)
            shoal_http_shutdown(c.http);
        if (c.triggers)
            shoal_triggers_shutdown(c.triggers);
        if (c.events)
            shoal_events_shutdown(c.events);
        if (c.sched)
            shoal_sched_shutdown(c.sched);
        if (c.deploy)
            shoal_deploy_shutdown(c.deploy);
    }
    if (c.sigint.loop)
        uv_close((uv_handle_t *)&c.sigint, NULL);
    if (c.sigterm.loop)
        uv_close((uv_handle_t *)&c.sigterm, NULL);
    if (c.shutting_down)
        uv_close((uv_handle_t *)&c.shutdown_timer, NULL);
    if (!c.forced) {
        /* h2o's context keeps an async handle open until it is disposed, so the loop cannot
         * simply run dry: turn it until our own handles have closed, then dispose h2o and let
         * its handles close. */
        for (int i = 0; i < 1000 && !((!c.http || shoal_http_idle(c.http)) &&
                                      (!c.sched || shoal_sched_idle(c.sched)));
             i++)
            uv_run(&c.loop, UV_RUN_NOWAIT);
        shoal_http_destroy(c.http);
        c.http = NULL;
        /* The store commits what is still pending and runs its callbacks while the runner that
         * owns them still exists, and closes its own async handle. */
        shoal_store_close(c.store);
        c.store = NULL;
        uv_walk(&c.loop, close_walk, NULL);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        shoal_evhttp_destroy(c.evhttp);
        shoal_triggers_destroy(c.triggers);
        shoal_events_destroy(c.events);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        shoal_sched_destroy(c.sched);
        shoal_deploy_destroy(c.deploy);
        shoal_registry_close(c.registry);
        if (uv_loop_close(&c.loop) < 0)
            SHOAL_WARN("the event loop did not close cleanly");
    } else {
        /* Stragglers still hold h2o and libuv state: do not free what they point into. The
         * registry is closed so that its database is checkpointed cleanly, and the event store
         * commits what is pending. */
        shoal_store_close(c.store);
        shoal_registry_close(c.registry);
    }
    if (rc == 0)
        SHOAL_INFO("stopped");
    return rc;
}
