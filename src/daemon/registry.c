#include "daemon/registry.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"

struct registry {
    uv_loop_t *loop;
    dconfig_t *cfg;
    int daemon_port;
    char *config_dir;
    char *log_dir;
    char *instance_data_dir;
    instance_options_t opts;
    instance_callbacks_t user_callbacks;
    void *user_data;

    instance_t *global;
    instance_t **items; /* visible instances, in load/creation order */
    size_t count;
    size_t cap;

    uv_timer_t autostart_timer;
    char **autostart_queue; /* uuids still to start */
    size_t autostart_count;
    size_t autostart_next;
};

/* Instance callbacks: the registry is their data pointer (it also
 * allocates base ports), so it forwards them to the caller's. */

static void reg_on_status(instance_t *inst, int old_status, int new_status,
                          void *data)
{
    registry_t *reg = data;

    if (reg->user_callbacks.on_status != NULL)
        reg->user_callbacks.on_status(inst, old_status, new_status,
                                      reg->user_data);
}

static void reg_on_opened(instance_t *inst, void *data)
{
    registry_t *reg = data;

    if (reg->user_callbacks.on_opened != NULL)
        reg->user_callbacks.on_opened(inst, reg->user_data);
}

static void reg_on_stopped(instance_t *inst, void *data)
{
    registry_t *reg = data;

    if (reg->user_callbacks.on_stopped != NULL)
        reg->user_callbacks.on_stopped(inst, reg->user_data);
}

static void reg_on_failure(instance_t *inst, const char *message, void *data)
{
    registry_t *reg = data;

    if (reg->user_callbacks.on_failure != NULL)
        reg->user_callbacks.on_failure(inst, message, reg->user_data);
}

static void reg_on_output(instance_t *inst, const char *text, size_t len,
                          void *data)
{
    registry_t *reg = data;

    if (reg->user_callbacks.on_output != NULL)
        reg->user_callbacks.on_output(inst, text, len, reg->user_data);
}

static const instance_callbacks_t reg_callbacks = {
    .on_status = reg_on_status,
    .on_opened = reg_on_opened,
    .on_stopped = reg_on_stopped,
    .on_failure = reg_on_failure,
    .on_output = reg_on_output,
};

static int reg_alloc_base_port(void *data)
{
    registry_t *reg = data;
    int port = dconfig_allocate_port(reg->cfg, reg->daemon_port);
    int rc = dconfig_save(reg->cfg);

    /* The port is handed out anyway: the instance works, and the worst
     * outcome of the lost save is that a later instance reuses the block. */
    if (rc < 0)
        log_error("write(\"%s\"): %s", reg->cfg->path, strerror(-rc));
    return port;
}

static void reg_add(registry_t *reg, instance_t *inst)
{
    if (reg->count == reg->cap) {
        reg->cap = reg->cap ? reg->cap * 2 : 16;
        reg->items = xrealloc(reg->items, reg->cap * sizeof(*reg->items));
    }
    reg->items[reg->count++] = inst;
}

static void reg_remove(registry_t *reg, instance_t *inst)
{
    size_t i;

    for (i = 0; i < reg->count; i++) {
        if (reg->items[i] != inst)
            continue;
        memmove(&reg->items[i], &reg->items[i + 1],
                (reg->count - i - 1) * sizeof(*reg->items));
        reg->count--;
        return;
    }
}

/* Makes path absolute against the daemon's working folder, creates it and
 * resolves symbolic links. Returns a new string or NULL after logging. */
static char *reg_make_folder(const char *path)
{
    char *abs, *real;
    int rc = fs_mkdir_p(path);

    if (rc < 0) {
        log_error("mkdir(\"%s\"): %s", path, strerror(-rc));
        return NULL;
    }
    real = realpath(path, NULL);
    if (real == NULL) {
        log_error("realpath(\"%s\"): %s", path, strerror(errno));
        return NULL;
    }
    /* realpath allocates with malloc; hand back an xstrdup copy so that
     * every string of this module is freed the same way. */
    abs = xstrdup(real);
    free(real);
    return abs;
}

static int reg_make_folders(registry_t *reg, const char *data_dir)
{
    char *root = reg_make_folder(data_dir);
    char *path;

    if (root == NULL)
        return -1;
    path = xasprintf("%s/InstanceConfig", root);
    reg->config_dir = reg_make_folder(path);
    free(path);
    path = xasprintf("%s/InstanceLog", root);
    reg->log_dir = reg_make_folder(path);
    free(path);
    if (reg->cfg->default_instance_path[0] != '\0')
        path = xstrdup(reg->cfg->default_instance_path);
    else
        path = xasprintf("%s/InstanceData", root);
    reg->instance_data_dir = reg_make_folder(path);
    free(path);
    free(root);
    if (reg->config_dir == NULL || reg->log_dir == NULL ||
        reg->instance_data_dir == NULL)
        return -1;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists the uuids of InstanceConfig/<uuid>.json, sorted. Temporary files
 * of interrupted atomic writes (<uuid>.json.tmp.<pid>) do not end in
 * ".json" and are skipped.
 */
static char **reg_scan_configs(const registry_t *reg, size_t *count)
{
    DIR *dir = opendir(reg->config_dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;

    *count = 0;
    if (dir == NULL) {
        log_error("opendir(\"%s\"): %s", reg->config_dir, strerror(errno));
        return NULL;
    }
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (memchr(de->d_name, '.', len - 5) != NULL)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrndup(de->d_name, len - 5);
    }
    closedir(dir);
    if (n > 0)
        qsort(names, n, sizeof(*names), compare_names);
    *count = n;
    return names;
}

static void reg_load_all(registry_t *reg)
{
    size_t n, i;
    char **uuids = reg_scan_configs(reg, &n);

    for (i = 0; i < n; i++) {
        char *err = NULL;
        instance_t *inst = instance_load(&reg->opts, uuids[i], &err);

        if (inst == NULL) {
            log_warn("instance %s: not loaded: %s", uuids[i],
                     err ? err : "unknown error");
            free(err);
        } else if (strcmp(uuids[i], REGISTRY_GLOBAL_UUID) == 0) {
            reg->global = inst;
        } else {
            reg_add(reg, inst);
        }
        free(uuids[i]);
    }
    free(uuids);
}

/* The host shell instance MCSManager creates on every daemon. */
static int reg_create_global(registry_t *reg)
{
    json_t *config = json_pack(
        "{ss ss ss ss ss ss ss ss}", "nickname", "__MCSM_GLOBAL_INSTANCE__",
        "startCommand", "bash", "stopCommand", "^c", "cwd", "/", "ie", "utf8",
        "oe", "utf8", "type", "universal", "processType", "general");
    char *err = NULL;

    reg->global =
        instance_create(&reg->opts, REGISTRY_GLOBAL_UUID, config, &err);
    json_decref(config);
    if (reg->global == NULL) {
        log_error("instance %s: cannot be created: %s", REGISTRY_GLOBAL_UUID,
                  err ? err : "unknown error");
        free(err);
        return -1;
    }
    return 0;
}

registry_t *registry_new(uv_loop_t *loop, const char *data_dir, dconfig_t *cfg,
                         int daemon_port, const instance_callbacks_t *callbacks,
                         void *data)
{
    registry_t *reg = xcalloc(1, sizeof(*reg));

    reg->loop = loop;
    reg->cfg = cfg;
    reg->daemon_port = daemon_port;
    if (callbacks != NULL)
        reg->user_callbacks = *callbacks;
    reg->user_data = data;
    uv_timer_init(loop, &reg->autostart_timer);
    reg->autostart_timer.data = reg;

    if (reg_make_folders(reg, data_dir) < 0) {
        registry_free(reg);
        return NULL;
    }
    reg->opts.loop = loop;
    reg->opts.config_dir = reg->config_dir;
    reg->opts.log_dir = reg->log_dir;
    reg->opts.data_dir = reg->instance_data_dir;
    reg->opts.port_count = cfg->port_assign_interval;
    reg->opts.alloc_base_port = reg_alloc_base_port;
    reg->opts.callbacks = &reg_callbacks;
    reg->opts.data = reg;

    reg_load_all(reg);
    if (reg->global == NULL && reg_create_global(reg) < 0) {
        registry_free(reg);
        return NULL;
    }
    log_info("loaded %zu instances from %s", reg->count, reg->config_dir);
    return reg;
}

static void reg_clear_autostart(registry_t *reg)
{
    size_t i;

    for (i = 0; i < reg->autostart_count; i++)
        free(reg->autostart_queue[i]);
    free(reg->autostart_queue);
    reg->autostart_queue = NULL;
    reg->autostart_count = 0;
    reg->autostart_next = 0;
}

static void reg_on_timer_closed(uv_handle_t *handle)
{
    registry_t *reg = handle->data;

    free(reg->config_dir);
    free(reg->log_dir);
    free(reg->instance_data_dir);
    free(reg);
}

void registry_free(registry_t *reg)
{
    size_t i;

    if (reg == NULL)
        return;
    reg_clear_autostart(reg);
    for (i = 0; i < reg->count; i++)
        instance_free(reg->items[i]);
    free(reg->items);
    reg->items = NULL;
    reg->count = 0;
    if (reg->global != NULL)
        instance_free(reg->global);
    reg->global = NULL;
    uv_close((uv_handle_t *)&reg->autostart_timer, reg_on_timer_closed);
}

instance_t *registry_get(const registry_t *reg, const char *uuid)
{
    size_t i;

    if (uuid == NULL)
        return NULL;
    if (reg->global != NULL && strcmp(uuid, REGISTRY_GLOBAL_UUID) == 0)
        return reg->global;
    for (i = 0; i < reg->count; i++) {
        if (strcmp(instance_uuid(reg->items[i]), uuid) == 0)
            return reg->items[i];
    }
    return NULL;
}

int registry_is_global(const instance_t *inst)
{
    return strcmp(instance_uuid(inst), REGISTRY_GLOBAL_UUID) == 0;
}

size_t registry_list(const registry_t *reg, instance_t *const **list)
{
    *list = reg->items;
    return reg->count;
}

size_t registry_count_running(const registry_t *reg)
{
    size_t i, n = 0;

    for (i = 0; i < reg->count; i++)
        n += instance_status(reg->items[i]) == INSTANCE_RUNNING;
    return n;
}

static int is_active(const instance_t *inst)
{
    int status = instance_status(inst);

    return status != INSTANCE_STOPPED && status != INSTANCE_BUSY;
}

size_t registry_count_active(const registry_t *reg)
{
    size_t i, n = 0;

    for (i = 0; i < reg->count; i++)
        n += is_active(reg->items[i]);
    if (reg->global != NULL)
        n += is_active(reg->global);
    return n;
}

instance_t *registry_create(registry_t *reg, const json_t *config, char **err)
{
    instance_t *inst = instance_create(&reg->opts, NULL, config, err);

    if (inst == NULL)
        return NULL;
    reg_add(reg, inst);
    log_info("instance %s: created", instance_uuid(inst));
    return inst;
}

/* Checks the whole batch first, so that a refused batch changes nothing. */
static int reg_check_delete(const registry_t *reg, const json_t *uuids,
                            char **err)
{
    const json_t *v;
    size_t i;

    if (!json_is_array(uuids)) {
        *err = xstrdup("The instanceUuids parameter must be an array");
        return -EINVAL;
    }
    json_array_foreach(uuids, i, v)
    {
        instance_t *inst = registry_get(reg, json_string_value(v));

        if (inst == NULL || registry_is_global(inst)) {
            *err = xstrdup("The target instance does not exist!");
            return -ENOENT;
        }
        if (instance_status(inst) != INSTANCE_STOPPED) {
            *err = xasprintf("The instance %s is not stopped and cannot be "
                             "deleted; stop it first",
                             instance_uuid(inst));
            return -EBUSY;
        }
    }
    return 0;
}

int registry_delete(registry_t *reg, const json_t *uuids, int delete_files,
                    json_t **deleted, char **err)
{
    const json_t *v;
    size_t i;
    int rc;

    *deleted = NULL;
    rc = reg_check_delete(reg, uuids, err);
    if (rc < 0)
        return rc;
    *deleted = json_array();
    json_array_foreach(uuids, i, v)
    {
        instance_t *inst = registry_get(reg, json_string_value(v));
        json_t *entry;

        /* The same id listed twice is already gone. */
        if (inst == NULL)
            continue;
        entry = json_pack("{ss ss}", "instanceUuid", instance_uuid(inst),
                          "nickname", instance_nickname(inst));
        rc = instance_delete(inst, delete_files, err);
        if (rc < 0) {
            json_decref(entry);
            return rc;
        }
        reg_remove(reg, inst);
        log_info("instance %s: deleted%s",
                 json_string_value(json_object_get(entry, "instanceUuid")),
                 delete_files ? " with its files" : "");
        json_array_append_new(*deleted, entry);
    }
    return 0;
}

/* Lower-case ASCII substring test; other bytes compare as they are. */
static int contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle), i;

    if (n == 0)
        return 1;
    for (; *haystack != '\0'; haystack++) {
        for (i = 0; i < n; i++) {
            if (haystack[i] == '\0' || tolower((unsigned char)haystack[i]) !=
                                           tolower((unsigned char)needle[i]))
                break;
        }
        if (i == n)
            return 1;
    }
    return 0;
}

static int has_tag(const json_t *tags, const char *tag)
{
    const json_t *v;
    size_t i;

    json_array_foreach(tags, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), tag) == 0)
            return 1;
    }
    return 0;
}

/*
 * The status filter follows MCSManager's truthiness rule: a number 0, ""
 * and absence mean "any status", while the string "0" selects stopped
 * instances. Returns 1 and sets *status when a filter applies; a value
 * that is not numeric selects nothing (*status = INT_MIN).
 */
static int status_filter(const json_t *v, int *status)
{
    char *end;
    double d;

    if (json_is_number(v)) {
        d = json_number_value(v);
        if (d == 0)
            return 0;
    } else if (json_is_string(v) && json_string_length(v) > 0) {
        d = strtod(json_string_value(v), &end);
        if (*end != '\0')
            d = NAN;
    } else if (json_is_true(v)) {
        d = 1;
    } else {
        return 0;
    }
    *status = isfinite(d) && d == floor(d) ? (int)d : INT_MIN;
    return 1;
}

struct select_query {
    const char *name;
    int filter_status;
    int status;
    const json_t *tags; /* array of strings, or NULL */
};

static int select_matches(const instance_t *inst, const struct select_query *q)
{
    const json_t *config = instance_config(inst);
    const json_t *my_tags = json_object_get(config, "tag");
    const json_t *v;
    size_t i;

    if (q->name != NULL && !contains_nocase(instance_nickname(inst), q->name))
        return 0;
    if (q->filter_status && instance_status(inst) != q->status)
        return 0;
    json_array_foreach(q->tags, i, v)
    {
        if (!json_is_string(v) || !has_tag(my_tags, json_string_value(v)))
            return 0;
    }
    return 1;
}

static int compare_for_select(const void *a, const void *b)
{
    const instance_t *x = *(instance_t *const *)a;
    const instance_t *y = *(instance_t *const *)b;
    int rc;

    if (instance_status(x) != instance_status(y))
        return instance_status(y) - instance_status(x);
    rc = strcmp(instance_nickname(x), instance_nickname(y));
    if (rc != 0)
        return rc;
    return strcmp(instance_uuid(x), instance_uuid(y));
}

/* MCSManager's toNumber(v) ?? 1 for page and pageSize, kept to >= 1. */
static long select_number(const json_t *v)
{
    double d = NAN;
    char *end;

    if (json_is_number(v))
        d = json_number_value(v);
    else if (json_is_string(v) && json_string_length(v) > 0) {
        d = strtod(json_string_value(v), &end);
        if (*end != '\0')
            d = NAN;
    }
    if (!isfinite(d) || d < 1)
        return 1;
    if (d > INT_MAX)
        return INT_MAX;
    return (long)d;
}

/* Unique tags of the visible instances, at most 60 as MCSManager sends. */
static json_t *select_all_tags(const registry_t *reg)
{
    json_t *all = json_array();
    size_t i, j;

    for (i = 0; i < reg->count && json_array_size(all) < 60; i++) {
        const json_t *tags =
            json_object_get(instance_config(reg->items[i]), "tag");
        const json_t *v;

        json_array_foreach(tags, j, v)
        {
            if (json_is_string(v) && !has_tag(all, json_string_value(v)) &&
                json_array_size(all) < 60)
                json_array_append(all, (json_t *)v);
        }
    }
    return all;
}

json_t *registry_select(const registry_t *reg, const json_t *query)
{
    const json_t *condition = json_object_get(query, "condition");
    const json_t *name = json_object_get(condition, "instanceName");
    const json_t *tags = json_object_get(condition, "tag");
    struct select_query q = {NULL, 0, 0, NULL};
    long page = select_number(json_object_get(query, "page"));
    long page_size = select_number(json_object_get(query, "pageSize"));
    instance_t **hits = xcalloc(reg->count + 1, sizeof(*hits));
    size_t n = 0, i, start;
    long max_page;
    json_t *data = json_array();

    if (json_is_string(name) && json_string_length(name) > 0)
        q.name = json_string_value(name);
    q.filter_status =
        status_filter(json_object_get(condition, "status"), &q.status);
    if (json_is_array(tags) && json_array_size(tags) > 0)
        q.tags = tags;

    for (i = 0; i < reg->count; i++) {
        if (select_matches(reg->items[i], &q))
            hits[n++] = reg->items[i];
    }
    qsort(hits, n, sizeof(*hits), compare_for_select);
    max_page = (long)((n + (size_t)page_size - 1) / (size_t)page_size);
    start = (size_t)(page - 1) * (size_t)page_size;
    for (i = start; i < n && i < start + (size_t)page_size; i++)
        json_array_append_new(data, instance_detail_json(hits[i], 0));
    free(hits);
    return json_pack("{sI sI sI so so}", "page", (json_int_t)page, "pageSize",
                     (json_int_t)page_size, "maxPage", (json_int_t)max_page,
                     "allTags", select_all_tags(reg), "data", data);
}

static void reg_on_autostart(uv_timer_t *timer)
{
    registry_t *reg = timer->data;

    while (reg->autostart_next < reg->autostart_count) {
        const char *uuid = reg->autostart_queue[reg->autostart_next++];
        instance_t *inst = registry_get(reg, uuid);
        char *err = NULL;

        /* Deleted or started by hand since boot: try the next one now. */
        if (inst == NULL || instance_status(inst) != INSTANCE_STOPPED)
            continue;
        log_info("instance %s: automatic start", uuid);
        if (instance_start(inst, &err) < 0) {
            log_warn("instance %s: automatic start failed: %s", uuid,
                     err ? err : "unknown error");
            free(err);
        }
        if (reg->autostart_next < reg->autostart_count)
            uv_timer_start(&reg->autostart_timer, reg_on_autostart,
                           REGISTRY_AUTOSTART_INTERVAL_MS, 0);
        return;
    }
    reg_clear_autostart(reg);
}

void registry_autostart(registry_t *reg)
{
    size_t i;

    reg_clear_autostart(reg);
    reg->autostart_queue = xcalloc(reg->count + 1, sizeof(char *));
    for (i = 0; i < reg->count; i++) {
        const json_t *task =
            json_object_get(instance_config(reg->items[i]), "eventTask");

        if (json_is_true(json_object_get(task, "autoStart")))
            reg->autostart_queue[reg->autostart_count++] =
                xstrdup(instance_uuid(reg->items[i]));
    }
    if (reg->autostart_count == 0) {
        reg_clear_autostart(reg);
        return;
    }
    log_info("%zu instances will start automatically", reg->autostart_count);
    uv_timer_start(&reg->autostart_timer, reg_on_autostart,
                   REGISTRY_AUTOSTART_DELAY_MS, 0);
}

void registry_autostart_cancel(registry_t *reg)
{
    uv_timer_stop(&reg->autostart_timer);
    reg_clear_autostart(reg);
}
