/* config_load.c -- the I/O half of configuration: the config file and the
 * output streams.  Every decision lives in core/config.c. */
#include "daemon/config_load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1 << 20)

hms_status_t hms_config_read_file(const char *path, char **text, unsigned *mode, hms_err_t *err)
{
    hms_status_t st;
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;
    *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: config: cannot open %s: %s", path,
                           strerror(errno));
    /* fstat on the open descriptor: the mode checked is the mode of the file read. */
    if (fstat(fd, &sb) != 0) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: config: cannot stat %s: %s", path,
                         strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: config: %s is not a regular file", path);
        goto fail;
    }
    if (sb.st_size > CONFIG_FILE_MAX) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: config: %s is larger than %d bytes", path,
                         CONFIG_FILE_MAX);
        goto fail;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "config: config: out of memory reading %s", path);
        goto fail;
    }
    while (len < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = hms_err_set(err, HMS_ERR_CONFIG, "config: config: cannot read %s: %s", path,
                             strerror(errno));
            goto fail;
        }
        if (n == 0)
            break; /* the file shrank: parse what there is */
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: config: %s contains a NUL byte", path);
        goto fail;
    }
    close(fd);
    *text = buf;
    *mode = (unsigned)sb.st_mode;
    return HMS_OK;
fail:
    free(buf);
    close(fd);
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
