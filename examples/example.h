/*
 * What the seeds' example programs share (concurrent_get, file_copy, offload, pipeline): running main
 * on a loop of the backend asked for, with its failure said on stderr, and reading times.
 */
#ifndef WEFT_EXAMPLE_H
#define WEFT_EXAMPLE_H

#include <weft.h>

#include <stdio.h>
#include <stdlib.h>

/* Milliseconds between two weft_now() readings, for printing. */
static inline double example_ms(uint64_t from_ns, uint64_t to_ns)
{
    return (double)(to_ns - from_ns) / 1e6;
}

/* A number option's value: digits only, at least min; anything else ends the program with usage. */
static inline unsigned long example_number(const char *prog, const char *opt, const char *text, unsigned long min)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || v < min || text[0] == '-') {
        fprintf(stderr, "%s: %s takes a number of at least %lu, not \"%s\"\n", prog, opt, min, text);
        exit(2);
    }
    return v;
}

/*
 * Runs main(arg) on a new loop made from cfg (the backend named there, or the default) and prints
 * "backend: NAME" first. Returns the exit status: 0 when main returned 0, else 1 with main's error
 * (or the loop's) said on stderr under prog's name.
 */
static inline int example_run(const char *prog, const weft_config *cfg, weft_fn main_fn, void *arg)
{
    weft_loop *loop = weft_loop_new(cfg);
    if (!loop) {
        fprintf(stderr, "%s: cannot make a loop: %s\n", prog, weft_strerror(-errno));
        return 1;
    }
    printf("backend: %s\n", weft_loop_backend(loop));
    fflush(stdout);
    intptr_t result = 0;
    int rc = weft_loop_run(loop, main_fn, arg, &result);
    weft_loop_free(loop);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, weft_strerror(rc));
        return 1;
    }
    if (result < 0) {
        fprintf(stderr, "%s: %s\n", prog, weft_strerror((int)result));
        return 1;
    }
    return 0;
}

#endif /* WEFT_EXAMPLE_H */
