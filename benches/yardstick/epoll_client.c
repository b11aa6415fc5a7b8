/* The yardstick client: a minimal C epoll closed-loop echo client. CONNS connections each send
 * SIZE bytes, wait for the whole echo, send again, for SECONDS. Prints messages per second and
 * the median round trip. loadgen is measured against it; it does not verify payloads.
 *
 * Build: cc -O2 -o epoll_client epoll_client.c
 * Run:   epoll_client PORT CONNS SECONDS [SIZE]
 * Prints: msgs_per_s=N p50_us=N */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 24)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: epoll_client PORT CONNS SECONDS [SIZE]\n"); return 2; }
    int port = atoi(argv[1]), conns = atoi(argv[2]), size = argc > 4 ? atoi(argv[4]) : 64, one = 1;
    double seconds = atof(argv[3]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ep = epoll_create1(0);
    int *got = calloc(conns, sizeof *got);
    double *sent_at = calloc(conns, sizeof *sent_at);
    float *samples = malloc(sizeof(float) * MAX_SAMPLES);
    char *msg = malloc(size), buf[65536];
    memset(msg, 'x', size);
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)i << 32) | fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        sent_at[i] = now();
        if (write(fd, msg, size) != size) { perror("write"); return 1; }
    }
    long msgs = 0, nsamples = 0;
    double start = now(), end = start + seconds;
    struct epoll_event evs[256];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            int i = evs[k].data.u64 >> 32, fd = (int)(evs[k].data.u64 & 0xffffffff);
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) { fprintf(stderr, "connection %d closed\n", i); return 1; }
            got[i] += r;
            if (got[i] < size) continue;
            double t = now();
            if (nsamples < MAX_SAMPLES) samples[nsamples++] = (float)((t - sent_at[i]) * 1e6);
            msgs++;
            got[i] = 0;
            sent_at[i] = t;
            if (write(fd, msg, size) != size) { perror("write"); return 1; }
        }
    }
    double took = now() - start;
    qsort(samples, nsamples, sizeof *samples, cmp);
    printf("msgs_per_s=%.0f p50_us=%.1f\n", msgs / took, nsamples ? samples[nsamples / 2] : 0.0);
    return 0;
}
