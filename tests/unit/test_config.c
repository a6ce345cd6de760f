/* test_config.c -- the settings table: defaults, every type's accepted and
 * rejected values, layering and precedence, file errors, redaction, and that
 * the example file and the docs match the table.
 *
 * The loader in src/daemon/config_load.c and the file reader it uses
 * (src/common/secretfile.c) are compiled into this test so the file-reading
 * and permission paths are tested too; they need only libc and hms_core.
 * HMS_CONFIG_REGENERATE=1 rewrites the generated files instead of comparing
 * them. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/config_int.h"
#include "hms_check.h"
#include "../../src/common/secretfile.c"
#include "../../src/daemon/config_load.c"

#define EXAMPLE_PATH HMS_TEST_DATA "/../../deploy/hms-sync.ini.example"
#define MARKDOWN_PATH HMS_TEST_DATA "/../../docs/configuration.md"

static hms_config_t cfg;
static hms_err_t err;

static void setup(void)
{
    ck_assert_int_eq(hms_config_init(&cfg), HMS_OK);
    err.msg[0] = '\0';
}

static void teardown(void)
{
    hms_config_free(&cfg);
}

/* Sets one value as if from flag --name; returns the status. */
static hms_status_t set_flag(const char *name, const char *value)
{
    return hms_config_set(&cfg, name, value, HMS_CONFIG_FROM_FLAG, NULL, 0, &err);
}

#define ACCEPT(name, value) ck_assert_msg(set_flag(name, value) == HMS_OK, "%s", err.msg)
#define REJECT(name, value)                                                                        \
    ck_assert_msg(set_flag(name, value) == HMS_ERR_CONFIG, "%s=%s accepted", name, value)

START_TEST(defaults)
{
    ck_assert_ptr_null(cfg.pg);
    ck_assert_ptr_null(cfg.amqp);
    ck_assert_ptr_null(cfg.config);
    ck_assert_str_eq(cfg.slot, "hms_sync");
    ck_assert_str_eq(cfg.publication, "hms_sync_incidents");
    ck_assert_str_eq(cfg.exchange, "hms.incidents");
    ck_assert_int_eq(cfg.window, 1000);
    ck_assert_int_eq(cfg.feedback_interval_ms, 10000);
    ck_assert_int_eq(cfg.slot_wait_ms, 30000);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 10000);
    ck_assert_int_eq(cfg.heartbeat_ms, 30000);
    ck_assert_int_eq(cfg.connect_timeout_ms, 10000);
    ck_assert_int_eq(cfg.retry_min_ms, 500);
    ck_assert_int_eq(cfg.retry_max_ms, 30000);
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_INFO);
    ck_assert_int_eq(cfg.log_format, HMS_CONFIG_LOG_LOGFMT);
    ck_assert_int_eq(cfg.sink, HMS_CONFIG_SINK_AMQP);
    ck_assert_int_eq(cfg.source[hms_config_setting_index("window")].origin,
                     HMS_CONFIG_FROM_DEFAULT);
}
END_TEST

START_TEST(integers)
{
    ACCEPT("window", "1");
    ACCEPT("window", "65535");
    ck_assert_int_eq(cfg.window, 65535);
    REJECT("window", "0");
    REJECT("window", "65536");
    REJECT("window", "-1");
    REJECT("window", "1.5");
    REJECT("window", " 5");
    REJECT("window", "");
    REJECT("window", "99999999999999999999999");
    ck_assert_int_eq(cfg.window, 65535); /* unchanged by rejects */
    ck_assert_int_eq(
        hms_config_set(&cfg, "window", "abc", HMS_CONFIG_FROM_FILE, "/etc/hms-sync.ini", 12, &err),
        HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: window: \"abc\" from /etc/hms-sync.ini:12 is not an "
                              "integer (allowed: 1..65535)");
    REJECT("window", "70000");
    ck_assert_str_eq(err.msg, "config: window: \"70000\" from flag --window is out of range "
                              "(allowed: 1..65535)");
}
END_TEST

START_TEST(durations)
{
    ACCEPT("feedback_interval", "500ms");
    ck_assert_int_eq(cfg.feedback_interval_ms, 500);
    ACCEPT("feedback_interval", "2m");
    ck_assert_int_eq(cfg.feedback_interval_ms, 120000);
    ACCEPT("feedback_interval", "1h");
    ck_assert_int_eq(cfg.feedback_interval_ms, 3600000);
    ACCEPT("feedback_interval", "5");
    ck_assert_int_eq(cfg.feedback_interval_ms, 5000);
    ACCEPT("feedback_interval", "100ms");
    REJECT("feedback_interval", "99ms");
    REJECT("feedback_interval", "61m");
    REJECT("feedback_interval", "10 s");
    REJECT("feedback_interval", "s");
    REJECT("feedback_interval", "10d");
    REJECT("feedback_interval", "-5s");
    REJECT("feedback_interval", "99999999999999999999h");
    /* Found by tests/fuzz/fuzz_config.c: 13 digits pass the digit cap and the
     * hours multiply overflowed int64. */
    REJECT("feedback_interval", "9999999999999h");
    REJECT("shutdown_timeout", "9223372036855m");
    ACCEPT("slot_wait", "0");
    ck_assert_int_eq(cfg.slot_wait_ms, 0);
    ACCEPT("heartbeat", "0s");
    REJECT("connect_timeout", "999ms");
    ACCEPT("shutdown_timeout", "10m");
    REJECT("shutdown_timeout", "601s");
    ck_assert_str_eq(err.msg, "config: shutdown_timeout: \"601s\" from flag --shutdown-timeout "
                              "is out of range (allowed: 0s..10m, as 500ms, 10s, 2m, 1h; a bare "
                              "number is seconds)");
    ck_assert_int_eq(hms_config_set(&cfg, "slot_wait", "soon", HMS_CONFIG_FROM_ENV, NULL, 0, &err),
                     HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: slot_wait: \"soon\" from env HMS_SYNC_SLOT_WAIT is not a "
                              "duration (allowed: 0s..1h, as 500ms, 10s, 2m, 1h; a bare number "
                              "is seconds)");
}
END_TEST

START_TEST(enums)
{
    ACCEPT("log_level", "debug");
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_DEBUG);
    ACCEPT("log_level", "error");
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_ERROR);
    ACCEPT("log_format", "json");
    ck_assert_int_eq(cfg.log_format, HMS_CONFIG_LOG_JSON);
    ACCEPT("sink", "discard");
    ck_assert_int_eq(cfg.sink, HMS_CONFIG_SINK_DISCARD);
    REJECT("log_level", "INFO");
    REJECT("log_level", "verbose");
    ck_assert_str_eq(err.msg, "config: log_level: \"verbose\" from flag --log-level is not one "
                              "of the choices (allowed: debug|info|warn|error)");
    REJECT("sink", "kafka");
}
END_TEST

START_TEST(names)
{
    char long_name[300];
    ACCEPT("slot", "my_slot_2");
    ck_assert_str_eq(cfg.slot, "my_slot_2");
    memset(long_name, 'a', 63);
    long_name[63] = '\0';
    ACCEPT("slot", long_name);
    long_name[63] = 'a';
    long_name[64] = '\0';
    REJECT("slot", long_name);
    REJECT("slot", "MySlot");
    REJECT("slot", "a-b");
    REJECT("publication", "pub lication");
    ck_assert_str_eq(err.msg, "config: publication: \"pub lication\" from flag --publication is "
                              "not a valid name (allowed: 1..63 characters of a-z, 0-9, _)");
    ACCEPT("exchange", "HMS.incidents:v1-x_y");
    REJECT("exchange", "a b");
    REJECT("exchange", "a/b");
    memset(long_name, 'x', 255);
    long_name[255] = '\0';
    ACCEPT("exchange", long_name);
    long_name[255] = 'x';
    long_name[256] = '\0';
    REJECT("exchange", long_name);
    ck_assert_int_le(strlen(err.msg), HMS_ERR_MSG_MAX - 1);
    ck_assert_ptr_nonnull(strstr(err.msg, "...\" from flag --exchange"));
}
END_TEST

START_TEST(conninfo)
{
    ACCEPT("pg", "host=db dbname=ehr");
    ck_assert_str_eq(cfg.pg, "host=db dbname=ehr");
    ACCEPT("pg", "host = db  password='a b\\'c' port=5432");
    ACCEPT("pg", "postgresql://u:p@h:5432/db?sslmode=require");
    ACCEPT("pg", "postgres://h/db");
    ACCEPT("pg", "dbname=x sslkey=/a\\ b");
    REJECT("pg", "host='db");
    REJECT("pg", "Host=db");
    REJECT("pg", "=db");
    ck_assert_int_eq(hms_config_set(&cfg, "pg", "host=db password=s3cret extra",
                                    HMS_CONFIG_FROM_ENV, NULL, 0, &err),
                     HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: pg: value from env HMS_SYNC_PG is not a connection "
                              "string: expected key=value at character 25 (allowed: libpq "
                              "key=value pairs or a postgresql:// URI)");
    ck_assert_ptr_null(strstr(err.msg, "s3cret"));
    ck_assert_str_eq(cfg.pg, "dbname=x sslkey=/a\\ b");
}
END_TEST

START_TEST(amqp_urls)
{
    ACCEPT("amqp", "amqp://guest:guest@localhost:5672/");
    ACCEPT("amqp", "amqps://mq.example.org");
    ACCEPT("amqp", "amqp://[::1]:5672/vhost");
    ACCEPT("amqp", "amqp://u:p%40ss@h/%2f");
    REJECT("amqp", "http://h");
    ck_assert_str_eq(err.msg, "config: amqp: value from flag --amqp is not an AMQP URL: the "
                              "scheme must be amqp:// or amqps:// (allowed: "
                              "amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST], or amqps://, one "
                              "per node, comma-separated)");
    REJECT("amqp", "amqp://");
    REJECT("amqp", "amqp://u:p@/");
    REJECT("amqp", "amqp://h:0");
    REJECT("amqp", "amqp://h:70000");
    REJECT("amqp", "amqp://[::1");
    REJECT("amqp", "amqp://h:");
    REJECT("amqp", "AMQP://h");
    REJECT("amqp", "amqp://u:hunter2@h:abc/");
    ck_assert_ptr_nonnull(strstr(err.msg, "the port is not a number 1..65535"));
    ck_assert_ptr_null(strstr(err.msg, "hunter2"));
}
END_TEST

/* A cluster: its nodes, comma-separated, each checked on its own. */
START_TEST(amqp_node_lists)
{
    ACCEPT("amqp", "amqp://u:p@h1:5672/v,amqp://u:p@h2:5672/v,amqp://u:p@h3:5672/v");
    ck_assert_str_eq(cfg.amqp, "amqp://u:p@h1:5672/v,amqp://u:p@h2:5672/v,amqp://u:p@h3:5672/v");
    ACCEPT("amqp", "amqps://h1, amqps://h2");
    ACCEPT("amqp", "amqp://u:a%2Cb@h1,amqp://h2");
    REJECT("amqp", "amqp://u:hunter2@h1,amqp://u:hunter2@h2:99999/");
    ck_assert_str_eq(err.msg, "config: amqp: value from flag --amqp is not an AMQP URL: node 2 "
                              "of 2: the port is not a number 1..65535 (allowed: "
                              "amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST], or amqps://, one "
                              "per node, comma-separated)");
    REJECT("amqp", "amqp://h1,,amqp://h3");
    ck_assert_ptr_nonnull(strstr(err.msg, "node 2 of 3 is empty"));
    REJECT("amqp", "amqp://h1,");
    ck_assert_ptr_nonnull(strstr(err.msg, "node 2 of 2 is empty"));
    REJECT("amqp", "amqp://h1,amqps://h2");
    ck_assert_ptr_nonnull(strstr(err.msg, "node 2 of 2 uses amqps:// and node 1 amqp://"));
    REJECT("amqp", "amqp://h1,h2");
    ck_assert_ptr_nonnull(strstr(err.msg, "node 2 of 2: the scheme must be amqp:// or amqps://"));
    REJECT("amqp", "amqp://a,amqp://b,amqp://c,amqp://d,amqp://e,amqp://f,amqp://g,amqp://h,"
                   "amqp://i,amqp://j,amqp://k,amqp://l,amqp://m,amqp://n,amqp://o,amqp://p,"
                   "amqp://q");
    ck_assert_ptr_nonnull(strstr(err.msg, "lists 17 nodes; at most 16 are allowed"));
}
END_TEST

static void check_redact(const char *in, const char *want)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_config_redact(in, &b), HMS_OK);
    ck_assert_str_eq(b.data, want);
    hms_buf_free(&b);
}

START_TEST(redaction)
{
    check_redact("host=h password=s3cret dbname=d", "host=h password=*** dbname=d");
    check_redact("password = 'a b\\' c' host=h", "password = *** host=h");
    check_redact("host=h password=x\\ y", "host=h password=***");
    check_redact("host=h dbname=d", "host=h dbname=d");
    check_redact("postgresql://u:s3cret@h:5432/db?sslmode=require&password=x2#f",
                 "postgresql://u:***@h:5432/db?sslmode=require&password=***#f");
    check_redact("postgres://u@h/db", "postgres://u@h/db");
    check_redact("postgresql://u:p@h1,h2/db", "postgresql://u:***@h1,h2/db");
    check_redact("amqps://u:p%40ss@h/v", "amqps://u:***@h/v");
    check_redact("amqp://h", "amqp://h");
    check_redact("amqp://u:@h", "amqp://u:***@h");
    check_redact("amqp://u:p1@h1/v,amqp://h2/v, amqps://u:p3@h3",
                 "amqp://u:***@h1/v,amqp://h2/v,amqps://u:***@h3");
    check_redact("host='unterminated password=x", "***");
    /* A comma in a password splits it into a node without a scheme. */
    check_redact("amqps://hms:pa,40s@mq:5671/v", "***");
    check_redact("amqp://u:p@h1,", "***");
}
END_TEST

START_TEST(print_config)
{
    hms_buf_t b = HMS_BUF_INIT;
    ACCEPT("pg", "host=h password=s3cret dbname=d");
    ACCEPT("amqp", "amqp://u:hunter2@h:5672/");
    ACCEPT("retry_min", "1500ms");
    ck_assert_int_eq(hms_config_render(&cfg, HMS_CMD_RUN, &b), HMS_OK);
    ck_assert_ptr_null(strstr(b.data, "s3cret"));
    ck_assert_ptr_null(strstr(b.data, "hunter2"));
    ck_assert_ptr_nonnull(strstr(b.data, "pg = host=h password=*** dbname=d\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "amqp = amqp://u:***@h:5672/\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "\nwindow = 1000\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "\nretry_min = 1500ms\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "\nfeedback_interval = 10s\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "\nlog_level = info\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "\n# config is not set\n"));
    hms_buf_reset(&b);
    /* status does not use amqp, so it does not print it. */
    ck_assert_int_eq(hms_config_render(&cfg, HMS_CMD_STATUS, &b), HMS_OK);
    ck_assert_ptr_null(strstr(b.data, "amqp ="));
    ck_assert_ptr_nonnull(strstr(b.data, "slot = hms_sync\n"));
    hms_buf_free(&b);
}
END_TEST

static hms_status_t apply_text(const char *text, unsigned mode)
{
    return hms_config_apply_file(&cfg, text, "/x.ini", mode, &err);
}

START_TEST(file_ok)
{
    ck_assert_int_eq(apply_text("# comment\n; another\n\n  window = 5 ; inline\r\n"
                                "slot=s1\nlog_level: debug\n",
                                0600),
                     HMS_OK);
    ck_assert_int_eq(cfg.window, 5);
    ck_assert_str_eq(cfg.slot, "s1");
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_DEBUG);
    ck_assert_str_eq(cfg.config, "/x.ini");
    int i = hms_config_setting_index("window");
    ck_assert_int_eq(cfg.source[i].origin, HMS_CONFIG_FROM_FILE);
    ck_assert_int_eq(cfg.source[i].line, 4);
    ck_assert_int_eq(apply_text("", 0644), HMS_OK); /* an empty file is fine */
}
END_TEST

START_TEST(file_errors)
{
    ck_assert_int_eq(apply_text("# c\n\nslot = ok\nwindow = abc\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: window: \"abc\" from /x.ini:4 is not an integer "
                              "(allowed: 1..65535)");
    ck_assert_int_eq(apply_text("slot = a\nwndow = 5\n", 0600), HMS_ERR_CONFIG);
    ck_assert_msg(strncmp(err.msg,
                          "config: /x.ini:2: unknown setting \"wndow\" (allowed: pg, "
                          "amqp, slot,",
                          62) == 0,
                  "%s", err.msg);
    ck_assert_ptr_null(strstr(err.msg, "config,"));
    ck_assert_int_eq(apply_text("slot = a\n\ngarbage\nwindow = x\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: /x.ini:3: expected a \"name = value\" line or a # comment");
    ck_assert_int_eq(apply_text("window = 5\nslot = a\nwindow = 6\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: window: set twice in /x.ini (lines 1 and 3)");
    ck_assert_int_eq(apply_text("[main]\nwindow = 5\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: /x.ini:2: window is in section [main]; the config file "
                              "has no sections");
    ck_assert_int_eq(apply_text("config = /etc/other.ini\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: config: cannot be set in a config file (/x.ini:1); use "
                              "--config or HMS_SYNC_CONFIG");
    ck_assert_int_eq(apply_text("slot =\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: slot: \"\" from /x.ini:1 is empty (allowed: 1..63 "
                              "characters of a-z, 0-9, _)");

    char text[400];
    memset(text, 0, sizeof(text));
    strcpy(text, "window = 5\nexchange = ");
    memset(text + strlen(text), 'x', 250);
    strcat(text, "\n");
    ck_assert_int_eq(apply_text(text, 0600), HMS_ERR_CONFIG);
    ck_assert_msg(strncmp(err.msg, "config: /x.ini:2: line is longer than", 37) == 0, "%s",
                  err.msg);
}
END_TEST

START_TEST(file_secret_mode)
{
    const char *with_pw = "pg = host=h password=s3cret\n";
    ck_assert_int_eq(apply_text(with_pw, 0100644), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: /x.ini holds a password but is readable by group or "
                              "others (mode 0644); run chmod 600 /x.ini");
    ck_assert_int_eq(apply_text("amqp = amqp://u:p@h\n", 0640), HMS_ERR_CONFIG);
    ck_assert_int_eq(apply_text("pg = postgresql://u:p@h/db\n", 0604), HMS_ERR_CONFIG);
    ck_assert_int_eq(apply_text(with_pw, 0600), HMS_OK);
    ck_assert_int_eq(apply_text(with_pw, 0400), HMS_OK);
    /* No password: nothing secret to protect. */
    ck_assert_int_eq(apply_text("pg = host=h user=u\namqp = amqp://u@h\n", 0644), HMS_OK);
}
END_TEST

START_TEST(environment)
{
    char *envp[] = {"PATH=/bin",         "HMS_SYNC_WINDOW=42", "HMS_SYNC_LOG_LEVEL=warn",
                    "HMS_SYNC_SLOT=",    "HMS_SYNC_window=7",  "HMS_SYNC_CONFIG=/nope.ini",
                    "HMS_SYNC_WINDWO=1", "HMS_SYNCX=1",        NULL};
    ck_assert_int_eq(hms_config_apply_env(&cfg, envp, &err), HMS_OK);
    ck_assert_int_eq(cfg.window, 42);
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_WARN);
    ck_assert_str_eq(cfg.slot, "hms_sync"); /* empty = unset */
    ck_assert_ptr_null(cfg.config);         /* only hms_config_find_file reads it */
    ck_assert_int_eq(cfg.source[hms_config_setting_index("window")].origin, HMS_CONFIG_FROM_ENV);

    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_config_env_warnings(envp, &b), HMS_OK);
    ck_assert_str_eq(
        b.data, "warning: config: ignoring unknown variables HMS_SYNC_window, HMS_SYNC_WINDWO\n");
    hms_buf_free(&b);
    char *clean[] = {"HMS_SYNC_PG=host=h", NULL};
    ck_assert_int_eq(hms_config_env_warnings(clean, &b), HMS_OK);
    ck_assert_uint_eq(b.len, 0);
    hms_buf_free(&b);

    char *bad[] = {"HMS_SYNC_HEARTBEAT=often", NULL};
    ck_assert_int_eq(hms_config_apply_env(&cfg, bad, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "from env HMS_SYNC_HEARTBEAT is not a duration"));
}
END_TEST

static hms_status_t argv_run(unsigned cmd, hms_cli_flags_t *flags, char **argv)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    return hms_config_apply_argv(&cfg, cmd, argc, argv, flags, &err);
}

START_TEST(command_line)
{
    hms_cli_flags_t f;
    char *a1[] = {"--window=5", "--log-level",    "debug", "--slot_wait",
                  "1m",         "--check-config", NULL};
    ck_assert_msg(argv_run(HMS_CMD_RUN, &f, a1) == HMS_OK, "%s", err.msg);
    ck_assert_int_eq(cfg.window, 5);
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_DEBUG);
    ck_assert_int_eq(cfg.slot_wait_ms, 60000);
    ck_assert(f.check_config);
    ck_assert(!f.print_config);

    char *a2[] = {"--json", "-h", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_STATUS, &f, a2), HMS_OK);
    ck_assert(f.json && f.help);
    char *a3[] = {"--subscriber", "--pg", "host=h", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_MIGRATE, &f, a3), HMS_OK);
    ck_assert(f.subscriber);

    char *b1[] = {"--amqp", "amqp://h", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_STATUS, &f, b1), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: option --amqp is not accepted by status (see hms-sync "
                              "status --help)");
    char *b2[] = {"--windw", "5", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b2), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: unknown option --windw for run (see hms-sync run --help)");
    char *b3[] = {"--window", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b3), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: window: option --window needs a value (allowed: 1..65535)");
    char *b4[] = {"extra", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b4), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: unexpected argument \"extra\" (see hms-sync run --help)");
    char *b5[] = {"--json", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b5), HMS_ERR_CONFIG);
    char *b6[] = {"--check-config=yes", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b6), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: option --check-config takes no value");
    char *b7[] = {"--window", "0", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b7), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: window: \"0\" from flag --window is out of range "
                              "(allowed: 1..65535)");
    char *b8[] = {"-x", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b8), HMS_ERR_CONFIG);
}
END_TEST

/* snapshot's options: the settings it shares (slot, queue, amqp), and the
 * command-line-only ones, two of which take a value. */
START_TEST(snapshot_options)
{
    hms_cli_flags_t f;
    char *a1[] = {"--slot", "s1",     "--where",  "region = 'north'", "--queue",
                  "q.one",  "--amqp", "amqp://h", "--wait",           NULL};
    ck_assert_msg(argv_run(HMS_CMD_SNAPSHOT, &f, a1) == HMS_OK, "%s", err.msg);
    ck_assert_str_eq(cfg.slot, "s1");
    ck_assert_str_eq(cfg.queue, "q.one");
    ck_assert_str_eq(f.where, "region = 'north'");
    ck_assert(f.wait && !f.list);
    ck_assert_ptr_null(f.cancel);
    char *a2[] = {"--cancel=snap-1", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, a2), HMS_OK);
    ck_assert_str_eq(f.cancel, "snap-1");
    ck_assert_ptr_null(f.where);
    char *a3[] = {"--list", "--json", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, a3), HMS_OK);
    ck_assert(f.list && f.json);
    /* No value, an empty one, or the wrong subcommand. */
    char *b1[] = {"--where", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, b1), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: option --where needs a value (SQL)");
    char *b2[] = {"--cancel=", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, b2), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: option --cancel needs a value (ID)");
    char *b3[] = {"--where", "true", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, b3), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: option --where is not accepted by run (see hms-sync run "
                              "--help)");
    char *b4[] = {"--wait=yes", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, b4), HMS_ERR_CONFIG);
    char *b5[] = {"--window", "5", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_SNAPSHOT, &f, b5), HMS_ERR_CONFIG);
    /* The AMQP connection settings are checked as for run. */
    ck_assert_int_eq(hms_config_set(&cfg, "pg", "host=h", HMS_CONFIG_FROM_FLAG, NULL, 0, &err),
                     HMS_OK);
    ck_assert_int_eq(
        hms_config_set(&cfg, "amqp_cacert", "/ca.pem", HMS_CONFIG_FROM_FLAG, NULL, 0, &err),
        HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_SNAPSHOT, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "amqp_cacert: set, but the amqp URL is amqp://"));
}
END_TEST

START_TEST(find_file)
{
    hms_cli_flags_t f;
    const char *path;
    char *envp[] = {"HMS_SYNC_CONFIG=/from/env.ini", NULL};
    char *a1[] = {"--config", "/a.ini", "--window", "5", "--config=/b.ini", NULL};
    ck_assert_int_eq(hms_config_find_file(HMS_CMD_RUN, 5, a1, envp, &path, &f, &err), HMS_OK);
    ck_assert_str_eq(path, "/b.ini");
    ck_assert_int_eq(cfg.window, 1000); /* finding applies nothing */
    char *a2[] = {"--window", "5", NULL};
    ck_assert_int_eq(hms_config_find_file(HMS_CMD_RUN, 2, a2, envp, &path, &f, &err), HMS_OK);
    ck_assert_str_eq(path, "/from/env.ini");
    ck_assert_int_eq(hms_config_find_file(HMS_CMD_RUN, 2, a2, NULL, &path, &f, &err), HMS_OK);
    ck_assert_ptr_null(path);
}
END_TEST

START_TEST(checks)
{
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: pg: not set; run needs it (use --pg, HMS_SYNC_PG or "
                              "\"pg = ...\" in the config file)");
    ACCEPT("pg", "host=h");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_STATUS, &err), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "config: amqp: not set; run needs it"));
    ACCEPT("sink", "discard");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_CONSUME, &err), HMS_ERR_CONFIG);

    ACCEPT("retry_min", "30s"); /* equal is fine */
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(apply_text("\nretry_min = 40s\n", 0600), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: retry_min: 40s from /x.ini:2 is greater than retry_max "
                              "30s from default (allowed: retry_min <= retry_max)");
}
END_TEST

/* ---- ranges ---------------------------------------------------------- */

/* Every number's bounds: accepted at each bound, refused one step past it
 * (NULL: nothing below 0 parses, so no value is one step past it). */
typedef struct {
    const char *name;
    const char *lo, *below, *hi, *above;
    const char *allowed;
} bounds_t;

#define DURATIONS ", as 500ms, 10s, 2m, 1h; a bare number is seconds"

static const bounds_t bounds[] = {
    {"window", "1", "0", "65535", "65536", "1..65535"},
    {"snapshot_chunk", "1", "0", "100000", "100001", "1..100000"},
    {"max_event_bytes", "4096", "4095", "536870912", "536870913", "4096..536870912"},
    {"feedback_interval", "100ms", "99ms", "1h", "3600001ms", "100ms..1h" DURATIONS},
    {"replication_timeout", "1s", "999ms", "1h", "3600001ms", "0 (off) or 1s..1h" DURATIONS},
    {"slot_wait", "0", NULL, "1h", "3600001ms", "0s..1h" DURATIONS},
    {"shutdown_timeout", "0", NULL, "10m", "600001ms", "0s..10m" DURATIONS},
    {"heartbeat", "1s", "999ms", "1h", "3601s",
     "0 (off) or 1s..1h in whole seconds, as 10s, 2m, 1h; a bare number is seconds"},
    {"connect_timeout", "1s", "999ms", "10m", "600001ms", "1s..10m" DURATIONS},
    {"retry_min", "10ms", "9ms", "1h", "3600001ms", "10ms..1h" DURATIONS},
    {"retry_max", "10ms", "9ms", "1h", "3600001ms", "10ms..1h" DURATIONS},
    {"prefetch", "1", "0", "65535", "65536", "1..65535"},
    {"batch", "1", "0", "65535", "65536", "1..65535"},
    {"partitions", "0", NULL, "256", "257", "0..256"},
    {"partition", "0", NULL, "256", "257", "0..256"},
    {"batch_linger", "0", NULL, "1s", "1001ms", "0s..1s" DURATIONS},
    {"delivery_limit", "1", "0", "1000", "1001", "1..1000"},
};

static void refuse_out_of_range(const bounds_t *b, const char *value)
{
    char opt[64], want[400];
    hms_config_option_name(b->name, opt, sizeof(opt));
    REJECT(b->name, value);
    snprintf(want, sizeof(want), "config: %s: \"%s\" from flag --%s is out of range (allowed: %s)",
             b->name, value, opt, b->allowed);
    ck_assert_str_eq(err.msg, want);
}

START_TEST(ranges)
{
    for (size_t k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++) {
        const bounds_t *b = &bounds[k];
        ACCEPT(b->name, b->lo);
        ACCEPT(b->name, b->hi);
        if (b->below != NULL)
            refuse_out_of_range(b, b->below);
        refuse_out_of_range(b, b->above);
    }
    /* Every number in the table has its bounds tested above. */
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (s->type != HMS_CONFIG_T_INT && s->type != HMS_CONFIG_T_DURATION)
            continue;
        bool listed = false;
        for (size_t k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++)
            listed = listed || strcmp(bounds[k].name, s->name) == 0;
        ck_assert_msg(listed, "%s has no bounds test", s->name);
        ck_assert_msg(s->min < s->max, "%s: empty range", s->name);
    }
    /* The message names where the value came from, whichever layer. */
    ck_assert_int_eq(hms_config_set(&cfg, "retry_min", "0", HMS_CONFIG_FROM_ENV, NULL, 0, &err),
                     HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: retry_min: \"0\" from env HMS_SYNC_RETRY_MIN is out of "
                              "range (allowed: 10ms..1h" DURATIONS ")");
    ck_assert_int_eq(apply_text("\n\nheartbeat = 2h\n", 0600), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: heartbeat: \"2h\" from /x.ini:3 is out of range (allowed: "
                              "0 (off) or 1s..1h in whole seconds, as 10s, 2m, 1h; a bare number "
                              "is seconds)");
}
END_TEST

/* 0 turns heartbeats and the replication timeout off; AMQP heartbeats are
 * whole seconds, so a fraction would be cut without a word. */
START_TEST(zero_and_seconds)
{
    ACCEPT("heartbeat", "0");
    ck_assert_int_eq(cfg.heartbeat_ms, 0);
    ACCEPT("replication_timeout", "0s");
    ck_assert_int_eq(cfg.replication_timeout_ms, 0);
    ACCEPT("heartbeat", "2m");
    REJECT("heartbeat", "1500ms");
    ck_assert_str_eq(err.msg, "config: heartbeat: \"1500ms\" from flag --heartbeat is not a whole "
                              "number of seconds (allowed: 0 (off) or 1s..1h in whole seconds, "
                              "as 10s, 2m, 1h; a bare number is seconds)");
    ck_assert_int_eq(cfg.heartbeat_ms, 120000);
    REJECT("retry_min", "0"); /* a backoff from 0 spins */
    REJECT("window", "0");
}
END_TEST

/* Ranges that depend on another setting: one line naming both. */
START_TEST(cross_ranges)
{
    ACCEPT("pg", "host=h");
    ACCEPT("sink", "discard");
    ACCEPT("retry_min", "10ms");
    ACCEPT("retry_max", "10ms");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ACCEPT("retry_max", "1s");
    ACCEPT("retry_min", "1001ms");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: retry_min: 1001ms from flag --retry-min is greater than "
                              "retry_max 1s from flag --retry-max (allowed: retry_min <= "
                              "retry_max)");
    ACCEPT("retry_min", "1s");

    /* feedback_interval 10s (default): replication_timeout must pass 20s. */
    ACCEPT("replication_timeout", "20001ms");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ACCEPT("replication_timeout", "20s");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: replication_timeout: 20s from flag --replication-timeout "
                              "is not more than twice feedback_interval 10s from default "
                              "(allowed: 0 (off) or more than twice feedback_interval)");
    ACCEPT("replication_timeout", "0");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);

    /* The fanout exchange is bound to the events' exchange: not itself,
     * not the rejected exchange beside it. */
    ACCEPT("fanout_exchange", "incidents");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ACCEPT("fanout_exchange", "hms.incidents.rejected");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: fanout_exchange: \"hms.incidents.rejected\" is the events' "
                              "exchange or its rejected exchange (allowed: another name, e.g. "
                              "incidents)");
    ACCEPT("fanout_exchange", "hms.incidents");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ACCEPT("fanout_exchange", "hms.incidents.rejected2");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);

    /* A partition is one of the queue's partitions, or 0 for all. */
    ACCEPT("partitions", "4");
    ACCEPT("partition", "4");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ACCEPT("partition", "5");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: partition: 5 is not one of the 4 partitions (allowed: 0 "
                              "for all, or 1..partitions)");
    ACCEPT("partition", "0");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(apply_text("feedback_interval = 1s\nreplication_timeout = 2s\n", 0600),
                     HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: replication_timeout: 2s from /x.ini:2 is not more than "
                              "twice feedback_interval 1s from /x.ini:1 (allowed: 0 (off) or "
                              "more than twice feedback_interval)");
}
END_TEST

/* ---- the metrics address --------------------------------------------- */

START_TEST(listen_addresses)
{
    ck_assert_ptr_null(cfg.metrics);
    ACCEPT("metrics", "127.0.0.1:9187");
    ACCEPT("metrics", "[::1]:9187");
    ck_assert_str_eq(cfg.metrics, "[::1]:9187");
    ACCEPT("metrics", "localhost:9187");
    ACCEPT("metrics", "[::]:1");
    REJECT("metrics", "::1:9187");
    ck_assert_str_eq(err.msg, "config: metrics: \"::1:9187\" from flag --metrics is not "
                              "HOST:PORT or [IPV6]:PORT: an IPv6 address needs brackets, as in "
                              "[::1]:9187 (allowed: HOST:PORT or [IPV6]:PORT, e.g. "
                              "127.0.0.1:9187, [::1]:9187 or localhost:9187)");
    REJECT("metrics", "[::1]");
    ck_assert_ptr_nonnull(strstr(err.msg, "is not HOST:PORT or [IPV6]:PORT: no port ("));
    REJECT("metrics", "localhost:0");
    ck_assert_ptr_nonnull(strstr(err.msg, ": the port is not a number 1..65535 ("));
    REJECT("metrics", "localhost:65536");
    REJECT("metrics", ":9187");
    ck_assert_ptr_nonnull(strstr(err.msg, ": the host is empty ("));
    ck_assert_str_eq(cfg.metrics, "[::]:1"); /* unchanged by the refusals */
}
END_TEST

/* ---- SIGHUP and the log file ------------------------------------------ */

START_TEST(reloadable)
{
    const char *reload[] = {"log_level", "log_format", "log_file"};
    int n = 0;
    for (int i = 0; i < hms_config_setting_count(); i++) {
        bool want = false;
        for (size_t k = 0; k < sizeof(reload) / sizeof(reload[0]); k++)
            want = want || strcmp(hms_config_setting_name(i), reload[k]) == 0;
        ck_assert_msg(hms_config_setting_reloadable(i) == want, "%s", hms_config_setting_name(i));
        n += want;
    }
    ck_assert_int_eq(n, 3);
    ck_assert(!hms_config_setting_reloadable(-1));
    ck_assert(!hms_config_setting_reloadable(hms_config_setting_count()));
    ck_assert_ptr_null(hms_config_setting_name(hms_config_setting_count()));

    /* log_file: unset is stderr; only the services (run, consume) take it,
     * so a one-shot command's errors stay on its terminal. */
    ck_assert_ptr_null(cfg.log_file);
    hms_cli_flags_t f;
    char *a[] = {"--log-file", "/var/log/hms.log", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_STATUS, &f, a), HMS_ERR_CONFIG);
    ck_assert_int_eq(argv_run(HMS_CMD_MIGRATE, &f, a), HMS_ERR_CONFIG);
    ck_assert_int_eq(argv_run(HMS_CMD_CONSUME, &f, a), HMS_OK);
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, a), HMS_OK);
    ck_assert_str_eq(cfg.log_file, "/var/log/hms.log");
}
END_TEST

/* ---- settings a subcommand would accept and ignore --------------------- */

/* Narrowed: an option the subcommand has no use for is refused like any
 * unknown one (main exits 2 on HMS_ERR_CONFIG); a shared config file or
 * the environment may still carry it. */
START_TEST(refused_where_unused)
{
    static const struct {
        unsigned cmd;
        const char *option, *value;
    } refused[] = {
        {HMS_CMD_CONSUME, "--shutdown-timeout", "5s"},
        {HMS_CMD_STATUS, "--shutdown-timeout", "5s"},
        {HMS_CMD_MIGRATE, "--shutdown-timeout", "5s"},
    };
    hms_cli_flags_t f;
    char want[200];
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        char *argv[] = {(char *)refused[k].option, (char *)refused[k].value, NULL};
        const char *cmd = hms_config_cmd_name(refused[k].cmd);
        ck_assert_int_eq(argv_run(refused[k].cmd, &f, argv), HMS_ERR_CONFIG);
        snprintf(want, sizeof(want),
                 "config: option %s is not accepted by %s (see hms-sync %s --help)",
                 refused[k].option, cmd, cmd);
        ck_assert_str_eq(err.msg, want);
    }
    char *run[] = {"--shutdown-timeout", "5s", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, run), HMS_OK);
    char *envp[] = {"HMS_SYNC_SHUTDOWN_TIMEOUT=7s", NULL};
    ck_assert_int_eq(hms_config_apply_env(&cfg, envp, &err), HMS_OK);
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_config_render_usage(HMS_CMD_CONSUME, &b), HMS_OK);
    ck_assert_ptr_null(strstr(b.data, "--shutdown-timeout"));
    hms_buf_free(&b);
}
END_TEST

/* ---- the loader with real files ---------------------------------------- */

static char tmpdir[64];

static const char *write_tmp(const char *name, const char *text, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

static void loader_setup(void)
{
    strcpy(tmpdir, "/tmp/hms-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    err.msg[0] = '\0';
    memset(&cfg, 0, sizeof(cfg));
}

/* Removes what the tests wrote into tmpdir (files and empty directories,
 * one level deep) and tmpdir itself. */
static void loader_teardown(void)
{
    char path[384];
    hms_config_free(&cfg);
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        if (unlink(path) != 0)
            rmdir(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(tmpdir);
}

static hms_status_t load(unsigned cmd, char **argv, char **envp, hms_cli_flags_t *f)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    hms_config_free(&cfg);
    return hms_config_load(&cfg, cmd, argc, argv, envp, f, &err);
}

START_TEST(precedence)
{
    hms_cli_flags_t f;
    const char *path = write_tmp("a.ini",
                                 "pg = host=file password=pw\nwindow = 5\nslot = from_file\n"
                                 "log_level = error\n",
                                 0600);
    char cfgarg[160];
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", path);
    char *env[] = {"HMS_SYNC_WINDOW=6", "HMS_SYNC_LOG_LEVEL=warn", NULL};
    char *argv[] = {cfgarg, "--window", "7", "--sink=discard", NULL};
    ck_assert_msg(load(HMS_CMD_RUN, argv, env, &f) == HMS_OK, "%s", err.msg);
    ck_assert_int_eq(cfg.window, 7);                      /* flag */
    ck_assert_int_eq(cfg.log_level, HMS_CONFIG_LOG_WARN); /* env */
    ck_assert_str_eq(cfg.slot, "from_file");              /* file */
    ck_assert_str_eq(cfg.exchange, "hms.incidents");      /* default */
    ck_assert_str_eq(cfg.config, path);

    char *argv2[] = {cfgarg, "--sink=discard", NULL};
    ck_assert_int_eq(load(HMS_CMD_RUN, argv2, env, &f), HMS_OK);
    ck_assert_int_eq(cfg.window, 6);
    char *noenv[] = {NULL};
    ck_assert_int_eq(load(HMS_CMD_RUN, argv2, noenv, &f), HMS_OK);
    ck_assert_int_eq(cfg.window, 5);

    /* The file named by the environment, when there is no --config. */
    char envcfg[160];
    snprintf(envcfg, sizeof(envcfg), "HMS_SYNC_CONFIG=%s", path);
    char *env2[] = {envcfg, NULL};
    char *argv3[] = {"--sink", "discard", NULL};
    ck_assert_int_eq(load(HMS_CMD_RUN, argv3, env2, &f), HMS_OK);
    ck_assert_int_eq(cfg.window, 5);
    ck_assert_str_eq(cfg.pg, "host=file password=pw");

    /* A missing required setting is reported after layering. */
    ck_assert_int_eq(load(HMS_CMD_RUN, argv3, noenv, &f), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "config: pg: not set"));
}
END_TEST

START_TEST(loader_file_errors)
{
    hms_cli_flags_t f;
    const char *path = write_tmp("a.ini", "pg = host=h password=s3cret\n", 0644);
    char p[160], want[512];
    snprintf(p, sizeof(p), "%s", path);
    char *argv[] = {"--config", p, NULL};
    char *noenv[] = {NULL};
    ck_assert_int_eq(load(HMS_CMD_STATUS, argv, noenv, &f), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want),
             "config: %s holds a password but is readable by group or others (mode 0644); run "
             "chmod 600 %s",
             p, p);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(chmod(p, 0600), 0);
    ck_assert_msg(load(HMS_CMD_STATUS, argv, noenv, &f) == HMS_OK, "%s", err.msg);

    write_tmp("a.ini", "window = 5\nwindow = nope\n", 0600);
    ck_assert_int_eq(load(HMS_CMD_STATUS, argv, noenv, &f), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want), "config: window: set twice in %s (lines 1 and 2)", p);
    ck_assert_str_eq(err.msg, want);

    /* --help wins over a broken file. */
    char *help[] = {"--config", p, "--help", NULL};
    ck_assert_int_eq(load(HMS_CMD_STATUS, help, noenv, &f), HMS_OK);
    ck_assert(f.help);

    char *missing[] = {"--config", "/nonexistent/hms.ini", NULL};
    ck_assert_int_eq(load(HMS_CMD_STATUS, missing, noenv, &f), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: config: cannot open /nonexistent/hms.ini: No such file "
                              "or directory");
    char *dir[] = {"--config", tmpdir, NULL};
    ck_assert_int_eq(load(HMS_CMD_STATUS, dir, noenv, &f), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "is not a regular file"));
}
END_TEST

/* run --check-config opens every file the settings name; each failure is
 * one line naming the setting, the file and the reason. */
START_TEST(open_files)
{
    char path[6][200], dir[100], want[512];
    const char *base[] = {"ca.pem", "cert.pem", "key.pem", "pw", "out.log"};
    for (int k = 0; k < 5; k++)
        snprintf(path[k], sizeof(path[k]), "%s", write_tmp(base[k], "text\n", 0600));
    snprintf(dir, sizeof(dir), "%s/sub", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(hms_config_init(&cfg), HMS_OK);
    ACCEPT("amqp_cacert", path[0]);
    ACCEPT("amqp_cert", path[1]);
    ACCEPT("amqp_key", path[2]);
    ACCEPT("amqp_password_file", path[3]);
    ACCEPT("log_file", path[4]);

    hms_config_file_t files[HMS_CONFIG_MAX_SETTINGS];
    ck_assert_int_eq(hms_config_files(&cfg, HMS_CMD_RUN, files, HMS_CONFIG_MAX_SETTINGS), 5);
    ck_assert_str_eq(files[0].setting, "amqp_cacert");
    ck_assert_str_eq(files[0].path, path[0]);
    ck_assert(!files[0].write);
    ck_assert_str_eq(files[4].setting, "log_file");
    ck_assert(files[4].write);
    /* status uses none of the amqp_* files, nor the log file. */
    ck_assert_int_eq(hms_config_files(&cfg, HMS_CMD_STATUS, files, HMS_CONFIG_MAX_SETTINGS), 0);
    ck_assert_msg(hms_config_open_files(&cfg, HMS_CMD_RUN, &err) == HMS_OK, "%s", err.msg);

    /* A file that is missing, a directory where a file belongs. */
    snprintf(path[5], sizeof(path[5]), "%s/missing.pem", tmpdir);
    ACCEPT("amqp_key", path[5]);
    ck_assert_int_eq(hms_config_open_files(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want), "config: amqp_key: cannot open %s: No such file or directory",
             path[5]);
    ck_assert_str_eq(err.msg, want);
    ACCEPT("amqp_key", path[2]);
    ACCEPT("amqp_cacert", dir);
    ck_assert_int_eq(hms_config_open_files(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want), "config: amqp_cacert: %s is not a regular file", dir);
    ck_assert_str_eq(err.msg, want);
    ACCEPT("amqp_cacert", path[0]);

    /* The log file: appended to when it exists, else created in a
     * directory that must exist; the check creates nothing. */
    snprintf(path[5], sizeof(path[5]), "%s/new.log", dir);
    ACCEPT("log_file", path[5]);
    ck_assert_msg(hms_config_open_files(&cfg, HMS_CMD_RUN, &err) == HMS_OK, "%s", err.msg);
    ck_assert_int_eq(access(path[5], F_OK), -1);
    snprintf(path[5], sizeof(path[5]), "%s/nodir/hms.log", tmpdir);
    ACCEPT("log_file", path[5]);
    ck_assert_int_eq(hms_config_open_files(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want),
             "config: log_file: cannot create %s: %s/nodir: No such file or directory", path[5],
             tmpdir);
    ck_assert_str_eq(err.msg, want);
    ACCEPT("log_file", dir);
    ck_assert_int_eq(hms_config_open_files(&cfg, HMS_CMD_CONSUME, &err), HMS_ERR_CONFIG);
    snprintf(want, sizeof(want), "config: log_file: cannot open %s for appending: Is a directory",
             dir);
    ck_assert_str_eq(err.msg, want);
}
END_TEST

/* ---- generated text ---------------------------------------------------- */

START_TEST(usage)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_config_render_usage(HMS_CMD_STATUS, &b), HMS_OK);
    ck_assert_ptr_nonnull(strstr(b.data, "Options of hms-sync status:\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "  --pg CONNINFO "));
    ck_assert_ptr_nonnull(strstr(b.data, "(required)"));
    ck_assert_ptr_nonnull(strstr(b.data, "  --json "));
    ck_assert_ptr_nonnull(strstr(b.data, "  --log-level debug|info|warn|error\n"));
    ck_assert_ptr_null(strstr(b.data, "--amqp"));
    ck_assert_ptr_null(strstr(b.data, "--check-config"));
    hms_buf_reset(&b);
    ck_assert_int_eq(hms_config_render_usage(HMS_CMD_RUN, &b), HMS_OK);
    ck_assert_ptr_nonnull(strstr(b.data, "  --window N "));
    ck_assert_ptr_nonnull(strstr(b.data, "(default 1000)"));
    ck_assert_ptr_nonnull(strstr(b.data, "  --print-config "));
    ck_assert_ptr_null(strstr(b.data, "--json"));
    hms_buf_free(&b);
}
END_TEST

/* The amqp_* TLS and login settings: only with amqps://, a certificate
 * needs its key, external needs a certificate, one password source. */
START_TEST(amqp_tls_settings)
{
    ck_assert_int_eq(set_flag("amqp", "amqp://u:p@h/"), HMS_OK);
    ck_assert_int_eq(set_flag("queue", "q"), HMS_OK);
    ck_assert_int_eq(set_flag("apply", "f"), HMS_OK);
    ck_assert_int_eq(set_flag("pg", "dbname=x"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(set_flag("amqp_cacert", "/ca.pem"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(
        err.msg, "config: amqp_cacert: set, but the amqp URL is amqp:// (no TLS); use amqps://");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_STATUS, &err), HMS_OK); /* not used there */
    ck_assert_int_eq(set_flag("amqp", "amqps://u:p@h/"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_CONSUME, &err), HMS_OK);
    ck_assert_int_eq(set_flag("amqp_cert", "/c.pem"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg,
                     "config: amqp_cert: set without amqp_key; a client certificate needs both");
    ck_assert_int_eq(set_flag("amqp_key", "/c.key"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(set_flag("amqp_auth", "external"), HMS_OK);
    ck_assert_int_eq(cfg.amqp_auth, HMS_CONFIG_AMQP_AUTH_EXTERNAL);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_int_eq(set_flag("amqp_auth", "kerberos"), HMS_ERR_CONFIG);
    ck_assert_int_eq(set_flag("amqp_password_file", "/pw"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "amqp_auth = external uses no password"));
    ck_assert_int_eq(set_flag("amqp_auth", "plain"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "the amqp URL has a password too"));
    ck_assert_ptr_null(strstr(err.msg, "u:p")); /* never the URL */
    ck_assert_int_eq(set_flag("amqp", "amqps://u@h/"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    hms_config_free(&cfg);
    ck_assert_int_eq(hms_config_init(&cfg), HMS_OK);
    ck_assert_int_eq(set_flag("pg", "dbname=x"), HMS_OK);
    ck_assert_int_eq(set_flag("amqp", "amqps://h/"), HMS_OK);
    ck_assert_int_eq(set_flag("amqp_auth", "external"), HMS_OK);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "config: amqp_auth: external logs in with a TLS client"));
}
END_TEST

/* Every "#name = value" line of the example, uncommented, is a valid file. */
START_TEST(example_parses)
{
    hms_buf_t ex = HMS_BUF_INIT, text = HMS_BUF_INIT;
    ck_assert_int_eq(hms_config_render_example(&ex), HMS_OK);
    int n = 0;
    for (char *line = strtok(ex.data, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ") != NULL) {
            hms_buf_append_str(&text, line + 1);
            hms_buf_append_char(&text, '\n');
            n++;
        }
    }
    ck_assert_int_eq(n, hms_config_setting_count() - 1); /* every setting but config */
    ck_assert_msg(apply_text(text.data, 0600) == HMS_OK, "%s", err.msg);
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_RUN, &err), HMS_OK);
    ck_assert_msg(hms_config_check(&cfg, HMS_CMD_CONSUME, &err) == HMS_OK, "%s", err.msg);
    ck_assert_int_eq(apply_text(text.data, 0644), HMS_ERR_CONFIG); /* it holds passwords */
    hms_buf_free(&ex);
    hms_buf_free(&text);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    hms_buf_t b = HMS_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        hms_buf_append(&b, chunk, n);
    fclose(f);
    if (b.data == NULL)
        hms_buf_append_str(&b, "");
    return b.data;
}

/* Fails when the committed file differs from what the table generates. */
static void check_generated(const char *path, hms_status_t (*render)(hms_buf_t *))
{
    hms_buf_t want = HMS_BUF_INIT;
    ck_assert_int_eq(render(&want), HMS_OK);
    const char *regen = getenv("HMS_CONFIG_REGENERATE");
    if (regen != NULL && strcmp(regen, "1") == 0) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fwrite(want.data, 1, want.len, f);
        ck_assert_int_eq(fclose(f), 0);
    }
    char *have = slurp(path);
    ck_assert_msg(have != NULL, "cannot read %s", path);
    ck_assert_msg(strcmp(have, want.data) == 0,
                  "%s differs from the settings table; rerun this test with "
                  "HMS_CONFIG_REGENERATE=1 to rewrite it, then review the diff",
                  path);
    free(have);
    hms_buf_free(&want);
}

START_TEST(example_drift)
{
    check_generated(EXAMPLE_PATH, hms_config_render_example);
}
END_TEST

START_TEST(markdown_drift)
{
    check_generated(MARKDOWN_PATH, hms_config_render_markdown);
}
END_TEST

START_TEST(consume_settings)
{
    ck_assert_ptr_null(cfg.queue);
    ck_assert_ptr_null(cfg.apply);
    ck_assert_ptr_null(cfg.origin);
    ck_assert_int_eq(cfg.prefetch, 200);
    ck_assert_int_eq(cfg.batch, 100);
    ck_assert_int_eq(cfg.batch_linger_ms, 0);
    ck_assert_str_eq(cfg.bind, "#");
    ck_assert_int_eq(cfg.queue_type, HMS_CONFIG_QUEUE_QUORUM);
    ck_assert_int_eq(cfg.delivery_limit, 5);
    ck_assert_str_eq(cfg.dead_letter_exchange, "hms.incidents.dlx");

    ACCEPT("apply", "hms_sync.apply_warehouse");
    ACCEPT("apply", "apply_x(jsonb)");
    ACCEPT("apply", "S1.F_2(jsonb)");
    REJECT("apply", "a.b.c");
    REJECT("apply", ".a");
    REJECT("apply", "a.");
    REJECT("apply", "f(text)");
    REJECT("apply", "f; drop table x");
    REJECT("apply", "f(jsonb) x");
    ACCEPT("prefetch", "1");
    ACCEPT("prefetch", "65535");
    REJECT("prefetch", "0");
    REJECT("prefetch", "65536");
    ACCEPT("delivery_limit", "1000");
    REJECT("delivery_limit", "0");
    REJECT("delivery_limit", "1001");
    ACCEPT("queue_type", "classic");
    ck_assert_int_eq(cfg.queue_type, HMS_CONFIG_QUEUE_CLASSIC);
    REJECT("queue_type", "stream");
    ACCEPT("queue", "sub.scheduling-1");
    REJECT("queue", "a b");
    ACCEPT("origin", "casemgmt");
    REJECT("bind", "a,,b");
    REJECT("bind", ",a");
    REJECT("bind", "a b");
    REJECT("bind", "");

    /* Flags accumulate; a file or environment value is one whole list. */
    hms_cli_flags_t f;
    char *a1[] = {"--bind", "incident.created.*", "--bind=incident.#", "--queue", "q", NULL};
    ck_assert_msg(argv_run(HMS_CMD_CONSUME, &f, a1) == HMS_OK, "%s", err.msg);
    ck_assert_str_eq(cfg.bind, "incident.created.*,incident.#");
    ck_assert_str_eq(cfg.queue, "q");
    ck_assert_int_eq(hms_config_set(&cfg, "bind", "x.y,z", HMS_CONFIG_FROM_ENV, NULL, 0, &err),
                     HMS_OK);
    ck_assert_str_eq(cfg.bind, "x.y,z");
    ACCEPT("bind", "a");
    ACCEPT("bind", "b");
    ck_assert_str_eq(cfg.bind, "a,b");
    char *a2[] = {"--queue", "q", NULL};
    ck_assert_int_eq(argv_run(HMS_CMD_RUN, &f, a2), HMS_ERR_CONFIG);

    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_CONSUME, &err), HMS_ERR_CONFIG);
    ACCEPT("pg", "host=h");
    ACCEPT("amqp", "amqp://h");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_CONSUME, &err), HMS_OK);
    hms_config_free(&cfg);
    ck_assert_int_eq(hms_config_init(&cfg), HMS_OK);
    ACCEPT("pg", "host=h");
    ACCEPT("amqp", "amqp://h");
    ACCEPT("apply", "f");
    ck_assert_int_eq(hms_config_check(&cfg, HMS_CMD_CONSUME, &err), HMS_ERR_CONFIG);
    ck_assert_str_eq(err.msg, "config: queue: not set; consume needs it (use --queue, "
                              "HMS_SYNC_QUEUE or \"queue = ...\" in the config file)");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *pure = tcase_create("pure");
    tcase_add_checked_fixture(pure, setup, teardown);
    tcase_add_test(pure, defaults);
    tcase_add_test(pure, integers);
    tcase_add_test(pure, durations);
    tcase_add_test(pure, enums);
    tcase_add_test(pure, names);
    tcase_add_test(pure, conninfo);
    tcase_add_test(pure, amqp_urls);
    tcase_add_test(pure, amqp_node_lists);
    tcase_add_test(pure, redaction);
    tcase_add_test(pure, print_config);
    tcase_add_test(pure, file_ok);
    tcase_add_test(pure, file_errors);
    tcase_add_test(pure, file_secret_mode);
    tcase_add_test(pure, environment);
    tcase_add_test(pure, command_line);
    tcase_add_test(pure, snapshot_options);
    tcase_add_test(pure, find_file);
    tcase_add_test(pure, checks);
    tcase_add_test(pure, consume_settings);
    tcase_add_test(pure, amqp_tls_settings);
    tcase_add_test(pure, usage);
    tcase_add_test(pure, example_parses);
    tcase_add_test(pure, example_drift);
    tcase_add_test(pure, markdown_drift);
    tcase_add_test(pure, ranges);
    tcase_add_test(pure, zero_and_seconds);
    tcase_add_test(pure, cross_ranges);
    tcase_add_test(pure, listen_addresses);
    tcase_add_test(pure, reloadable);
    tcase_add_test(pure, refused_where_unused);
    suite_add_tcase(s, pure);

    TCase *loader = tcase_create("loader");
    tcase_add_checked_fixture(loader, loader_setup, loader_teardown);
    tcase_add_test(loader, precedence);
    tcase_add_test(loader, loader_file_errors);
    tcase_add_test(loader, open_files);
    suite_add_tcase(s, loader);
    return s;
}

HMS_CHECK_MAIN(config_suite)
