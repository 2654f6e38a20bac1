/*
 * harness - starts real Shoal processes for end-to-end tests: a controller and workers on free
 * loopback ports, in a fresh temporary home directory, and talks to them over real HTTP with
 * libcurl. Binaries come from $SHOAL_BUILD (default ./build). Every process's stderr goes to a
 * log file in the home; a failing test prints their tails.
 *
 * Authentication is transparent: once the controller answers, the harness reads its API token
 * from <home>/token and http_request sends "Authorization: Bearer <token>" on every request
 * (unless the request's own headers carry an Authorization header, or cluster_set_auth says
 * otherwise); workers are started with --cluster-key-file <home>/cluster.key.
 */
#ifndef SHOAL_TESTS_E2E_HARNESS_H
#define SHOAL_TESTS_E2E_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#define CLUSTER_MAX_WORKERS 4

typedef struct {
    char home[256];
    char build[256];
    char src[256];
    char url[64];
    int http_port, worker_port;
    pid_t controller;
    pid_t workers[CLUSTER_MAX_WORKERS];
    int nworkers;
    char worker_args[256];     /* extra flags for every worker, space separated */
    char controller_args[256]; /* extra flags for the controller, space separated */
    int controller_starts, worker_starts;
    char token[300];           /* the API token, read from <home>/token at controller start */
    char worker_key_file[300]; /* --cluster-key-file for workers: "" means <home>/cluster.key,
                                  "none" gives no such flag */
    int auth_mode;             /* CLUSTER_AUTH_* */
    char auth_header[400];     /* CLUSTER_AUTH_HEADER: the whole header line */
} cluster_t;

/* What http_request sends as Authorization (cluster_set_auth). */
enum { CLUSTER_AUTH_TOKEN = 0, CLUSTER_AUTH_NONE, CLUSTER_AUTH_HEADER };

typedef struct {
    long status;
    char *body; /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    char invocation_id[80];
    char content_type[128];
    char retry_after[32];
    char custom_header[128];    /* the value of the X-Test header, if any */
    char www_authenticate[128]; /* the WWW-Authenticate header, if any */
    char allow[128];            /* the Allow header (of a 405), if any */
    double total_s;
} http_resp_t;

/* Starts a controller and nworkers workers and waits until all workers are registered.
 * Returns 0 or -1 (with the reason printed). */
/* A loopback TCP port that was free a moment ago (bind to port 0, then close). */
int cluster_free_port(void);
/* Starts redis-server on a free loopback port (no persistence, output to /dev/null, in its own
 * process group) and waits up to 10 s until it accepts connections. Returns its pid and sets
 * *port, or -1. Stop it with harness_redis_stop. */
pid_t harness_redis_start(int *port);
/* SIGTERM to a redis-server from harness_redis_start, and waits for it: 0, or -1 when it could
 * not be reaped. Does nothing for pid <= 0. */
int harness_redis_stop(pid_t pid);
int cluster_start(cluster_t *c, int nworkers, const char *worker_args);
/* cluster_start with extra flags for the controller too (e.g. "--redis redis://127.0.0.1:P"). */
int cluster_start_with(cluster_t *c, int nworkers, const char *worker_args,
                       const char *controller_args);
/* Sends sig to every process, waits for them, and removes the home. Returns 0 when every process
 * exited 0 (a sanitizer's leak report makes that fail), -1 otherwise. */
int cluster_stop(cluster_t *c);

int cluster_start_controller(cluster_t *c);
/* Kills the controller with sig and reaps it; returns its wait status. */
int cluster_kill_controller(cluster_t *c, int sig);
int cluster_start_worker(cluster_t *c, int i);
int cluster_kill_worker(cluster_t *c, int i, int sig);
/* Waits until GET /v1/workers lists n workers; 0 or -1 after timeout_ms. */
int cluster_wait_workers(cluster_t *c, int n, int timeout_ms);
/* Prints the last lines of every process log (for failures). */
void cluster_dump_logs(cluster_t *c);
/* Chooses the Authorization header of later requests: header NULL restores the default (the
 * cluster's token), "" sends none, anything else is sent as the whole header line
 * ("Authorization: Bearer wrong..."). */
void cluster_set_auth(cluster_t *c, const char *header);
/* Reads <c->home>/token into c->token (done by cluster_start_controller; for a controller the
 * test started itself). 0, or -1 when there is no token file yet. */
int cluster_read_token(cluster_t *c);

/* One HTTP request. headers: NULL-terminated array of "Name: value". Returns 0 when a response
 * arrived (any status), -1 on a transport error. */
int http_request(cluster_t *c, const char *method, const char *path, const void *body, size_t len,
                 const char *const *headers, http_resp_t *resp);
void http_resp_free(http_resp_t *resp);
/* POSTs len bytes of in to /v1/functions/<name>/invoke, with "?query" when query is not NULL.
 * Returns as http_request. */
int http_invoke(cluster_t *c, const char *name, const char *query, const void *in, size_t len,
                http_resp_t *resp);
/* Whether resp has this HTTP status and the JSON error "code" (exactly "code":"<code>"); prints
 * what it got instead to stderr when not. */
int http_is_error(const http_resp_t *resp, long status, const char *code);

/* Runs `shoal ARGS` (ARGS printf-style, through sh) against c: SHOAL_URL and SHOAL_TOKEN set to
 * c's. Its stdout and stderr land in out (NUL-terminated, cut at cap); returns its exit status,
 * -1 if it did not exit normally. */
int cluster_shoal(cluster_t *c, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Compiles C source text into <home>/<name>.so with `cc -shared -fPIC -I include`; returns
 * the path in a static buffer-per-call (out, outlen) or -1. */
int build_function(cluster_t *c, const char *name, const char *source, char *out, size_t outlen);
/* PUT a file's bytes as function name with an optional query string ("" for none); returns the
 * HTTP status or -1. resp may be NULL. */
int deploy_file(cluster_t *c, const char *name, const char *path, const char *query,
                http_resp_t *resp);
int deploy_bytes(cluster_t *c, const char *name, const void *data, size_t len, const char *query,
                 http_resp_t *resp);
/* Reads a file fully (malloc'd); NULL on failure. */
char *read_whole(const char *path, size_t *len);
/* Process ids of processes whose parent is pid. Returns how many were stored. */
int children_of(pid_t pid, pid_t *out, int max);
/* Number of open fds of a process, -1 if it cannot be read. */
int fd_count(pid_t pid);
/* Resident set size of a process in KiB, -1 if it cannot be read. */
long rss_kib(pid_t pid);
/* A "Field: N kB" line of /proc/<pid>/status (VmRSS, RssAnon, ...) in KiB, -1 if unreadable. */
long proc_status_kib(pid_t pid, const char *field);

#endif
