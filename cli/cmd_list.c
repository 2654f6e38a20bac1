/*
 * cmd_list - the read-only listings: `shoal ls` (GET /v1/functions) and `shoal workers`
 * (GET /v1/workers), shown as tables or, with --json, as the API's JSON.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "view.h"

/* Listings are small; this bounds what a confused server could make us hold. */
#define LIST_MAX (64u << 20)

enum { OPT_JSON = 1 };

static int list(shoal_cli_t *cli, const shoal_cli_cmd_t *self, const char *path,
                char *(*view)(json_t *), int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {{"json", 0, 0, OPT_JSON}, SHOAL_CLI_COMMON_OPTS};
    shoal_cli_http_req_t req = {.method = "GET", .path = path, .max_mem = LIST_MAX};
    shoal_cli_http_resp_t resp;
    shoal_cli_args_t a;
    json_t *root;
    char *text;
    int id, rc, as_json = 0;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == OPT_JSON) {
            as_json = 1;
            continue;
        }
        if ((rc = shoal_cli_common(cli, self, &a, id)) >= 0)
            return rc;
    }
    if ((rc = shoal_cli_request(cli, self->name, &req, &resp)) != SHOAL_CLI_EXIT_OK)
        return rc;
    root = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    shoal_cli_http_resp_free(&resp);
    if (root == NULL)
        return shoal_cli_fail("%s: the server's answer is not JSON", self->name);
    if (as_json) {
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL)
            printf("%s\n", text);
    } else {
        text = view(root);
    }
    json_decref(root);
    if (text == NULL)
        return shoal_cli_fail("%s: unexpected answer from the server", self->name);
    if (!as_json)
        fputs(text, stdout);
    free(text);
    return SHOAL_CLI_EXIT_OK;
}

static int ls_run(shoal_cli_t *cli, int argc, char **argv)
{
    return list(cli, &shoal_cli_cmd_ls, "/v1/functions", shoal_cli_view_functions, argc, argv);
}

static int workers_run(shoal_cli_t *cli, int argc, char **argv)
{
    return list(cli, &shoal_cli_cmd_workers, "/v1/workers", shoal_cli_view_workers, argc, argv);
}

const shoal_cli_cmd_t shoal_cli_cmd_ls = {
    "ls",
    "list the deployed functions",
    "Usage: shoal ls [--json]\n"
    "\n"
    "Lists the deployed functions (GET /v1/functions) as a table:\n"
    "  NAME VERSION SIZE TIMEOUT MEMORY MIN_WARM MAX UPDATED\n"
    "SIZE is the artifact's, TIMEOUT/MEMORY the limits of one invocation/instance, MIN_WARM\n"
    "and MAX the instances kept warm and allowed at once on each worker, UPDATED the time of\n"
    "the current version's deploy (UTC).\n"
    "\n"
    "Options:\n"
    "  --json         print the API's JSON answer instead\n"
    "  --url URL      the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN  the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR     where the token file is: DIR/token (default ./.shoal)\n"
    "  -h, --help     show this help\n",
    ls_run,
};

const shoal_cli_cmd_t shoal_cli_cmd_workers = {
    "workers",
    "list the connected workers and their pools",
    "Usage: shoal workers [--json]\n"
    "\n"
    "Lists the workers connected to the controller (GET /v1/workers) as a table:\n"
    "  NODE SLOTS BUSY STEMS POOLS\n"
    "SLOTS is how many instances the node may run at once, BUSY how many run an invocation\n"
    "now, STEMS the pre-forked idle sandboxes ready to become any function, and POOLS each\n"
    "function's warm instances on the node, e.g. \"hello v3 (2 warm, 1 busy)\".\n"
    "\n"
    "Options:\n"
    "  --json         print the API's JSON answer instead\n"
    "  --url URL      the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN  the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR     where the token file is: DIR/token (default ./.shoal)\n"
    "  -h, --help     show this help\n",
    workers_run,
};
