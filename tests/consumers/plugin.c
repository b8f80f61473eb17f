/*
 * A user's shared library built against weft with the compiler's default visibility. weft's own
 * -fvisibility=hidden must stay inside weft's build: if it reached this compile, the entry point
 * below would be hidden and the consumer's dlsym would not find it.
 */
#include <weft.h>

const char *consumer_plugin_weft_version(void)
{
    return weft_version();
}
