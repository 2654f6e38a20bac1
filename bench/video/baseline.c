/*
 * baseline.c - the single-process reference for the video benchmark: the same decoding and
 * encoding code as the video-abr function (examples/video/), in one plain process that lets libvpx
 * use its own threads (g_threads = the number of cores), as ExCamera's baseline ran vpxenc.
 *
 * It decodes the input once, then per mode encodes every rendition in turn:
 *   continuous  one stream per rendition, a single key frame at the start;
 *   chunked     chunks of --chunk-frames encoded one after another, each opening with a key
 *               frame, then stitched (what the function does, minus the parallelism).
 * It prints a table and optionally writes JSON (--json) and the streams (--out DIR).
 *
 * Usage: baseline [--chunk-frames N] [--renditions WxH,...] [--cq N] [--cpu-used N]
 *                 [--threads N] [--mode both|chunked|continuous] [--json FILE] [--out DIR] INPUT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "examples/video/decode.h"
#include "examples/video/encode.h"
#include "examples/video/ivf.h"
#include "examples/video/params.h"

#define MAX_INPUT (1ULL << 31)
#define MAX_RAW (8ULL << 30)

static double now_ms(int clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: baseline [--chunk-frames N] [--renditions WxH,...] [--cq N] [--cpu-used N]\n"
               "                [--threads N] [--mode both|chunked|continuous] [--json FILE]\n"
               "                [--out DIR] INPUT\n"
               "Encodes INPUT's video with the video-abr function's code in one process, using\n"
               "libvpx threads (default: one per core), and prints time, bitrate and PSNR per\n"
               "rendition for one continuous stream and for independently encoded chunks.\n");
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) < 0 || (unsigned long long)sb.st_size > MAX_INPUT) {
        int e = errno ? -errno : -EFBIG;
        close(fd);
        return e;
    }
    uint8_t *buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
    size_t off = 0;
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (off < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)sb.st_size - off);
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            free(buf);
            close(fd);
            return e;
        }
        off += (size_t)n;
    }
    close(fd);
    *data = buf;
    *len = off;
    return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    size_t n = fwrite(data, 1, len, f);
    int e = fclose(f);
    return n == len && e == 0 ? 0 : -EIO;
}

/* Encodes all renditions in one mode (chunk_frames = 0: continuous). Appends rows to runs. */
static int run_mode(const vid_video *v, const vid_size *rend, int nrend, int chunk_frames,
                    const vid_enc_cfg *cfg, const char *outdir, json_t *runs)
{
    const char *mode = chunk_frames ? "chunked" : "continuous";
    int step = chunk_frames ? chunk_frames : v->nframes;
    int nchunks = (v->nframes + step - 1) / step;
    double dur_s = (double)v->nframes * v->fps_den / v->fps_num;
    double wall_total = 0, cpu_total = 0;
    char err[512];

    for (int r = 0; r < nrend; r++) {
        vid_span *spans = calloc((size_t)nchunks, sizeof(*spans));
        vid_stats total = {0};
        uint8_t *stitched = NULL;
        size_t stitched_len = 0;
        uint32_t frames = 0, keys = 0;
        int rc = spans ? 0 : -ENOMEM;
        double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);

        for (int c = 0; c < nchunks && rc == 0; c++) {
            int first = c * step, n = v->nframes - first < step ? v->nframes - first : step;
            uint8_t *ivf = NULL;
            size_t ivf_len = 0;
            vid_stats st;
            rc = vid_encode_chunk(v->frames + (size_t)first * v->frame_size, n, v->width, v->height,
                                  rend[r], cfg, &ivf, &ivf_len, &st, err, sizeof(err));
            if (rc == 0) {
                spans[c] = (vid_span){ivf, ivf_len};
                vid_stats_add(&total, &st);
            }
        }
        if (rc == 0)
            rc = vid_ivf_stitch(spans, nchunks, &stitched, &stitched_len, &frames, &keys, err,
                                sizeof(err));
        double wall = now_ms(CLOCK_MONOTONIC) - w0, cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
        for (int c = 0; c < nchunks && spans; c++)
            free((void *)spans[c].data);
        free(spans);
        if (rc < 0) {
            fprintf(stderr, "baseline: %s %dx%d: %s\n", mode, rend[r].width, rend[r].height,
                    rc == -ENOMEM ? "out of memory" : err);
            free(stitched);
            return rc;
        }
        if (frames != (uint32_t)v->nframes || keys != (uint32_t)nchunks) {
            fprintf(stderr, "baseline: %s %dx%d: %u frames, %u key frames; expected %d and %d\n",
                    mode, rend[r].width, rend[r].height, frames, keys, v->nframes, nchunks);
            free(stitched);
            return -EINVAL;
        }
        if (outdir) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s-%dx%d.ivf", outdir, mode, rend[r].width,
                     rend[r].height);
            if (write_file(path, stitched, stitched_len) < 0)
                fprintf(stderr, "baseline: cannot write %s\n", path);
        }
        double kbps = (double)stitched_len * 8 / dur_s / 1000;
        double psnr = vid_stats_psnr(&total);
        printf("%-10s %4d %5dx%-5d %6u %5u %10zu %9.1f %7.2f %9.0f %9.0f\n", mode, step,
               rend[r].width, rend[r].height, frames, keys, stitched_len, kbps, psnr, wall, cpu);
        json_array_append_new(
            runs, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f}",
                            "mode", mode, "chunk_frames", chunk_frames, "width", rend[r].width,
                            "height", rend[r].height, "frames", (int)frames, "keyframes", (int)keys,
                            "bytes", (json_int_t)stitched_len, "bitrate_kbps", kbps, "psnr", psnr,
                            "psnr_y", total.frames ? total.psnr_y_sum / (double)total.frames : 0.0,
                            "wall_ms", wall, "cpu_ms", cpu, "encode_ms", total.encode_ms));
        wall_total += wall;
        cpu_total += cpu;
        free(stitched);
    }
    printf("%-10s total: %.0f ms wall, %.0f ms cpu (%.1f fps per rendition)\n", mode, wall_total,
           cpu_total, v->nframes * nrend / (wall_total / 1e3) / nrend);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"chunk-frames", required_argument, NULL, 'c'},
                                         {"renditions", required_argument, NULL, 'r'},
                                         {"cq", required_argument, NULL, 'q'},
                                         {"cpu-used", required_argument, NULL, 'u'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"mode", required_argument, NULL, 'm'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char query[4096] = "";
    const char *json_path = NULL, *outdir = NULL, *mode = "both";
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    int opt;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case 'c':
            key = "chunk_frames";
            break;
        case 'r':
            key = "renditions";
            break;
        case 'q':
            key = "cq";
            break;
        case 'u':
            key = "cpu_used";
            break;
        case 't': {
            char *end;
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 64) {
                fprintf(stderr, "baseline: --threads must be 1..64\n");
                return 2;
            }
            break;
        }
        case 'm':
            mode = optarg;
            if (strcmp(mode, "both") && strcmp(mode, "chunked") && strcmp(mode, "continuous")) {
                fprintf(stderr, "baseline: --mode must be both, chunked or continuous\n");
                return 2;
            }
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (key) {
            /* The same parser and checks as the function's query string. */
            size_t l = strlen(query);
            if (strchr(optarg, '&') ||
                (size_t)snprintf(query + l, sizeof(query) - l, "%s%s=%s", l ? "&" : "", key,
                                 optarg) >= sizeof(query) - l) {
                fprintf(stderr, "baseline: bad value for --%s\n", key);
                return 2;
            }
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    vid_params p;
    char err[512];
    if (vid_params_parse(query, &p, err, sizeof(err)) < 0) {
        fprintf(stderr, "baseline: %s\n", err);
        return 2;
    }

    uint8_t *input = NULL;
    size_t input_len = 0;
    int rc = read_file(argv[optind], &input, &input_len);
    if (rc < 0) {
        fprintf(stderr, "baseline: %s: %s\n", argv[optind], strerror(-rc));
        return 1;
    }
    vid_video v;
    double t0 = now_ms(CLOCK_MONOTONIC);
    rc = vid_decode(input, input_len, MAX_RAW, (int)threads, &v, err, sizeof(err));
    double decode_ms = now_ms(CLOCK_MONOTONIC) - t0;
    free(input);
    if (rc < 0) {
        fprintf(stderr, "baseline: %s: %s\n", argv[optind], err);
        return 1;
    }
    vid_size rend[VID_MAX_RENDITIONS];
    int nrend = vid_params_fit(&p, v.width, v.height, rend, err, sizeof(err));
    if (nrend < 0) {
        fprintf(stderr, "baseline: %s\n", err);
        vid_video_free(&v);
        return 1;
    }
    vid_enc_cfg cfg = {p.cq, p.cpu_used, (int)threads, v.fps_num, v.fps_den};
    printf("input %s: %s in %s, %dx%d, %d/%d fps, %d frames; decoded in %.0f ms\n", argv[optind],
           v.codec, v.container, v.width, v.height, v.fps_num, v.fps_den, v.nframes, decode_ms);
    printf("cq %d, cpu_used %d, libvpx threads %ld\n", p.cq, p.cpu_used, threads);
    printf("%-10s %4s %11s %6s %5s %10s %9s %7s %9s %9s\n", "mode", "step", "rendition", "frames",
           "keys", "bytes", "kbps", "psnr", "wall_ms", "cpu_ms");

    json_t *runs = json_array();
    if (rc == 0 && strcmp(mode, "chunked") != 0)
        rc = run_mode(&v, rend, nrend, 0, &cfg, outdir, runs);
    if (rc == 0 && strcmp(mode, "continuous") != 0)
        rc = run_mode(&v, rend, nrend, p.chunk_frames, &cfg, outdir, runs);
    if (rc == 0 && json_path) {
        json_t *doc =
            json_pack("{s:s, s:{s:i, s:i, s:i, s:i, s:i, s:s, s:s}, s:i, s:i, s:I, "
                      "s:f, s:o}",
                      "input", argv[optind], "source", "width", v.width, "height", v.height,
                      "frames", v.nframes, "fps_num", v.fps_num, "fps_den", v.fps_den, "codec",
                      v.codec, "container", v.container, "cq", p.cq, "cpu_used", p.cpu_used,
                      "threads", (json_int_t)threads, "decode_ms", decode_ms, "runs", runs);
        runs = NULL;
        if (!doc || json_dump_file(doc, json_path, JSON_INDENT(2)) < 0) {
            fprintf(stderr, "baseline: cannot write %s\n", json_path);
            rc = -EIO;
        }
        json_decref(doc);
    }
    json_decref(runs);
    vid_video_free(&v);
    return rc < 0 ? 1 : 0;
}
