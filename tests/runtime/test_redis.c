/*
 * Tests runtime/redis.c against a real redis-server that this program starts on a free loopback
 * port (without persistence) and stops at the end. Each test forks one process per rank; each
 * rank gets a non-blocking socket connecting to Redis, made the way the worker makes it, and
 * runs collectives through shoal_rt_redis_*. A rank reports a mismatch on stderr and exits
 * non-zero. After a successful group no key of it may be left in Redis.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/redis.h"
#include "transport/arena.h"
#include "transport/coll.h"

static pid_t redis_pid;
static int redis_port;

/* ---- the Redis server ---- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int start_redis(void **state)
{
    char port[16];
    (void)state;

    if ((redis_port = free_port()) < 0)
        return -1;
    snprintf(port, sizeof(port), "%d", redis_port);
    if ((redis_pid = fork()) < 0)
        return -1;
    if (redis_pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            dup2(nul, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", redis_port);
        int ok = c != NULL && c->err == 0;
        redisFree(c);
        if (ok)
            return 0;
        if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid)
            return -1;
        usleep(25000);
    }
    return -1;
}

static int stop_redis(void **state)
{
    (void)state;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    return 0;
}

/* A socket connecting to port, made as the worker makes it (non-blocking connect). */
static int redis_socket(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Keys of group gid still in Redis. */
static long long keys_left(uint64_t gid)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    redisReply *r;
    long long n = -1;

    if (c == NULL || c->err)
        goto out;
    r = redisCommand(c, "KEYS shoal:%016llx:*", (unsigned long long)gid);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        n = (long long)r->elements;
        for (size_t i = 0; i < r->elements; i++)
            fprintf(stderr, "left: %s\n", r->element[i]->str);
    }
    freeReplyObject(r);
out:
    redisFree(c);
    return n;
}

static uint64_t new_gid(void)
{
    uint64_t g = 0;
    while (getrandom(&g, sizeof(g), 0) != sizeof(g))
        ;
    return g;
}

/* ---- running ranks ---- */

typedef int (*rank_fn)(shoal_rt_redis_t *h, int rank, int n, void *arg);

typedef struct {
    int n;
    uint64_t gid;
    uint64_t deadline_ns; /* 0: none */
    shoal_arena_t *arena; /* NULL: none */
    uint64_t chunk;
    int port;  /* 0: the server's */
    int local; /* ranks are arena ranks (peers that leave are seen) */
} group_t;

/* Forks a process per rank; returns how many ranks failed (exit status != 0). Like the worker,
 * the parent aborts the group's arena (its own one if the test gives none) as soon as a rank
 * fails, so that the others stop waiting; waits end at the latest after 60 s. */
static int run_ranks(const group_t *g, rank_fn fn, void *arg)
{
    shoal_arena_t *own = NULL, *a = g->arena;
    uint64_t deadline = g->deadline_ns ? g->deadline_ns : shoal_util_now_ns() + 60000000000ull;
    pid_t pids[64], pid;
    int failed = 0, left = g->n, st;

    if (a == NULL && shoal_arena_create(&own, g->n, 0, 0) == 0)
        a = own;
    for (int r = 0; r < g->n; r++) {
        if ((pids[r] = fork()) == 0) {
            shoal_rt_redis_t *h;
            shoal_rt_redis_opts_t o = {.fd = redis_socket(g->port ? g->port : redis_port),
                                       .rank = r,
                                       .size = g->n,
                                       .group_id = g->gid,
                                       .deadline_ns = deadline,
                                       .arena = a,
                                       .arena_rank = r,
                                       .local = g->local,
                                       .chunk = g->chunk};
            int rc, err = shoal_rt_redis_create(&h, &o);
            if (err < 0) {
                fprintf(stderr, "rank %d: create: %s\n", r, strerror(-err));
                _exit(2);
            }
            rc = fn(h, r, g->n, arg);
            shoal_rt_redis_destroy(h);
            _exit(rc);
        }
    }
    while (left > 0 && (pid = wait(&st)) > 0) {
        int r = 0;
        while (r < g->n && pids[r] != pid)
            r++;
        if (r == g->n)
            continue; /* not a rank (the test's own helper) */
        left--;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "rank %d ended with status 0x%x\n", r, st);
            failed++;
            if (a != NULL)
                shoal_arena_abort(a, r, SHOAL_ARENA_FAIL_CRASHED);
        }
    }
    shoal_arena_destroy(own);
    return failed;
}

/* ---- patterns ---- */

static uint8_t pat(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 131u + i * 7u + (i >> 8) + (i >> 16));
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pat(seed, i);
}

static int check(const char *what, int rank, shoal_buf b, size_t len, uint32_t seed)
{
    const uint8_t *p = b.data;

    if (b.len != len) {
        fprintf(stderr, "rank %d: %s: %zu bytes, expected %zu\n", rank, what, b.len, len);
        return 1;
    }
    if (len > 0 && p == NULL)
        return 1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pat(seed, i)) {
            fprintf(stderr, "rank %d: %s: byte %zu is 0x%02x, expected 0x%02x\n", rank, what, i,
                    p[i], pat(seed, i));
            return 1;
        }
    }
    return 0;
}

#define TRY(what, call)                                                                            \
    do {                                                                                           \
        int err_ = (call);                                                                         \
        if (err_ < 0) {                                                                            \
            fprintf(stderr, "rank %d: %s: %s\n", rank, what, strerror(-err_));                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* The value rank r contributes at element i: small integers, exact in every dtype. */
static int64_t val(int r, size_t i, int op)
{
    /* Products stay small: 1 or 2. */
    return op == SHOAL_PROD ? 1 + (int64_t)((r + i) % 2) : (int64_t)((r * 3 + i) % 11) - 4;
}

static void put_val(void *p, size_t i, shoal_dtype t, int64_t v)
{
    switch (t) {
    case SHOAL_INT32:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    case SHOAL_INT64:
        ((int64_t *)p)[i] = v;
        break;
    case SHOAL_UINT64:
        ((uint64_t *)p)[i] = (uint64_t)v;
        break;
    case SHOAL_FLOAT:
        ((float *)p)[i] = (float)v;
        break;
    case SHOAL_DOUBLE:
        ((double *)p)[i] = (double)v;
        break;
    }
}

static int64_t combine(int64_t a, int64_t b, int op, shoal_dtype t)
{
    switch (op) {
    case SHOAL_SUM:
        return a + b;
    case SHOAL_PROD:
        return a * b;
    case SHOAL_MIN:
        if (t == SHOAL_UINT64)
            return (uint64_t)b < (uint64_t)a ? b : a;
        return b < a ? b : a;
    default:
        if (t == SHOAL_UINT64)
            return (uint64_t)b > (uint64_t)a ? b : a;
        return b > a ? b : a;
    }
}

static int check_reduced(int rank, const void *out, size_t count, int n, shoal_dtype t, int op)
{
    size_t esz = shoal_coll_dtype_size((int)t);
    uint8_t want[8];

    for (size_t i = 0; i < count; i++) {
        int64_t v = val(0, i, op);
        for (int r = 1; r < n; r++)
            v = combine(v, val(r, i, op), op, t);
        put_val(want, 0, t, v);
        if (memcmp(want, (const uint8_t *)out + i * esz, esz) != 0) {
            fprintf(stderr, "rank %d: reduce dtype %d op %d: element %zu differs\n", rank, t, op,
                    i);
            return 1;
        }
    }
    return 0;
}

/* ---- every collective ---- */

static int all_colls(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    static const size_t LENS[] = {0, 1, 4099};
    shoal_buf b, parts[16], recv[16], send[16];
    uint8_t *bufs[16], *data;
    (void)arg;

    TRY("barrier", shoal_rt_redis_barrier(h));
    /* send/recv: two messages around the ring and one to oneself, in send order */
    data = malloc(5000);
    fill(data, 5000, 900 + rank);
    TRY("send", shoal_rt_redis_send(h, (rank + 1) % n, data, 0));
    TRY("send", shoal_rt_redis_send(h, (rank + 1) % n, data, 4099));
    TRY("send self", shoal_rt_redis_send(h, rank, data, 17));
    TRY("recv", shoal_rt_redis_recv(h, (rank + n - 1) % n, &b));
    if (check("recv 1", rank, b, 0, 900 + (rank + n - 1) % n))
        return 1;
    TRY("recv", shoal_rt_redis_recv(h, (rank + n - 1) % n, &b));
    if (check("recv 2", rank, b, 4099, 900 + (rank + n - 1) % n))
        return 1;
    TRY("recv self", shoal_rt_redis_recv(h, rank, &b));
    if (check("recv self", rank, b, 17, 900 + rank))
        return 1;
    if (shoal_rt_redis_recv(h, rank, &b) != -EDEADLK)
        return 1;

    for (int ri = 0; ri < 2; ri++) {
        int root = ri == 0 ? 0 : n - 1;
        for (size_t li = 0; li < 3; li++) {
            size_t len = LENS[li];
            uint32_t s = (uint32_t)(root * 100 + li * 10);
            char what[64];

            /* bcast */
            fill(data, len, s);
            TRY("bcast", shoal_rt_redis_bcast(h, root, rank == root ? data : NULL,
                                              rank == root ? len : 0, &b));
            snprintf(what, sizeof(what), "bcast root %d len %zu", root, len);
            if (check(what, rank, b, len, s))
                return 1;
            /* scatter: part i is len + i bytes (0 stays 0) */
            for (int i = 0; i < n; i++) {
                size_t l = len ? len + (size_t)i : 0;
                bufs[i] = malloc(l + 1);
                fill(bufs[i], l, s + 1 + (uint32_t)i);
                parts[i] = (shoal_buf){bufs[i], l};
            }
            TRY("scatter", shoal_rt_redis_scatter(h, root, rank == root ? parts : NULL, &b));
            for (int i = 0; i < n; i++)
                free(bufs[i]); /* the result must not depend on the root's buffers */
            snprintf(what, sizeof(what), "scatter root %d len %zu", root, len);
            if (check(what, rank, b, len ? len + (size_t)rank : 0, s + 1 + (uint32_t)rank))
                return 1;
            /* gather: rank r sends len + r bytes */
            {
                size_t l = len ? len + (size_t)rank : 0;
                uint8_t *mine = malloc(l + 1);
                fill(mine, l, s + 50 + (uint32_t)rank);
                TRY("gather", shoal_rt_redis_gather(h, root, mine, l, rank == root ? parts : NULL));
                free(mine);
                for (int i = 0; rank == root && i < n; i++) {
                    snprintf(what, sizeof(what), "gather root %d len %zu from %d", root, len, i);
                    if (check(what, rank, parts[i], len ? len + (size_t)i : 0,
                              s + 50 + (uint32_t)i))
                        return 1;
                }
            }
            /* reduce and allreduce over every dtype and op, len elements */
            for (int t = SHOAL_INT32; t <= SHOAL_DOUBLE; t++) {
                for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++) {
                    size_t esz = shoal_coll_dtype_size(t);
                    uint8_t *in = malloc(len * esz + 8), *out = malloc(len * esz + 8);
                    for (size_t i = 0; i < len; i++)
                        put_val(in, i, (shoal_dtype)t, val(rank, i, op));
                    TRY("reduce",
                        shoal_rt_redis_reduce(h, root, in, out, len, (shoal_dtype)t, (shoal_op)op));
                    if (rank == root && check_reduced(rank, out, len, n, (shoal_dtype)t, op))
                        return 1;
                    /* in place */
                    TRY("allreduce",
                        shoal_rt_redis_allreduce(h, in, in, len, (shoal_dtype)t, (shoal_op)op));
                    if (check_reduced(rank, in, len, n, (shoal_dtype)t, op))
                        return 1;
                    free(in);
                    free(out);
                }
            }
        }
    }
    /* shuffle: a different size per pair, some zero */
    for (int p = 0; p < n; p++) {
        size_t l = (size_t)((rank * 7 + p * 3) % 5) * 997;
        bufs[p] = malloc(l + 1);
        fill(bufs[p], l, 2000 + (uint32_t)(rank * 64 + p));
        send[p] = (shoal_buf){bufs[p], l};
    }
    TRY("shuffle", shoal_rt_redis_shuffle(h, send, recv));
    for (int p = 0; p < n; p++)
        free(bufs[p]);
    for (int p = 0; p < n; p++) {
        char what[32];
        snprintf(what, sizeof(what), "shuffle from %d", p);
        if (check(what, rank, recv[p], (size_t)((p * 7 + rank * 3) % 5) * 997,
                  2000 + (uint32_t)(p * 64 + rank)))
            return 1;
    }
    TRY("barrier", shoal_rt_redis_barrier(h));
    free(data);
    return 0;
}

static void test_all_collectives(void **state)
{
    static const int SIZES[] = {1, 2, 3, 5};
    (void)state;

    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        /* A chunk of 1000 bytes: parts of 4099 bytes go as 5 keys. */
        group_t g = {.n = SIZES[i], .gid = new_gid(), .chunk = 1000};
        fprintf(stderr, "group of %d\n", g.n);
        assert_int_equal(run_ranks(&g, all_colls, NULL), 0);
        assert_int_equal(keys_left(g.gid), 0);
    }
}

/* ---- large parts: the default chunk size, more than one chunk ---- */

#define BIG ((size_t)(64u << 20) + 4097)

static int big_colls(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    uint8_t *data = malloc(BIG);
    shoal_buf b, send[8], recv[8];
    (void)arg;

    fill(data, BIG, 77);
    TRY("bcast", shoal_rt_redis_bcast(h, n - 1, data, BIG, &b));
    if (check("big bcast", rank, b, BIG, 77))
        return 1;
    /* shuffle: rank 0 sends the big part to the last rank, everything else is small */
    for (int p = 0; p < n; p++)
        send[p] = (shoal_buf){data, rank == 0 && p == n - 1 ? BIG : (size_t)p};
    TRY("shuffle", shoal_rt_redis_shuffle(h, send, recv));
    for (int p = 0; p < n; p++)
        if (check("big shuffle", rank, recv[p], p == 0 && rank == n - 1 ? BIG : (size_t)rank, 77))
            return 1;
    free(data);
    return 0;
}

static void test_big_parts(void **state)
{
    group_t g = {.n = 3, .gid = new_gid()};
    (void)state;

    assert_int_equal(run_ranks(&g, big_colls, NULL), 0);
    assert_int_equal(keys_left(g.gid), 0);
}

/* ---- failures ---- */

/* Rank 1 waits for a message rank 0 never sends; it must return want within 2 s. */
static int wait_forever(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    int want = *(int *)arg, r;
    uint64_t t0 = shoal_util_now_ns();
    shoal_buf b;
    (void)n;

    if (rank == 0) {
        usleep(1500000);
        return 0;
    }
    r = shoal_rt_redis_recv(h, 0, &b);
    if (r != want) {
        fprintf(stderr, "rank 1: recv returned %d, expected %d\n", r, want);
        return 1;
    }
    if (shoal_util_now_ns() - t0 > 2000000000ull) {
        fprintf(stderr, "rank 1: took %llu ms\n",
                (unsigned long long)(shoal_util_now_ns() - t0) / 1000000);
        return 1;
    }
    /* The handle stays failed: a later call does not block either. */
    r = shoal_rt_redis_barrier(h);
    return r < 0 ? 0 : 1;
}

static void test_abort_wakes_waiters(void **state)
{
    shoal_arena_t *a;
    int want = -ECONNABORTED;
    pid_t killer;
    (void)state;

    assert_int_equal(shoal_arena_create(&a, 2, 0, 0), 0);
    /* The worker's part: it aborts the arena when a rank crashes. */
    if ((killer = fork()) == 0) {
        usleep(300000);
        shoal_arena_abort(a, 0, SHOAL_ARENA_FAIL_CRASHED);
        _exit(0);
    }
    group_t g = {.n = 2, .gid = new_gid(), .arena = a};
    assert_int_equal(run_ranks(&g, wait_forever, &want), 0);
    waitpid(killer, NULL, 0);
    shoal_arena_destroy(a);
}

static void test_deadline(void **state)
{
    int want = -ETIMEDOUT;
    group_t g = {.n = 2, .gid = new_gid(), .deadline_ns = shoal_util_now_ns() + 500000000ull};
    (void)state;

    assert_int_equal(run_ranks(&g, wait_forever, &want), 0);
    /* The notification list never existed; nothing else was written. */
    assert_int_equal(keys_left(g.gid), 0);
}

/* Rank 0 sends one message and leaves the group (its GONE bit, as the runtime's leave sets it);
 * rank 1 gets that message, then -EPIPE for the next one and for a collective rooted at rank 0,
 * well before the deadline, and the arena blames rank 0 for leaving. */
static int leaver(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    shoal_arena_t *a = arg;
    uint64_t t0;
    shoal_buf b;
    int r, who, why;
    (void)n;

    if (rank == 0) {
        shoal_coll_t *c;
        TRY("send", shoal_rt_redis_send(h, 1, "hi", 2));
        TRY("join", shoal_coll_create(&c, shoal_arena_fd(a), 0, 2, 0));
        shoal_coll_destroy(c);
        return 0;
    }
    usleep(200000);
    TRY("recv", shoal_rt_redis_recv(h, 0, &b));
    if (b.len != 2 || memcmp(b.data, "hi", 2) != 0)
        return 1;
    t0 = shoal_util_now_ns();
    if ((r = shoal_rt_redis_recv(h, 0, &b)) != -EPIPE) {
        fprintf(stderr, "recv from a departed rank returned %d\n", r);
        return 1;
    }
    if ((r = shoal_rt_redis_bcast(h, 0, NULL, 0, &b)) != -EPIPE) {
        fprintf(stderr, "bcast from a departed root returned %d\n", r);
        return 1;
    }
    if (shoal_util_now_ns() - t0 > 2500000000ull) {
        fprintf(stderr, "noticing took %llu ms\n",
                (unsigned long long)(shoal_util_now_ns() - t0) / 1000000);
        return 1;
    }
    if (!shoal_arena_failure(a, &who, &why) || who != 0 || why != SHOAL_ARENA_FAIL_LEFT) {
        fprintf(stderr, "the arena does not blame rank 0 for leaving\n");
        return 1;
    }
    return 0;
}

static void test_peer_left(void **state)
{
    shoal_arena_t *a;
    (void)state;

    assert_int_equal(shoal_arena_create(&a, 2, 0, 0), 0);
    group_t g = {.n = 2, .gid = new_gid(), .arena = a, .local = 1};
    assert_int_equal(run_ranks(&g, leaver, a), 0);
    shoal_arena_destroy(a);
}

/* Rank 0 broadcasts while rank 1 scatters: rank 1 must see -EPROTO and abort the arena. */
static int mismatch(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    shoal_arena_t *a = arg;
    shoal_buf b, parts[2] = {{"a", 1}, {"b", 1}};
    int r;
    (void)n;

    if (rank == 0)
        return shoal_rt_redis_bcast(h, 0, "x", 1, &b) == 0 ? 0 : 1;
    r = shoal_rt_redis_scatter(h, 0, parts, &b);
    if (r != -EPROTO) {
        fprintf(stderr, "rank 1: scatter returned %d\n", r);
        return 1;
    }
    return shoal_arena_failed(a) ? 0 : 1;
}

static void test_mismatch(void **state)
{
    shoal_arena_t *a;
    (void)state;

    assert_int_equal(shoal_arena_create(&a, 2, 0, 0), 0);
    group_t g = {.n = 2, .gid = new_gid(), .arena = a};
    assert_int_equal(run_ranks(&g, mismatch, a), 0);
    shoal_arena_destroy(a);
}

static int bad_args(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    shoal_buf b, parts[1] = {{NULL, 3}};
    int r = 0;
    (void)n;
    (void)arg;

    r |= shoal_rt_redis_bcast(h, 0, "x", 1, NULL) != -EINVAL;
    r |= shoal_rt_redis_bcast(h, 1, "x", 1, &b) != -EINVAL;
    r |= shoal_rt_redis_bcast(h, 0, NULL, 1, &b) != -EINVAL;
    r |= shoal_rt_redis_scatter(h, 0, parts, &b) != -EINVAL;
    r |= shoal_rt_redis_gather(h, 0, "x", 1, NULL) != -EINVAL;
    r |= shoal_rt_redis_reduce(h, 0, "xxxx", &b, 1, (shoal_dtype)9, SHOAL_SUM) != -EINVAL;
    r |= shoal_rt_redis_reduce(h, 0, "xxxx", &b, 1, SHOAL_INT32, (shoal_op)9) != -EINVAL;
    r |= shoal_rt_redis_send(h, 1, "x", 1) != -EINVAL;
    r |= shoal_rt_redis_recv(h, -1, &b) != -EINVAL;
    r |= shoal_rt_redis_recv(h, 0, &b) != -EDEADLK;
    r |= shoal_rt_redis_shuffle(h, NULL, &b) != -EINVAL;
    if (r)
        fprintf(stderr, "rank %d: an argument check failed\n", rank);
    return r;
}

static void test_bad_arguments(void **state)
{
    group_t g = {.n = 1, .gid = new_gid()};
    (void)state;

    assert_int_equal(run_ranks(&g, bad_args, NULL), 0);
}

static int refused(shoal_rt_redis_t *h, int rank, int n, void *arg)
{
    int r = shoal_rt_redis_barrier(h);
    (void)rank;
    (void)n;
    (void)arg;

    if (r != -ECONNREFUSED) {
        fprintf(stderr, "barrier without a server returned %d\n", r);
        return 1;
    }
    return 0;
}

static void test_no_server(void **state)
{
    /* One rank: with more, the first to fail aborts the group and the others see that. */
    group_t g = {.n = 1, .gid = new_gid(), .port = free_port()};
    (void)state;

    assert_int_equal(run_ranks(&g, refused, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_collectives),
        cmocka_unit_test(test_big_parts),
        cmocka_unit_test(test_abort_wakes_waiters),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_peer_left),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_no_server),
    };
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
