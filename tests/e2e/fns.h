/* Source text of the small functions the end-to-end tests deploy. Each is a complete function
 * written against include/shoal.h only, as a user would write it. */
#ifndef SHOAL_TESTS_E2E_FNS_H
#define SHOAL_TESTS_E2E_FNS_H

#define FN_HEAD                                                                                    \
    "#include <shoal.h>\n#include <string.h>\n#include <stdio.h>\n#include <stdlib.h>\n"           \
    "#include <unistd.h>\n#include <signal.h>\n"

/* Answers a fixed marker, so an update can be told from the version before it. */
#define FN_VERSION(marker)                                                                         \
    FN_HEAD "int shoal_main(shoal_ctx *c) { return shoal_output(c, \"" marker "\", "               \
            "sizeof(\"" marker "\") - 1); }\n"

/* Echo through shoal_output_alloc: the output is the input, written in place. */
#define FN_ECHO                                                                                    \
    FN_HEAD "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c);\n"                      \
            " void *out = shoal_output_alloc(c, in.len); if (!out && in.len) return "              \
            "shoal_error(c, \"alloc\");\n"                                                         \
            " if (in.len) memcpy(out, in.data, in.len); return 0; }\n"

/* Misbehaves on request: "crash" segfaults, "abort" aborts, "hang" sleeps forever, "spin" loops,
 * "fail" returns an error message, "rc" returns 7 without a message, "nul" an error message with
 * a NUL byte in it; anything else is echoed. */
#define FN_MOODY                                                                                   \
    FN_HEAD "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c);\n"                      \
            " char cmd[16] = {0}; memcpy(cmd, in.data, in.len < 15 ? in.len : 15);\n"              \
            " if (!strcmp(cmd, \"crash\")) { volatile int *p = (int *)16; *p = 1; }\n"             \
            " if (!strcmp(cmd, \"abort\")) abort();\n"                                             \
            " if (!strcmp(cmd, \"hang\")) for (;;) pause();\n"                                     \
            " if (!strcmp(cmd, \"spin\")) for (volatile unsigned long i = 0;; i++) ;\n"            \
            " if (!strcmp(cmd, \"fail\")) return shoal_error(c, \"moody failed on purpose "        \
            "(%d)\", 42);\n"                                                                       \
            " if (!strcmp(cmd, \"rc\")) return 7;\n"                                               \
            " if (!strcmp(cmd, \"nul\")) return shoal_error(c, \"nul%cbyte\", 0);\n"               \
            " shoal_log(c, \"moody echoes %zu bytes\", in.len);\n"                                 \
            " return shoal_output(c, in.data, in.len); }\n"

/* Reports its request metadata and sets a status and a header. */
#define FN_META                                                                                    \
    FN_HEAD                                                                                        \
    "int shoal_main(shoal_ctx *c) { char out[1024]; const char *k[] = {\"method\", \"path\", "     \
    "\"query\",\n"                                                                                 \
    "  \"header:x-test\", \"function\", \"invocation_id\", \"nope\"}; size_t n = 0;\n"             \
    " for (int i = 0; i < 7; i++) { const char *v = shoal_meta(c, k[i]);\n"                        \
    "  n += snprintf(out + n, sizeof(out) - n, \"%s=%s\\n\", k[i], v ? v : \"(null)\"); }\n"       \
    " if (shoal_set_meta(c, \"status\", \"201\") < 0) return shoal_error(c, \"status\");\n"        \
    " if (shoal_set_meta(c, \"header:x-test\", \"from-function\") < 0) return shoal_error(c, "     \
    "\"hdr\");\n"                                                                                  \
    " if (shoal_set_meta(c, \"header:content-type\", \"text/plain\") < 0) return "                 \
    "shoal_error(c, \"ct\");\n"                                                                    \
    " return shoal_output(c, out, n); }\n"

/* Calls the function named by its input's first line with the rest as input. */
#define FN_CALLER                                                                                  \
    FN_HEAD                                                                                        \
    "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c); const char *p = in.data;\n"     \
    " const char *nl = memchr(p, '\\n', in.len); if (!nl) return shoal_error(c, \"no "             \
    "newline\");\n"                                                                                \
    " char fn[64] = {0}; memcpy(fn, p, (size_t)(nl - p) < 63 ? (size_t)(nl - p) : 63);\n"          \
    " shoal_buf out; int rc = shoal_call(c, fn, nl + 1, in.len - (size_t)(nl + 1 - p), "           \
    "&out);\n"                                                                                     \
    " if (rc < 0) return shoal_error(c, \"call %s failed: %d\", fn, rc);\n"                        \
    " return shoal_output(c, out.data, out.len); }\n"

/* The "gang" group function of test_groups.c and test_spread.c, in three pieces around the lines
 * each test puts between them (its "sleep" command; rank 0's status and header). Every rank adds
 * rank+1 with allreduce, receives a broadcast from the last rank and sends its rank to a gather
 * at rank 0; rank 0 answers "rank=0 size=<n> sum=<n(n+1)/2> bcast=hi from <n-1> gathered=0,..".
 * The input can make rank r misbehave first: "crash<r>", "fail<r>", "hang<r>". */
#define FN_GANG_START                                                                              \
    "#define _DEFAULT_SOURCE\n" FN_HEAD "#include <stdint.h>\n"                                    \
    "int shoal_main(shoal_ctx *c) {\n"                                                             \
    " shoal_buf in = shoal_input(c); char cmd[32] = {0};\n"                                        \
    " memcpy(cmd, in.data, in.len < 31 ? in.len : 31);\n"                                          \
    " int rank = shoal_rank(c), size = shoal_size(c), rc;\n"                                       \
    " if (!strncmp(cmd, \"crash\", 5) && rank == atoi(cmd + 5))\n"                                 \
    "  { volatile int *p = (int *)16; *p = 1; }\n"                                                 \
    " if (!strncmp(cmd, \"fail\", 4) && rank == atoi(cmd + 4))\n"                                  \
    "  return shoal_error(c, \"rank %d says no\", rank);\n"                                        \
    " if (!strncmp(cmd, \"hang\", 4) && rank == atoi(cmd + 4)) for (;;) pause();\n"
#define FN_GANG_COLLECTIVES                                                                        \
    " int64_t mine = rank + 1, sum = 0;\n"                                                         \
    " if ((rc = shoal_allreduce(c, &mine, &sum, 1, SHOAL_INT64, SHOAL_SUM)) < 0)\n"                \
    "  return shoal_error(c, \"allreduce: %d\", rc);\n"                                            \
    " char msg[32]; int n = snprintf(msg, sizeof(msg), \"hi from %d\", size - 1); shoal_buf b;\n"  \
    " if ((rc = shoal_bcast(c, size - 1, msg, (size_t)n, &b)) < 0)\n"                              \
    "  return shoal_error(c, \"bcast: %d\", rc);\n"                                                \
    " char me[16]; int ml = snprintf(me, sizeof(me), \"%d\", rank);\n"                             \
    " shoal_buf *parts = calloc((size_t)size, sizeof(*parts));\n"                                  \
    " if (!parts) return shoal_error(c, \"oom\");\n"                                               \
    " if ((rc = shoal_gather(c, 0, me, (size_t)ml, parts)) < 0)\n"                                 \
    "  return shoal_error(c, \"gather: %d\", rc);\n"
#define FN_GANG_ANSWER                                                                             \
    " char out[8192]; size_t o = (size_t)snprintf(out, sizeof(out),\n"                             \
    "  \"rank=%d size=%d sum=%lld bcast=%.*s gathered=\", rank, size, (long long)sum,\n"           \
    "  (int)b.len, (const char *)b.data);\n"                                                       \
    " for (int i = 0; rank == 0 && i < size && o < sizeof(out) - 16; i++)\n"                       \
    "  o += (size_t)snprintf(out + o, sizeof(out) - o, \"%s%.*s\", i ? \",\" : \"\",\n"            \
    "   (int)parts[i].len, (const char *)parts[i].data);\n"                                        \
    " free(parts);\n"                                                                              \
    " return shoal_output(c, out, o); }\n"

#include <stdio.h>

/* What rank 0 of a healthy gang group of n ranks answers (FN_GANG_ANSWER). */
static inline void fn_gang_expected(int n, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "rank=0 size=%d sum=%d bcast=hi from %d gathered=", n,
                                n * (n + 1) / 2, n - 1);
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%d", i ? "," : "", i);
}

#endif
