/* fuzz_config.c -- libFuzzer harness for the settings parser
 * (src/core/config.h): the input is applied whole as a config file, then
 * split into lines, each line split at its first '=' into a name and a value
 * given to hms_config_set from every origin.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang); run by
 * scripts/fuzz.sh.  Oracles: errors are one non-empty line starting
 * "config: ", and whatever was accepted renders, checks and frees without a
 * sanitizer report.  Seeds (tests/fuzz/corpus/config/) are the example
 * config file and the unit tests' files and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const hms_err_t *err)
{
    if (strncmp(err->msg, "config: ", 8) != 0 || strchr(err->msg, '\n') != NULL)
        __builtin_trap(); /* errors are one line naming the parser */
}

/* Renders cfg every way there is, so accepted values reach the printers. */
static void render_all(const hms_config_t *cfg)
{
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err = {{0}};
    (void)hms_config_render(cfg, 0, &out);
    (void)hms_config_render(cfg, HMS_CMD_CONSUME, &out);
    if (hms_config_check(cfg, HMS_CMD_RUN, &err) != HMS_OK)
        check_err(&err);
    hms_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* The whole input as a config file, private and world-readable. */
    static const unsigned modes[] = {0100600, 0100644};
    for (size_t i = 0; i < 2; i++) {
        hms_config_t cfg;
        hms_err_t err = {{0}};
        if (hms_config_init(&cfg) == HMS_OK) {
            if (hms_config_apply_file(&cfg, text, "/etc/hms-sync.ini", modes[i], &err) != HMS_OK)
                check_err(&err);
            render_all(&cfg);
        }
        hms_config_free(&cfg);
    }

    /* Each line as name=value, from each origin in turn; later lines land on
     * top of earlier ones, so replacement and list accumulation are reached. */
    hms_config_t cfg;
    if (hms_config_init(&cfg) != HMS_OK) {
        hms_config_free(&cfg);
        free(text);
        return 0;
    }
    int line = 0;
    for (char *p = text, *next; p != NULL && *p != '\0'; p = next, line++) {
        next = strchr(p, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        hms_config_origin_t origin = (hms_config_origin_t)(line % 4);
        hms_err_t err = {{0}};
        if (hms_config_set(&cfg, p, eq + 1, origin, "/etc/hms-sync.ini", line + 1, &err) != HMS_OK)
            check_err(&err);
        hms_buf_t red = HMS_BUF_INIT;
        (void)hms_config_redact(eq + 1, &red);
        hms_buf_free(&red);
    }
    render_all(&cfg);
    hms_config_free(&cfg);
    free(text);
    return 0;
}
