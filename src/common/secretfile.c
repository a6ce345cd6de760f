/* secretfile.c -- the one reader of files that may hold a secret. */
#include "common/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

hms_status_t hms_secretfile_read(const char *path, const char *setting, size_t max, unsigned flags,
                                 hms_secretfile_t *out, hms_err_t *err)
{
    hms_status_t st;
    struct stat sb;
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: cannot open %s: %s", setting, path,
                           strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: %s: cannot stat %s: %s", setting, path,
                         strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st =
            hms_err_set(err, HMS_ERR_CONFIG, "config: %s: %s is not a regular file", setting, path);
        goto fail;
    }
    if ((flags & HMS_SECRETFILE_PRIVATE) && (sb.st_mode & 077) != 0) {
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "config: %s: %s is accessible by group or others (mode %04o); run "
                         "chmod 600 %s",
                         setting, path, (unsigned)(sb.st_mode & 07777), path);
        goto fail;
    }
    if ((uintmax_t)sb.st_size > max) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: %s: %s is larger than %zu bytes", setting,
                         path, max);
        goto fail;
    }
    out->data = malloc((size_t)sb.st_size + 1);
    if (out->data == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory reading %s", setting, path);
        goto fail;
    }
    /* Read what the size promised, not more: a file that grows meanwhile is
     * read as it was, one that shrinks as far as it goes. */
    while (out->len < (size_t)sb.st_size) {
        ssize_t n = read(fd, out->data + out->len, (size_t)sb.st_size - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = hms_err_set(err, HMS_ERR_CONFIG, "config: %s: cannot read %s: %s", setting, path,
                             strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
    out->data[out->len] = '\0';
    if ((flags & HMS_SECRETFILE_TEXT) && memchr(out->data, '\0', out->len) != NULL) {
        st = hms_err_set(err, HMS_ERR_CONFIG, "config: %s: %s contains a NUL byte", setting, path);
        goto fail;
    }
    out->mode = (unsigned)sb.st_mode;
    close(fd);
    return HMS_OK;
fail:
    hms_secretfile_free(out);
    close(fd);
    return st;
}

void hms_secretfile_free(hms_secretfile_t *f)
{
    if (f->data != NULL)
        explicit_bzero(f->data, f->len + 1);
    free(f->data);
    memset(f, 0, sizeof(*f));
}
