/* test_config_files.c -- `hms-sync run --check-config` opens every file the
 * settings name and refuses what a real run would refuse, in one line that
 * names the setting, the file and the reason (exit 2): CA bundles, client
 * certificates and keys that do not load or do not match, a password file
 * others can read or with an empty first line, a log file that cannot be
 * created.  The TLS material is tls_env.sh's throwaway CA.
 *
 * Needs no server: the check connects nowhere, which the unreachable
 * addresses below would show at once. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

#ifndef HMS_SCHEMAS_DIR
#error "HMS_SCHEMAS_DIR must name <repo>/schemas"
#endif

#define SCRIPT HMS_SCHEMAS_DIR "/../tests/integration/tls_env.sh"
#define PG "host=127.0.0.1 port=1 dbname=never connect_timeout=1"
#define AMQPS "amqps://hms_tls_plain@127.0.0.1:1/"

/* Only its logdir is used: the child processes' output goes there. */
static it_env_t g_env;
static char g_dir[64];

static void path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", g_dir, file);
}

static void write_file(const char *file, mode_t mode, const char *text)
{
    char p[128];
    path(p, sizeof p, file);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(p, mode), 0);
}

static void files_setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/hms-it-config-files-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_env.logdir, sizeof g_env.logdir, "%s", g_dir);
    const char *argv[] = {"/bin/bash", SCRIPT, "certs", g_dir, NULL};
    ck_assert_int_eq(it_cmd_run(&g_env, "tls-env-certs", 60000, argv), 0);
    write_file("pw", 0600, "tls-test\n");
    write_file("pw-644", 0644, "tls-test\n");
    write_file("pw-empty", 0600, "\nsecond line\n");
}

static void files_teardown(void)
{
    if (g_dir[0] == '\0')
        return;
    const char *argv[] = {"/bin/rm", "-rf", g_dir, NULL};
    it_cmd_run(&g_env, "rm", 30000, argv);
    g_dir[0] = '\0';
}

/* Runs `hms-sync run --check-config` against unreachable servers with the
 * options that follow want (pairs of name and value, NULL-terminated; a
 * value not starting with '/' is a file in g_dir) and expects exit code
 * want and one line of output holding each needle that follows (NULL-
 * terminated; "@name" stands for g_dir/name). */
static void expect(const char *tag, int want, ...)
{
    const char *argv[48] = {"run", "--check-config", "--pg", PG, "--amqp", AMQPS};
    size_t n = 6;
    char paths[16][128];
    size_t np = 0;
    va_list ap;
    va_start(ap, want);
    /* Options: name, then a file under g_dir (or, starting with '/', as is). */
    for (const char *opt; (opt = va_arg(ap, const char *)) != NULL && n < 44 && np < 16;) {
        const char *file = va_arg(ap, const char *);
        argv[n++] = opt;
        if (file[0] == '/' || strncmp(opt, "--amqp-auth", 11) == 0)
            argv[n++] = file;
        else {
            path(paths[np], sizeof paths[np], file);
            argv[n++] = paths[np++];
        }
    }
    argv[n] = NULL;
    const char *const envset[] = {"HMS_SYNC_CONFIG", NULL};
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn_env(&g_env, &p, tag, argv, envset), 0);
    int code = it_proc_wait(&p, 20000);
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == want, "%s: exit %d, want %d: %s", tag, code, want, out);
    ck_assert_msg(it_count_lines(out) == 1, "%s: not one line: %s", tag, out);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;) {
        char full[160];
        if (needle[0] == '@') { /* "@name": the full path of g_dir/name */
            path(full, sizeof full, needle + 1);
            needle = full;
        }
        ck_assert_msg(strstr(out, needle) != NULL, "%s: \"%s\" not in: %s", tag, needle, out);
    }
    va_end(ap);
    free(out);
}

START_TEST(test_all_files_good)
{
    char log[128];
    path(log, sizeof log, "new.log");
    expect("files-ok", 0, "--amqp-cacert", "ca.crt", "--amqp-cert", "client.crt", "--amqp-key",
           "client.key", "--amqp-password-file", "pw", "--log-file", log, NULL, "configuration ok",
           NULL);
    ck_assert_msg(access(log, F_OK) != 0, "the check created %s", log);
    /* SASL EXTERNAL with a client certificate and no password file. */
    expect("files-external", 0, "--amqp-cacert", "ca.crt", "--amqp-cert", "client.crt",
           "--amqp-key", "client.key", "--amqp-auth", "external", NULL, "configuration ok", NULL);
}
END_TEST

START_TEST(test_cacert)
{
    expect("cacert-missing", 2, "--amqp-cacert", "nope.crt", NULL,
           "hms-sync: config: amqp_cacert: cannot open", "@nope.crt", "No such file or directory",
           NULL);
    expect("cacert-not-pem", 2, "--amqp-cacert", "client.key", NULL,
           "hms-sync: config: amqp_cacert: cannot load CA certificates from", "@client.key", NULL);
    expect("cacert-dir", 2, "--amqp-cacert", "ca-db", NULL, "config: amqp_cacert:", "@ca-db",
           "is not a regular file", NULL);
}
END_TEST

START_TEST(test_client_certificate)
{
    expect("cert-not-cert", 2, "--amqp-cert", "client.key", "--amqp-key", "client.key", NULL,
           "hms-sync: config: amqp_cert: cannot load the client certificate", "@client.key", NULL);
    expect("key-missing", 2, "--amqp-cert", "client.crt", "--amqp-key", "client.pem-key", NULL,
           "hms-sync: config: amqp_key: cannot open", "@client.pem-key", NULL);
    expect("key-not-key", 2, "--amqp-cert", "client.crt", "--amqp-key", "ca.crt", NULL,
           "hms-sync: config: amqp_key: cannot load the private key", "@ca.crt", NULL);
    /* A key that loads, but of another certificate. */
    expect("key-mismatch", 2, "--amqp-cert", "client.crt", "--amqp-key", "server.key", NULL,
           "hms-sync: config: amqp_key:", "@server.key", NULL);
}
END_TEST

START_TEST(test_password_file)
{
    expect("pw-644", 2, "--amqp-password-file", "pw-644", NULL,
           "hms-sync: config: amqp_password_file:", "@pw-644", "mode 0644", "chmod 600", NULL);
    expect("pw-missing", 2, "--amqp-password-file", "pw-none", NULL,
           "hms-sync: config: amqp_password_file: cannot open", "@pw-none", NULL);
    expect("pw-empty", 2, "--amqp-password-file", "pw-empty", NULL,
           "hms-sync: config: amqp_password_file: the first line of", "@pw-empty", "is empty",
           NULL);
}
END_TEST

START_TEST(test_log_file)
{
    char log[128];
    path(log, sizeof log, "no-such-dir/hms.log");
    expect("log-no-dir", 2, "--log-file", log, NULL, "hms-sync: config: log_file: cannot create",
           "@no-such-dir/hms.log", NULL);
    expect("log-is-dir", 2, "--log-file", "ca-db", NULL, "hms-sync: config: log_file: cannot open",
           "@ca-db", "for appending", NULL);
}
END_TEST

/* Values from the config file are opened the same way. */
START_TEST(test_from_config_file)
{
    char text[512], ini[128];
    snprintf(text, sizeof text,
             "amqp_cacert = %s/ca.crt\namqp_cert = %s/client.crt\n"
             "amqp_key = %s/gone.key\n",
             g_dir, g_dir, g_dir);
    write_file("hms.ini", 0600, text);
    path(ini, sizeof ini, "hms.ini");
    expect("from-file", 2, "--config", ini, NULL, "hms-sync: config: amqp_key: cannot open",
           "@gone.key", NULL);
}
END_TEST

/* status and migrate honour connect_timeout too: against a port whose
 * listener never accepts (the kernel completes the TCP handshake, nobody
 * answers) they give up after it, not after a built-in 10 s. */
START_TEST(test_connect_timeout_honoured)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char pg[128];
    snprintf(pg, sizeof pg, "host=127.0.0.1 port=%d dbname=never", ntohs(sa.sin_port));
    const char *cmds[] = {"status", "migrate"};
    for (size_t i = 0; i < 2; i++) {
        const char *argv[] = {cmds[i], "--pg", pg, "--connect-timeout", "2s", NULL};
        const char *const envset[] = {"HMS_SYNC_CONFIG", "PGCONNECT_TIMEOUT", NULL};
        it_proc_t p;
        ck_assert_int_eq(it_proc_spawn_env(&g_env, &p, cmds[i], argv, envset), 0);
        double t0 = it_now_ms();
        int code = it_proc_wait(&p, 20000);
        double ms = it_now_ms() - t0;
        it_proc_kill(&p);
        char *out = it_proc_output(&p);
        ck_assert_msg(code == 1, "%s: exit %d: %s", cmds[i], code, out);
        ck_assert_msg(ms >= 1500 && ms < 6000, "%s: gave up after %.0f ms, want about 2 s", cmds[i],
                      ms);
        ck_assert_msg(strstr(out, "connect_timeout") != NULL, "%s: %s", cmds[i], out);
        free(out);
    }
    close(fd);
}
END_TEST

static Suite *config_files_suite(void)
{
    Suite *s = suite_create("config_files");
    TCase *tc = tcase_create("check_config");
    tcase_add_unchecked_fixture(tc, files_setup, files_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_all_files_good);
    tcase_add_test(tc, test_cacert);
    tcase_add_test(tc, test_client_certificate);
    tcase_add_test(tc, test_password_file);
    tcase_add_test(tc, test_log_file);
    tcase_add_test(tc, test_from_config_file);
    tcase_add_test(tc, test_connect_timeout_honoured);
    suite_add_tcase(s, tc);
    return s;
}

/* No server, so no scratch environment: the plain runner. */
HMS_CHECK_MAIN(config_files_suite)
