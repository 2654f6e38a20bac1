/*
 * allreduce - the data-parallel step of distributed training: every rank of a group (?group=N)
 * computes its gradient of a model of n parameters, the group sums the gradients with
 * shoal_allreduce, and every rank applies the averaged gradient to its copy of the weights, so
 * all copies stay identical.
 *
 *   shoal deploy allreduce build/examples/allreduce.so --memory-mb 1024
 *   curl -X POST 'localhost:8080/v1/functions/allreduce/invoke?group=4&n=16777216&steps=3'
 *
 * Query: n = parameters (default 1 Mi, at most 64 Mi), steps = training steps (default 1, at most
 * 100). The gradient of rank r at step s, element i, is (r + 1 + s) * ((i % 1024) / 1024): exact
 * binary fractions, so the sum does not depend on the order in which ranks are combined and the
 * answer can be checked against its closed form, sum over r of (r + 1 + s) =
 * N * (N + 1) / 2 + N * s. Rank 0 checks every element of every step's sum against it and answers
 * JSON: the sizes, the checksums of the last step's sum (the plain sum of its elements and the sum
 * weighted by (i % 7) + 1, which also catches elements in the wrong place), the number of
 * mismatching elements, the fastest step's allreduce time and its algorithmic bandwidth
 * (n * 8 bytes / time).
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_N ((size_t)64 << 20)

/* The value of key in the query string as a size, def when absent; 0 when malformed. */
static size_t query_size(shoal_ctx *ctx, const char *key, size_t def)
{
    const char *q = shoal_meta(ctx, "query");
    size_t kl = strlen(key);

    for (const char *p = q; p != NULL && *p != '\0';
         p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        char *end;
        unsigned long long v = strtoull(p + kl + 1, &end, 10);
        if (end == p + kl + 1 || (*end != '\0' && *end != '&') || p[kl + 1] == '-')
            return 0;
        return (size_t)v;
    }
    return def;
}

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int shoal_main(shoal_ctx *ctx)
{
    int rank = shoal_rank(ctx), size = shoal_size(ctx), rc = -1;
    size_t n = query_size(ctx, "n", (size_t)1 << 20), steps = query_size(ctx, "steps", 1);
    double *grad = NULL, *sum = NULL, *w = NULL, best = 0, plain = 0, weighted = 0;
    size_t bad = 0;

    if (n == 0 || n > MAX_N)
        return shoal_error(ctx, "allreduce: n must be 1..%zu", MAX_N);
    if (steps == 0 || steps > 100)
        return shoal_error(ctx, "allreduce: steps must be 1..100");
    grad = malloc(n * sizeof(double));
    sum = malloc(n * sizeof(double));
    w = calloc(n, sizeof(double));
    if (grad == NULL || sum == NULL || w == NULL) {
        shoal_error(ctx, "allreduce: cannot allocate 3 x %zu doubles (raise memory_mb)", n);
        goto out;
    }
    for (size_t s = 0; s < steps; s++) {
        /* "Backward pass": this rank's gradient on its shard of the batch. */
        double scale = (double)(rank + 1) + (double)s;
        for (size_t i = 0; i < n; i++)
            grad[i] = scale * ((double)(i % 1024) / 1024.0);
        /* Every rank starts the timed allreduce together: the figure is the exchange alone. */
        if ((rc = shoal_barrier(ctx)) < 0) {
            shoal_error(ctx, "allreduce: barrier: %s", strerror(-rc));
            goto out;
        }
        double t0 = now_ms();
        if ((rc = shoal_allreduce(ctx, grad, sum, n, SHOAL_DOUBLE, SHOAL_SUM)) < 0) {
            shoal_error(ctx, "allreduce: shoal_allreduce: %s", strerror(-rc));
            goto out;
        }
        double ms = now_ms() - t0;
        if (s == 0 || ms < best)
            best = ms;
        /* SGD step with the averaged gradient; every rank computes the same weights. */
        for (size_t i = 0; i < n; i++)
            w[i] -= 0.01 * sum[i] / size;
        if (rank == 0) {
            double coef = (double)size * (size + 1) / 2 + (double)size * (double)s;
            plain = weighted = 0;
            for (size_t i = 0; i < n; i++) {
                if (sum[i] != coef * ((double)(i % 1024) / 1024.0))
                    bad++;
                plain += sum[i];
                weighted += sum[i] * (double)(i % 7 + 1);
            }
        }
    }
    rc = 0;
    if (rank == 0) {
        char out[512];
        int len = snprintf(out, sizeof(out),
                           "{\"ranks\": %d, \"n\": %zu, \"steps\": %zu, \"sum\": %.17g, "
                           "\"weighted\": %.17g, \"mismatches\": %zu, \"w0\": %.17g, "
                           "\"allreduce_ms\": %.3f, \"algbw_gbps\": %.3f}\n",
                           size, n, steps, plain, weighted, bad, w[n > 1 ? 1 : 0], best,
                           best > 0 ? (double)n * 8 / (best * 1e6) : 0.0);
        shoal_set_meta(ctx, "header:content-type", "application/json");
        rc = shoal_output(ctx, out, (size_t)len);
    }
out:
    free(grad);
    free(sum);
    free(w);
    return rc < 0 ? -1 : 0;
}
