/* config_layer.c -- the layers a value can come from, in increasing
 * precedence: the config file (flat INI through inih), HMS_SYNC_* variables
 * and the subcommand's command line. */
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/config_int.h"

/* Feeds inih one line at a time from a string, counting lines, because
 * Debian's inih does not pass line numbers to the handler. */
typedef struct {
    const char *p;
    int line;
    int too_long; /* the line that did not fit inih's buffer, or 0 */
    int max;
} line_reader_t;

static char *read_line(char *str, int num, void *stream)
{
    line_reader_t *r = stream;
    if (*r->p == '\0' || r->too_long != 0)
        return NULL;
    size_t n = strcspn(r->p, "\n");
    size_t take = n + (r->p[n] == '\n');
    r->line++;
    /* inih needs room for the NUL; a longer line would be split in two and
     * the tail parsed as a line of its own, so stop instead. */
    if (take + 1 > (size_t)num) {
        r->too_long = r->line;
        r->max = num - 2;
        return NULL;
    }
    memcpy(str, r->p, take);
    str[take] = '\0';
    r->p += take;
    return str;
}

typedef struct {
    hms_config_t *cfg;
    const char *path;
    line_reader_t rd;
    hms_err_t *err;
    hms_status_t st;
    int err_line;
    bool password;
    int seen[HMS_CONFIG_MAX_SETTINGS];
} file_ctx_t;

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    file_ctx_t *x = user;
    if (x->st != HMS_OK)
        return 0; /* report only the first problem */
    int line = x->rd.line;
    x->err_line = line;
    int i = hms_config_setting_index(name);
    if (section[0] != '\0') {
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s:%d: %.64s is in section [%.64s]; the config file has "
                            "no sections",
                            x->path, line, name, section);
    } else if (i < 0) {
        char names[400];
        size_t w = 0;
        for (int k = 0; k < hms_config_nsettings && w < sizeof(names); k++)
            if (!(hms_config_settings[k].flags & HMS_CONFIG_F_NO_FILE))
                w += (size_t)snprintf(names + w, sizeof(names) - w, "%s%s", w ? ", " : "",
                                      hms_config_settings[k].name);
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s:%d: unknown setting \"%.64s\" (allowed: %s)", x->path, line,
                            name, names);
    } else if (hms_config_settings[i].flags & HMS_CONFIG_F_NO_FILE) {
        char env[96];
        hms_config_env_name(name, env, sizeof(env));
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s: cannot be set in a config file (%s:%d); use --%s or %s",
                            name, x->path, line, name, env);
    } else if (x->seen[i] != 0) {
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG, "config: %s: set twice in %s (lines %d and %d)",
                            name, x->path, x->seen[i], line);
    } else {
        x->seen[i] = line;
        x->st = hms_config_set(x->cfg, name, value, HMS_CONFIG_FROM_FILE, x->path, line, x->err);
        if (x->st == HMS_OK && (hms_config_settings[i].flags & HMS_CONFIG_F_SECRET) &&
            hms_config_has_password(value))
            x->password = true;
    }
    return x->st == HMS_OK;
}

hms_status_t hms_config_apply_file(hms_config_t *cfg, const char *text, const char *path,
                                   unsigned mode, hms_err_t *err)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "config: out of memory");
    free(cfg->config);
    cfg->config = copy;

    file_ctx_t x = {.cfg = cfg, .path = path, .rd = {.p = text}, .err = err, .st = HMS_OK};
    int rc = ini_parse_stream(read_line, &x.rd, on_pair, &x);
    if (x.st != HMS_OK && (rc <= 0 || x.err_line <= rc))
        return x.st;
    if (rc == -2)
        return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", path);
    if (rc > 0)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s:%d: expected a \"name = value\" line or a # comment", path,
                           rc);
    if (x.rd.too_long != 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s:%d: line is longer than %d characters",
                           path, x.rd.too_long, x.rd.max);
    if (x.password && (mode & 0044) != 0)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s holds a password but is readable by group or others "
                           "(mode %04o); run chmod 600 %s",
                           path, mode & 07777, path);
    return HMS_OK;
}

/* ---- environment and command line ------------------------------------- */

/* Maps "HMS_SYNC_LOG_LEVEL=..." to the setting index; -1 when it is not an
 * HMS_SYNC_ variable, -2 when it is one but names no setting. */
static int env_setting(const char *entry, const char **value)
{
    static const char prefix[] = "HMS_SYNC_";
    if (strncmp(entry, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    const char *name = entry + sizeof(prefix) - 1;
    const char *eq = strchr(name, '=');
    if (eq == NULL)
        return -1;
    char lower[64];
    size_t n = (size_t)(eq - name);
    if (n == 0 || n >= sizeof(lower))
        return -2;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return -2;
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    lower[n] = '\0';
    *value = eq + 1;
    int i = hms_config_setting_index(lower);
    return i >= 0 ? i : -2;
}

hms_status_t hms_config_apply_env(hms_config_t *cfg, char **envp, hms_err_t *err)
{
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *value;
        int i = env_setting(*e, &value);
        /* Container tools often pass a variable empty to mean "not set". */
        if (i < 0 || (hms_config_settings[i].flags & HMS_CONFIG_F_NO_FILE) || value[0] == '\0')
            continue;
        hms_status_t st = hms_config_set(cfg, hms_config_settings[i].name, value,
                                         HMS_CONFIG_FROM_ENV, NULL, 0, err);
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}

hms_status_t hms_config_env_warnings(char **envp, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    int n = 0;
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *value;
        if (env_setting(*e, &value) != -2)
            continue;
        hms_config_put(out, &st, "%s%.*s",
                       n++ ? ", " : "warning: config: ignoring unknown variables ",
                       (int)strcspn(*e, "="), *e);
    }
    if (n > 0)
        hms_config_put(out, &st, "\n");
    return st;
}

/* Walks the command line.  With cfg NULL it only checks the syntax and finds
 * --config; otherwise it applies every option except --config (the file was
 * applied before the environment). */
static hms_status_t walk_argv(hms_config_t *cfg, unsigned cmd, int argc, char **argv,
                              hms_cli_flags_t *flags, const char **config, hms_err_t *err)
{
    const char *cmdname = hms_config_cmd_name(cmd);
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        if (!hms_config_starts_with(arg, "--") || arg[2] == '\0')
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: unexpected argument \"%.64s\" (see hms-sync %s --help)",
                               arg, cmdname);
        char name[64];
        size_t n = strcspn(arg + 2, "=");
        const char *value = arg[2 + n] == '=' ? arg + 3 + n : NULL;
        if (n >= sizeof(name))
            n = sizeof(name) - 1;
        for (size_t k = 0; k < n; k++)
            name[k] = arg[2 + k] == '-' ? '_' : arg[2 + k];
        name[n] = '\0';
        char opt[64];
        hms_config_option_name(name, opt, sizeof(opt));

        for (int k = 0; k < hms_config_ncli_flags; k++) {
            if (strcmp(hms_config_cli_flags[k].name, name) != 0)
                continue;
            if (!(hms_config_cli_flags[k].cmds & cmd))
                return hms_err_set(err, HMS_ERR_CONFIG,
                                   "config: option --%s is not accepted by %s (see hms-sync %s "
                                   "--help)",
                                   opt, cmdname, cmdname);
            char *field = (char *)flags + hms_config_cli_flags[k].offset;
            if (hms_config_cli_flags[k].metavar == NULL) {
                if (value != NULL)
                    return hms_err_set(err, HMS_ERR_CONFIG, "config: option --%s takes no value",
                                       opt);
                *(bool *)field = true;
                goto next;
            }
            /* "[SECONDS]": the value may be left out (then ""), and the
             * next argument is the value only when it is not an option. */
            bool optional = hms_config_cli_flags[k].metavar[0] == '[';
            if (optional && value == NULL &&
                (a + 1 >= argc || hms_config_starts_with(argv[a + 1], "--"))) {
                *(const char **)field = "";
                goto next;
            }
            if (value == NULL && a + 1 < argc)
                value = argv[++a];
            /* An empty value is more likely a shell variable that was never
             * set than a choice. */
            if (value == NULL || value[0] == '\0')
                return hms_err_set(err, HMS_ERR_CONFIG, "config: option --%s needs a value (%s)",
                                   opt, hms_config_cli_flags[k].metavar);
            *(const char **)field = value;
            goto next;
        }
        int i = hms_config_setting_index(name);
        if (i < 0)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: unknown option --%s for %s (see hms-sync %s --help)", opt,
                               cmdname, cmdname);
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (!(s->cmds & cmd))
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: option --%s is not accepted by %s (see hms-sync %s "
                               "--help)",
                               opt, cmdname, cmdname);
        if (value == NULL && s->type == HMS_CONFIG_T_BOOL)
            value = "true";
        if (value == NULL) {
            if (a + 1 >= argc) {
                char allowed[160];
                hms_config_format_allowed(s, allowed, sizeof(allowed));
                return hms_err_set(err, HMS_ERR_CONFIG,
                                   "config: %s: option --%s needs a value (allowed: %s)", s->name,
                                   opt, allowed);
            }
            value = argv[++a];
        }
        if (s->flags & HMS_CONFIG_F_NO_FILE) {
            if (cfg == NULL && config != NULL)
                *config = value;
        } else if (cfg != NULL) {
            hms_status_t st =
                hms_config_set(cfg, s->name, value, HMS_CONFIG_FROM_FLAG, NULL, 0, err);
            if (st != HMS_OK)
                return st;
        }
    next:;
    }
    return HMS_OK;
}

hms_status_t hms_config_find_file(unsigned cmd, int argc, char **argv, char **envp,
                                  const char **path, hms_cli_flags_t *flags, hms_err_t *err)
{
    memset(flags, 0, sizeof(*flags));
    *path = NULL;
    hms_status_t st = walk_argv(NULL, cmd, argc, argv, flags, path, err);
    if (st != HMS_OK || *path != NULL)
        return st;
    for (char **e = envp; e != NULL && *e != NULL; e++)
        if (hms_config_starts_with(*e, "HMS_SYNC_CONFIG=") && (*e)[16] != '\0')
            *path = *e + 16;
    return HMS_OK;
}

hms_status_t hms_config_apply_argv(hms_config_t *cfg, unsigned cmd, int argc, char **argv,
                                   hms_cli_flags_t *flags, hms_err_t *err)
{
    memset(flags, 0, sizeof(*flags));
    return walk_argv(cfg, cmd, argc, argv, flags, NULL, err);
}
