/*
 * A program using weft as its users do, built by tests/consumers/run once through meson (weft as a
 * subproject) and once with the flags of the installed pkg-config file.
 *
 *   consumer PLUGIN.so
 *
 * Checks that the library it runs with is the version its header says, runs a loop (a task, a join,
 * a no-op through the backend, the counters), and that PLUGIN.so, a shared library of the user's
 * built against weft, still exports its own entry point. Prints what failed and exits 1, or prints
 * one "ok" line and exits 0. Strict C11 plus POSIX: weft.h must need nothing more.
 */
#define _POSIX_C_SOURCE 200809L
#include <weft.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "consumer: " __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                                      \
            failures++;                                                                               \
        }                                                                                             \
    } while (0)

static intptr_t twice(void *arg)
{
    weft_yield();
    return (intptr_t)arg * 2;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("twice", twice, (void *)21);
    if (!t)
        return -1000;
    intptr_t r = weft_join(t);
    int nop = weft_nop();
    if (nop < 0)
        return nop;
    weft_stats st;
    int rc = weft_stats_get(&st);
    if (rc < 0)
        return rc;
    if (st.tasks_spawned != 2 || st.tasks_live != 1)
        return -1001;
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: consumer PLUGIN.so\n");
        return 2;
    }

    CHECK(strcmp(weft_version(), WEFT_VERSION_STRING) == 0, "the library is %s, the header %s", weft_version(),
          WEFT_VERSION_STRING);
    char parts[64];
    snprintf(parts, sizeof parts, "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR, WEFT_VERSION_PATCH);
    CHECK(strcmp(parts, WEFT_VERSION_STRING) == 0, "the header's parts say %s, its string %s", parts,
          WEFT_VERSION_STRING);

    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.slow_task_ns = UINT64_MAX;
    weft_loop *l = weft_loop_new(&cfg);
    CHECK(l != NULL, "weft_loop_new failed");
    const char *backend = l ? weft_loop_backend(l) : "none";
    if (l) {
        intptr_t result = 0;
        int rc = weft_loop_run(l, main_task, NULL, &result);
        CHECK(rc == 0, "weft_loop_run: %s", weft_strerror(rc));
        CHECK(result == 42, "main returned %ld, want 42", (long)result);
        weft_loop_free(l);
    }

    void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(plugin != NULL, "dlopen %s: %s", argv[1], dlerror());
    if (plugin) {
        /* POSIX lets a dlsym result be a function; ISO C has no cast for it, so copy the bits. */
        void *sym = dlsym(plugin, "consumer_plugin_weft_version");
        const char *(*entry)(void) = NULL;
        memcpy(&entry, &sym, sizeof entry);
        CHECK(entry != NULL, "the plugin's entry point is not exported: %s", dlerror());
        if (entry)
            CHECK(strcmp(entry(), WEFT_VERSION_STRING) == 0, "the plugin reports weft %s", entry());
        dlclose(plugin);
    }

    if (failures)
        return 1;
    printf("consumer: weft %s (header %s) on %s: ok\n", weft_version(), WEFT_VERSION_STRING, backend);
    return 0;
}
