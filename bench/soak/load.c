/*
 * bench/soak/load - a closed-loop HTTP/1.1 invoke client for the soak benchmark. CONNS threads
 * each keep one connection and POST a BODY-byte body to PATH, paced so that all together send at
 * most RATE requests a second (0: as fast as answers come), for SECONDS. Unlike wrk it tells a
 * 429 that carries Retry-After from one that does not, and counts transport errors (a reset or
 * refused connection, reconnected after 50 ms) apart from statuses.
 *
 * After a 429 a thread waits PAUSE_MS (not the Retry-After it got: the point of the overload
 * phase is to keep the queue full). Prints one JSON object on stdout:
 * {"requests":N,"ok":N,"s429":N,"s429_retry_after":N,"other":N,"errors":N,"p50_us":N,
 *  "p99_us":N,"max_us":N,"seconds":S}
 *
 * Usage: load HOST PORT PATH CONNS SECONDS RATE BODY PAUSE_MS
 * The API token comes from $SHOAL_TOKEN (none when unset), not argv, which other users can read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define LAT_MAX (1u << 20) /* latency samples kept per thread (a ring: the newest win) */

static struct {
    const char *host, *token, *path;
    int port, conns, seconds, body, pause_ms;
    double rate;
} cfg;

typedef struct {
    pthread_t tid;
    uint64_t requests, ok, s429, s429_ra, other, errors;
    uint32_t *lat;
    size_t nlat;
} worker_t;

static uint64_t deadline_ns;

static int dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    struct timeval tv = {30, 0};
    int fd, one = 1;

    if (inet_pton(AF_INET, cfg.host, &sa.sin_addr) != 1)
        return -1;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* An answer that takes longer than this is a hang, counted as an error. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response: its status, whether it had Retry-After, and whether the server will close.
 * buf holds what was read beyond the previous response (keep-alive). 0 or -1. */
static int read_response(int fd, char *buf, size_t cap, size_t *have, int *status, int *ra,
                         int *closing)
{
    char *end;
    size_t hlen;
    long clen = -1;

    for (;;) {
        buf[*have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
        if (*have + 1 >= cap)
            return -1;
        ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
    hlen = (size_t)(end - buf) + 4;
    if (*have < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    *ra = 0;
    *closing = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "retry-after:", 12) == 0)
            *ra = 1;
        else if (strncasecmp(line, "connection: close", 17) == 0)
            *closing = 1;
    }
    if (clen < 0)
        return -1; /* the controller always sends Content-Length */
    /* Skip the body: part of it may be in buf already, the rest is read and dropped. */
    size_t total = hlen + (size_t)clen;
    if (*have >= total) {
        memmove(buf, buf + total, *have - total);
        *have -= total;
        return 0;
    }
    for (size_t left = total - *have; left > 0;) {
        char sink[16384];
        ssize_t n = recv(fd, sink, left < sizeof(sink) ? left : sizeof(sink), 0);
        if (n <= 0)
            return -1;
        left -= (size_t)n;
    }
    *have = 0;
    return 0;
}

static void *run(void *arg)
{
    worker_t *w = arg;
    char head[1024], buf[16384];
    char *body = malloc((size_t)cfg.body + 1);
    size_t have = 0;
    int fd = -1, hl;
    uint64_t interval = cfg.rate > 0 ? (uint64_t)(1e9 * cfg.conns / cfg.rate) : 0;
    uint64_t next = shoal_util_now_ns();

    if (body == NULL)
        return NULL;
    memset(body, 'x', (size_t)cfg.body);
    hl = snprintf(head, sizeof(head),
                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s%s%s\r\n", cfg.path,
                  cfg.host, cfg.body, cfg.token ? "Authorization: Bearer " : "",
                  cfg.token ? cfg.token : "", cfg.token ? "\r\n" : "");
    while (shoal_util_now_ns() < deadline_ns) {
        int status, ra, closing;
        if (interval) {
            uint64_t now = shoal_util_now_ns();
            if (next > now) {
                struct timespec ts = {(time_t)((next - now) / 1000000000u),
                                      (long)((next - now) % 1000000000u)};
                nanosleep(&ts, NULL);
            }
            next += interval;
        }
        if (fd < 0 && (fd = dial()) < 0) {
            w->errors++;
            usleep(50 * 1000);
            continue;
        }
        uint64_t t0 = shoal_util_now_ns();
        if (shoal_util_write_all(fd, head, (size_t)hl) < 0 ||
            shoal_util_write_all(fd, body, (size_t)cfg.body) < 0 ||
            read_response(fd, buf, sizeof(buf), &have, &status, &ra, &closing) < 0) {
            w->errors++;
            close(fd);
            fd = -1;
            have = 0;
            usleep(50 * 1000);
            continue;
        }
        uint64_t us = (shoal_util_now_ns() - t0) / 1000;
        w->lat[w->nlat++ % LAT_MAX] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        w->requests++;
        if (status == 200)
            w->ok++;
        else if (status == 429) {
            w->s429++;
            w->s429_ra += ra;
        } else {
            w->other++;
            if (w->other <= 3)
                fprintf(stderr, "load: status %d on %s\n", status, cfg.path);
        }
        if (closing) {
            close(fd);
            fd = -1;
            have = 0;
        }
        if (status == 429 && cfg.pause_ms > 0)
            usleep((useconds_t)cfg.pause_ms * 1000);
    }
    if (fd >= 0)
        close(fd);
    free(body);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    worker_t *ws;
    uint64_t t0;

    if (argc != 9) {
        fprintf(stderr, "usage: load HOST PORT PATH CONNS SECONDS RATE BODY PAUSE_MS\n");
        return 2;
    }
    cfg.host = argv[1];
    cfg.port = atoi(argv[2]);
    cfg.token = getenv("SHOAL_TOKEN");
    if (cfg.token != NULL && (cfg.token[0] == '\0' || strlen(cfg.token) > 512))
        cfg.token = NULL;
    cfg.path = argv[3];
    cfg.conns = atoi(argv[4]);
    cfg.seconds = atoi(argv[5]);
    cfg.rate = atof(argv[6]);
    cfg.body = atoi(argv[7]);
    cfg.pause_ms = atoi(argv[8]);
    if (cfg.port <= 0 || cfg.conns <= 0 || cfg.conns > 4096 || cfg.seconds <= 0 || cfg.body < 0 ||
        cfg.body > (64 << 20)) {
        fprintf(stderr, "load: bad arguments\n");
        return 2;
    }
    if ((ws = calloc((size_t)cfg.conns, sizeof(*ws))) == NULL)
        return 1;
    t0 = shoal_util_now_ns();
    deadline_ns = t0 + (uint64_t)cfg.seconds * 1000000000u;
    for (int i = 0; i < cfg.conns; i++) {
        pthread_attr_t at;
        if ((ws[i].lat = malloc(LAT_MAX * sizeof(uint32_t))) == NULL)
            return 1;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 256 << 10);
        if (pthread_create(&ws[i].tid, &at, run, &ws[i]) != 0) {
            fprintf(stderr, "load: cannot start thread %d\n", i);
            return 1;
        }
        pthread_attr_destroy(&at);
    }
    worker_t sum = {0};
    size_t n = 0;
    for (int i = 0; i < cfg.conns; i++) {
        pthread_join(ws[i].tid, NULL);
        sum.requests += ws[i].requests;
        sum.ok += ws[i].ok;
        sum.s429 += ws[i].s429;
        sum.s429_ra += ws[i].s429_ra;
        sum.other += ws[i].other;
        sum.errors += ws[i].errors;
        n += ws[i].nlat < LAT_MAX ? ws[i].nlat : LAT_MAX;
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof(uint32_t));
    size_t k = 0;
    if (all == NULL)
        return 1;
    for (int i = 0; i < cfg.conns; i++) {
        size_t m = ws[i].nlat < LAT_MAX ? ws[i].nlat : LAT_MAX;
        memcpy(all + k, ws[i].lat, m * sizeof(uint32_t));
        k += m;
        free(ws[i].lat);
    }
    qsort(all, n, sizeof(uint32_t), cmp_u32);
    printf("{\"requests\":%llu,\"ok\":%llu,\"s429\":%llu,\"s429_retry_after\":%llu,\"other\":%llu,"
           "\"errors\":%llu,\"p50_us\":%u,\"p99_us\":%u,\"max_us\":%u,\"seconds\":%.1f}\n",
           (unsigned long long)sum.requests, (unsigned long long)sum.ok,
           (unsigned long long)sum.s429, (unsigned long long)sum.s429_ra,
           (unsigned long long)sum.other, (unsigned long long)sum.errors, n ? all[n / 2] : 0,
           n ? all[n * 99 / 100] : 0, n ? all[n - 1] : 0, (double)(shoal_util_now_ns() - t0) / 1e9);
    free(all);
    free(ws);
    return 0;
}
