/*
 * Runs a fuzz target's corpus as a plain test (tests/meson.build registers one per target in every
 * build, sanitizers included, with no libFuzzer): LLVMFuzzerTestOneInput on each file of the directory
 * given, which aborts on any violation. Prints how many inputs ran; exits 1 if the directory is missing
 * or empty, so a lost corpus cannot pass for a clean one.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (!dir) {
        perror(argv[1]);
        return 1;
    }
    int ran = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            perror(path);
            return 1;
        }
        unsigned char *buf = NULL;
        size_t len = 0, cap = 0, n;
        do {
            if (cap - len < 4096) {
                cap = cap ? cap * 2 : 8192;
                buf = realloc(buf, cap);
                if (!buf) {
                    perror("realloc");
                    return 1;
                }
            }
            n = fread(buf + len, 1, cap - len, f);
            len += n;
        } while (n > 0);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        ran++;
    }
    closedir(dir);
    printf("%d inputs of %s ran clean\n", ran, argv[1]);
    return ran > 0 ? 0 : 1;
}
