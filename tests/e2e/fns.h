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

#endif
