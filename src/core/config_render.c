/* config_render.c -- everything printed from the table: the effective
 * settings (--print-config, secrets redacted), a subcommand's --help, the
 * example config file and the reference page. */
#include <stdio.h>

#include "core/config_int.h"

static void put_value(const hms_config_t *cfg, const hms_config_setting_t *s, hms_buf_t *out,
                      hms_status_t *st)
{
    const char *field = (const char *)cfg + s->offset;
    char d[32];
    switch (s->type) {
    case HMS_CONFIG_T_INT: hms_config_put(out, st, "%d", *(const int *)field); return;
    case HMS_CONFIG_T_ENUM: hms_config_put(out, st, "%s", s->choices[*(const int *)field]); return;
    case HMS_CONFIG_T_BOOL:
        hms_config_put(out, st, "%s", *(const bool *)field ? "true" : "false");
        return;
    case HMS_CONFIG_T_DURATION:
        hms_config_format_duration(*(const int64_t *)field, d, sizeof(d));
        hms_config_put(out, st, "%s", d);
        return;
    default: break;
    }
    const char *v = *(char *const *)field;
    if (*st == HMS_OK)
        *st = (s->flags & HMS_CONFIG_F_SECRET) ? hms_config_redact(v, out)
                                               : hms_buf_append_str(out, v);
}

hms_status_t hms_config_render(const hms_config_t *cfg, unsigned cmd, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (cmd != 0 && !(s->cmds & cmd))
            continue;
        if (hms_config_is_string(s->type) &&
            *(char *const *)((const char *)cfg + s->offset) == NULL) {
            hms_config_put(out, &st, "# %s is not set\n", s->name);
            continue;
        }
        hms_config_put(out, &st, "%s = ", s->name);
        put_value(cfg, s, out, &st);
        hms_config_put(out, &st, "\n");
    }
    return st;
}

static void put_option(hms_buf_t *out, hms_status_t *st, const char *opt, const char *summary)
{
    if (strlen(opt) <= 30)
        hms_config_put(out, st, "  %-30s %s\n", opt, summary);
    else
        hms_config_put(out, st, "  %s\n  %-30s %s\n", opt, "", summary);
}

hms_status_t hms_config_render_usage(unsigned cmd, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char opt[256], name[64], allowed[160], summary[320];
    hms_config_put(out, &st, "Options of hms-sync %s:\n", hms_config_cmd_name(cmd));
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (!(s->cmds & cmd))
            continue;
        hms_config_option_name(s->name, name, sizeof(name));
        hms_config_format_allowed(s, allowed, sizeof(allowed));
        const char *meta = hms_config_type_metavar(s);
        snprintf(opt, sizeof(opt), "--%s %s", name, meta != NULL ? meta : allowed);
        if (s->def != NULL)
            snprintf(summary, sizeof(summary), "%s (default %s)", s->summary, s->def);
        else if (s->required & cmd)
            snprintf(summary, sizeof(summary), "%s (required)", s->summary);
        else
            snprintf(summary, sizeof(summary), "%s", s->summary);
        put_option(out, &st, opt, summary);
    }
    for (int k = 0; k < hms_config_ncli_flags; k++) {
        if (!(hms_config_cli_flags[k].cmds & cmd))
            continue;
        const hms_config_cli_flag_t *f = &hms_config_cli_flags[k];
        hms_config_option_name(f->name, name, sizeof(name));
        snprintf(opt, sizeof(opt), "--%s%s%s", name, f->metavar ? " " : "",
                 f->metavar ? f->metavar : "");
        put_option(out, &st, opt, f->summary);
    }
    hms_config_put(
        out, &st,
        "Every setting can also come from the environment (HMS_SYNC_<NAME>, e.g. HMS_SYNC_PG)\n"
        "or a config file (--config FILE, lines \"name = value\"); the command line wins over\n"
        "the environment, which wins over the file.\n");
    return st;
}

/* Appends text as comment lines ("# ...") wrapped before column 78. */
static void put_wrapped(hms_buf_t *out, hms_status_t *st, const char *lead, const char *text)
{
    const int width = 78 - (int)strlen(lead);
    const char *p = text;
    while (*p != '\0') {
        int n = (int)strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = (int)strcspn(p, " ");
        }
        int line = n;
        while (line > 0 && p[line - 1] == ' ')
            line--;
        hms_config_put(out, st, "%s%.*s\n", lead, line, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

/* Whether a running process takes a new value on SIGHUP. */
static const char *reload_word(const hms_config_setting_t *s)
{
    return (s->flags & HMS_CONFIG_F_RELOAD) ? "yes (SIGHUP)" : "no (restart)";
}

hms_status_t hms_config_render_example(hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char env[96], opt[96], allowed[160], cmds[96], text[512];
    hms_config_put(
        out, &st,
        "# hms-sync.ini.example -- every hms-sync setting, with its default.\n"
        "#\n"
        "# Generated from the settings table in src/core/config_table.c; a unit test\n"
        "# fails when this file and the table disagree.  Copy it, uncomment what you\n"
        "# change, and pass it as --config FILE or HMS_SYNC_CONFIG=FILE.\n"
        "#\n"
        "# Format: one \"name = value\" per line, no sections; lines starting with # or\n"
        "# ; are comments, and \" ;\" starts a comment after a value.  Lines are at most\n"
        "# 198 characters.  An unknown or repeated name is an error.\n"
        "#\n"
        "# Precedence: defaults < this file < environment (HMS_SYNC_<NAME>) < command\n"
        "# line (--name VALUE).  A file that holds a password must not be readable by\n"
        "# group or others: chmod 600 it, or hms-sync refuses to start.\n"
        "# Durations take a unit: 500ms, 10s, 2m, 1h; a bare number is seconds.\n"
        "# \"Reloadable: yes\" marks a setting whose new value a running hms-sync takes\n"
        "# on SIGHUP (kill -HUP); a change to any other setting needs a restart.\n");
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (s->flags & HMS_CONFIG_F_NO_FILE)
            continue;
        hms_config_env_name(s->name, env, sizeof(env));
        hms_config_option_name(s->name, opt, sizeof(opt));
        hms_config_format_allowed(s, allowed, sizeof(allowed));
        hms_config_format_cmds(s->cmds, cmds, sizeof(cmds));
        hms_config_put(out, &st, "\n# ---- %s: %s\n", s->name, s->summary);
        put_wrapped(out, &st, "# ", s->help);
        snprintf(text, sizeof(text), "Type: %s (%s).  Default: %s.", hms_config_type_name(s),
                 allowed, s->def != NULL ? s->def : "none");
        put_wrapped(out, &st, "# ", text);
        snprintf(text, sizeof(text), "Environment: %s.  Option: --%s (%s).  Reloadable: %s.%s", env,
                 opt, cmds, reload_word(s),
                 (s->flags & HMS_CONFIG_F_SECRET) ? "  Secret: chmod 600 a file that holds it."
                                                  : "");
        put_wrapped(out, &st, "# ", text);
        hms_config_put(out, &st, "#%s = %s\n", s->name, s->def != NULL ? s->def : s->example);
    }
    return st;
}

hms_status_t hms_config_render_markdown(hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char env[96], opt[96], allowed[160], cmds[96];
    hms_config_put(
        out, &st,
        "# Configuration\n\n"
        "<!-- Generated from the settings table in src/core/config_table.c by\n"
        "     hms_config_write_markdown(); a unit test fails when they disagree. -->\n\n"
        "Every setting comes from, in increasing precedence: its default, the config\n"
        "file (`--config FILE` or `HMS_SYNC_CONFIG`), the environment\n"
        "(`HMS_SYNC_<NAME>`, e.g. `HMS_SYNC_LOG_LEVEL`; an empty variable counts as\n"
        "unset) and the command line (`--name VALUE` or `--name=VALUE`; `-` and `_`\n"
        "are interchangeable in option names).\n\n"
        "The config file is flat INI: one `name = value` per line, no sections, `#` or\n"
        "`;` comments.  An unknown or repeated name is an error naming the file and\n"
        "line.  A file that holds a password (in `pg` or `amqp`) must not be readable\n"
        "by group or others (`chmod 600 FILE`).  See `deploy/hms-sync.ini.example`.\n\n"
        "An invalid value is a one-line error naming the setting, where the value came\n"
        "from and what is allowed, and the process exits 2, e.g.\n\n"
        "    hms-sync: config: window: \"abc\" from /etc/hms-sync.ini:12 is not an integer "
        "(allowed: 1..65535)\n\n"
        "`hms-sync run --check-config` validates and exits; `hms-sync run --print-config`\n"
        "prints the effective settings with every password replaced by `***`.\n\n"
        "Durations take a unit: `500ms`, `10s`, `2m`, `1h`; a bare number is seconds.\n\n"
        "A running `hms-sync` takes a new value of the settings marked *SIGHUP* in the\n"
        "Reload column on `kill -HUP`; a change to any other setting needs a restart.\n\n"
        "| Setting | Type | Default | Environment | Option | Used by | Reload |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        hms_config_env_name(s->name, env, sizeof(env));
        hms_config_option_name(s->name, opt, sizeof(opt));
        hms_config_format_cmds(s->cmds, cmds, sizeof(cmds));
        hms_config_put(out, &st, "| [`%s`](#%s) | %s | %s%s%s | `%s` | `--%s` | %s | %s |\n",
                       s->name, s->name, hms_config_type_name(s), s->def != NULL ? "`" : "",
                       s->def != NULL ? s->def : "none", s->def != NULL ? "`" : "", env, opt, cmds,
                       (s->flags & HMS_CONFIG_F_RELOAD) ? "SIGHUP" : "restart");
    }
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        hms_config_format_allowed(s, allowed, sizeof(allowed));
        hms_config_put(out, &st, "\n## %s\n\n%s\n\nAllowed: %s.", s->name, s->help, allowed);
        if (s->required != 0) {
            hms_config_format_cmds(s->required, cmds, sizeof(cmds));
            hms_config_put(out, &st, "  Required by: %s.", cmds);
        }
        if (s->flags & HMS_CONFIG_F_SECRET)
            hms_config_put(out, &st, "  Secret: redacted when printed.");
        if (s->flags & HMS_CONFIG_F_NO_FILE)
            hms_config_put(out, &st, "  Not accepted in the config file.");
        hms_config_put(out, &st, "  Reloadable: %s.\n", reload_word(s));
    }
    hms_config_put(out, &st,
                   "\n## Command-line-only options\n\n| Option | Subcommands | Meaning |\n"
                   "| --- | --- | --- |\n");
    for (int k = 0; k < hms_config_ncli_flags; k++) {
        const hms_config_cli_flag_t *f = &hms_config_cli_flags[k];
        hms_config_option_name(f->name, opt, sizeof(opt));
        hms_config_format_cmds(f->cmds, cmds, sizeof(cmds));
        hms_config_put(out, &st, "| `--%s%s%s` | %s | %s |\n", opt, f->metavar ? " " : "",
                       f->metavar ? f->metavar : "", cmds, f->summary);
    }
    return st;
}
