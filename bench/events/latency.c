/*
 * bench/events/latency - event-to-start latency: publishes N events to a topic (one every
 * GAP_US), each carrying its send time, to a subscriber (fn/stamp.c) that outputs the time it
 * started; then reads every delivery's output and prints "p50_us p99_us max_us n".
 * Usage: latency URL TOPIC FUNCTION N GAP_US
 * Environment: SHOAL_TOKEN, the API token (sent as "Authorization: Bearer"; bench/lib.sh sets it).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *buf;
    size_t len;
} body_t;

static size_t on_data(void *p, size_t size, size_t n, void *opaque)
{
    body_t *b = opaque;
    char *nb = realloc(b->buf, b->len + size * n + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + b->len, p, size * n);
    b->buf = nb;
    b->len += size * n;
    b->buf[b->len] = '\0';
    return size * n;
}

static long req(CURL *c, const char *url, const char *post, body_t *b)
{
    long status = 0;
    b->len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (curl_easy_perform(c) != CURLE_OK)
        return -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: latency URL TOPIC FUNCTION N GAP_US\n");
        return 2;
    }
    const char *url = argv[1], *topic = argv[2], *fn = argv[3];
    int n = atoi(argv[4]), gap = atoi(argv[5]), got = 0;
    char u[512], body[64];
    body_t b = {0};
    double *lat = calloc((size_t)n, sizeof(*lat));
    CURL *c;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    const char *token = getenv("SHOAL_TOKEN");
    struct curl_slist *hdrs = NULL;
    if (token != NULL && token[0] != '\0') {
        char line[320];
        snprintf(line, sizeof(line), "Authorization: Bearer %.280s", token);
        hdrs = curl_slist_append(NULL, line);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    snprintf(u, sizeof(u), "%s/v1/topics/%s", url, topic);
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof(body), "%lld", now_ns());
        if (req(c, u, body, &b) != 202) {
            fprintf(stderr, "publish failed: %s\n", b.buf ? b.buf : "");
            return 1;
        }
        usleep((useconds_t)gap);
    }
    /* Wait for all deliveries, then read their outputs. */
    snprintf(u, sizeof(u), "%s/v1/invocations?function=%s&state=succeeded&limit=1000", url, fn);
    json_t *root = NULL;
    for (int w = 0; w < 600; w++) {
        json_decref(root);
        req(c, u, NULL, &b);
        root = json_loads(b.buf, 0, NULL);
        if ((int)json_array_size(json_object_get(root, "invocations")) >= n)
            break;
        usleep(100000);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "invocations"), i, v)
    {
        if (got >= n)
            break;
        snprintf(u, sizeof(u), "%s/v1/invocations/%s/output", url,
                 json_string_value(json_object_get(v, "id")));
        if (req(c, u, NULL, &b) != 200)
            continue;
        long long start, sent;
        if (sscanf(b.buf, "%lld %lld", &start, &sent) == 2)
            lat[got++] = (double)(start - sent) / 1000.0;
    }
    json_decref(root);
    qsort(lat, (size_t)got, sizeof(*lat), cmp);
    if (got == 0) {
        fprintf(stderr, "no deliveries\n");
        return 1;
    }
    printf("%.1f %.1f %.1f %d\n", lat[got / 2],
           lat[(got * 99) / 100 < got ? (got * 99) / 100 : got - 1], lat[got - 1], got);
    free(lat);
    free(b.buf);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    return 0;
}
