/*
 * Zero-copy sends against plain ones: where weft_config.send_zc_min should sit.
 *
 *   sendzc [--sizes 4k,16k,64k,256k,1m] [--rounds N] [--mib M] [--json] [--remote HOST:PORT]
 *
 * For each send size, plain (send_zc_min 0) and zero copy (send_zc_min 1) take turns round by round:
 * a weft loop pinned to CPU 0 sends M MiB over TCP on 127.0.0.1 with weft_send_all in pieces of that
 * size, from one buffer it reuses (as a server sending a response from its own buffer does), to a
 * receiver process pinned to CPU 1 that reads into a 1 MiB buffer and checks the byte count. Figures
 * per measurement: throughput, the sender process's CPU time per MiB (CLOCK_PROCESS_CPUTIME_ID: user + system,
 * over the sends only), io_uring_enter calls and SQEs per send, and the zero-copy counters
 * (notifications, and how many of them say the kernel copied after all).
 *
 * Loopback is what this machine has: a zero-copy skb that reaches a local socket has its pages
 * copied at delivery (skb_orphan_frags_rx), so every notification says "copied" and the pinning,
 * the notification and the copy are all paid. The numbers show that price; on a NIC with
 * scatter-gather the copy is not made, and the crossover comes at a smaller size.
 *
 * --remote sends to a receiver elsewhere instead (any program that reads and discards, such as
 * `nc -lk PORT > /dev/null` on another host): the path where a NIC with scatter-gather sends the
 * caller's pages without a copy, and where the threshold for a real network is measured. The byte
 * count is then not checked by the receiver.
 *
 * Output: a table on stdout (medians and min–max over the rounds, the ratio of zero copy to plain
 * pair by pair); --json adds bench/report.py's sample lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "clock.h"

#define MAX_SIZES 16
#define MAX_ROUNDS 31


static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* on a 1-CPU machine the figures are just noisier */
}

static void die(const char *what, int err)
{
    fprintf(stderr, "sendzc: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

/* The receiver: reads until EOF, exits 0 if it got exactly want bytes. */
static void receive(uint16_t port, uint64_t want)
{
    pin(1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        _exit(2);
    static char buf[1 << 20];
    uint64_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (uint64_t)n;
    }
    _exit(got == want ? 0 : 3);
}

struct measure {
    size_t size;    /* bytes per send */
    uint64_t total; /* bytes in all */
    bool zc;
    /* out */
    double gbps, cpu_us_per_mib, enters_per_send, sqes_per_send, notifs_per_send, copied_share;
    uint64_t zc_sends, fallbacks;
};

static const char *remote_host; /* --remote: send there instead of to a local receiver */
static uint16_t remote_port;

static intptr_t sender(void *arg)
{
    struct measure *m = arg;
    int lfd = -1, fd;
    pid_t pid = -1;
    if (remote_host) {
        fd = weft_tcp_connect(remote_host, remote_port);
        if (fd < 0)
            die("weft_tcp_connect", fd);
    } else {
        lfd = weft_tcp_listen("127.0.0.1", 0, 1, 0);
        if (lfd < 0)
            die("weft_tcp_listen", lfd);
        struct sockaddr_in sin;
        socklen_t len = sizeof sin;
        getsockname(lfd, (struct sockaddr *)&sin, &len);
        pid = fork();
        if (pid == 0)
            receive(ntohs(sin.sin_port), m->total);
        fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            die("weft_accept", fd);
    }
    char *buf = malloc(m->size);
    if (!buf)
        die("malloc", ENOMEM);
    for (size_t i = 0; i < m->size; i++)
        buf[i] = (char)(i * 131 + 7);
    weft_stats before, after;
    weft_stats_get(&before);
    uint64_t t0 = now_ns(), c0 = process_cpu_ns();
    uint64_t sends = 0;
    for (uint64_t done = 0; done < m->total; done += m->size, sends++) {
        ssize_t n = weft_send_all(fd, buf, m->size);
        if (n != (ssize_t)m->size)
            die("weft_send_all", n < 0 ? (int)n : EIO);
    }
    uint64_t t1 = now_ns(), c1 = process_cpu_ns();
    weft_stats_get(&after);
    weft_close(fd);
    if (pid > 0) {
        weft_close(lfd);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("the receiver did not get every byte", EIO);
    }
    double mib = (double)m->total / (1 << 20);
    m->gbps = (double)m->total / (double)(t1 - t0);
    m->cpu_us_per_mib = (double)(c1 - c0) / 1000.0 / mib;
    m->enters_per_send = (double)(after.syscalls - before.syscalls) / (double)sends;
    m->sqes_per_send = (double)(after.submissions - before.submissions) / (double)sends;
    uint64_t notifs = after.send_zc_notifs - before.send_zc_notifs;
    m->notifs_per_send = (double)notifs / (double)sends;
    m->copied_share = notifs ? (double)(after.send_zc_copied - before.send_zc_copied) / (double)notifs : 0;
    m->zc_sends = after.send_zc - before.send_zc;
    m->fallbacks = after.send_zc_fallbacks - before.send_zc_fallbacks;
    free(buf);
    return 0;
}

static void run_one(struct measure *m)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.backend = "io_uring";
    cfg.send_zc_min = m->zc ? 1 : 0;
    weft_loop *l = weft_loop_new(&cfg);
    if (!l)
        die("weft_loop_new", errno);
    intptr_t res;
    int r = weft_loop_run(l, sender, m, &res);
    if (r < 0)
        die("weft_loop_run", r);
    weft_loop_free(l);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, sizeof *v * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        if (v[i] < *lo)
            *lo = v[i];
        if (v[i] > *hi)
            *hi = v[i];
    }
}

static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K')
        n <<= 10;
    else if (*end == 'm' || *end == 'M')
        n <<= 20;
    return (size_t)n;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES];
    int nsizes = 0, rounds = 5;
    uint64_t mib = 256;
    bool json = false;
    const char *size_list = "4k,16k,64k,256k,1m";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
            size_list = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            mib = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--remote") == 0 && i + 1 < argc && strchr(argv[i + 1], ':')) {
            char *spec = strdup(argv[++i]);
            char *colon = strrchr(spec, ':');
            *colon = '\0';
            remote_host = spec;
            remote_port = (uint16_t)atoi(colon + 1);
        }
        else {
            fprintf(stderr, "usage: sendzc [--sizes 4k,16k,...] [--rounds N] [--mib M] [--json] [--remote HOST:PORT]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || !mib) {
        fprintf(stderr, "sendzc: --rounds 1..%d, --mib at least 1\n", MAX_ROUNDS);
        return 2;
    }
    char *list = strdup(size_list);
    for (char *tok = strtok(list, ","); tok && nsizes < MAX_SIZES; tok = strtok(NULL, ","))
        if ((sizes[nsizes] = parse_size(tok)) > 0)
            nsizes++;
    free(list);
    signal(SIGPIPE, SIG_IGN);
    pin(0);

    printf("%8s %5s %10s %14s %16s %9s %9s %9s %7s\n", "size", "mode", "GB/s", "cpu us/MiB", "(min-max)",
           "enter/snd", "sqe/snd", "notif/snd", "copied");
    for (int si = 0; si < nsizes; si++) {
        double cpu[2][MAX_ROUNDS], gbps[2][MAX_ROUNDS], ratio[MAX_ROUNDS];
        struct measure last[2];
        for (int r = 0; r < rounds; r++) {
            for (int mode = 0; mode < 2; mode++) {
                struct measure m = {.size = sizes[si], .zc = mode == 1};
                m.total = (mib << 20) / m.size * m.size;
                run_one(&m);
                cpu[mode][r] = m.cpu_us_per_mib;
                gbps[mode][r] = m.gbps;
                last[mode] = m;
                if (json)
                    printf("{\"type\":\"sample\",\"workload\":\"sendzc-%zu\",\"contender\":\"%s\",\"round\":%d,"
                           "\"metric\":\"cpu_per_mib\",\"unit\":\"us\",\"value\":%.3f,\"iterations\":%llu}\n",
                           m.size, mode ? "weft-send-zc" : "weft-send", r, m.cpu_us_per_mib,
                           (unsigned long long)(m.total / m.size));
            }
            ratio[r] = cpu[1][r] / cpu[0][r];
        }
        for (int mode = 0; mode < 2; mode++) {
            double lo, hi;
            min_max(cpu[mode], rounds, &lo, &hi);
            char range[40];
            snprintf(range, sizeof range, "%.1f-%.1f", lo, hi);
            printf("%8zu %5s %10.2f %14.1f %16s %9.3f %9.3f %9.3f %6.0f%%\n", sizes[si], mode ? "zc" : "plain",
                   median(gbps[mode], rounds), median(cpu[mode], rounds), range, last[mode].enters_per_send,
                   last[mode].sqes_per_send, last[mode].notifs_per_send, last[mode].copied_share * 100);
            if (mode && last[mode].fallbacks)
                printf("         (%llu sends fell back to plain)\n", (unsigned long long)last[mode].fallbacks);
        }
        double lo, hi;
        min_max(ratio, rounds, &lo, &hi);
        printf("%8s zc/plain CPU per MiB: %.2f (pairs %.2f-%.2f)\n", "", median(ratio, rounds), lo, hi);
        fflush(stdout);
    }
    return 0;
}
