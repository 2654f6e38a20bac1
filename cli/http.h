/*
 * http - the CLI's HTTP client: one libcurl easy handle reused for every request of a command
 * (so `shoal up` polling /healthz and later requests keep their connection), bodies streamed from
 * a file descriptor or memory, answers kept in bounded memory or streamed to a file descriptor,
 * and Shoal's JSON errors turned into one-line messages. Single-threaded.
 */
#ifndef SHOAL_CLI_HTTP_H
#define SHOAL_CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* A non-2xx answer is kept in memory up to this size to read its error; Shoal's own errors are
 * far smaller (a compiler's diagnostics are bounded to 64 KiB). */
#define SHOAL_CLI_HTTP_ERROR_MAX (1u << 20)

typedef struct shoal_cli_http shoal_cli_http_t;

/* One request. Zero-initialise, then set what applies. */
typedef struct {
    const char *method;         /* "GET", "PUT", "POST", "DELETE" */
    const char *path;           /* path and query, appended to the base URL: "/v1/functions" */
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    /* The request body: in memory (body, body_len), or body_fd >= 0 read for body_size bytes.
     * With neither, the request has no body (a POST or PUT then sends an empty one). */
    const void *body;
    size_t body_len;
    int body_fd; /* -1 (or 0 with body_size 0) when unused; see has_body_fd */
    int has_body_fd;
    uint64_t body_size;
    int progress;    /* draw an upload progress bar on stderr */
    int show_status; /* print the status and Shoal-Invocation-Id on stderr as soon
                        as the answer's headers are in, before its body */
    long timeout_ms; /* whole-request limit; 0 for none */
    /* Where a 2xx answer goes: out_fd when has_out_fd, else out_path (created or truncated only
     * once a 2xx answer begins, so a failed request leaves no file), else memory bounded by
     * max_mem. */
    int has_out_fd;
    int out_fd;
    const char *out_path;
    size_t max_mem;
} shoal_cli_http_req_t;

/* The answer to one request. */
typedef struct {
    long status;
    /* The body when kept in memory (a 2xx answer without a sink, or an error answer up to
     * SHOAL_CLI_HTTP_ERROR_MAX), NUL-terminated; len excludes the NUL. NULL when none. */
    char *body;
    size_t len;
    /* Set when a non-2xx answer outgrew SHOAL_CLI_HTTP_ERROR_MAX and went to the sink instead
     * (it was then not an error of Shoal's: those are small). */
    int spilled;
    uint64_t written;        /* bytes written to the sink */
    char invocation_id[128]; /* the Shoal-Invocation-Id header, or "" */
} shoal_cli_http_resp_t;

/* How shoal_cli_http_do ended. */
enum {
    SHOAL_CLI_HTTP_OK = 0,           /* an answer arrived (any status) */
    SHOAL_CLI_HTTP_UNREACHABLE = -1, /* no connection: err is a whole message */
    SHOAL_CLI_HTTP_FAILED = -2,      /* the exchange failed: err says why, for a prefix */
};

/* A client for the API at base_url (already normalised by shoal_cli_url_base; copied). NULL when
 * libcurl cannot start. */
shoal_cli_http_t *shoal_cli_http_create(const char *base_url);
void shoal_cli_http_destroy(shoal_cli_http_t *h);
/* Sends "Authorization: Bearer token" with every request from now on (NULL or "": none). The
 * token must be a well-formed secret (common/secret.h); -EINVAL otherwise. */
int shoal_cli_http_set_token(shoal_cli_http_t *h, const char *token);

/* Runs one request to completion. On SHOAL_CLI_HTTP_OK resp holds the answer (free it with
 * shoal_cli_http_resp_free); otherwise resp holds nothing and err a one-line reason:
 * "cannot reach http://127.0.0.1:8080: Connection refused (is `shoal up` running?)" or
 * "cannot write out.bin: No space left on device". */
int shoal_cli_http_do(shoal_cli_http_t *h, const shoal_cli_http_req_t *req,
                      shoal_cli_http_resp_t *resp, char *err, size_t errsize);
void shoal_cli_http_resp_free(shoal_cli_http_resp_t *resp);

/* Whether body is one of Shoal's JSON errors, {"error":{"code":...,"message":...}}. */
int shoal_cli_http_is_api_error(const char *body, size_t len);

/* One line describing a failed answer into out: "502 function_error: boom" for Shoal's JSON
 * errors, else "413 Payload Too Large" followed by ": " and the body's text when there is any.
 * A multi-line message (a compiler's diagnostics) is reduced to its first line that mentions an
 * error, or its first line, plus "(N more lines; -v shows them)" when hint is set. Returns
 * out. */
char *shoal_cli_http_error_text(long status, const char *body, size_t len, int hint, char *out,
                                size_t size);

/* The full message of one of Shoal's JSON errors (malloc'd, caller frees), or NULL. */
char *shoal_cli_http_error_message(const char *body, size_t len);

/* The standard reason phrase of an HTTP status, "" for unknown ones. */
const char *shoal_cli_http_reason(long status);

#endif
