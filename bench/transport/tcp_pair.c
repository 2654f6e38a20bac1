/*
 * tcp_pair - the floor under a cross-node transfer: two processes and a plain TCP connection over
 * loopback, the sender write()s BYTES from a warm buffer, the receiver read()s them into a warm
 * buffer and answers one byte when it has them all. Timed at the sender from the first write to
 * the acknowledgement, best of ROUNDS (default 5). Prints JSON on stdout:
 *   {"bytes": B, "rounds": R, "best_ms": ..., "median_ms": ..., "gbps": B / best}
 * Usage: tcp_pair BYTES [ROUNDS]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

#define MAX_ROUNDS 50

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The receiving side: rounds times, read everything, then acknowledge with one byte. */
static int receiver(int port, size_t bytes, int rounds)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t *buf = malloc(bytes), ack = 'k';
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (buf == NULL || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(buf, 0, bytes);
    for (int r = 0; r < rounds; r++)
        if (shoal_util_read_all(fd, buf, bytes) < 0 || shoal_util_write_all(fd, &ack, 1) < 0)
            return 1;
    close(fd);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    int rounds = argc > 2 ? atoi(argv[2]) : 5, lfd, fd, one = 1, st;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    double t[MAX_ROUNDS];
    uint8_t *buf, ack;
    pid_t kid;

    if (bytes == 0 || bytes > ((size_t)8 << 30) || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: tcp_pair BYTES (1..8 GiB) [ROUNDS (1..%d)]\n", MAX_ROUNDS);
        return 2;
    }
    if ((buf = malloc(bytes)) == NULL) {
        fprintf(stderr, "tcp_pair: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t)(i * 7);
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("tcp_pair: listen");
        return 1;
    }
    if ((kid = fork()) == 0)
        _exit(receiver(ntohs(a.sin_port), bytes, rounds));
    if (kid < 0 || (fd = accept(lfd, NULL, NULL)) < 0) {
        perror("tcp_pair: accept");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = shoal_util_now_ns();
        if (shoal_util_write_all(fd, buf, bytes) < 0 || shoal_util_read_all(fd, &ack, 1) < 0) {
            fprintf(stderr, "tcp_pair: the connection broke\n");
            return 1;
        }
        t[r] = (double)(shoal_util_now_ns() - t0) / 1e6;
    }
    close(fd);
    close(lfd);
    if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "tcp_pair: the receiver failed\n");
        return 1;
    }
    free(buf);
    qsort(t, (size_t)rounds, sizeof(t[0]), cmp_double);
    printf("{\"bytes\": %zu, \"rounds\": %d, \"best_ms\": %.3f, \"median_ms\": %.3f, "
           "\"gbps\": %.3f}\n",
           bytes, rounds, t[0], t[rounds / 2], (double)bytes / (t[0] * 1e6));
    return 0;
}
