#include "daemon/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/ident.h"
#include "core/log.h"
#include "core/util.h"

/*
 * The scalar fields of global.json in the order MCSManager writes them.
 * allocatablePortRange and whiteListPanelIps are handled apart because
 * they are arrays; FIELD_SLOT marks where each of them goes in the file.
 */
enum field_type { FIELD_INT, FIELD_STR, FIELD_BOOL, FIELD_SLOT };

struct field {
    const char *name;
    enum field_type type;
    size_t offset;
};

#define AT(member) offsetof(dconfig_t, member)

static const struct field dconfig_fields[] = {
    {"version", FIELD_INT, AT(version)},
    {"ip", FIELD_STR, AT(ip)},
    {"port", FIELD_INT, AT(port)},
    {"prefix", FIELD_STR, AT(prefix)},
    {"key", FIELD_STR, AT(key)},
    {"maxFileTask", FIELD_INT, AT(max_file_task)},
    {"maxZipFileSize", FIELD_INT, AT(max_zip_file_size)},
    {"language", FIELD_STR, AT(language)},
    {"defaultInstancePath", FIELD_STR, AT(default_instance_path)},
    {"defaultJavaDataPath", FIELD_STR, AT(default_java_data_path)},
    {"allocatablePortRange", FIELD_SLOT, 0},
    {"currentAllocatablePort", FIELD_INT, AT(current_allocatable_port)},
    {"portAssignInterval", FIELD_INT, AT(port_assign_interval)},
    {"uploadSpeedRate", FIELD_INT, AT(upload_speed_rate)},
    {"downloadSpeedRate", FIELD_INT, AT(download_speed_rate)},
    {"maxDownloadFromUrlFileCount", FIELD_INT,
     AT(max_download_from_url_file_count)},
    {"outputBufferSize", FIELD_INT, AT(output_buffer_size)},
    {"enableSoftShutdown", FIELD_BOOL, AT(enable_soft_shutdown)},
    {"softShutdownSkipDocker", FIELD_BOOL, AT(soft_shutdown_skip_docker)},
    {"softShutdownWaitSeconds", FIELD_INT, AT(soft_shutdown_wait_seconds)},
    {"whiteListPanelIp", FIELD_BOOL, AT(white_list_panel_ip)},
    {"whiteListPanelIps", FIELD_SLOT, 0},
    {"ssl", FIELD_BOOL, AT(ssl)},
    {"sslPemPath", FIELD_STR, AT(ssl_pem_path)},
    {"sslKeyPath", FIELD_STR, AT(ssl_key_path)},
};

#undef AT

static int *field_int(dconfig_t *cfg, const struct field *f)
{
    return (int *)((char *)cfg + f->offset);
}

static char **field_str(dconfig_t *cfg, const struct field *f)
{
    return (char **)((char *)cfg + f->offset);
}

static bool *field_bool(dconfig_t *cfg, const struct field *f)
{
    return (bool *)((char *)cfg + f->offset);
}

static dconfig_t *dconfig_new_defaults(const char *path)
{
    dconfig_t *cfg = xcalloc(1, sizeof(*cfg));

    cfg->path = xstrdup(path);
    cfg->version = 2;
    cfg->ip = xstrdup("");
    cfg->port = 24444;
    cfg->prefix = xstrdup("");
    cfg->key = xstrdup("");
    cfg->max_file_task = 2;
    cfg->max_zip_file_size = 200;
    cfg->language = xstrdup("en_us");
    cfg->default_instance_path = xstrdup("");
    cfg->default_java_data_path = xstrdup("");
    cfg->port_range_start = 10010;
    cfg->port_range_end = 65500;
    cfg->current_allocatable_port = 10010;
    cfg->port_assign_interval = 5;
    cfg->max_download_from_url_file_count = 1;
    cfg->output_buffer_size = 256;
    cfg->enable_soft_shutdown = true;
    cfg->soft_shutdown_skip_docker = true;
    cfg->soft_shutdown_wait_seconds = 30;
    cfg->white_list_panel_ips = json_pack("[ss]", "127.0.0.1", "::1");
    cfg->ssl_pem_path = xstrdup("");
    cfg->ssl_key_path = xstrdup("");
    cfg->extra = json_object();
    return cfg;
}

void dconfig_free(dconfig_t *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < ARRAY_SIZE(dconfig_fields); i++) {
        if (dconfig_fields[i].type == FIELD_STR)
            free(*field_str(cfg, &dconfig_fields[i]));
    }
    json_decref(cfg->white_list_panel_ips);
    json_decref(cfg->extra);
    free(cfg->path);
    free(cfg);
}

/* JSON numbers may be stored as reals by other writers; the settings are
 * all whole numbers, so the fraction is dropped. */
static int json_to_int(const json_t *v, int *out)
{
    double d;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        if (i < INT32_MIN || i > INT32_MAX)
            return -1;
        *out = (int)i;
        return 0;
    }
    if (!json_is_real(v))
        return -1;
    d = json_real_value(v);
    if (!isfinite(d) || d < INT32_MIN || d > INT32_MAX)
        return -1;
    *out = (int)d;
    return 0;
}

static int dconfig_set_field(dconfig_t *cfg, const struct field *f,
                             const json_t *v)
{
    switch (f->type) {
    case FIELD_INT:
        return json_to_int(v, field_int(cfg, f));
    case FIELD_STR:
        if (!json_is_string(v))
            return -1;
        free(*field_str(cfg, f));
        *field_str(cfg, f) = xstrdup(json_string_value(v));
        return 0;
    case FIELD_BOOL:
        if (!json_is_boolean(v))
            return -1;
        *field_bool(cfg, f) = json_is_true(v);
        return 0;
    case FIELD_SLOT:
        break;
    }
    return -1;
}

static int dconfig_set_slot(dconfig_t *cfg, const char *name, json_t *v)
{
    int start, end;

    if (strcmp(name, "allocatablePortRange") == 0) {
        if (!json_is_array(v) || json_array_size(v) != 2 ||
            json_to_int(json_array_get(v, 0), &start) < 0 ||
            json_to_int(json_array_get(v, 1), &end) < 0)
            return -1;
        cfg->port_range_start = start;
        cfg->port_range_end = end;
        return 0;
    }
    if (!json_is_array(v))
        return -1;
    json_decref(cfg->white_list_panel_ips);
    cfg->white_list_panel_ips = json_incref(v);
    return 0;
}

static const struct field *dconfig_find_field(const char *name)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(dconfig_fields); i++) {
        if (strcmp(dconfig_fields[i].name, name) == 0)
            return &dconfig_fields[i];
    }
    return NULL;
}

/*
 * Copies the stored values over the defaults. Returns the count of known
 * fields that were absent or of the wrong type, so that the caller knows
 * the file needs completing.
 */
static int dconfig_merge(dconfig_t *cfg, json_t *root)
{
    const char *name;
    json_t *value;
    size_t i;
    int missing = 0;

    json_object_foreach(root, name, value)
    {
        const struct field *f = dconfig_find_field(name);
        int rc;

        if (f == NULL) {
            json_object_set(cfg->extra, name, value);
            continue;
        }
        rc = f->type == FIELD_SLOT ? dconfig_set_slot(cfg, name, value)
                                   : dconfig_set_field(cfg, f, value);
        if (rc < 0) {
            log_warn("%s: \"%s\" has the wrong type; using the default",
                     cfg->path, name);
            missing++;
        }
    }
    for (i = 0; i < ARRAY_SIZE(dconfig_fields); i++) {
        if (json_object_get(root, dconfig_fields[i].name) == NULL)
            missing++;
    }
    return missing;
}

static void dconfig_generate_key(dconfig_t *cfg)
{
    char key[DCONFIG_KEY_LEN + 1];

    ident_hex(key, DCONFIG_KEY_LEN);
    free(cfg->key);
    cfg->key = xstrdup(key);
}

static int dconfig_read_file(dconfig_t *cfg, int *changed)
{
    json_error_t jerr;
    json_t *root;
    char *text;

    text = fs_read_all(cfg->path, NULL);
    if (text == NULL)
        return -errno;
    root = json_loads(text, 0, &jerr);
    free(text);
    if (root == NULL || !json_is_object(root)) {
        if (root == NULL)
            log_error("%s: invalid JSON at line %d: %s; fix the file or "
                      "move it away to start with a new key",
                      cfg->path, jerr.line, jerr.text);
        else
            log_error("%s: the file is not a JSON object; fix the file or "
                      "move it away to start with a new key",
                      cfg->path);
        json_decref(root);
        return -EINVAL;
    }
    *changed = dconfig_merge(cfg, root) > 0;
    json_decref(root);
    return 0;
}

int dconfig_load(const char *data_dir, dconfig_t **out)
{
    char *folder = xasprintf("%s/Config", data_dir);
    char *path = xasprintf("%s/global.json", folder);
    dconfig_t *cfg = dconfig_new_defaults(path);
    int changed = 0, rc;

    *out = NULL;
    rc = fs_mkdir_p(folder);
    if (rc < 0) {
        log_error("mkdir(\"%s\"): %s", folder, strerror(-rc));
        goto out;
    }
    rc = dconfig_read_file(cfg, &changed);
    if (rc == -ENOENT) {
        log_info("%s: not found; creating it with a new key", path);
        changed = 1;
        rc = 0;
    } else if (rc < 0) {
        if (rc != -EINVAL)
            log_error("read(\"%s\"): %s", path, strerror(-rc));
        goto out;
    }
    if (cfg->key[0] == '\0') {
        dconfig_generate_key(cfg);
        changed = 1;
    }
    if (changed) {
        rc = dconfig_save(cfg);
        if (rc < 0) {
            log_error("write(\"%s\"): %s", path, strerror(-rc));
            goto out;
        }
    }

out:
    if (rc == 0)
        *out = cfg;
    else
        dconfig_free(cfg);
    free(path);
    free(folder);
    return rc;
}

json_t *dconfig_to_json(const dconfig_t *cfg)
{
    dconfig_t *c = (dconfig_t *)cfg;
    json_t *root = json_object();
    const char *name;
    json_t *value;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(dconfig_fields); i++) {
        const struct field *f = &dconfig_fields[i];
        json_t *v = NULL;

        switch (f->type) {
        case FIELD_INT:
            v = json_integer(*field_int(c, f));
            break;
        case FIELD_STR:
            v = json_string(*field_str(c, f));
            break;
        case FIELD_BOOL:
            v = json_boolean(*field_bool(c, f));
            break;
        case FIELD_SLOT:
            if (strcmp(f->name, "allocatablePortRange") == 0)
                v = json_pack("[ii]", cfg->port_range_start,
                              cfg->port_range_end);
            else
                v = json_deep_copy(cfg->white_list_panel_ips);
            break;
        }
        json_object_set_new(root, f->name, v);
    }
    json_object_foreach(cfg->extra, name, value)
        json_object_set(root, name, value);
    return root;
}

int dconfig_save(const dconfig_t *cfg)
{
    json_t *root = dconfig_to_json(cfg);
    char *text = json_dumps(root, JSON_INDENT(4));
    int rc;

    json_decref(root);
    if (text == NULL)
        return -ENOMEM;
    rc = fs_write_atomic(cfg->path, text, strlen(text));
    free(text);
    return rc;
}

int dconfig_allocate_port(dconfig_t *cfg, int daemon_port)
{
    int base = cfg->current_allocatable_port;

    cfg->current_allocatable_port += cfg->port_assign_interval;
    if (cfg->current_allocatable_port > cfg->port_range_end)
        cfg->current_allocatable_port = cfg->port_range_start;

    /* The block [base, base + interval] must not contain the daemon's own
     * port, or a game server started with {mcsm_port1} would collide. */
    if (base <= daemon_port &&
        base + cfg->port_assign_interval >= daemon_port) {
        base = daemon_port + 1;
        cfg->current_allocatable_port = base + cfg->port_assign_interval;
    }
    return base;
}

/*
 * Reads a number the way MCSManager's toNumber does: JSON numbers as they
 * are, strings when they parse completely. Returns 0 and sets *out, or -1
 * when the value is absent or not numeric.
 */
static int setting_number(const json_t *data, const char *name, double *out)
{
    const json_t *v = json_object_get(data, name);
    const char *s;
    char *end;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return isfinite(*out) ? 0 : -1;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    if (*s == '\0')
        return -1;
    *out = strtod(s, &end);
    return *end == '\0' && isfinite(*out) ? 0 : -1;
}

static int setting_bool(const json_t *data, const char *name, bool *out)
{
    const json_t *v = json_object_get(data, name);

    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static int setting_int_range(const json_t *data, const char *name, int min,
                             int max, int *field)
{
    double d;

    if (setting_number(data, name, &d) < 0 || d < min || d > max)
        return 0;
    *field = (int)d;
    return 1;
}

int dconfig_apply_setting(dconfig_t *cfg, const json_t *data)
{
    const json_t *language = json_object_get(data, "language");
    double start, end;
    int changed = 0;

    if (!json_is_object(data))
        return 0;
    if (json_is_string(language) && json_string_length(language) > 0) {
        free(cfg->language);
        cfg->language = xstrdup(json_string_value(language));
        changed++;
    }
    changed += setting_int_range(data, "uploadSpeedRate", 0, INT32_MAX,
                                 &cfg->upload_speed_rate);
    changed += setting_int_range(data, "downloadSpeedRate", 0, INT32_MAX,
                                 &cfg->download_speed_rate);
    changed +=
        setting_int_range(data, "maxDownloadFromUrlFileCount", 0, INT32_MAX,
                          &cfg->max_download_from_url_file_count);
    if (setting_number(data, "portRangeStart", &start) == 0 &&
        setting_number(data, "portRangeEnd", &end) == 0 && start < end &&
        start >= 1 && end <= 65535) {
        cfg->port_range_start = (int)start;
        cfg->port_range_end = (int)end;
        cfg->current_allocatable_port = (int)start;
        changed++;
    }
    changed += setting_int_range(data, "portAssignInterval", 1, 65535,
                                 &cfg->port_assign_interval);
    changed += setting_int_range(data, "port", 1, 65534, &cfg->port);
    changed += setting_int_range(data, "outputBufferSize", 16, 4096,
                                 &cfg->output_buffer_size);
    changed += setting_bool(data, "enableSoftShutdown",
                            &cfg->enable_soft_shutdown) == 0;
    changed += setting_bool(data, "softShutdownSkipDocker",
                            &cfg->soft_shutdown_skip_docker) == 0;
    changed += setting_int_range(data, "softShutdownWaitSeconds", 1, 600,
                                 &cfg->soft_shutdown_wait_seconds);
    return changed;
}

json_t *dconfig_overview_json(const dconfig_t *cfg)
{
    return json_pack(
        "{ss si si si si si si si si sb sb si}", "language", cfg->language,
        "uploadSpeedRate", cfg->upload_speed_rate, "downloadSpeedRate",
        cfg->download_speed_rate, "maxDownloadFromUrlFileCount",
        cfg->max_download_from_url_file_count, "portRangeStart",
        cfg->port_range_start, "portRangeEnd", cfg->port_range_end,
        "portAssignInterval", cfg->port_assign_interval, "port", cfg->port,
        "outputBufferSize", cfg->output_buffer_size, "enableSoftShutdown",
        cfg->enable_soft_shutdown, "softShutdownSkipDocker",
        cfg->soft_shutdown_skip_docker, "softShutdownWaitSeconds",
        cfg->soft_shutdown_wait_seconds);
}
