/*
 * kv_commands — finding a command as Redis 7.0's processCommand does (its name or container and
 * subcommand, ignoring case; the errors for an unknown one and for a wrong number of arguments), the
 * COMMAND introspection commands over the tables of kv_keyspace.c and kv_connection.c, and the
 * argument helpers every command uses.
 */
#include "kv.h"

#include <stdio.h>
#include <string.h>

#define ARG(c, i) (c)->argv[(i)].ptr, (c)->argv[(i)].len

/* ---- arguments ------------------------------------------------------------------------------------ */

const char kv_err_not_integer[] = "value is not an integer or out of range";
const char kv_err_syntax[] = "syntax error";
/* Redis aborts when malloc fails; weft-kv answers the one command that could not get memory. */
const char kv_err_nomem[] = "-OOM out of memory";

static unsigned char lower(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch | 0x20) : ch;
}

/* Whether bytes[0..len) equal the lower-case word, ignoring ASCII case. */
static bool same_word(const char *bytes, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)bytes[i]) != (unsigned char)word[i])
            return false;
    return true;
}

bool kv_option_is(const resp_arg *a, const char *word)
{
    return same_word(a->ptr, strnlen(a->ptr, a->len), word);
}

bool kv_integer_arg(kv_call *c, size_t i, long long *v)
{
    if (resp_string2ll(ARG(c, i), v))
        return true;
    resp_out_error(c->out, kv_err_not_integer);
    return false;
}

void kv_arity_error(kv_call *c)
{
    resp_out_errorf(c->out, "wrong number of arguments for '%s' command", c->cmd->name);
}

void kv_key_range(const kv_call *c, size_t *first, size_t *last, size_t *step)
{
    const kv_command *cmd = c->cmd;
    *first = (size_t)cmd->first_key;
    *last = cmd->last_key < 0 ? c->argc + (size_t)cmd->last_key : (size_t)cmd->last_key;
    *step = (size_t)cmd->key_step;
}

/* ---- COMMAND ---------------------------------------------------------------------------------------- */

static const kv_command command_commands[];

/* Every command, the keyspace's first: the lookup goes down them in this order. */
static const kv_command *const tables[] = {kv_keyspace_commands, kv_connection_commands, command_commands};
enum { TABLES = sizeof tables / sizeof tables[0] };

/* Space-separated words as an array of status replies (flags) or of bulk strings (tips). */
static void words(resp_out *o, const char *list, bool status)
{
    long long n = 0;
    for (const char *p = list; p && *p; n++) {
        p += strcspn(p, " ");
        p += strspn(p, " ");
    }
    resp_out_array(o, n);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, " ");
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, p);
        if (status)
            resp_out_status(o, word);
        else
            resp_out_bulk(o, word, len);
        p += len;
        p += strspn(p, " ");
    }
}

static void keyspec_info(resp_out *o, const kv_keyspec *ks)
{
    resp_out_array(o, ks->notes ? 8 : 6);
    if (ks->notes) {
        resp_out_bulk_str(o, "notes");
        resp_out_bulk_str(o, ks->notes);
    }
    resp_out_bulk_str(o, "flags");
    words(o, ks->flags, true);
    resp_out_bulk_str(o, "begin_search");
    resp_out_array(o, 4);
    resp_out_bulk_str(o, "type");
    resp_out_bulk_str(o, "index");
    resp_out_bulk_str(o, "spec");
    resp_out_array(o, 2);
    resp_out_bulk_str(o, "index");
    resp_out_int(o, ks->index);
    resp_out_bulk_str(o, "find_keys");
    resp_out_array(o, 4);
    resp_out_bulk_str(o, "type");
    resp_out_bulk_str(o, "range");
    resp_out_bulk_str(o, "spec");
    resp_out_array(o, 6);
    resp_out_bulk_str(o, "lastkey");
    resp_out_int(o, ks->lastkey);
    resp_out_bulk_str(o, "keystep");
    resp_out_int(o, ks->keystep);
    resp_out_bulk_str(o, "limit");
    resp_out_int(o, ks->limit);
}

static size_t count_commands(const kv_command *list)
{
    size_t n = 0;
    while (list && list[n].name)
        n++;
    return n;
}

/* One command's entry of COMMAND INFO: name, arity, flags, first/last key and step, ACL categories,
 * tips, key specifications, subcommands. */
static void command_info(resp_out *o, const kv_command *cmd)
{
    resp_out_array(o, 10);
    resp_out_bulk_str(o, cmd->name);
    resp_out_int(o, cmd->arity);
    words(o, cmd->flags, true);
    resp_out_int(o, cmd->first_key);
    resp_out_int(o, cmd->last_key);
    resp_out_int(o, cmd->key_step);
    words(o, cmd->acl, true);
    words(o, cmd->tips, false);
    resp_out_array(o, cmd->keyspec ? 1 : 0);
    if (cmd->keyspec)
        keyspec_info(o, cmd->keyspec);
    size_t subs = count_commands(cmd->subcommands);
    resp_out_array(o, (long long)subs);
    for (size_t i = 0; i < subs; i++)
        command_info(o, &cmd->subcommands[i]);
}

/* The command named by full name ("get", "client|setname"), ignoring case, or NULL. */
static const kv_command *by_fullname(const char *name, size_t len)
{
    for (size_t t = 0; t < TABLES; t++)
        for (const kv_command *cmd = tables[t]; cmd->name; cmd++) {
            if (same_word(name, len, cmd->name))
                return cmd;
            for (const kv_command *sub = cmd->subcommands; sub && sub->name; sub++)
                if (same_word(name, len, sub->name))
                    return sub;
        }
    return NULL;
}

static long long all_commands(void)
{
    size_t n = 0;
    for (size_t t = 0; t < TABLES; t++)
        n += count_commands(tables[t]);
    return (long long)n;
}

static void cmd_command(kv_call *c, kv_store *s)
{
    (void)s;
    resp_out_array(c->out, all_commands());
    for (size_t t = 0; t < TABLES; t++)
        for (const kv_command *cmd = tables[t]; cmd->name; cmd++)
            command_info(c->out, cmd);
}

static void cmd_command_count(kv_call *c, kv_store *s)
{
    (void)s;
    resp_out_int(c->out, all_commands());
}

static void cmd_command_list(kv_call *c, kv_store *s)
{
    (void)s;
    if (c->argc > 2) {
        resp_out_error(c->out, kv_err_syntax); /* FILTERBY is not kept */
        return;
    }
    resp_out_array(c->out, all_commands());
    for (size_t t = 0; t < TABLES; t++)
        for (const kv_command *cmd = tables[t]; cmd->name; cmd++)
            resp_out_bulk_str(c->out, cmd->name);
}

static void cmd_command_info(kv_call *c, kv_store *s)
{
    if (c->argc == 2) {
        cmd_command(c, s);
        return;
    }
    resp_out_array(c->out, (long long)c->argc - 2);
    for (size_t j = 2; j < c->argc; j++) {
        const kv_command *cmd = by_fullname(ARG(c, j));
        if (cmd)
            command_info(c->out, cmd);
        else
            resp_out_nil(c->out);
    }
}

void kv_cmd_help(kv_call *c, kv_store *s)
{
    (void)s;
    size_t name_len = strcspn(c->cmd->name, "|");
    const kv_command *container = by_fullname(c->cmd->name, name_len);
    size_t lines = 0;
    while (container->help[lines])
        lines++;
    char usage[96];
    int n = snprintf(usage, sizeof usage, "%.*s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                     (int)name_len, c->cmd->name);
    for (int i = 0; i < n && usage[i] != ' '; i++)
        usage[i] = (char)(usage[i] - 'a' + 'A');
    resp_out_array(c->out, (long long)lines + 3);
    resp_out_status(c->out, usage);
    for (size_t i = 0; i < lines; i++)
        resp_out_status(c->out, container->help[i]);
    resp_out_status(c->out, "HELP");
    resp_out_status(c->out, "    Prints this help.");
}

static const char *const command_help[] = {
    "(no subcommand)", "    Return details about all commands.",
    "COUNT", "    Return the total number of commands in this server.",
    "LIST", "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]", "    Return details about multiple commands.",
    "    If no command names are given, details for all commands are returned.",
    NULL,
};

static const kv_command command_subcommands[] = {
    {.name = "command|count", .arity = 2, .route = KV_LOCAL, .run = cmd_command_count, .flags = "loading stale",
     .acl = "@slow @connection"},
    {.name = "command|help", .arity = 2, .route = KV_LOCAL, .run = kv_cmd_help, .flags = "loading stale",
     .acl = "@slow @connection"},
    {.name = "command|info", .arity = -2, .route = KV_LOCAL, .run = cmd_command_info, .flags = "loading stale",
     .acl = "@slow @connection", .tips = "nondeterministic_output_order"},
    {.name = "command|list", .arity = -2, .route = KV_LOCAL, .run = cmd_command_list, .flags = "loading stale",
     .acl = "@slow @connection", .tips = "nondeterministic_output_order"},
    {.name = NULL},
};

static const kv_command command_commands[] = {
    {.name = "command", .arity = -1, .route = KV_LOCAL, .run = cmd_command, .flags = "loading stale",
     .acl = "@slow @connection", .tips = "nondeterministic_output_order", .subcommands = command_subcommands,
     .help = command_help},
    {.name = NULL},
};

/* ---- finding a command ------------------------------------------------------------------------------ */

/* The entry of list whose name (after "container|" for a subcommand) is name, ignoring case. */
static const kv_command *find_in(const kv_command *list, const resp_arg *name)
{
    for (const kv_command *cmd = list; cmd->name; cmd++) {
        const char *bar = strchr(cmd->name, '|');
        if (same_word(name->ptr, name->len, bar ? bar + 1 : cmd->name))
            return cmd;
    }
    return NULL;
}

bool kv_is_cross_protocol(const resp_arg *name)
{
    return kv_option_is(name, "post") || kv_option_is(name, "host:");
}

/* processCommand's lookupCommand, commandCheckExistence and commandCheckArity. */
const kv_command *kv_command_find(const resp_arg *argv, size_t argc, resp_out *out)
{
    const kv_command *cmd = NULL;
    for (size_t t = 0; t < TABLES && !cmd; t++)
        cmd = find_in(tables[t], &argv[0]);
    if (cmd && cmd->subcommands && argc > 1) {
        const kv_command *sub = find_in(cmd->subcommands, &argv[1]);
        if (!sub) {
            char upper[129];
            size_t n = strnlen(argv[0].ptr, argv[0].len);
            for (size_t i = 0; i < n && i < 128; i++)
                upper[i] = (char)(argv[0].ptr[i] >= 'a' && argv[0].ptr[i] <= 'z' ? argv[0].ptr[i] - 32 : argv[0].ptr[i]);
            upper[n < 128 ? n : 128] = '\0';
            resp_out_errorf(out, "unknown subcommand '%.*s'. Try %s HELP.", (int)(argv[1].len < 128 ? argv[1].len : 128),
                            argv[1].ptr, upper);
            return NULL;
        }
        cmd = sub;
    }
    if (!cmd) {
        /* Up to 128 bytes of the arguments, each quoted, as printf's %.*s reads them. */
        char args[512];
        size_t used = 0;
        args[0] = '\0';
        for (size_t i = 1; i < argc && used < 128; i++) {
            int room = 128 - (int)used;
            int len = argv[i].len < (size_t)room ? (int)argv[i].len : room;
            used += (size_t)snprintf(args + used, sizeof args - used, "'%.*s' ", len, argv[i].ptr);
        }
        resp_out_errorf(out, "unknown command '%.*s', with args beginning with: %s",
                        (int)(argv[0].len < 128 ? argv[0].len : 128), argv[0].ptr, args);
        return NULL;
    }
    if ((cmd->arity > 0 && (size_t)cmd->arity != argc) || argc < (size_t)(cmd->arity < 0 ? -cmd->arity : 0)) {
        resp_out_errorf(out, "wrong number of arguments for '%s' command", cmd->name);
        return NULL;
    }
    return cmd;
}
