/* secretfile.h -- reading a file that a setting names and that may hold a
 * secret: the config file (a connection string with a password in it) and
 * amqp_password_file both come through here, so both get the same checks in
 * the same order: open, fstat the open descriptor (the mode checked is the
 * mode of the file read, not of whatever the path names a moment later), a
 * regular file only, a bounded size and, when the caller asks, a refusal of
 * a file that group or others may access.
 *
 * Errors are one line "config: SETTING: ..." naming the file and the reason;
 * the file's content never appears in one. */
#ifndef HMS_COMMON_SECRETFILE_H
#define HMS_COMMON_SECRETFILE_H

#include <stddef.h>

#include "core/status.h"

typedef struct {
    char *data;    /* the content plus a NUL; owned, see hms_secretfile_free() */
    size_t len;    /* bytes before that NUL */
    unsigned mode; /* st_mode of the file read */
} hms_secretfile_t;

enum {
    /* Refuse a file group or others may access (mode & 077): a file that
     * holds nothing but a secret. */
    HMS_SECRETFILE_PRIVATE = 1u << 0,
    /* Refuse a NUL byte: the content is parsed as text. */
    HMS_SECRETFILE_TEXT = 1u << 1,
};

/* Reads the whole file at path, at most max bytes (a larger file is an
 * error), into out, checking what flags ask for.  setting names the
 * setting the path came from, for errors.  HMS_ERR_CONFIG for a file that
 * cannot be opened, read or accepted; HMS_ERR_NOMEM.  On success the caller
 * owns out->data and releases it with hms_secretfile_free(); on error out
 * holds nothing to release.  path and setting are only read. */
hms_status_t hms_secretfile_read(const char *path, const char *setting, size_t max, unsigned flags,
                                 hms_secretfile_t *out, hms_err_t *err);

/* Overwrites the content (it may be a password) and frees it; out is then
 * empty and may be freed again. */
void hms_secretfile_free(hms_secretfile_t *f);

#endif
