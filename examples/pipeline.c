/*
 * pipeline — stages connected by bounded channels, each with its own number of workers, one of them
 * CPU work on the executor: the seeds' pipeline picture (spdl's source -> I/O -> CPU -> sink), with
 * each stage's throughput.
 *
 *   pipeline [--items 500] [--queue 16] [--io-workers 8] [--io-ms 2] [--cpu-workers 2] [--cpu-kib 256]
 *            [--backend io_uring|epoll]
 *
 *   source  makes item numbers 0..items-1;
 *   fetch   stands for I/O: each item waits --io-ms (a sleep, where a real program would read or
 *           receive), --io-workers of them at once;
 *   hash    is CPU work: the FNV-1a hash of --cpu-kib KiB derived from the item, run on the executor
 *           (weft_offload), --cpu-workers at once;
 *   sink    adds up the hashes.
 *
 * A channel of --queue items between each pair of stages bounds the work in flight: a fast stage
 * waits for room instead of piling items up (back-pressure). When a stage's input is closed and
 * drained its workers end, and the last one closes its output, so the end flows down the pipeline.
 * Prints a line per stage and the sum of the hashes, which does not depend on order or concurrency:
 *
 *   stage source: 500 items, 1 worker, 0.41 ms busy, 512.3 ms, 976 items/s
 *   stage fetch: 500 items, 8 workers, 1045.2 ms busy, 511.9 ms, 977 items/s
 *   stage hash: 500 items, 2 workers, 298.0 ms busy, 512.6 ms, 975 items/s
 *   stage sink: 500 items, 1 worker, 0.12 ms busy, 512.7 ms, 975 items/s
 *   checksum: 0x...
 *
 * busy is the time the stage's workers spent on items (waiting for the sleep or the executor
 * included), summed over its workers; a stage whose busy time is near workers x elapsed is the
 * bottleneck.
 */
#include "example.h"

#include <getopt.h>
#include <string.h>

static struct {
    unsigned items, queue, io_workers, cpu_workers;
    uint64_t io_ns;
    size_t cpu_bytes;
} opt = {.items = 500, .queue = 16, .io_workers = 8, .io_ns = 2000000, .cpu_workers = 2, .cpu_bytes = 256 * 1024};

struct item {
    unsigned index;
    uint64_t hash;
};

struct stage;
/* Does the stage's work on one item; 0 or a negative errno. */
typedef int (*stage_fn)(struct stage *s, struct item *it);

struct stage {
    const char *name;
    unsigned workers;
    stage_fn work;
    weft_chan *in, *out; /* in NULL: the source; out NULL: the sink */
    unsigned active;     /* workers not yet ended */
    unsigned long items;
    uint64_t busy_ns, first_ns, last_ns;
    uint64_t sum;        /* the sink's checksum */
};

static int fetch_work(struct stage *s, struct item *it)
{
    (void)s;
    (void)it;
    return weft_sleep(opt.io_ns);
}

static intptr_t hash_job(void *arg)
{
    struct item *it = arg;
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t x = it->index * 2654435761u + 1;
    for (size_t i = 0; i < opt.cpu_bytes; i++) {
        x ^= x << 13; /* the item's bytes: xorshift32 seeded by its number */
        x ^= x >> 17;
        x ^= x << 5;
        h ^= (unsigned char)x;
        h *= 0x100000001b3ull;
    }
    it->hash = h;
    return 0;
}

static int hash_work(struct stage *s, struct item *it)
{
    (void)s;
    return (int)weft_offload(hash_job, it);
}

static int sink_work(struct stage *s, struct item *it)
{
    s->sum += it->hash;
    return 0;
}

/* A worker of stage s: takes items from its input (or makes them, for the source), works on each and
 * passes it on, until the input is closed and drained. The last worker of a stage closes its output. */
static intptr_t stage_worker(void *arg)
{
    struct stage *s = arg;
    static unsigned next_index; /* the source's next item number */
    int r = 0;
    for (;;) {
        struct item *it;
        if (s->in) {
            void *got;
            r = weft_chan_recv(s->in, &got);
            if (r == -EPIPE) {
                r = 0;
                break;
            }
            if (r < 0)
                break;
            it = got;
        } else {
            if (next_index == opt.items)
                break;
            it = malloc(sizeof *it);
            if (!it) {
                r = -ENOMEM;
                break;
            }
            *it = (struct item){.index = next_index++};
        }
        uint64_t start = weft_now();
        if (!s->first_ns)
            s->first_ns = start;
        r = s->work ? s->work(s, it) : 0;
        uint64_t end = weft_now();
        s->busy_ns += end - start;
        if (r < 0) {
            free(it);
            break;
        }
        s->items++;
        s->last_ns = end;
        if (s->out) {
            r = weft_chan_send(s->out, it);
            if (r < 0) {
                free(it);
                break;
            }
        } else {
            free(it);
        }
    }
    if (--s->active == 0 && s->out)
        weft_chan_close(s->out);
    return r;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_chan *q[3];
    for (int i = 0; i < 3; i++)
        if (!(q[i] = weft_chan_new(opt.queue)))
            return -errno;
    struct stage stages[4] = {
        {.name = "source", .workers = 1, .out = q[0]},
        {.name = "fetch", .workers = opt.io_workers, .work = fetch_work, .in = q[0], .out = q[1]},
        {.name = "hash", .workers = opt.cpu_workers, .work = hash_work, .in = q[1], .out = q[2]},
        {.name = "sink", .workers = 1, .work = sink_work, .in = q[2]},
    };
    /* One group for the whole pipeline: a stage that fails cancels the others, and nothing is left
     * running when the wait returns. */
    weft_group *g = weft_group_new();
    if (!g)
        return -errno;
    uint64_t start = weft_now();
    for (int i = 0; i < 4; i++) {
        stages[i].active = stages[i].workers;
        for (unsigned w = 0; w < stages[i].workers; w++)
            if (!weft_group_spawn(g, stage_worker, &stages[i]))
                stages[i].active--;
    }
    int r = weft_group_wait(g);
    for (int i = 0; i < 3; i++) {
        void *left;
        while (weft_chan_try_recv(q[i], &left) == 0) /* items a failure stranded */
            free(left);
        weft_chan_free(q[i]);
    }
    if (r < 0)
        return r;
    for (int i = 0; i < 4; i++) {
        struct stage *s = &stages[i];
        /* From the pipeline's start to the stage's last item: what a consumer of it sees. */
        double ms = s->items ? example_ms(start, s->last_ns) : 0;
        printf("stage %s: %lu items, %u worker%s, %.2f ms busy, %.2f ms, %.0f items/s\n", s->name, s->items,
               s->workers, s->workers == 1 ? "" : "s", (double)s->busy_ns / 1e6, ms,
               ms > 0 ? (double)s->items / (ms / 1e3) : 0.0);
    }
    printf("checksum: 0x%016llx\n", (unsigned long long)stages[3].sum);
    return 0;
}

int main(int argc, char **argv)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    static const struct option longopts[] = {
        {"items", required_argument, NULL, 'n'},       {"queue", required_argument, NULL, 'q'},
        {"io-workers", required_argument, NULL, 'i'},  {"io-ms", required_argument, NULL, 'm'},
        {"cpu-workers", required_argument, NULL, 'c'}, {"cpu-kib", required_argument, NULL, 'k'},
        {"backend", required_argument, NULL, 'b'},     {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': opt.items = (unsigned)example_number("pipeline", "--items", optarg, 0); break;
        case 'q': opt.queue = (unsigned)example_number("pipeline", "--queue", optarg, 1); break;
        case 'i': opt.io_workers = (unsigned)example_number("pipeline", "--io-workers", optarg, 1); break;
        case 'm': opt.io_ns = example_number("pipeline", "--io-ms", optarg, 0) * 1000000ull; break;
        case 'c': opt.cpu_workers = (unsigned)example_number("pipeline", "--cpu-workers", optarg, 1); break;
        case 'k': opt.cpu_bytes = example_number("pipeline", "--cpu-kib", optarg, 0) * 1024; break;
        case 'b': cfg.backend = optarg; break;
        default:
            fprintf(stderr, "usage: pipeline [--items N] [--queue N] [--io-workers N] [--io-ms MS] "
                            "[--cpu-workers N] [--cpu-kib K] [--backend io_uring|epoll]\n");
            return 2;
        }
    }
    if (opt.items > 10000000 || opt.queue > 1000000 || opt.io_workers > 10000 || opt.cpu_workers > 1024 ||
        opt.cpu_bytes > (1u << 30) || opt.io_ns > 60000000000ull) {
        fprintf(stderr, "pipeline: a value is out of range (items 10000000, queue 1000000, io-workers 10000, "
                        "cpu-workers 1024, cpu-kib 1048576, io-ms 60000 at most)\n");
        return 2;
    }
    return example_run("pipeline", &cfg, main_task, NULL);
}
