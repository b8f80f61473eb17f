/*
 * What the fuzz targets share: CHECK(cond) aborts with the file, line and condition when an invariant
 * fails, which libFuzzer reports as a crash (and tests/fuzz/replay.c as a failed test).
 */
#ifndef WEFT_FUZZ_CHECK_H
#define WEFT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);                            \
            abort();                                                                                    \
        }                                                                                               \
    } while (0)

#endif /* WEFT_FUZZ_CHECK_H */
