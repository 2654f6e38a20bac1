/*
 * cmd_invoke - `shoal invoke NAME`: POST /v1/functions/NAME/invoke with the input as the body.
 * The output is streamed to standard output or to the -o file as it arrives, so an output of any
 * size passes through without being held in memory. A non-2xx answer that is one of Shoal's JSON
 * errors, or that lacks a Shoal-Invocation-Id (the HTTP layer's own 413), becomes the one-line
 * failure; any other non-2xx answer is a status the function chose (shoal_set_meta "status"):
 * its body is still the output, and the exit status is 1.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "common/util.h"
#include "input.h"
#include "url.h"

#define MAX_HEADERS 64
#define PATH_MAX_LEN 8192

enum { OPT_DATA = 1, OPT_OUTPUT, OPT_HEADER, OPT_QUERY, OPT_ASYNC };

/* Checks "Name: value" / "Name:value" and returns it as a curl header line (malloc'd). */
static char *header_line(const char *spec, char *err, size_t errsize)
{
    const char *colon = strchr(spec, ':');
    char *line;

    if (colon == NULL || colon == spec) {
        snprintf(err, errsize, "--header needs NAME:VALUE, not \"%.80s\"", spec);
        return NULL;
    }
    for (const char *p = spec; p < colon; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errsize, "bad header name in \"%.80s\"", spec);
            return NULL;
        }
    for (const char *p = colon + 1; *p; p++)
        if (*p == '\r' || *p == '\n') {
            snprintf(err, errsize, "a header value cannot hold a line break");
            return NULL;
        }
    if ((line = malloc(strlen(spec) + 2)) == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    /* "Name: value": curl sends "Name:" alone as "remove this header", so an empty value needs
     * the "Name;" form. */
    while (*++colon == ' ' || *colon == '\t')
        ;
    if (*colon == '\0')
        sprintf(line, "%.*s;", (int)(strchr(spec, ':') - spec), spec);
    else
        sprintf(line, "%.*s: %s", (int)(strchr(spec, ':') - spec), spec, colon);
    return line;
}

static int invoke_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {
        {"data", 'd', 1, OPT_DATA},     {"output", 'o', 1, OPT_OUTPUT},
        {"header", 'H', 1, OPT_HEADER}, {"query", 'q', 1, OPT_QUERY},
        {"async", 0, 0, OPT_ASYNC},     SHOAL_CLI_COMMON_OPTS,
    };
    const shoal_cli_cmd_t *self = &shoal_cli_cmd_invoke;
    const char *name = NULL, *data = NULL, *output = NULL;
    static char default_type[] = "Content-Type: application/octet-stream";
    char *headers[MAX_HEADERS + 2] = {NULL};
    size_t nheaders = 0, i;
    char path[PATH_MAX_LEN + 512], query[PATH_MAX_LEN] = "", what[128], err[256];
    shoal_cli_args_t a;
    shoal_cli_input_t in = {.fd = -1};
    shoal_cli_http_req_t req = {.method = "POST"};
    shoal_cli_http_resp_t resp;
    int id, rc = SHOAL_CLI_EXIT_USAGE, opened = 0;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        int r;
        switch (id) {
        case SHOAL_CLI_ARGS_POSITIONAL:
            if (name == NULL) {
                name = a.arg;
                continue;
            }
            /* curl's spelling: a second argument "@FILE" is the input file. */
            if (data == NULL && a.arg[0] == '@') {
                data = a.arg;
                continue;
            }
            break;
        case OPT_DATA:
            if (data != NULL) {
                rc = shoal_cli_usage_error(self->name, "only one input (-d or @FILE)");
                goto out;
            }
            data = a.arg;
            continue;
        case OPT_OUTPUT:
            output = a.arg;
            continue;
        case OPT_HEADER:
            if (nheaders == MAX_HEADERS) {
                rc = shoal_cli_usage_error(self->name, "at most %d headers", MAX_HEADERS);
                goto out;
            }
            if ((headers[nheaders] = header_line(a.arg, err, sizeof(err))) == NULL) {
                rc = shoal_cli_usage_error(self->name, "%s", err);
                goto out;
            }
            nheaders++;
            continue;
        case OPT_ASYNC: {
            /* 202 {"id":...}: the id goes to stdout; `shoal result ID` fetches the output. */
            size_t len = strlen(query);
            if (len + 9 > sizeof(query)) {
                rc = shoal_cli_usage_error(self->name, "-q: query too long");
                goto out;
            }
            snprintf(query + len, sizeof(query) - len, "%sasync=1", len ? "&" : "");
            continue;
        }
        case OPT_QUERY: {
            const char *q = a.arg[0] == '?' ? a.arg + 1 : a.arg;
            size_t len = strlen(query);
            /* The query is passed as given (the user's own encoding): only line breaks, blanks
             * and '#' could not travel in a URL. */
            if (strpbrk(q, " \t\r\n#") != NULL) {
                rc = shoal_cli_usage_error(self->name, "-q: encode blanks and '#' in \"%.80s\"", q);
                goto out;
            }
            if (len + strlen(q) + 2 > sizeof(query)) {
                rc = shoal_cli_usage_error(self->name, "-q: query too long");
                goto out;
            }
            snprintf(query + len, sizeof(query) - len, "%s%s", len ? "&" : "", q);
            continue;
        }
        }
        if ((r = shoal_cli_common(cli, self, &a, id)) >= 0) {
            rc = r;
            goto out;
        }
    }
    if (name == NULL) {
        rc = shoal_cli_usage_error(self->name, "needs NAME");
        goto out;
    }
    {
        char suffix[sizeof(query) + 16];
        snprintf(suffix, sizeof(suffix), "/invoke%s%s", query[0] ? "?" : "", query);
        if (name[0] == '\0' || shoal_cli_url_function_path(path, sizeof(path), name, suffix) < 0) {
            rc = shoal_cli_usage_error(self->name, "NAME is empty or too long");
            goto out;
        }
    }
    snprintf(what, sizeof(what), "invoke %.80s", name);

    /* The input: -d DATA, -d @FILE / @FILE, else standard input unless it is a terminal. */
    rc = SHOAL_CLI_EXIT_FAIL;
    if (data != NULL && data[0] == '@') {
        if (shoal_cli_input_open(&in, data + 1, err, sizeof(err)) < 0) {
            shoal_cli_fail("%s: %s", what, err);
            goto out;
        }
        opened = 1;
    } else if (data != NULL) {
        shoal_cli_input_literal(&in, data, strlen(data));
    } else if (!isatty(STDIN_FILENO)) {
        if (shoal_cli_input_open(&in, "-", err, sizeof(err)) < 0) {
            shoal_cli_fail("%s: %s", what, err);
            goto out;
        }
        opened = 1;
    } else {
        shoal_cli_input_literal(&in, "", 0);
    }
    shoal_cli_input_apply(&in, &req);
    req.path = path;
    req.show_status = cli->verbose;
    /* The body is bytes, not a form: say so unless the caller chose a type. */
    for (i = 0; i < nheaders; i++)
        if (strncasecmp(headers[i], "content-type", 12) == 0 &&
            (headers[i][12] == ':' || headers[i][12] == ';'))
            break;
    if (i == nheaders)
        headers[nheaders++] = default_type;
    req.headers = (const char *const *)headers;
    if (output != NULL && strcmp(output, "-") != 0) {
        req.out_path = output;
    } else {
        req.has_out_fd = 1;
        req.out_fd = STDOUT_FILENO;
    }
    fflush(stdout); /* everything printed so far goes before the streamed output */

    {
        shoal_cli_http_t *h = shoal_cli_http(cli);
        char line[1500];
        int r;

        if (h == NULL)
            goto out;
        r = shoal_cli_http_do(h, &req, &resp, line, sizeof(line));
        if (r == SHOAL_CLI_HTTP_UNREACHABLE) {
            shoal_cli_fail("%s", line);
            goto out;
        }
        if (r != SHOAL_CLI_HTTP_OK) {
            shoal_cli_fail("%s: %s", what, line);
            goto out;
        }
    }
    if (resp.status / 100 == 2) {
        rc = SHOAL_CLI_EXIT_OK;
    } else if (resp.invocation_id[0] != '\0' &&
               (resp.spilled || !shoal_cli_http_is_api_error(resp.body, resp.len))) {
        /* The function answered with an error status of its own: its body is the output. (An
         * answer without an invocation id never reached the platform's invoke handler, e.g.
         * the HTTP layer's 413: that is an error of the request.) */
        int bad = 0;
        if (!resp.spilled && resp.len > 0) {
            int fd = STDOUT_FILENO;
            if (req.out_path != NULL &&
                (fd = open(req.out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
                bad = 1;
            else
                bad = shoal_util_write_all(fd, resp.body, resp.len) < 0;
            if (fd != STDOUT_FILENO && fd >= 0 && close(fd) < 0)
                bad = 1;
        }
        if (bad)
            shoal_cli_fail("%s: %ld %s (and cannot write its output)", what, resp.status,
                           shoal_cli_http_reason(resp.status));
        else
            shoal_cli_fail("%s: the function answered %ld %s", what, resp.status,
                           shoal_cli_http_reason(resp.status));
    } else {
        shoal_cli_report(cli, what, &resp);
    }
    shoal_cli_http_resp_free(&resp);
out:
    if (opened)
        shoal_cli_input_close(&in);
    for (i = 0; i < nheaders; i++)
        if (headers[i] != default_type)
            free(headers[i]);
    return rc;
}

const shoal_cli_cmd_t shoal_cli_cmd_invoke = {
    "invoke",
    "call a function and print its output",
    "Usage: shoal invoke NAME [-d DATA | -d @FILE | @FILE] [-o FILE] [-H NAME:VALUE]...\n"
    "                    [-q QUERY]\n"
    "\n"
    "Calls function NAME (POST /v1/functions/NAME/invoke) and writes its output to standard\n"
    "output as it arrives, or to FILE with -o. The input is DATA, or the contents of FILE\n"
    "(@- is standard input), or else standard input when it is not a terminal; otherwise the\n"
    "input is empty.\n"
    "\n"
    "Options:\n"
    "  -d, --data DATA|@FILE     the input\n"
    "  -o, --output FILE         write the output to FILE (created only when the call succeeds)\n"
    "  -H, --header NAME:VALUE   a request header, seen by the function as meta\n"
    "                            \"header:<name>\"; repeatable\n"
    "  -q, --query QUERY         a query string, seen by the function as meta \"query\"\n"
    "                            (e.g. -q 'lang=en&n=3'); repeatable, joined with '&'\n"
    "      --async               run asynchronously: prints {\"id\":...} once the call is\n"
    "                            stored; see `shoal result ID`\n"
    "  --url URL                 the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN             the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR                where the token file is: DIR/token (default ./.shoal)\n"
    "  -v, --verbose             print the status and the Shoal-Invocation-Id on stderr, and\n"
    "                            whole error messages\n"
    "  -h, --help                show this help\n"
    "\n"
    "A failed call exits 1 with one line such as \"shoal: invoke hello: 502 function_error: "
    "boom\".\n"
    "A function that sets an error status itself (shoal_set_meta \"status\") still has its\n"
    "output written, and shoal exits 1.\n",
    invoke_run,
};
