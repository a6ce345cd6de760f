/* config_load.c -- the I/O half of configuration: reading the config file,
 * opening the files the settings name, and the output streams.  Every
 * decision lives in core/config_*.c. */
#include "daemon/config_load.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/secretfile.h"

#define CONFIG_FILE_MAX (1 << 20)
/* Far beyond any certificate bundle or key a setting names. */
#define NAMED_FILE_MAX (16 << 20)

hms_status_t hms_config_read_file(const char *path, char **text, unsigned *mode, hms_err_t *err)
{
    hms_secretfile_t f;
    hms_status_t st =
        hms_secretfile_read(path, "config", CONFIG_FILE_MAX, HMS_SECRETFILE_TEXT, &f, err);
    *text = f.data; /* NULL on error */
    *mode = f.mode;
    return st;
}

hms_status_t hms_config_load(hms_config_t *cfg, unsigned cmd, int argc, char **argv, char **envp,
                             hms_cli_flags_t *flags, hms_err_t *err)
{
    const char *path = NULL;
    char *text = NULL;
    unsigned mode = 0;
    hms_status_t st = hms_config_init(cfg);
    if (st != HMS_OK)
        return hms_err_set(err, st, "config: out of memory");
    /* The command line is checked first so that a typo is reported before
     * the file is opened, and --help works even with a broken file. */
    st = hms_config_find_file(cmd, argc, argv, envp, &path, flags, err);
    if (st != HMS_OK || flags->help)
        return st;
    if (path != NULL) {
        st = hms_config_read_file(path, &text, &mode, err);
        if (st != HMS_OK)
            goto fail;
        st = hms_config_apply_file(cfg, text, path, mode, err);
        if (st != HMS_OK)
            goto fail;
    }
    st = hms_config_apply_env(cfg, envp, err);
    if (st != HMS_OK)
        goto fail;
    st = hms_config_apply_argv(cfg, cmd, argc, argv, flags, err);
    if (st != HMS_OK)
        goto fail;
    st = hms_config_check(cfg, cmd, err);
fail:
    if (text != NULL)
        explicit_bzero(text, strlen(text)); /* it may hold a password */
    free(text);
    return st;
}

/* Renders with fn into a buffer and writes it out in one piece. */
static hms_status_t write_rendered(hms_buf_t *b, hms_status_t st, FILE *out)
{
    if (st == HMS_OK && b->len > 0 && fwrite(b->data, 1, b->len, out) != b->len)
        st = HMS_ERR_IO;
    if (st == HMS_OK && fflush(out) != 0)
        st = HMS_ERR_IO;
    hms_buf_free(b);
    return st;
}

hms_status_t hms_config_print(const hms_config_t *cfg, unsigned cmd, FILE *out)
{
    hms_buf_t b = HMS_BUF_INIT;
    return write_rendered(&b, hms_config_render(cfg, cmd, &b), out);
}

hms_status_t hms_config_usage(unsigned cmd, FILE *out)
{
    hms_buf_t b = HMS_BUF_INIT;
    return write_rendered(&b, hms_config_render_usage(cmd, &b), out);
}

hms_status_t hms_config_write_example(FILE *out)
{
    hms_buf_t b = HMS_BUF_INIT;
    return write_rendered(&b, hms_config_render_example(&b), out);
}

hms_status_t hms_config_write_markdown(FILE *out)
{
    hms_buf_t b = HMS_BUF_INIT;
    return write_rendered(&b, hms_config_render_markdown(&b), out);
}

hms_status_t hms_config_warn_env(char **envp, FILE *out)
{
    hms_buf_t b = HMS_BUF_INIT;
    return write_rendered(&b, hms_config_env_warnings(envp, &b), out);
}

/* A file the process will append to (log_file): open for appending if it
 * exists, else its directory must let us create it.  Nothing is created or
 * written; O_NONBLOCK keeps a FIFO without a reader from blocking the check. */
static hms_status_t check_writable(const hms_config_file_t *f, hms_err_t *err)
{
    int fd = open(f->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        return HMS_OK;
    }
    if (errno != ENOENT)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: cannot open %s for appending: %s",
                           f->setting, f->path, strerror(errno));
    char *copy = strdup(f->path);
    if (copy == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", f->setting);
    const char *dir = dirname(copy);
    hms_status_t st = HMS_OK;
    if (access(dir, W_OK | X_OK) != 0)
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: %s: cannot create %s: %s: %s", f->setting,
                         f->path, dir, strerror(errno));
    free(copy);
    return st;
}

hms_status_t hms_config_open_files(const hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    hms_config_file_t files[HMS_CONFIG_MAX_SETTINGS];
    int n = hms_config_files(cfg, cmd, files, HMS_CONFIG_MAX_SETTINGS);
    for (int i = 0; i < n; i++) {
        hms_status_t st;
        if (files[i].write) {
            st = check_writable(&files[i], err);
        } else {
            hms_secretfile_t f;
            st = hms_secretfile_read(files[i].path, files[i].setting, NAMED_FILE_MAX, 0, &f, err);
            hms_secretfile_free(&f);
        }
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}
