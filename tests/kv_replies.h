/*
 * What Redis 7.0.15 answers, recorded from redis-server 7.0.15 (Debian 12's, started with --save ''
 * --appendonly no --databases 1, weft-kv's one database) and redis-cli 7.0.15: the expected bytes of
 * tests/test_kv.c. test_kv.c checks weft-kv against them on both backends, and, where redis-server is
 * installed, checks that redis-server still answers them (kv_redis suite), so a wrong entry cannot hide.
 *
 * kv_replies: each entry is sent on a fresh connection after FLUSHALL (its +OK read first). REPLIES:
 * the reply is exactly `reply`, and a PING sent after it answers +PONG (nothing more, nothing less was
 * answered); CLOSES: the reply is exactly `reply` and then the server closes the connection; SILENT:
 * nothing is answered and the connection stays open (the command is not complete to Redis).
 * Replies that differ from run to run (a client id, INFO, PTTL, the port) are checked in test_kv.c.
 *
 * kv_cli: redis-cli -p PORT argv..., run in this order against one server (state carries over), with
 * stdin when given; stdout must be exactly `out`.
 */
#ifndef WEFT_TEST_KV_REPLIES_H
#define WEFT_TEST_KV_REPLIES_H

#include <stddef.h>

struct bytes {
    const char *ptr;
    size_t len;
};

/* A string literal with its length: the bytes may hold NULs. */
#define S(literal) {(literal), sizeof(literal) - 1}

enum kv_case_kind { REPLIES, CLOSES, SILENT };

struct kv_case {
    const char *name;
    struct bytes send;
    struct bytes reply;
    enum kv_case_kind kind;
};

static const struct kv_case kv_replies[] = {
    {"ping_multibulk", S("*1\r\n$4\r\nPING\r\n"),
     S("+PONG\r\n"), REPLIES},
    {"ping_inline", S("PING\r\n"),
     S("+PONG\r\n"), REPLIES},
    {"ping_with_message", S("*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n"),
     S("$2\r\nhi\r\n"), REPLIES},
    {"ping_with_two_arguments_is_an_arity_error", S("*3\r\n$4\r\nPING\r\n$2\r\nhi\r\n$1\r\nx\r\n"),
     S("-ERR wrong number of arguments for 'ping' command\r\n"), REPLIES},
    {"echo", S("ECHO hi\r\nECHO\r\nECHO a b\r\n"),
     S("$2\r\nhi\r\n-ERR wrong number of arguments for 'echo' command\r\n-ERR wrong number of arguments for 'echo' command\r\n"), REPLIES},
    {"hello_versions_and_options_refused", S("HELLO 4\r\nHELLO 0\r\nHELLO 1\r\nHELLO abc\r\nHELLO 2 SETNAME\r\nHELLO 2 AUTH bob x\r\nHELLO 2 FOO\r\n"
     "HELLO 2 SETNAME \"a b\"\r\nHELLO 2 AUTH default\r\n"),
     S("-NOPROTO unsupported protocol version\r\n-NOPROTO unsupported protocol version\r\n-NOPROTO unsupported protocol version\r\n"
     "-ERR Protocol version is not an integer or out of range\r\n-ERR Syntax error in HELLO option 'SETNAME'\r\n"
     "-WRONGPASS invalid username-password pair or user is disabled.\r\n-ERR Syntax error in HELLO option 'FOO'\r\n"
     "-ERR Client names cannot contain spaces, newlines or special characters.\r\n-ERR Syntax error in HELLO option 'AUTH'\r\n"), REPLIES},
    {"config_get_what_redis_benchmark_asks", S("CONFIG GET save\r\nCONFIG GET appendonly\r\n"),
     S("*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"), REPLIES},
    {"config_get_limits_and_case", S("CONFIG GET maxclients\r\nCONFIG GET proto-max-bulk-len\r\nCONFIG GET client-query-buffer-limit\r\nCONFIG GET databases\r\n"
     "CONFIG GET nope\r\nCONFIG GET MAXCLIENTS\r\n"),
     S("*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n*2\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n536870912\r\n*2\r\n"
     "$25\r\nclient-query-buffer-limit\r\n$10\r\n1073741824\r\n*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n*0\r\n"
     "*2\r\n$10\r\nMAXCLIENTS\r\n$5\r\n10000\r\n"), REPLIES},
    {"client_setname_getname", S("CLIENT SETNAME foo\r\nCLIENT GETNAME\r\nCLIENT SETNAME \"a b\"\r\nCLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\n"),
     S("+OK\r\n$3\r\nfoo\r\n-ERR Client names cannot contain spaces, newlines or special characters.\r\n+OK\r\n"
     "$-1\r\n"), REPLIES},
    {"container_errors", S("CLIENT FOO\r\nCLIENT\r\nCONFIG\r\nCONFIG GET\r\nCOMMAND FOO\r\nCLIENT SETNAME\r\nCLIENT SETNAME a b\r\n"
     "CLIENT GETNAME x\r\nCOMMAND COUNT x\r\nCONFIG HELP x\r\nCLIENT HELP x\r\nCOMMAND LIST FILTERBY\r\n"
     "client foo\r\n"),
     S("-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n-ERR wrong number of arguments for 'client' command\r\n"
     "-ERR wrong number of arguments for 'config' command\r\n-ERR wrong number of arguments for 'config|get' command\r\n"
     "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n-ERR wrong number of arguments for 'client|setname' command\r\n"
     "-ERR wrong number of arguments for 'client|setname' command\r\n-ERR wrong number of arguments for 'client|getname' command\r\n"
     "-ERR wrong number of arguments for 'command|count' command\r\n-ERR wrong number of arguments for 'config|help' command\r\n"
     "-ERR wrong number of arguments for 'client|help' command\r\n-ERR syntax error\r\n-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n"), REPLIES},
    {"command_info_of_every_key_and_server_command", S("COMMAND INFO get set getdel del exists incr incrby decr decrby append strlen mget mset expire pexpire ttl pttl persist dbsize flushall flushdb select info quit hello ping echo nope\r\n"),
     S("*28\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n"
     "+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n"
     "$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$3\r\nset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:1\r\n"
     ":1\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*0\r\n*1\r\n*8\r\n$5\r\nnotes\r\n$48\r\nRW and ACCESS due to the optional `GET` argument\r\n"
     "$5\r\nflags\r\n*4\r\n+RW\r\n+access\r\n+update\r\n+variable_flags\r\n$12\r\nbegin_search\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n"
     "$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\ngetdel\r\n:2\r\n*2\r\n+write\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
     "*3\r\n+@write\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n"
     "+delete\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\n"
     "index\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\n"
     "lastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$3\r\ndel\r\n:-2\r\n"
     "*1\r\n+write\r\n:1\r\n:-1\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n"
     "$23\r\nresponse_policy:agg_sum\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RM\r\n+delete\r\n$12\r\nbegin_search\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n"
     ":1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\nexists\r\n:-2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n"
     ":-1\r\n:1\r\n*3\r\n+@keyspace\r\n+@read\r\n+@fast\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n"
     "$23\r\nresponse_policy:agg_sum\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n"
     ":1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$4\r\nincr\r\n:2\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n"
     ":1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n"
     "+RW\r\n+access\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n"
     "*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n"
     "*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\nincrby\r\n"
     ":3\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n"
     "*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n"
     "$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$4\r\ndecr\r\n:2\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n:1\r\n"
     ":1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n"
     "+access\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n"
     "*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n"
     "*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\ndecrby\r\n"
     ":3\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n"
     "*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n"
     "$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n"
     "$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\nappend\r\n:3\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n:1\r\n"
     ":1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RW\r\n"
     "+insert\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\n"
     "index\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\n"
     "lastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\nstrlen\r\n:2\r\n"
     "*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n"
     "*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\n"
     "spec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\n"
     "spec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n"
     "$4\r\nmget\r\n:-2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:-1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n"
     "+@fast\r\n*1\r\n$26\r\nrequest_policy:multi_shard\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n"
     "$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n"
     "$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n"
     "$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n"
     "+denyoom\r\n:1\r\n:-1\r\n:2\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n"
     "$29\r\nresponse_policy:all_succeeded\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n$12\r\n"
     "begin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\n"
     "find_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\n"
     "keystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\nexpire\r\n:-3\r\n*2\r\n+write\r\n+fast\r\n"
     ":1\r\n:1\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n"
     "+RW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n"
     "$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n"
     "$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$7\r\npexpire\r\n"
     ":-3\r\n*2\r\n+write\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@fast\r\n*0\r\n"
     "*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n"
     "$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n"
     "$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n"
     ":0\r\n*0\r\n*10\r\n$3\r\nttl\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@keyspace\r\n"
     "+@read\r\n+@fast\r\n*1\r\n$23\r\nnondeterministic_output\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n"
     "+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\n"
     "index\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\n"
     "lastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$4\r\npttl\r\n:2\r\n"
     "*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@keyspace\r\n+@read\r\n+@fast\r\n*1\r\n$23\r\n"
     "nondeterministic_output\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n"
     "*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n"
     ":1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$7\r\npersist\r\n:2\r\n*2\r\n+write\r\n+fast\r\n:1\r\n"
     ":1\r\n:1\r\n*3\r\n+@keyspace\r\n+@write\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RW\r\n"
     "+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\n"
     "index\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\n"
     "lastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$6\r\ndbsize\r\n:1\r\n"
     "*2\r\n+readonly\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@keyspace\r\n+@read\r\n+@fast\r\n*2\r\n$25\r\n"
     "request_policy:all_shards\r\n$23\r\nresponse_policy:agg_sum\r\n*0\r\n*0\r\n*10\r\n$8\r\nflushall\r\n"
     ":-1\r\n*1\r\n+write\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@keyspace\r\n+@write\r\n+@slow\r\n+@dangerous\r\n"
     "*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n"
     "*10\r\n$7\r\nflushdb\r\n:-1\r\n*1\r\n+write\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@keyspace\r\n+@write\r\n"
     "+@slow\r\n+@dangerous\r\n*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n"
     "*0\r\n*0\r\n*10\r\n$6\r\nselect\r\n:2\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n"
     "*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$4\r\ninfo\r\n:-1\r\n*2\r\n+loading\r\n"
     "+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@dangerous\r\n*3\r\n$23\r\nnondeterministic_output\r\n"
     "$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n*10\r\n$4\r\n"
     "quit\r\n:-1\r\n*6\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n"
     ":0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$5\r\nhello\r\n:-1\r\n*6\r\n"
     "+noscript\r\n+loading\r\n+stale\r\n+fast\r\n+no_auth\r\n+allow_busy\r\n:0\r\n:0\r\n:0\r\n*2\r\n"
     "+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n"
     ":0\r\n*2\r\n+@fast\r\n+@connection\r\n*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n"
     "*0\r\n*0\r\n*10\r\n$4\r\necho\r\n:2\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n"
     "*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n$-1\r\n"), REPLIES},
    {"command_info_of_subcommands", S("COMMAND INFO client|setname client|getname client|id client|help config|get config|help command|count command|info command|list command|help GET\r\n"),
     S("*11\r\n*10\r\n$14\r\nclient|setname\r\n:3\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n"
     "*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$14\r\nclient|getname\r\n:2\r\n*3\r\n"
     "+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n"
     "*0\r\n*10\r\n$9\r\nclient|id\r\n:2\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n"
     "*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$11\r\nclient|help\r\n:2\r\n*2\r\n+loading\r\n"
     "+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$10\r\nconfig|get\r\n"
     ":-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n"
     "+@dangerous\r\n*0\r\n*0\r\n*0\r\n*10\r\n$11\r\nconfig|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n"
     ":0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n*10\r\n$13\r\ncommand|count\r\n:2\r\n*2\r\n"
     "+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n"
     "$12\r\ncommand|info\r\n:-2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n"
     "*1\r\n$29\r\nnondeterministic_output_order\r\n*0\r\n*0\r\n*10\r\n$12\r\ncommand|list\r\n:-2\r\n"
     "*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*1\r\n$29\r\nnondeterministic_output_order\r\n"
     "*0\r\n*0\r\n*10\r\n$12\r\ncommand|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n"
     "*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n"
     "+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n"
     "*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n"
     "*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n"
     "*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"), REPLIES},
    {"select", S("SELECT 0\r\nSELECT 1\r\nSELECT x\r\nSELECT -1\r\nSELECT 2147483648\r\nSELECT\r\n"),
     S("+OK\r\n-ERR DB index is out of range\r\n-ERR value is not an integer or out of range\r\n-ERR DB index is out of range\r\n"
     "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n-ERR wrong number of arguments for 'select' command\r\n"), REPLIES},
    {"info_of_an_unknown_section_is_empty", S("INFO foo\r\n"),
     S("$0\r\n\r\n"), REPLIES},
    {"dbsize_flushall_flushdb_arguments", S("DBSIZE x\r\nFLUSHALL x\r\nFLUSHALL async\r\nFLUSHDB SYNC\r\nFLUSHDB a b\r\nFLUSHALL SyNc\r\n"),
     S("-ERR wrong number of arguments for 'dbsize' command\r\n-ERR syntax error\r\n+OK\r\n+OK\r\n-ERR syntax error\r\n"
     "+OK\r\n"), REPLIES},
    {"quit_answers_ok_and_closes_before_the_next_command", S("QUIT\r\nPING\r\n"),
     S("+OK\r\n"), CLOSES},
    {"multibulk_count_not_a_number", S("*x\r\n"),
     S("-ERR Protocol error: invalid multibulk length\r\n"), CLOSES},
    {"multibulk_count_over_int_max", S("*2147483648\r\n"),
     S("-ERR Protocol error: invalid multibulk length\r\n"), CLOSES},
    {"multibulk_count_with_leading_zero", S("*01\r\n$4\r\nPING\r\n"),
     S("-ERR Protocol error: invalid multibulk length\r\n"), CLOSES},
    {"multibulk_count_with_plus_sign", S("*+1\r\n$4\r\nPING\r\n"),
     S("-ERR Protocol error: invalid multibulk length\r\n"), CLOSES},
    {"multibulk_count_of_int_max_waits_for_its_arguments", S("*2147483647\r\n"),
     S(""), SILENT},
    {"empty_multibulk_commands_are_skipped", S("*-5\r\n*0\r\nPING\r\n"),
     S("+PONG\r\n"), REPLIES},
    {"a_bulk_must_start_with_a_dollar", S("*1\r\nPING\r\n"),
     S("-ERR Protocol error: expected '$', got 'P'\r\n"), CLOSES},
    {"a_cr_where_a_dollar_belongs_is_quoted_as_a_space", S("*1\r\n\r\n"),
     S("-ERR Protocol error: expected '$', got ' '\r\n"), CLOSES},
    {"bulk_length_not_a_number", S("*1\r\n$x\r\n"),
     S("-ERR Protocol error: invalid bulk length\r\n"), CLOSES},
    {"bulk_length_negative", S("*1\r\n$-1\r\n"),
     S("-ERR Protocol error: invalid bulk length\r\n"), CLOSES},
    {"bulk_length_with_leading_zero", S("*1\r\n$04\r\nPING\r\n"),
     S("-ERR Protocol error: invalid bulk length\r\n"), CLOSES},
    {"bulk_length_over_proto_max_bulk_len", S("*1\r\n$536870913\r\n"),
     S("-ERR Protocol error: invalid bulk length\r\n"), CLOSES},
    {"bulk_length_of_proto_max_bulk_len_waits_for_its_bytes", S("*1\r\n$536870912\r\n"),
     S(""), SILENT},
    {"the_two_bytes_after_a_bulk_are_not_read", S("*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n"),
     S("+PONG\r\n+PONG\r\n"), REPLIES},
    {"the_byte_after_a_header_cr_is_not_read", S("*1\rx$4\r\nPING\r\n"),
     S("+PONG\r\n"), REPLIES},
    {"inline_unbalanced_double_quote", S("PING \"a\r\n"),
     S("-ERR Protocol error: unbalanced quotes in request\r\n"), CLOSES},
    {"inline_unbalanced_single_quote", S("PING 'a\r\n"),
     S("-ERR Protocol error: unbalanced quotes in request\r\n"), CLOSES},
    {"inline_closing_quote_followed_by_a_letter", S("PING \"a\"b\r\n"),
     S("-ERR Protocol error: unbalanced quotes in request\r\n"), CLOSES},
    {"inline_escapes_in_double_quotes", S("PING \"\\x41\\x41\\n\"\r\n"),
     S("$3\r\nAA\n\r\n"), REPLIES},
    {"inline_escaped_single_quote", S("PING 'it\\'s'\r\n"),
     S("$4\r\nit's\r\n"), REPLIES},
    {"inline_two_quoted_arguments", S("PING \"a\\\"b\" 'c\\d'\r\n"),
     S("-ERR wrong number of arguments for 'ping' command\r\n"), REPLIES},
    {"inline_empty_lines_and_blank_lines_are_skipped", S("\r\n\r\n   \r\nPING\r\n"),
     S("+PONG\r\n"), REPLIES},
    {"inline_lines_ended_by_lf_alone", S("PING\nPING\n"),
     S("+PONG\r\n+PONG\r\n"), REPLIES},
    {"inline_nul_hides_the_newline", S("ping a\x00""b\r\n"),
     S(""), SILENT},
    {"binary_argument_with_nul", S("*2\r\n$4\r\nPING\r\n$3\r\na\x00""b\r\n"),
     S("$3\r\na\x00""b\r\n"), REPLIES},
    {"unknown_command_quotes_its_arguments", S("FOO bar baz\r\nFOO\r\nFOO a\nb\r\n"),
     S("-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n-ERR unknown command 'FOO', with args beginning with: \r\n"
     "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n-ERR unknown command 'b', with args beginning with: \r\n"), REPLIES},
    {"unknown_command_quotes_up_to_a_nul", S("*3\r\n$3\r\nFOO\r\n$4\r\na\r\nb\r\n$2\r\nc\x00\r\n*2\r\n$3\r\nG\x00T\r\n$1\r\nx\r\n"),
     S("-ERR unknown command 'FOO', with args beginning with: 'a  b' 'c' \r\n-ERR unknown command 'G', with args beginning with: 'x' \r\n"), REPLIES},
    {"unknown_command_quotes_128_bytes_of_arguments", S("FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb c\r\n"
     "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\r\n"),
     S("-ERR unknown command 'FOO', with args beginning with: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' 'bbbbbbbbbbbbbbbbbbbbbbbbb' \r\n"
     "-ERR unknown command 'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', with args beginning with: \r\n"), REPLIES},
    {"host_header_closes_without_a_reply", S("host: x\r\nPING\r\n"),
     S(""), CLOSES},
    {"post_closes_without_a_reply", S("POST / HTTP/1.1\r\n"),
     S(""), CLOSES},
    {"set_options_and_their_errors", S("SET k v\r\nGET k\r\nSET k v NX\r\nSET k w XX GET\r\nSET k v NX XX\r\nSET k v EX 0\r\nSET k v EX -1\r\n"
     "SET k v EX abc\r\nSET k v EX 10 PX 10\r\nSET k v KEEPTTL EX 10\r\nSET k v EX\r\nSET k v PX 9223372036854775807\r\n"
     "SET k v EX 9223372036854775\r\nSET k v EX 9223372036854776\r\nSET k v PXAT 1\r\nGET k\r\nSET k v GET GET\r\n"
     "SET k v NX GET\r\nSET n v NX GET\r\nSET k v foo\r\nSET k\r\n"),
     S("+OK\r\n$1\r\nv\r\n$-1\r\n$1\r\nv\r\n-ERR syntax error\r\n-ERR invalid expire time in 'set' command\r\n"
     "-ERR invalid expire time in 'set' command\r\n-ERR value is not an integer or out of range\r\n-ERR syntax error\r\n"
     "-ERR syntax error\r\n-ERR syntax error\r\n-ERR invalid expire time in 'set' command\r\n-ERR invalid expire time in 'set' command\r\n"
     "-ERR invalid expire time in 'set' command\r\n+OK\r\n$-1\r\n$-1\r\n$1\r\nv\r\n$-1\r\n-ERR syntax error\r\n"
     "-ERR wrong number of arguments for 'set' command\r\n"), REPLIES},
    {"set_expiry_kept_replaced_and_removed", S("SET k v EX 100\r\nTTL k\r\nSET k w KEEPTTL\r\nTTL k\r\nSET k x\r\nTTL k\r\nSET k v EXAT 99999999999\r\n"
     "SET k v ex 5 keepttl\r\nSET k v keepttl px 5\r\nSET k v nx xx\r\nSET k v xx nx\r\nSET k v EXAT 0\r\n"
     "SET k v PX 10 PX 20000\r\nTTL k\r\n"),
     S("+OK\r\n:100\r\n+OK\r\n:100\r\n+OK\r\n:-1\r\n+OK\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n"
     "-ERR syntax error\r\n-ERR invalid expire time in 'set' command\r\n+OK\r\n:20\r\n"), REPLIES},
    {"set_options_are_read_up_to_a_nul", S("SET k v\r\n*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nNX\x00x\r\n*4\r\n$3\r\nSET\r\n$1\r\nk\r\n"
     "$1\r\nv\r\n$3\r\nnx\x00\r\n"),
     S("+OK\r\n$-1\r\n$-1\r\n"), REPLIES},
    {"incr_decr_and_their_errors", S("INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 5\r\nINCRBY n x\r\nDECRBY n -9223372036854775808\r\nSET n 9223372036854775807\r\n"
     "INCR n\r\nSET s abc\r\nINCR s\r\nSET s \" 1\"\r\nINCR s\r\nSET s 01\r\nINCR s\r\nINCRBY n 1 2\r\n"),
     S(":1\r\n:11\r\n:10\r\n:5\r\n-ERR value is not an integer or out of range\r\n-ERR decrement would overflow\r\n"
     "+OK\r\n-ERR increment or decrement would overflow\r\n+OK\r\n-ERR value is not an integer or out of range\r\n"
     "+OK\r\n-ERR value is not an integer or out of range\r\n+OK\r\n-ERR value is not an integer or out of range\r\n"
     "-ERR wrong number of arguments for 'incrby' command\r\n"), REPLIES},
    {"incr_decr_at_the_limits", S("SET n -9223372036854775808\r\nDECR n\r\nINCRBY n -1\r\nSET n 123456789012345678901\r\nINCR n\r\nDECRBY m 9223372036854775807\r\n"
     "DECR m\r\nDECR m\r\nINCR m\r\nSET k 10\r\nINCRBY k 5\r\nGET k\r\nAPPEND k 0\r\nINCR k\r\n"),
     S("+OK\r\n-ERR increment or decrement would overflow\r\n-ERR increment or decrement would overflow\r\n"
     "+OK\r\n-ERR value is not an integer or out of range\r\n:-9223372036854775807\r\n:-9223372036854775808\r\n"
     "-ERR increment or decrement would overflow\r\n:-9223372036854775807\r\n+OK\r\n:15\r\n$2\r\n15\r\n"
     ":3\r\n:151\r\n"), REPLIES},
    {"incr_keeps_the_ttl", S("SET n 5 EX 100\r\nINCR n\r\nTTL n\r\n"),
     S("+OK\r\n:6\r\n:100\r\n"), REPLIES},
    {"append_strlen_getdel", S("SET s 01\r\nAPPEND s xyz\r\nAPPEND t xyz\r\nSTRLEN s\r\nSTRLEN none\r\nGETDEL s\r\nGETDEL s\r\nEXISTS s\r\n"),
     S("+OK\r\n:5\r\n:3\r\n:5\r\n:0\r\n$5\r\n01xyz\r\n$-1\r\n:0\r\n"), REPLIES},
    {"ttl_expire_persist_and_their_options", S("SET k v\r\nTTL k\r\nPTTL k\r\nTTL none\r\nPTTL none\r\nEXPIRE k 100\r\nTTL k\r\nEXPIRE k 100 NX\r\n"
     "EXPIRE k 200 XX\r\nEXPIRE k 50 GT\r\nEXPIRE k 50 LT\r\nTTL k\r\nEXPIRE k 10 NX XX\r\nEXPIRE k 10 GT LT\r\n"
     "EXPIRE k 10 foo\r\nEXPIRE k abc\r\nEXPIRE k 9223372036854776\r\nEXPIRE k -9223372036854776\r\n"
     "PEXPIRE k 9223372036854775807\r\nPERSIST k\r\nPERSIST k\r\nTTL k\r\nEXPIRE none 10\r\nEXPIRE k -1\r\n"
     "EXISTS k\r\nPERSIST none\r\nEXPIRE k\r\nEXPIRE k 10 NX GT\r\nEXPIRE k 10 xx GT\r\nEXPIRE k 10 xx foo\r\n"),
     S("+OK\r\n:-1\r\n:-1\r\n:-2\r\n:-2\r\n:1\r\n:100\r\n:0\r\n:1\r\n:0\r\n:1\r\n:50\r\n-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
     "-ERR GT and LT options at the same time are not compatible\r\n-ERR Unsupported option foo\r\n-ERR value is not an integer or out of range\r\n"
     "-ERR invalid expire time in 'expire' command\r\n-ERR invalid expire time in 'expire' command\r\n"
     "-ERR invalid expire time in 'pexpire' command\r\n:1\r\n:0\r\n:-1\r\n:0\r\n:1\r\n:0\r\n:0\r\n-ERR wrong number of arguments for 'expire' command\r\n"
     "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n:0\r\n-ERR Unsupported option foo\r\n"), REPLIES},
    {"expire_gt_lt_without_and_with_a_ttl", S("SET k v\r\nEXPIRE k 100 GT\r\nEXPIRE k 100 LT\r\nTTL k\r\nEXPIRE k 50 lt\r\nEXPIRE k 60 gt\r\nTTL k\r\n"
     "PEXPIRE k 0\r\nEXISTS k\r\nSET k v\r\nEXPIRE k 10 \"foo\\r\\nbar\"\r\n"),
     S("+OK\r\n:0\r\n:1\r\n:100\r\n:1\r\n:1\r\n:60\r\n:1\r\n:0\r\n+OK\r\n-ERR Unsupported option foo  bar\r\n"), REPLIES},
    {"mset_mget_del_exists", S("MSET a 1 b 2 c 3\r\nMGET a b c d\r\nMSET a\r\nMSET a 1 b\r\nDEL a b x a\r\nEXISTS a b c c x\r\nDBSIZE\r\n"
     "MGET\r\nDEL\r\nEXISTS\r\n"),
     S("+OK\r\n*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$-1\r\n-ERR wrong number of arguments for 'mset' command\r\n"
     "-ERR wrong number of arguments for 'mset' command\r\n:2\r\n:2\r\n:1\r\n-ERR wrong number of arguments for 'mget' command\r\n"
     "-ERR wrong number of arguments for 'del' command\r\n-ERR wrong number of arguments for 'exists' command\r\n"), REPLIES},
    {"arity_errors", S("GET\r\nGET a b\r\nGETDEL\r\nINCR\r\nINCR a b\r\nDECR\r\nDECRBY a\r\nINCRBY a\r\nAPPEND a\r\nSTRLEN\r\n"
     "TTL\r\nPTTL\r\nPERSIST\r\nEXPIRE a\r\nPEXPIRE a\r\n"),
     S("-ERR wrong number of arguments for 'get' command\r\n-ERR wrong number of arguments for 'get' command\r\n"
     "-ERR wrong number of arguments for 'getdel' command\r\n-ERR wrong number of arguments for 'incr' command\r\n"
     "-ERR wrong number of arguments for 'incr' command\r\n-ERR wrong number of arguments for 'decr' command\r\n"
     "-ERR wrong number of arguments for 'decrby' command\r\n-ERR wrong number of arguments for 'incrby' command\r\n"
     "-ERR wrong number of arguments for 'append' command\r\n-ERR wrong number of arguments for 'strlen' command\r\n"
     "-ERR wrong number of arguments for 'ttl' command\r\n-ERR wrong number of arguments for 'pttl' command\r\n"
     "-ERR wrong number of arguments for 'persist' command\r\n-ERR wrong number of arguments for 'expire' command\r\n"
     "-ERR wrong number of arguments for 'pexpire' command\r\n"), REPLIES},
    {"quit_takes_any_arguments", S("QUIT x y\r\n"),
     S("+OK\r\n"), CLOSES},
    {"empty_keys_and_values", S("SET \"\" empty\r\nGET \"\"\r\nSET e \"\"\r\nGET e\r\nSTRLEN e\r\nAPPEND e \"\"\r\nEXISTS e \"\"\r\n"),
     S("+OK\r\n$5\r\nempty\r\n+OK\r\n$0\r\n\r\n:0\r\n:0\r\n:2\r\n"), REPLIES},
    {"binary_keys_and_values", S("*3\r\n$3\r\nSET\r\n$3\r\na\x00""b\r\n$4\r\n\r\n\x00\xff\r\n*2\r\n$3\r\nGET\r\n$3\r\na\x00""b\r\n*2\r\n"
     "$3\r\nGET\r\n$1\r\na\r\n"),
     S("+OK\r\n$4\r\n\r\n\x00\xff\r\n$-1\r\n"), REPLIES},
    {"command_names_ignore_case_keys_do_not", S("set K V\r\nGeT K\r\nget k\r\nmSeT x 1\r\n"),
     S("+OK\r\n$1\r\nV\r\n$-1\r\n+OK\r\n"), REPLIES},
};

struct kv_cli_step {
    const char *argv[8];
    struct bytes in;
    struct bytes out;
};

static const struct kv_cli_step kv_cli[] = {
    {{"FLUSHALL", NULL}, {NULL, 0}, S("OK\n")},
    {{"SET", "greeting", "hello world", NULL}, {NULL, 0}, S("OK\n")},
    {{"GET", "greeting", NULL}, {NULL, 0}, S("hello world\n")},
    {{"--no-raw", "GET", "greeting", NULL}, {NULL, 0}, S("\"hello world\"\n")},
    {{"GET", "nothing", NULL}, {NULL, 0}, S("\n")},
    {{"--no-raw", "GET", "nothing", NULL}, {NULL, 0}, S("(nil)\n")},
    {{"INCR", "counter", NULL}, {NULL, 0}, S("1\n")},
    {{"--no-raw", "INCRBY", "counter", "41", NULL}, {NULL, 0}, S("(integer) 42\n")},
    {{"--no-raw", "DECR", "counter", NULL}, {NULL, 0}, S("(integer) 41\n")},
    {{"DECRBY", "counter", "2", NULL}, {NULL, 0}, S("39\n")},
    {{"APPEND", "greeting", "!", NULL}, {NULL, 0}, S("12\n")},
    {{"STRLEN", "greeting", NULL}, {NULL, 0}, S("12\n")},
    {{"--no-raw", "GETDEL", "greeting", NULL}, {NULL, 0}, S("\"hello world!\"\n")},
    {{"EXISTS", "greeting", "counter", NULL}, {NULL, 0}, S("1\n")},
    {{"MSET", "a", "1", "b", "2", "c", "3", NULL}, {NULL, 0}, S("OK\n")},
    {{"--no-raw", "MGET", "a", "nothing", "c", NULL}, {NULL, 0}, S("1) \"1\"\n2) (nil)\n3) \"3\"\n")},
    {{"MGET", "a", "nothing", "c", NULL}, {NULL, 0}, S("1\n\n3\n")},
    {{"--no-raw", "DEL", "a", "b", "nothing", NULL}, {NULL, 0}, S("(integer) 2\n")},
    {{"SET", "t", "v", "EX", "100", NULL}, {NULL, 0}, S("OK\n")},
    {{"TTL", "t", NULL}, {NULL, 0}, S("100\n")},
    {{"--no-raw", "EXPIRE", "t", "200", "GT", NULL}, {NULL, 0}, S("(integer) 1\n")},
    {{"TTL", "t", NULL}, {NULL, 0}, S("200\n")},
    {{"PERSIST", "t", NULL}, {NULL, 0}, S("1\n")},
    {{"--no-raw", "TTL", "t", NULL}, {NULL, 0}, S("(integer) -1\n")},
    {{"--no-raw", "TTL", "nothing", NULL}, {NULL, 0}, S("(integer) -2\n")},
    {{"--no-raw", "SET", "t", "v", "EX", "0", NULL}, {NULL, 0}, S("(error) ERR invalid expire time in 'set' command\n")},
    {{"SET", "t", "v", "EX", "0", NULL}, {NULL, 0}, S("ERR invalid expire time in 'set' command\n\n")},
    {{"--no-raw", "SET", "t", "w", "XX", "GET", NULL}, {NULL, 0}, S("\"v\"\n")},
    {{"--no-raw", "SET", "t", "w", "NX", NULL}, {NULL, 0}, S("(nil)\n")},
    {{"--no-raw", "INCR", "t", NULL}, {NULL, 0}, S("(error) ERR value is not an integer or out of range\n")},
    {{"--no-raw", "FOO", "bar", NULL}, {NULL, 0}, S("(error) ERR unknown command 'FOO', with args beginning with: 'bar' \n")},
    {{"--no-raw", "GET", NULL}, {NULL, 0}, S("(error) ERR wrong number of arguments for 'get' command\n")},
    {{"--no-raw", "PING", NULL}, {NULL, 0}, S("PONG\n")},
    {{"PING", "hello", NULL}, {NULL, 0}, S("hello\n")},
    {{"--no-raw", "ECHO", "two words", NULL}, {NULL, 0}, S("\"two words\"\n")},
    {{"--no-raw", "SELECT", "0", NULL}, {NULL, 0}, S("OK\n")},
    {{"--no-raw", "SELECT", "1", NULL}, {NULL, 0}, S("(error) ERR DB index is out of range\n")},
    {{"--no-raw", "CONFIG", "GET", "save", NULL}, {NULL, 0}, S("1) \"save\"\n2) \"\"\n")},
    {{"CONFIG", "GET", "appendonly", NULL}, {NULL, 0}, S("appendonly\nno\n")},
    {{"--no-raw", "CLIENT", "SETNAME", "tester", NULL}, {NULL, 0}, S("OK\n")},
    {{"--no-raw", "CLIENT", "GETNAME", NULL}, {NULL, 0}, S("(nil)\n")},
    {{"--no-raw", "DBSIZE", NULL}, {NULL, 0}, S("(integer) 3\n")},
    {{"-x", "SET", "fromstdin", NULL}, S("line one\nline two\x00\xff"), S("OK\n")},
    {{"--raw", "GET", "fromstdin", NULL}, {NULL, 0}, S("line one\nline two\x00\xff\n")},
    {{"--no-raw", "GET", "fromstdin", NULL}, {NULL, 0}, S("\"line one\\nline two\\x00\\xff\"\n")},
    {{"--no-raw", "FLUSHDB", NULL}, {NULL, 0}, S("OK\n")},
    {{"--no-raw", "DBSIZE", NULL}, {NULL, 0}, S("(integer) 0\n")},
};

#undef S

#endif /* WEFT_TEST_KV_REPLIES_H */
