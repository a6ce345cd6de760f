/* schema_files.c -- JSON Schemas from files and directories, for tests. */
#include "schema_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hms_schema_t *hms_test_schema_load_file(const char *path, hms_err_t *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    hms_schema_t *s = NULL;
    if (f == NULL) {
        hms_err_set(err, HMS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    FILE *mem = open_memstream(&text, &len);
    char chunk[8192];
    size_t n;
    while (mem != NULL && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    bool failed = mem == NULL || ferror(f);
    if (mem != NULL)
        fclose(mem);
    fclose(f);
    if (failed)
        hms_err_set(err, HMS_ERR_IO, "%s: cannot read", path);
    else
        s = hms_schema_from_text(path, text, len, err);
    free(text);
    return s;
}

hms_status_t hms_test_schema_load_dir(hms_schema_set_t *set, const char *dir, size_t *count,
                                      hms_err_t *err)
{
    hms_status_t st = HMS_OK;
    size_t loaded = 0;
    char path[4096];
    DIR *d = opendir(dir);
    if (d == NULL)
        return hms_err_set(err, HMS_ERR_IO, "%s: cannot open schema directory", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) {
            st = hms_err_set(err, HMS_ERR_IO, "%s/%s: path too long", dir, de->d_name);
            goto fail;
        }
        hms_err_t inner;
        hms_schema_t *s = hms_test_schema_load_file(path, &inner);
        if (s == NULL) {
            st = hms_err_set(err, HMS_ERR_MALFORMED, "%s", inner.msg);
            goto fail;
        }
        if ((st = hms_schema_set_add(set, s, &inner)) != HMS_OK) {
            hms_err_set(err, st, "%s: %s", path, inner.msg);
            goto fail;
        }
        loaded++;
    }
fail:
    closedir(d);
    if (count != NULL)
        *count = loaded;
    return st;
}
