/*
 * evbuf_fanout.c - how to hand one shared frame to many connections'
 * output evbuffers: copy it (evbuffer_add) or reference it
 * (evbuffer_add_reference with a refcount).  Measures a fan-out of F frames
 * of S bytes to C buffers, then drains the buffers with writes to
 * /dev/null as a socket write would (one evbuffer_write per buffer per
 * round).  Prints ns per delivery for each size.
 *
 *   cc -O2 -o evbuf_fanout evbuf_fanout.c -levent && ./evbuf_fanout
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int refs;
    size_t len;
    char data[];
} frame_t;

static void unref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    frame_t *f = arg;
    if (--f->refs == 0)
        free(f);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double run(size_t size, int conns, int frames, int by_ref, int devnull)
{
    struct evbuffer **out = calloc(conns, sizeof *out);
    for (int c = 0; c < conns; c++)
        out[c] = evbuffer_new();
    double t0 = now();
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < frames; i++) {
            frame_t *f = malloc(sizeof *f + size);
            f->refs = 1;
            f->len = size;
            memset(f->data, 'x', size);
            for (int c = 0; c < conns; c++) {
                if (by_ref) {
                    f->refs++;
                    evbuffer_add_reference(out[c], f->data, size, unref, f);
                } else {
                    evbuffer_add(out[c], f->data, size);
                }
            }
            if (--f->refs == 0)
                free(f);
        }
        for (int c = 0; c < conns; c++)
            while (evbuffer_get_length(out[c]) > 0)
                if (evbuffer_write(out[c], devnull) <= 0)
                    break;
    }
    double t = now() - t0;
    for (int c = 0; c < conns; c++)
        evbuffer_free(out[c]);
    free(out);
    return t * 1e9 / (20.0 * frames * conns);
}

int main(void)
{
    int devnull = open("/dev/null", O_WRONLY);
    size_t sizes[] = {64, 256, 1024, 2048, 4096, 16384};
    printf("| frame bytes | copy (ns/delivery) | reference (ns/delivery) |\n");
    printf("|---|---|---|\n");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int frames = sizes[i] <= 1024 ? 50 : 10;
        double best_c = 1e9, best_r = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double c = run(sizes[i], 1000, frames, 0, devnull);
            double r = run(sizes[i], 1000, frames, 1, devnull);
            best_c = c < best_c ? c : best_c;
            best_r = r < best_r ? r : best_r;
        }
        printf("| %zu | %.0f | %.0f |\n", sizes[i], best_c, best_r);
    }
    return 0;
}
