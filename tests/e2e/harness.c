/*
 * harness - see harness.h. Ports come from binding port 0 and closing the socket: a small race
 * with other programs on the machine, acceptable for tests. Processes are started with
 * fork+exec and stay this test program's children so that their exit status (and with it any
 * sanitizer report) can be checked.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cluster_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pid_t harness_redis_start(int *port)
{
    char portarg[16];
    pid_t pid;

    if ((*port = cluster_free_port()) < 0)
        return -1;
    snprintf(portarg, sizeof(portarg), "%d", *port);
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        setpgid(0, 0);
        execlp("redis-server", "redis-server", "--port", portarg, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--protected-mode", "no", (char *)NULL);
        fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)*port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        sleep_ms(25);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int harness_redis_stop(pid_t pid)
{
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

static pid_t spawn(cluster_t *c, const char *log, char *const argv[])
{
    char path[512];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", c->home, log);
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        /* Each process in its own group so that a kill of the test does not hit it twice. */
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* The controller writes <home>/token before it listens. */
int cluster_read_token(cluster_t *c)
{
    char path[512];
    size_t len;
    char *t;

    snprintf(path, sizeof(path), "%s/token", c->home);
    if ((t = read_whole(path, &len)) == NULL)
        return -1;
    while (len > 0 && (t[len - 1] == '\n' || t[len - 1] == '\r'))
        t[--len] = '\0';
    snprintf(c->token, sizeof(c->token), "%s", t);
    free(t);
    return len > 0 ? 0 : -1;
}

void cluster_set_auth(cluster_t *c, const char *header)
{
    if (header == NULL) {
        c->auth_mode = CLUSTER_AUTH_TOKEN;
    } else if (header[0] == '\0') {
        c->auth_mode = CLUSTER_AUTH_NONE;
    } else {
        c->auth_mode = CLUSTER_AUTH_HEADER;
        snprintf(c->auth_header, sizeof(c->auth_header), "%s", header);
    }
}

int cluster_start_controller(cluster_t *c)
{
    char bin[512], listen[64], wlisten[64], extra[256];
    char *argv[32] = {bin, "--listen", listen, "--worker-listen", wlisten, "--home", c->home};
    int argc = 7;
    http_resp_t r;

    snprintf(extra, sizeof(extra), "%s", c->controller_args);
    for (char *tok = strtok(extra, " "); tok != NULL && argc < 30; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    snprintf(bin, sizeof(bin), "%s/shoal-controller", c->build);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->http_port);
    snprintf(wlisten, sizeof(wlisten), "127.0.0.1:%d", c->worker_port);
    if ((c->controller = spawn(c, "controller.log", argv)) < 0)
        return -1;
    c->controller_starts++;
    for (int i = 0; i < 200; i++) {
        if (http_request(c, "GET", "/healthz", NULL, 0, NULL, &r) == 0) {
            long st = r.status;
            http_resp_free(&r);
            if (st == 200 && cluster_read_token(c) == 0)
                return 0;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "harness: controller did not answer /healthz within 10 s\n");
    cluster_dump_logs(c);
    return -1;
}

int cluster_start_worker(cluster_t *c, int i)
{
    char bin[512], ctl[64], home[300], node[32], extra[256], key[sizeof(c->worker_key_file)];
    char *argv[32] = {bin, "--controller", ctl, "--home", home, "--node", node};
    int argc = 7;

    if (c->worker_key_file[0] == '\0')
        snprintf(key, sizeof(key), "%s/cluster.key", c->home);
    else
        snprintf(key, sizeof(key), "%s", c->worker_key_file);
    if (strcmp(key, "none") != 0) {
        argv[argc++] = "--cluster-key-file";
        argv[argc++] = key;
    }

    snprintf(bin, sizeof(bin), "%s/shoal-worker", c->build);
    snprintf(ctl, sizeof(ctl), "127.0.0.1:%d", c->worker_port);
    snprintf(home, sizeof(home), "%s/worker%d", c->home, i);
    snprintf(node, sizeof(node), "node%d", i);
    snprintf(extra, sizeof(extra), "%s", c->worker_args);
    for (char *tok = strtok(extra, " "); tok != NULL && argc < 30; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    char log[32];
    snprintf(log, sizeof(log), "worker%d.log", i);
    if ((c->workers[i] = spawn(c, log, argv)) < 0)
        return -1;
    c->worker_starts++;
    return 0;
}

int cluster_wait_workers(cluster_t *c, int n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        http_resp_t r;
        if (http_request(c, "GET", "/v1/workers", NULL, 0, NULL, &r) == 0) {
            int count = 0;
            for (const char *p = r.body; p && (p = strstr(p, "\"node\"")) != NULL; p += 6)
                count++;
            http_resp_free(&r);
            if (count == n)
                return 0;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "harness: %d worker(s) did not register within %d ms\n", n, timeout_ms);
    cluster_dump_logs(c);
    return -1;
}

int cluster_start(cluster_t *c, int nworkers, const char *worker_args)
{
    return cluster_start_with(c, nworkers, worker_args, NULL);
}

int cluster_start_with(cluster_t *c, int nworkers, const char *worker_args,
                       const char *controller_args)
{
    const char *b = getenv("SHOAL_BUILD"), *s = getenv("SHOAL_SRC");

    memset(c, 0, sizeof(*c));
    snprintf(c->controller_args, sizeof(c->controller_args), "%s",
             controller_args ? controller_args : "");
    /* Processes orphaned by a killed worker come to the test, which can then see them go. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(c->build, sizeof(c->build), "%s", b ? b : "build");
    snprintf(c->src, sizeof(c->src), "%s", s ? s : ".");
    snprintf(c->worker_args, sizeof(c->worker_args), "%s", worker_args ? worker_args : "");
    snprintf(c->home, sizeof(c->home), "/tmp/shoal-e2e.XXXXXX");
    if (mkdtemp(c->home) == NULL)
        return -1;
    c->http_port = cluster_free_port();
    do
        c->worker_port = cluster_free_port();
    while (c->worker_port == c->http_port);
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d", c->http_port);
    c->nworkers = nworkers;
    if (cluster_start_controller(c) < 0)
        return -1;
    for (int i = 0; i < nworkers; i++)
        if (cluster_start_worker(c, i) < 0)
            return -1;
    return cluster_wait_workers(c, nworkers, 10000);
}

/* Waits for pid up to timeout_ms; returns the wait status or -1 after killing it. */
static int reap(pid_t pid, int timeout_ms)
{
    int st;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        sleep_ms(10);
    }
    fprintf(stderr, "harness: pid %d did not exit within %d ms; killing it\n", (int)pid,
            timeout_ms);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

int cluster_kill_controller(cluster_t *c, int sig)
{
    int st;
    if (c->controller <= 0)
        return -1;
    kill(c->controller, sig);
    st = reap(c->controller, 10000);
    c->controller = 0;
    return st;
}

int cluster_kill_worker(cluster_t *c, int i, int sig)
{
    int st;
    if (c->workers[i] <= 0)
        return -1;
    kill(c->workers[i], sig);
    st = reap(c->workers[i], 10000);
    c->workers[i] = 0;
    return st;
}

static int clean_exit(const char *what, int st)
{
    if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (st >= 0 && WIFEXITED(st))
        fprintf(stderr, "harness: %s exited with status %d\n", what, WEXITSTATUS(st));
    else if (st >= 0 && WIFSIGNALED(st))
        fprintf(stderr, "harness: %s killed by signal %d\n", what, WTERMSIG(st));
    return -1;
}

int cluster_stop(cluster_t *c)
{
    int err = 0;
    char cmd[300];

    for (int i = 0; i < c->nworkers; i++)
        if (c->workers[i] > 0 && clean_exit("worker", cluster_kill_worker(c, i, SIGTERM)) < 0)
            err = -1;
    if (c->controller > 0 && clean_exit("controller", cluster_kill_controller(c, SIGTERM)) < 0)
        err = -1;
    if (err < 0 || getenv("SHOAL_KEEP_HOME")) {
        cluster_dump_logs(c);
        fprintf(stderr, "harness: home kept at %s\n", c->home);
        return err;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->home);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", c->home);
    return err;
}

void cluster_dump_logs(cluster_t *c)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd),
             "for f in '%s'/*.log; do echo \"--- $f\"; tail -n 40 \"$f\"; done 1>&2", c->home);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: no logs\n");
}

struct sink {
    char *buf;
    size_t len, cap;
};

static size_t on_body(char *ptr, size_t size, size_t n, void *opaque)
{
    struct sink *s = opaque;
    size_t len = size * n;
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (nb == NULL)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return len;
}

static void copy_header(char *dst, size_t dstlen, const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0)
        return;
    line += nl;
    len -= nl;
    while (len > 0 && *line == ' ')
        line++, len--;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    snprintf(dst, dstlen, "%.*s", (int)len, line);
}

static size_t on_header(char *line, size_t size, size_t n, void *opaque)
{
    http_resp_t *r = opaque;
    size_t len = size * n;
    copy_header(r->invocation_id, sizeof(r->invocation_id), line, len, "shoal-invocation-id:");
    copy_header(r->content_type, sizeof(r->content_type), line, len, "content-type:");
    copy_header(r->retry_after, sizeof(r->retry_after), line, len, "retry-after:");
    copy_header(r->custom_header, sizeof(r->custom_header), line, len, "x-test:");
    copy_header(r->www_authenticate, sizeof(r->www_authenticate), line, len, "www-authenticate:");
    copy_header(r->allow, sizeof(r->allow), line, len, "allow:");
    return len;
}

int http_request(cluster_t *c, const char *method, const char *path, const void *body, size_t len,
                 const char *const *headers, http_resp_t *resp)
{
    static CURL *curl;
    static pid_t owner;
    struct curl_slist *hl = NULL;
    struct sink s = {0};
    char url[1024];
    CURLcode rc;

    memset(resp, 0, sizeof(*resp));
    /* A forked test process must not share the parent's keep-alive connection. */
    if (curl == NULL || owner != getpid()) {
        if (curl == NULL)
            curl_global_init(CURL_GLOBAL_DEFAULT);
        curl = curl_easy_init();
        owner = getpid();
    } else {
        curl_easy_reset(curl);
    }
    snprintf(url, sizeof(url), "%s%s", c->url, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        /* As curl does by default: above 1 MiB wait for 100-continue, so a body over the
         * limit reads the server's 413 rather than racing its close; below, send at once. */
        hl = curl_slist_append(hl, len > (1u << 20) ? "Expect: 100-continue" : "Expect:");
        curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
        hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
    }
    int own_auth = 0;
    for (int i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
        own_auth |= strncasecmp(headers[i], "authorization:", 14) == 0;
    }
    if (!own_auth && c->auth_mode == CLUSTER_AUTH_TOKEN && c->token[0] != '\0') {
        char line[sizeof(c->token) + 32];
        snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);
        hl = curl_slist_append(hl, line);
    } else if (!own_auth && c->auth_mode == CLUSTER_AUTH_HEADER) {
        hl = curl_slist_append(hl, c->auth_header);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    rc = curl_easy_perform(curl);
    curl_slist_free_all(hl);
    if (rc != CURLE_OK) {
        free(s.buf);
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &resp->total_s);
    if (s.buf == NULL)
        s.buf = calloc(1, 1);
    resp->body = s.buf;
    resp->len = s.len;
    return 0;
}

void http_resp_free(http_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
}

int http_invoke(cluster_t *c, const char *name, const char *query, const void *in, size_t len,
                http_resp_t *resp)
{
    char path[256];

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke%s%s", name, query ? "?" : "",
             query ? query : "");
    return http_request(c, "POST", path, in, len, NULL, resp);
}

int http_is_error(const http_resp_t *resp, long status, const char *code)
{
    char want[128];

    if (resp->status != status) {
        fprintf(stderr, "status %ld, want %ld, body: %.400s\n", resp->status, status, resp->body);
        return 0;
    }
    snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
    if (strstr(resp->body, want) == NULL) {
        fprintf(stderr, "expected code %s in: %.400s\n", code, resp->body);
        return 0;
    }
    return 1;
}

int build_function(cluster_t *c, const char *name, const char *source, char *out, size_t outlen)
{
    char src[512], cmd[2048];
    FILE *f;

    snprintf(src, sizeof(src), "%s/%s.c", c->home, name);
    snprintf(out, outlen, "%s/%s.so", c->home, name);
    if ((f = fopen(src, "w")) == NULL)
        return -1;
    fputs(source, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "cc -std=c11 -shared -fPIC -O2 -I '%s/include' '%s' -o '%s'", c->src,
             src, out);
    return system(cmd) == 0 ? 0 : -1;
}

char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

int deploy_bytes(cluster_t *c, const char *name, const void *data, size_t len, const char *query,
                 http_resp_t *resp)
{
    char path[512];
    http_resp_t r;
    int st;

    snprintf(path, sizeof(path), "/v1/functions/%s%s%s", name, query && *query ? "?" : "",
             query ? query : "");
    if (http_request(c, "PUT", path, data, len, NULL, &r) < 0)
        return -1;
    st = (int)r.status;
    if (resp)
        *resp = r;
    else
        http_resp_free(&r);
    return st;
}

int deploy_file(cluster_t *c, const char *name, const char *path, const char *query,
                http_resp_t *resp)
{
    size_t len;
    char *data = read_whole(path, &len);
    int st;

    if (data == NULL)
        return -1;
    st = deploy_bytes(c, name, data, len, query, resp);
    free(data);
    return st;
}

int children_of(pid_t pid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], buf[512];
        int fd, len;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if ((fd = open(path, O_RDONLY)) < 0)
            continue;
        len = (int)read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        /* Fields after the command name, which is in parentheses and may hold spaces. */
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp == NULL || sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
            continue;
        if (ppid == pid && state != 'Z')
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

int fd_count(pid_t pid)
{
    char path[64];
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 2;
}

long proc_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':' &&
            sscanf(line + flen + 1, "%ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

long rss_kib(pid_t pid)
{
    return proc_status_kib(pid, "VmRSS");
}

int cluster_shoal(cluster_t *c, char *out, size_t cap, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    size_t n;
    FILE *p;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "SHOAL_URL=%s SHOAL_TOKEN=%s '%s/shoal' %s 2>&1", c->url, c->token,
             c->build, args);
    if ((p = popen(cmd, "r")) == NULL)
        return -1;
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
