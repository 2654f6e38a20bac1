/*
 * shoal.h - the function API of Shoal, the only header a function author needs.
 *
 * A function is C compiled with `cc -shared -fPIC -I include fn.c -o fn.so` and linking nothing
 * else: the runtime provides these symbols when it loads the function. Every call returns 0 or a
 * negative errno unless stated otherwise. Buffers handed out in a shoal_buf belong to the runtime
 * and stay valid until shoal_main returns. All calls are made from the thread that runs
 * shoal_main.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_ctx shoal_ctx;
typedef struct {
    const void *data;
    size_t len;
} shoal_buf;
typedef enum { SHOAL_INT32, SHOAL_INT64, SHOAL_UINT64, SHOAL_FLOAT, SHOAL_DOUBLE } shoal_dtype;
typedef enum { SHOAL_SUM, SHOAL_PROD, SHOAL_MIN, SHOAL_MAX } shoal_op;

/* The entry point every function exports; a nonzero return means the invocation failed. */
int shoal_main(shoal_ctx *ctx);

/* The invocation's input; valid until shoal_main returns. */
shoal_buf shoal_input(shoal_ctx *ctx);
/* Sets the output, replacing earlier output; the bytes are copied. */
int shoal_output(shoal_ctx *ctx, const void *data, size_t len);
/* Returns len writable bytes that become the output (replacing earlier output); NULL on failure. */
void *shoal_output_alloc(shoal_ctx *ctx, size_t len);
/* Sets the invocation's error message; returns -1 so that `return shoal_error(...)` fails. */
int shoal_error(shoal_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes one line to the function's log. */
void shoal_log(shoal_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Request metadata: method, path, query, header:<name> (lower-case), invocation_id, function,
 * and for events trigger and topic. NULL when absent. */
const char *shoal_meta(shoal_ctx *ctx, const char *key);
/* Response metadata: status (HTTP status of a successful answer) and header:<name>. */
int shoal_set_meta(shoal_ctx *ctx, const char *key, const char *value);

/* Calls another function synchronously; *out holds its output. */
int shoal_call(shoal_ctx *ctx, const char *function, const void *in, size_t len, shoal_buf *out);
/* Runs n instances of function as a group with the same input; *out is rank 0's output. */
int shoal_call_group(shoal_ctx *ctx, const char *function, int n, const void *in, size_t len,
                     shoal_buf *out);

int shoal_rank(const shoal_ctx *ctx); /* 0 outside a group */
int shoal_size(const shoal_ctx *ctx); /* 1 outside a group */
int shoal_barrier(shoal_ctx *ctx);
int shoal_send(shoal_ctx *ctx, int dst, const void *data, size_t len);
int shoal_recv(shoal_ctx *ctx, int src, shoal_buf *out);
int shoal_bcast(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *out);
int shoal_scatter(shoal_ctx *ctx, int root, const shoal_buf *parts, shoal_buf *out);
int shoal_gather(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *parts);
int shoal_reduce(shoal_ctx *ctx, int root, const void *in, void *out, size_t count,
                 shoal_dtype type, shoal_op op);
int shoal_allreduce(shoal_ctx *ctx, const void *in, void *out, size_t count, shoal_dtype type,
                    shoal_op op);
/* send and recv are arrays of shoal_size() entries: send[i] goes to rank i, recv[j] came from
 * rank j. */
int shoal_shuffle(shoal_ctx *ctx, const shoal_buf *send, shoal_buf *recv);

#ifdef __cplusplus
}
#endif

#endif
