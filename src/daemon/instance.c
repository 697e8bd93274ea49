#include "daemon/instance.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/ident.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/cmdline.h"
#include "daemon/output.h"

/* Bytes read per pipe read, and at most per pipe when draining at exit. */
#define READ_CHUNK 65536
#define DRAIN_MAX (1024 * 1024)
/* An exit sooner than this after the start suggests a wrong command. */
#define QUICK_EXIT_MS 2000
/* Largest stopTimeout accepted (one day), as MCSManager clamps it. */
#define STOP_TIMEOUT_MAX 86400

/* ---------------------------------------------------------------------- */
/* Config schema: MCSManager's InstanceConfig keys, order and defaults.   */
/* ---------------------------------------------------------------------- */

enum field_type { F_STR, F_NUM, F_BOOL, F_ARR, F_OBJ };

struct field {
    const char *key;
    enum field_type type;
    const char *def_str;
    double def_num;          /* also the default of F_BOOL (0 or 1) */
    const struct field *sub; /* members of F_OBJ, ended by a NULL key */
    int optional;            /* absent unless set (MCSManager's undefined) */
};

#define STR(k, d) {k, F_STR, d, 0, NULL, 0}
#define NUM(k, d) {k, F_NUM, NULL, d, NULL, 0}
#define NUM_OPT(k) {k, F_NUM, NULL, 0, NULL, 1}
#define BOOL(k, d) {k, F_BOOL, NULL, d, NULL, 0}
#define ARR(k) {k, F_ARR, NULL, 0, NULL, 0}
#define OBJ(k, s) {k, F_OBJ, NULL, 0, s, 0}
#define END {NULL, F_STR, NULL, 0, NULL, 0}

static const struct field terminal_fields[] = {
    BOOL("haveColor", 0), BOOL("pty", 1), NUM("ptyWindowCol", 164),
    NUM("ptyWindowRow", 40), END,
};

static const struct field event_fields[] = {
    BOOL("autoStart", 0), BOOL("autoRestart", 0),
    NUM("autoRestartMaxTimes", -1), BOOL("ignore", 0), END,
};

static const struct field java_fields[] = {STR("id", ""), END};

static const struct field docker_fields[] = {
    STR("updateCommandImage", "HOST"), STR("containerName", ""),
    STR("image", ""), NUM("uploadSpeedLimit", 0),
    NUM("downloadSpeedLimit", 0), ARR("ports"), ARR("extraVolumes"),
    ARR("capAdd"), ARR("capDrop"), ARR("devices"), BOOL("privileged", 0),
    NUM("memory", 0), NUM_OPT("memorySwap"), NUM_OPT("memorySwappiness"),
    STR("networkMode", "bridge"), ARR("networkAliases"),
    STR("cpusetCpus", ""), NUM("cpuUsage", 0), NUM("maxSpace", 0),
    NUM("io", 0), NUM("network", 0), STR("workingDir", "/data"),
    ARR("env"), BOOL("changeWorkdir", 1), ARR("labels"),
    BOOL("gpuEnabled", 0), NUM("gpuCount", -1), ARR("gpuDeviceIds"),
    STR("gpuDriver", "nvidia"), ARR("deviceReadBps"), ARR("deviceWriteBps"),
    END,
};

static const struct field ping_fields[] = {
    STR("ip", ""), NUM("port", 25565), NUM("type", 1), END,
};

static const struct field extra_fields[] = {
    STR("openFrpTunnelId", ""), STR("openFrpToken", ""), END,
};

static const struct field config_fields[] = {
    STR("nickname", "Undefined"),
    STR("startCommand", ""),
    STR("stopCommand", "^C"),
    NUM("stopTimeout", 0),
    STR("cwd", "."),
    STR("ie", "utf-8"),
    STR("oe", "utf-8"),
    NUM("createDatetime", 0), /* set to now by config_defaults */
    NUM("lastDatetime", 0),
    STR("type", "universal"),
    ARR("tag"),
    NUM("endTime", 0),
    STR("fileCode", "utf-8"),
    STR("processType", "general"),
    STR("updateCommand", ""),
    STR("runAs", ""),
    NUM("crlf", 1),
    NUM("category", 0),
    NUM("basePort", 0),
    BOOL("enableRcon", 0),
    STR("rconPassword", ""),
    NUM("rconPort", 0),
    STR("rconIp", ""),
    ARR("actionCommandList"),
    OBJ("terminalOption", terminal_fields),
    OBJ("eventTask", event_fields),
    OBJ("java", java_fields),
    OBJ("docker", docker_fields),
    OBJ("pingConfig", ping_fields),
    OBJ("extraServiceConfig", extra_fields),
    END,
};

static json_t *config_defaults_of(const struct field *fields)
{
    json_t *obj = json_object();
    const struct field *f;

    for (f = fields; f->key != NULL; f++) {
        json_t *v = NULL;

        if (f->optional)
            continue;
        switch (f->type) {
        case F_STR:
            v = json_string(f->def_str);
            break;
        case F_NUM:
            v = json_integer((json_int_t)f->def_num);
            break;
        case F_BOOL:
            v = json_boolean(f->def_num != 0);
            break;
        case F_ARR:
            v = json_array();
            break;
        case F_OBJ:
            v = config_defaults_of(f->sub);
            break;
        }
        json_object_set_new(obj, f->key, v);
    }
    return obj;
}

static json_t *config_defaults(void)
{
    json_t *config = config_defaults_of(config_fields);
    json_int_t now = (json_int_t)util_now_ms();

    json_object_set_new(config, "createDatetime", json_integer(now));
    json_object_set_new(config, "lastDatetime", json_integer(now));
    return config;
}

/* Short text of a JSON value for error messages (caller frees). */
static char *json_brief(const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    char *out;

    if (text == NULL)
        return xstrdup("?");
    if (strlen(text) > 60)
        strcpy(text + 57, "...");
    out = xstrdup(text);
    free(text);
    return out;
}

/* A number as JSON: an integer when it is one, so files keep "0" not "0.0". */
static json_t *json_number_of(double d)
{
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
        return json_integer((json_int_t)d);
    return json_real(d);
}

/*
 * Coerces v to a number like JavaScript's Number(): numbers, booleans and
 * numeric strings are accepted. Returns 1 with *out set, 0 for "" (keep
 * the old value), -1 when v is not numeric.
 */
static int coerce_number(const json_t *v, double *out)
{
    const char *s;
    char *end;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1 : 0;
        return 1;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return 0;
    errno = 0;
    *out = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(*out))
        return -1;
    return 1;
}

/* String() of JavaScript for scalars; NULL for arrays and objects. */
static json_t *coerce_string(const json_t *v)
{
    char buf[64];

    if (json_is_string(v))
        return json_string(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return json_string(buf);
    }
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    return NULL;
}

/* JavaScript truthiness. */
static int coerce_bool(const json_t *v)
{
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_number(v))
        return json_number_value(v) != 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return 1; /* arrays and objects */
}

static const struct field *field_find(const struct field *fields,
                                      const char *key)
{
    const struct field *f;

    for (f = fields; f->key != NULL; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

/* Error message for a value of the wrong kind (caller frees). */
static char *field_error(const char *prefix, const char *key,
                         const json_t *value, const char *expected)
{
    char *brief = json_brief(value);
    char *msg = xasprintf("Invalid value for %s%s: %s is not %s", prefix, key,
                          brief, expected);

    free(brief);
    return msg;
}

/* Coerces one value to a field's type. Returns NULL with *err set. */
static json_t *field_coerce(const struct field *f, const char *prefix,
                            const json_t *v, char **err)
{
    json_t *out;
    double d;
    int rc;

    switch (f->type) {
    case F_STR:
        out = coerce_string(v);
        if (out == NULL)
            *err = field_error(prefix, f->key, v, "a string");
        return out;
    case F_NUM:
        rc = coerce_number(v, &d);
        if (rc < 0)
            *err = field_error(prefix, f->key, v, "a number");
        return rc > 0 ? json_number_of(d) : NULL;
    case F_BOOL:
        return json_boolean(coerce_bool(v));
    case F_ARR:
        if (!json_is_array(v)) {
            *err = field_error(prefix, f->key, v, "an array");
            return NULL;
        }
        return json_deep_copy(v);
    case F_OBJ:
        break;
    }
    return NULL;
}

/*
 * Merges src into dst (a complete config or sub-object) following fields.
 * Null values are skipped, and "" for a number keeps the old value.
 * Unknown keys are copied only when keep_unknown is set, which loading a
 * file does so that keys of newer MCSManager versions survive a save.
 * Returns 0, or -EINVAL with *err set. On failure dst is partly updated,
 * so callers merge into a copy.
 */
static int config_merge(json_t *dst, const json_t *src,
                        const struct field *fields, const char *prefix,
                        int keep_unknown, char **err)
{
    const struct field *f;
    const char *key;
    json_t *v;

    for (f = fields; f->key != NULL; f++) {
        json_t *coerced;

        v = json_object_get(src, f->key);
        if (v == NULL || json_is_null(v))
            continue;
        if (f->type == F_OBJ) {
            char *sub_prefix;
            int rc;

            if (!json_is_object(v)) {
                *err = field_error(prefix, f->key, v, "an object");
                return -EINVAL;
            }
            sub_prefix = xasprintf("%s%s.", prefix, f->key);
            rc = config_merge(json_object_get(dst, f->key), v, f->sub,
                              sub_prefix, keep_unknown, err);
            free(sub_prefix);
            if (rc < 0)
                return rc;
            continue;
        }
        *err = NULL;
        coerced = field_coerce(f, prefix, v, err);
        if (*err != NULL)
            return -EINVAL;
        if (coerced != NULL)
            json_object_set_new(dst, f->key, coerced);
    }
    if (!keep_unknown)
        return 0;
    json_object_foreach((json_t *)src, key, v) {
        if (field_find(fields, key) == NULL)
            json_object_set_new(dst, key, json_deep_copy(v));
    }
    return 0;
}

static const char *cfg_str(const json_t *config, const char *key)
{
    const char *s = json_string_value(json_object_get(config, key));

    return s != NULL ? s : "";
}

static double cfg_num(const json_t *config, const char *key)
{
    return json_number_value(json_object_get(config, key));
}

static int cfg_bool(const json_t *config, const char *key)
{
    return json_is_true(json_object_get(config, key));
}

static const json_t *cfg_obj(const json_t *config, const char *key)
{
    return json_object_get(config, key);
}

/* Returns the first of "\n" or "\r" found in s, or 0. */
static char find_line_break(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '\n' || *s == '\r')
            return *s;
    return 0;
}

/*
 * Rules that go beyond coercion, applied to a merged config. Returns 0 or
 * -EINVAL with *err set.
 */
static int config_check(json_t *config, char **err)
{
    double timeout = floor(cfg_num(config, "stopTimeout"));
    double crlf = cfg_num(config, "crlf");
    double port = cfg_num(config, "basePort");
    json_t *tags = json_object_get(config, "tag");
    char brk;
    size_t i;

    brk = find_line_break(cfg_str(config, "startCommand"));
    if (brk != 0) {
        *err = xasprintf("Invalid startCommand: it contains a %s; the start "
                         "command must be a single line",
                         brk == '\n' ? "newline (\\n)"
                                     : "carriage return (\\r)");
        return -EINVAL;
    }
    if (crlf != 1 && crlf != 2) {
        *err = xasprintf("Invalid value for crlf: %g; use 1 for \\n or 2 "
                         "for \\r\\n",
                         crlf);
        return -EINVAL;
    }
    if (port < 0 || port > 65535 || port != floor(port)) {
        *err = xasprintf("Invalid value for basePort: %g; use a port "
                         "number from 0 (allocate one) to 65535",
                         port);
        return -EINVAL;
    }
    if (timeout < 0)
        timeout = 0;
    if (timeout > STOP_TIMEOUT_MAX)
        timeout = STOP_TIMEOUT_MAX;
    json_object_set_new(config, "stopTimeout", json_number_of(timeout));

    /* Tags are stored as trimmed strings, as MCSManager stores them. */
    for (i = 0; i < json_array_size(tags); i++) {
        json_t *tag = coerce_string(json_array_get(tags, i));
        const char *s, *e;

        if (tag == NULL) {
            *err = xstrdup("Invalid value for tag: each tag must be a "
                           "string");
            return -EINVAL;
        }
        s = json_string_value(tag);
        while (isspace((unsigned char)*s))
            s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        json_array_set_new(tags, i, json_stringn(s, (size_t)(e - s)));
        json_decref(tag);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The instance                                                           */
/* ---------------------------------------------------------------------- */

/* One spawned process with its pipes; freed when all its handles closed. */
struct proc {
    instance_t *inst;
    uv_process_t process;
    uv_pipe_t in;
    uv_pipe_t out;
    uv_pipe_t err;
    int handles_open;
    int out_open; /* the read side is still open (no EOF yet) */
    int err_open;
    int in_open;
    int exited;
    int pid;
    int64_t start_ms;
    char read_buf[READ_CHUNK];
};

struct stdin_write {
    uv_write_t req;
    char data[];
};

struct instance {
    uv_loop_t *loop;
    char *uuid;
    char *config_path;
    char *log_path;
    char *data_dir;
    char *config_dir;
    char *log_dir;
    int port_count;
    int (*alloc_base_port)(void *data);
    instance_callbacks_t callbacks;
    void *cb_data;
    void *user_data;

    json_t *config;
    int status;
    output_t *output;

    struct proc *proc; /* the live process, or NULL */
    int procs_open;    /* proc records not yet freed, old ones included */
    int started;
    int auto_restarted;
    int exit_requested;  /* the current process is stopped on request */
    int restart_pending; /* start again when the current process exits */

    uv_timer_t stop_timer;    /* stop timeout: SIGKILL the group */
    double stop_timeout_s;    /* the timeout armed, for its message */
    uv_timer_t restart_timer; /* delayed automatic restart */
    uv_timer_t expiry_timer;  /* endTime reached while running */
    int timers_open;

    int freeing;
    int delete_busy;    /* the working folder is being removed */
    uv_work_t delete_work;
    char *delete_path;
    int delete_rc;
};

static const char *status_name(int status)
{
    switch (status) {
    case INSTANCE_BUSY:
        return "busy";
    case INSTANCE_STOPPED:
        return "stopped";
    case INSTANCE_STOPPING:
        return "stopping";
    case INSTANCE_STARTING:
        return "starting";
    case INSTANCE_RUNNING:
        return "running";
    }
    return "unknown";
}

/*
 * The only place where the status changes: logs the transition and
 * notifies the listener. Entering running means the process was spawned
 * (on_opened); entering stopped from running or stopping means it exited
 * (on_stopped). Nothing is notified once the instance is being freed.
 */
static void instance__set_status(instance_t *inst, int status)
{
    const instance_callbacks_t *cb = &inst->callbacks;
    int old = inst->status;

    if (old == status)
        return;
    inst->status = status;
    log_info("instance %s: %s -> %s", inst->uuid, status_name(old),
             status_name(status));
    if (inst->freeing)
        return;
    if (cb->on_status != NULL)
        cb->on_status(inst, old, status, inst->cb_data);
    if (status == INSTANCE_RUNNING && cb->on_opened != NULL)
        cb->on_opened(inst, inst->cb_data);
    if (status == INSTANCE_STOPPED &&
        (old == INSTANCE_RUNNING || old == INSTANCE_STOPPING) &&
        cb->on_stopped != NULL)
        cb->on_stopped(inst, inst->cb_data);
}

static void instance__print(instance_t *inst, const char *level,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void instance__print(instance_t *inst, const char *level,
                            const char *fmt, ...)
{
    va_list ap;
    char *text;

    va_start(ap, fmt);
    text = xvasprintf(fmt, ap);
    va_end(ap);
    /* A callback may have released the instance (output is then NULL). */
    if (inst->output != NULL)
        output_line(inst->output, level, text);
    free(text);
}

/*
 * Reports a failed operation the way MCSManager does: an "[ERROR]" console
 * line and on_failure. The message goes to *err (or is freed). Returns rc.
 */
static int instance__fail(instance_t *inst, char **err, int rc,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int instance__fail(instance_t *inst, char **err, int rc,
                          const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);

    if (inst->output != NULL)
        output_line(inst->output, "ERROR", msg);
    log_info("instance %s: %s", inst->uuid, msg);
    if (!inst->freeing && inst->callbacks.on_failure != NULL)
        inst->callbacks.on_failure(inst, msg, inst->cb_data);
    if (err != NULL)
        *err = msg;
    else
        free(msg);
    return rc;
}

static void set_err(char **err, char *msg)
{
    if (err != NULL)
        *err = msg;
    else
        free(msg);
}

/* Sends sig to the whole process group of the live process. */
static void instance__signal_group(instance_t *inst, int sig)
{
    if (inst->proc == NULL || inst->proc->exited)
        return;
    if (kill(-inst->proc->pid, sig) < 0 && errno != ESRCH)
        log_warn("instance %s: kill(-%d, %d) failed: %s", inst->uuid,
                 inst->proc->pid, sig, strerror(errno));
}

/* ---------------------------------------------------------------------- */
/* Saving                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * Writes config to path, pretty-printed with 4 spaces and the key order of
 * MCSManager, without a final newline (as JSON.stringify writes it). This
 * is a synchronous write on the loop thread: the file is a few KiB and
 * fs_write_atomic keeps it crash-safe.
 */
static int config_save(const char *path, const json_t *config, char **err)
{
    char *text = json_dumps(config, JSON_INDENT(4));
    int rc;

    if (text == NULL) {
        set_err(err, xstrdup("Saving the instance config failed: cannot "
                             "encode it as JSON"));
        return -EINVAL;
    }
    rc = fs_write_atomic(path, text, strlen(text));
    free(text);
    if (rc < 0)
        set_err(err, xasprintf("Saving the instance config to \"%s\" "
                               "failed: %s",
                               path, strerror(-rc)));
    return rc;
}

/* Allocates basePort when it is 0, then saves. */
static int instance__save_config(instance_t *inst, json_t *config,
                                 char **err)
{
    if (cfg_num(config, "basePort") == 0 && inst->alloc_base_port != NULL) {
        int port = inst->alloc_base_port(inst->cb_data);

        if (port > 0 && port <= 65535)
            json_object_set_new(config, "basePort", json_integer(port));
    }
    return config_save(inst->config_path, config, err);
}

/* ---------------------------------------------------------------------- */
/* Creation and loading                                                   */
/* ---------------------------------------------------------------------- */

/* Instance ids end up in file names: letters, digits, '-' and '_'. */
static int uuid_valid(const char *uuid)
{
    size_t len = strlen(uuid), i;

    if (len == 0 || len > 64)
        return 0;
    for (i = 0; i < len; i++)
        if (!isalnum((unsigned char)uuid[i]) && uuid[i] != '-' &&
            uuid[i] != '_')
            return 0;
    return 1;
}

static void instance__output_cb(const char *text, size_t len, void *data)
{
    instance_t *inst = data;

    if (!inst->freeing && inst->callbacks.on_output != NULL)
        inst->callbacks.on_output(inst, text, len, inst->cb_data);
}

static instance_t *instance__alloc(const instance_options_t *opts,
                                   const char *uuid, json_t *config)
{
    instance_t *inst = xcalloc(1, sizeof(*inst));

    inst->loop = opts->loop;
    inst->uuid = xstrdup(uuid);
    inst->config_dir = xstrdup(opts->config_dir);
    inst->log_dir = xstrdup(opts->log_dir);
    inst->data_dir = xstrdup(opts->data_dir);
    inst->config_path = xasprintf("%s/%s.json", opts->config_dir, uuid);
    inst->log_path = xasprintf("%s/%s.log", opts->log_dir, uuid);
    inst->port_count = opts->port_count;
    inst->alloc_base_port = opts->alloc_base_port;
    if (opts->callbacks != NULL)
        inst->callbacks = *opts->callbacks;
    inst->cb_data = opts->data;
    inst->config = config;
    inst->status = INSTANCE_STOPPED;
    inst->output = output_new(inst->loop, inst->log_path,
                              cfg_str(config, "oe"), instance__output_cb,
                              inst);
    uv_timer_init(inst->loop, &inst->stop_timer);
    uv_timer_init(inst->loop, &inst->restart_timer);
    uv_timer_init(inst->loop, &inst->expiry_timer);
    inst->stop_timer.data = inst;
    inst->restart_timer.data = inst;
    inst->expiry_timer.data = inst;
    inst->timers_open = 3;
    return inst;
}

/* "utf-8" (any case) becomes "utf8", as MCSManager's creation does. */
static void normalise_encoding(json_t *config, const char *key)
{
    if (strcasecmp(cfg_str(config, key), "utf-8") == 0)
        json_object_set_new(config, key, json_string("utf8"));
}

instance_t *instance_create(const instance_options_t *opts, const char *uuid,
                            const json_t *config, char **err)
{
    char generated[33];
    json_t *merged = config_defaults();
    const char *cwd;
    char *msg = NULL;
    instance_t *inst;
    json_int_t now;

    if (uuid == NULL) {
        ident_uuid32(generated);
        uuid = generated;
    }
    if (!uuid_valid(uuid)) {
        json_decref(merged);
        set_err(err, xasprintf("Creating the instance failed: invalid "
                               "instance id \"%.64s\"",
                               uuid));
        return NULL;
    }
    if (config != NULL && !json_is_object(config)) {
        json_decref(merged);
        set_err(err, xstrdup("Creating the instance failed: the config "
                             "must be a JSON object"));
        return NULL;
    }
    if ((config != NULL &&
         config_merge(merged, config, config_fields, "", 0, &msg) < 0) ||
        config_check(merged, &msg) < 0) {
        json_decref(merged);
        set_err(err, msg);
        return NULL;
    }

    normalise_encoding(merged, "ie");
    normalise_encoding(merged, "oe");
    normalise_encoding(merged, "fileCode");
    cwd = cfg_str(merged, "cwd");
    if (cwd[0] == '\0' || strcmp(cwd, ".") == 0)
        json_object_set_new(merged, "cwd",
                            json_sprintf("%s/%s", opts->data_dir, uuid));
    now = (json_int_t)util_now_ms();
    json_object_set_new(merged, "createDatetime", json_integer(now));
    json_object_set_new(merged, "lastDatetime", json_integer(now));

    inst = instance__alloc(opts, uuid, merged);
    if (instance__save_config(inst, inst->config, err) < 0) {
        instance_free(inst);
        return NULL;
    }
    log_debug("instance %s: created", inst->uuid);
    return inst;
}

instance_t *instance_load(const instance_options_t *opts, const char *uuid,
                          char **err)
{
    char *path, *msg = NULL;
    json_t *file, *merged;
    json_error_t jerr;

    if (!uuid_valid(uuid)) {
        set_err(err, xasprintf("Loading the instance failed: invalid "
                               "instance id \"%.64s\"",
                               uuid));
        return NULL;
    }
    path = xasprintf("%s/%s.json", opts->config_dir, uuid);
    file = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (file == NULL || !json_is_object(file)) {
        set_err(err, xasprintf("Loading instance config \"%s\" failed: %s",
                               path,
                               file == NULL ? jerr.text
                                            : "the top level is not an "
                                              "object"));
        json_decref(file);
        free(path);
        return NULL;
    }
    merged = config_defaults();
    if (config_merge(merged, file, config_fields, "", 1, &msg) < 0 ||
        config_check(merged, &msg) < 0) {
        set_err(err, xasprintf("Loading instance config \"%s\" failed: %s",
                               path, msg));
        free(msg);
        json_decref(merged);
        json_decref(file);
        free(path);
        return NULL;
    }
    json_decref(file);
    free(path);
    return instance__alloc(opts, uuid, merged);
}

/* ---------------------------------------------------------------------- */
/* Release                                                                */
/* ---------------------------------------------------------------------- */

static void instance__maybe_release(instance_t *inst)
{
    if (!inst->freeing || inst->timers_open > 0 || inst->procs_open > 0 ||
        inst->delete_busy)
        return;
    json_decref(inst->config);
    free(inst->delete_path);
    free(inst->uuid);
    free(inst->config_path);
    free(inst->log_path);
    free(inst->data_dir);
    free(inst->config_dir);
    free(inst->log_dir);
    free(inst);
}

static void instance__timer_closed(uv_handle_t *handle)
{
    instance_t *inst = handle->data;

    inst->timers_open--;
    instance__maybe_release(inst);
}

static void instance__release(instance_t *inst)
{
    inst->freeing = 1;
    /*
     * A live process is killed; its exit callback then closes its handles
     * without notifying anyone. Closing the process handle before the
     * exit would leave a zombie, because libuv reaps only active handles.
     */
    instance__signal_group(inst, SIGKILL);
    uv_close((uv_handle_t *)&inst->stop_timer, instance__timer_closed);
    uv_close((uv_handle_t *)&inst->restart_timer, instance__timer_closed);
    uv_close((uv_handle_t *)&inst->expiry_timer, instance__timer_closed);
    output_free(inst->output);
    inst->output = NULL;
}

void instance_free(instance_t *inst)
{
    if (inst == NULL || inst->freeing)
        return;
    log_debug("instance %s: released", inst->uuid);
    instance__release(inst);
}

static void instance__delete_work(uv_work_t *work)
{
    instance_t *inst = work->data;

    inst->delete_rc = fs_remove_tree(inst->delete_path);
}

static void instance__delete_done(uv_work_t *work, int status)
{
    instance_t *inst = work->data;

    if (inst->delete_rc < 0)
        log_warn("instance %s: removing \"%s\" failed: %s", inst->uuid,
                 inst->delete_path, strerror(-inst->delete_rc));
    inst->delete_busy = 0;
    instance__maybe_release(inst);
}

/* The working folder as an absolute path (caller frees). */
static char *instance__cwd(const instance_t *inst)
{
    const char *cwd = cfg_str(inst->config, "cwd");
    char here[PATH_MAX];

    if (cwd[0] == '/')
        return xstrdup(cwd);
    /* MCSManager resolves a relative cwd against the daemon's folder. */
    if (getcwd(here, sizeof(here)) == NULL)
        return xstrdup(cwd);
    if (cwd[0] == '\0' || strcmp(cwd, ".") == 0)
        return xstrdup(here);
    return xasprintf("%s/%s", here, cwd);
}

/*
 * Returns 1 when removing path could take more than one instance's files
 * with it: the root, a relative path, or a folder that contains (or is)
 * one of the daemon's data folders.
 */
static int removal_unsafe(const instance_t *inst, const char *path)
{
    const char *dirs[3];
    size_t len = strlen(path), i;

    dirs[0] = inst->data_dir;
    dirs[1] = inst->config_dir;
    dirs[2] = inst->log_dir;
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (path[0] != '/' || len <= 1 || strstr(path, "/..") != NULL)
        return 1;
    for (i = 0; i < 3; i++) {
        if (strncmp(dirs[i], path, len) == 0 &&
            (dirs[i][len] == '\0' || dirs[i][len] == '/'))
            return 1;
    }
    return 0;
}

int instance_delete(instance_t *inst, int delete_files, char **err)
{
    char *cwd = NULL;

    if (inst->status != INSTANCE_STOPPED) {
        set_err(err, xasprintf("Deleting instance %s failed: it is %s; stop "
                               "it first",
                               inst->uuid, status_name(inst->status)));
        return -EBUSY;
    }
    if (delete_files) {
        cwd = instance__cwd(inst);
        if (removal_unsafe(inst, cwd)) {
            set_err(err, xasprintf("Deleting instance %s failed: refusing to "
                                   "remove its working folder \"%s\" "
                                   "because it is not a folder of its own",
                                   inst->uuid, cwd));
            free(cwd);
            return -EPERM;
        }
    }
    if (unlink(inst->config_path) < 0 && errno != ENOENT) {
        int rc = -errno;

        set_err(err, xasprintf("Deleting instance %s failed: removing \"%s\" "
                               "failed: %s",
                               inst->uuid, inst->config_path,
                               strerror(errno)));
        free(cwd);
        return rc;
    }
    log_debug("instance %s: deleted%s", inst->uuid,
             delete_files ? " with its files" : "");
    output_discard_log(inst->output);
    if (cwd != NULL) {
        inst->delete_path = cwd;
        inst->delete_busy = 1;
        inst->delete_work.data = inst;
        if (uv_queue_work(inst->loop, &inst->delete_work,
                          instance__delete_work, instance__delete_done) < 0)
            inst->delete_busy = 0;
    }
    instance__release(inst);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Getters                                                                */
/* ---------------------------------------------------------------------- */

const char *instance_uuid(const instance_t *inst)
{
    return inst->uuid;
}

int instance_status(const instance_t *inst)
{
    return inst->status;
}

const char *instance_nickname(const instance_t *inst)
{
    return cfg_str(inst->config, "nickname");
}

int instance_pid(const instance_t *inst)
{
    return inst->proc != NULL && !inst->proc->exited ? inst->proc->pid : 0;
}

int instance_started(const instance_t *inst)
{
    return inst->started;
}

int instance_auto_restarted(const instance_t *inst)
{
    return inst->auto_restarted;
}

const json_t *instance_config(const instance_t *inst)
{
    return inst->config;
}

json_t *instance_config_json(const instance_t *inst)
{
    return json_deep_copy(inst->config);
}

json_t *instance_info_json(const instance_t *inst)
{
    return json_pack("{s:b, s:i, s:i, s:s, s:i, s:[], s:b, s:i, s:[]}",
                     "mcPingOnline", 0, "currentPlayers", 0, "maxPlayers", 0,
                     "version", "", "fileLock", 0, "playersChart",
                     "openFrpStatus", 0, "latency", 0, "allocatedPorts");
}

/* Seconds since boot from /proc/uptime, or -1. */
static double read_uptime(void)
{
    char *text = fs_read_all("/proc/uptime", NULL);
    double up = -1;

    if (text != NULL)
        up = strtod(text, NULL);
    free(text);
    return up;
}

json_t *instance_process_info_json(const instance_t *inst)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime, stime, starttime;
    double cpu = 0, up, elapsed = 0, cputime = 0;
    long long rss = 0;
    int pid = instance_pid(inst), ppid = 0;
    char *path, *text = NULL, *p;

    if (pid > 0) {
        path = xasprintf("/proc/%d/stat", pid);
        text = fs_read_all(path, NULL);
        free(path);
    }
    /* The command name may contain spaces: fields start after its ')'. */
    p = text != NULL ? strrchr(text, ')') : NULL;
    if (p != NULL &&
        sscanf(p + 2,
               "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
               "%*d %*d %*d %*d %*d %*d %llu %*u %lld",
               &ppid, &utime, &stime, &starttime, &rss) == 5 &&
        ticks > 0) {
        up = read_uptime();
        cputime = (double)(utime + stime) / (double)ticks;
        elapsed = up - (double)starttime / (double)ticks;
        if (elapsed > 0)
            cpu = cputime / elapsed * 100.0;
    } else {
        pid = 0;
        rss = 0;
    }
    free(text);
    return json_pack("{s:o, s:I, s:i, s:i, s:I, s:I, s:I}", "cpu",
                     json_number_of(cpu),
                     "memory", (json_int_t)(rss * page), "ppid", ppid, "pid",
                     pid, "ctime", (json_int_t)(cputime * 1000), "elapsed",
                     (json_int_t)(elapsed > 0 ? elapsed * 1000 : 0),
                     "timestamp",
                     (json_int_t)(pid > 0 ? util_now_ms() : 0));
}

json_t *instance_detail_json(const instance_t *inst, int full)
{
    json_t *detail = json_pack(
        "{s:s, s:i, s:i, s:i, s:o, s:o}", "instanceUuid", inst->uuid,
        "started", inst->started, "autoRestarted", inst->auto_restarted,
        "status", inst->status, "config", instance_config_json(inst), "info",
        instance_info_json(inst));

    if (full) {
        json_object_set_new(detail, "space", json_integer(0));
        json_object_set_new(detail, "processInfo",
                            instance_process_info_json(inst));
    }
    return detail;
}

void instance_set_data(instance_t *inst, void *data)
{
    inst->user_data = data;
}

void *instance_get_data(const instance_t *inst)
{
    return inst->user_data;
}

char *instance_outputlog(const instance_t *inst, size_t max, size_t *len)
{
    if (inst->output == NULL) {
        if (len != NULL)
            *len = 0;
        return xstrdup("");
    }
    return output_history(inst->output, max, len);
}

void instance_print(instance_t *inst, const char *level, const char *text)
{
    if (inst->output != NULL)
        output_line(inst->output, level, text);
}

/* ---------------------------------------------------------------------- */
/* Update                                                                 */
/* ---------------------------------------------------------------------- */

static int json_values_differ(const json_t *a, const json_t *b)
{
    return !json_equal((json_t *)a, (json_t *)b);
}

/* True if the first space-separated token of command is {mcsm_java}. */
static int starts_with_java(const char *command)
{
    static const char key[] = "{mcsm_java}";

    while (*command == ' ')
        command++;
    return strncasecmp(command, key, sizeof(key) - 1) == 0 &&
           (command[sizeof(key) - 1] == ' ' ||
            command[sizeof(key) - 1] == '\0');
}

/*
 * Rejects changes that MCSManager allows only while the instance is
 * stopped or busy, and keeps the PTY window size, which it silently leaves
 * unchanged while running.
 */
static int update_check_running(instance_t *inst, json_t *next, char **err)
{
    static const char *const keys[] = {"type", "processType", "enableRcon"};
    json_t *old_term = json_object_get(inst->config, "terminalOption");
    json_t *new_term = json_object_get(next, "terminalOption");
    size_t i;

    if (inst->status == INSTANCE_STOPPED || inst->status == INSTANCE_BUSY)
        return 0;
    for (i = 0; i < ARRAY_SIZE(keys); i++) {
        if (json_values_differ(json_object_get(inst->config, keys[i]),
                               json_object_get(next, keys[i]))) {
            *err = xasprintf("Cannot change %s while the instance is %s; "
                             "stop it first",
                             keys[i], status_name(inst->status));
            return -EBUSY;
        }
    }
    if (json_values_differ(json_object_get(old_term, "pty"),
                           json_object_get(new_term, "pty"))) {
        *err = xasprintf("Cannot change terminalOption.pty while the "
                         "instance is %s; stop it first",
                         status_name(inst->status));
        return -EBUSY;
    }
    json_object_set(new_term, "ptyWindowCol",
                    json_object_get(old_term, "ptyWindowCol"));
    json_object_set(new_term, "ptyWindowRow",
                    json_object_get(old_term, "ptyWindowRow"));
    return 0;
}

int instance_update(instance_t *inst, const json_t *patch, char **err)
{
    json_t *next, *cmd;
    char *msg = NULL;
    int rc;

    if (!json_is_object(patch)) {
        set_err(err, xasprintf("Updating instance %s failed: the config "
                               "must be a JSON object",
                               inst->uuid));
        return -EINVAL;
    }
    /* Validate a copy so that a rejected update leaves no trace. */
    next = json_deep_copy(inst->config);
    rc = config_merge(next, patch, config_fields, "", 0, &msg);
    if (rc == 0)
        rc = config_check(next, &msg);
    if (rc == 0)
        rc = update_check_running(inst, next, &msg);
    if (rc < 0) {
        json_decref(next);
        set_err(err, msg);
        return rc;
    }
    cmd = json_object_get(patch, "startCommand");
    if (cmd != NULL && !json_is_null(cmd) &&
        !starts_with_java(cfg_str(next, "startCommand")))
        json_object_set_new(json_object_get(next, "java"), "id",
                            json_string(""));

    rc = instance__save_config(inst, next, err);
    if (rc < 0) {
        json_decref(next);
        return rc;
    }
    json_decref(inst->config);
    inst->config = next;
    /* Output read from now on is decoded with the new oe. */
    if (output_set_encoding(inst->output, cfg_str(next, "oe")) < 0)
        log_warn("instance %s: unknown output encoding, keeping the "
                 "previous one",
                 inst->uuid);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Process                                                                */
/* ---------------------------------------------------------------------- */

static void proc__handle_closed(uv_handle_t *handle)
{
    struct proc *proc = handle->data;
    instance_t *inst = proc->inst;

    if (--proc->handles_open > 0)
        return;
    free(proc);
    inst->procs_open--;
    instance__maybe_release(inst);
}

static void proc__close_pipe(struct proc *proc, uv_pipe_t *pipe, int *open)
{
    if (!*open)
        return;
    *open = 0;
    uv_close((uv_handle_t *)pipe, proc__handle_closed);
}

static void proc__alloc_cb(uv_handle_t *handle, size_t suggested,
                           uv_buf_t *buf)
{
    struct proc *proc = handle->data;

    *buf = uv_buf_init(proc->read_buf, sizeof(proc->read_buf));
}

static void proc__read_cb(uv_stream_t *stream, ssize_t nread,
                          const uv_buf_t *buf)
{
    struct proc *proc = stream->data;
    instance_t *inst = proc->inst;
    int source = stream == (uv_stream_t *)&proc->out ? OUTPUT_STDOUT
                                                     : OUTPUT_STDERR;

    if (nread > 0) {
        if (inst->output != NULL)
            output_feed_stream(inst->output, source, buf->base,
                               (size_t)nread);
        return;
    }
    if (nread == 0)
        return; /* EAGAIN */
    if (nread != UV_EOF)
        log_warn("instance %s: reading the process output failed: %s",
                 inst->uuid, uv_strerror((int)nread));
    if (stream == (uv_stream_t *)&proc->out)
        proc__close_pipe(proc, &proc->out, &proc->out_open);
    else
        proc__close_pipe(proc, &proc->err, &proc->err_open);
}

/*
 * Reads what the process group left in a pipe before it exited, so that
 * the last lines reach the output before the "stopped" notice. The pipe is
 * non-blocking; a writer outside the group could keep it filling, so the
 * drain is bounded.
 */
static void proc__drain(struct proc *proc, uv_pipe_t *pipe, int open)
{
    size_t total = 0;
    uv_os_fd_t fd;

    if (!open || uv_fileno((uv_handle_t *)pipe, &fd) < 0)
        return;
    while (total < DRAIN_MAX) {
        ssize_t n = read(fd, proc->read_buf, sizeof(proc->read_buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (proc->inst->output != NULL)
            output_feed_stream(proc->inst->output,
                               pipe == &proc->out ? OUTPUT_STDOUT
                                                  : OUTPUT_STDERR,
                               proc->read_buf, (size_t)n);
        total += (size_t)n;
    }
}

static int instance__spawn(instance_t *inst, char **err);

static void instance__auto_restart_cb(uv_timer_t *timer)
{
    instance_t *inst = timer->data;

    if (inst->status != INSTANCE_STARTING)
        return;
    inst->auto_restarted++;
    instance__spawn(inst, NULL);
}

/* Decides what follows an exit that was not requested (a crash). */
static void instance__after_crash(instance_t *inst, int64_t ran_ms)
{
    const json_t *events = cfg_obj(inst->config, "eventTask");
    double max = cfg_num(events, "autoRestartMaxTimes");

    if (ran_ms < QUICK_EXIT_MS)
        instance__print(inst, "ERROR",
                        "The instance exited within %d seconds of its "
                        "start; the start command is probably wrong",
                        QUICK_EXIT_MS / 1000);
    if (!cfg_bool(events, "autoRestart"))
        return;
    if (max >= 0 && inst->auto_restarted >= max) {
        instance__print(inst, "ERROR",
                        "Auto restart is not attempted: the limit of %g "
                        "restarts (autoRestartMaxTimes) is reached",
                        max);
        return;
    }
    if (max < 0)
        instance__print(inst, "INFO",
                        "The instance exited unexpectedly; auto restart in "
                        "%d seconds (restart %d)",
                        INSTANCE_AUTO_RESTART_DELAY_MS / 1000,
                        inst->auto_restarted + 1);
    else
        instance__print(inst, "INFO",
                        "The instance exited unexpectedly; auto restart in "
                        "%d seconds (restart %d of %g)",
                        INSTANCE_AUTO_RESTART_DELAY_MS / 1000,
                        inst->auto_restarted + 1, max);
    instance__set_status(inst, INSTANCE_STARTING);
    uv_timer_start(&inst->restart_timer, instance__auto_restart_cb,
                   INSTANCE_AUTO_RESTART_DELAY_MS, 0);
}

static void proc__exit_cb(uv_process_t *process, int64_t exit_status,
                          int term_signal)
{
    struct proc *proc = process->data;
    instance_t *inst = proc->inst;
    int64_t ran_ms = util_now_ms() - proc->start_ms;
    int requested = inst->exit_requested, restart;

    proc->exited = 1;
    /* Like systemd's control-group kill: nothing of the instance stays. */
    if (kill(-proc->pid, SIGKILL) < 0 && errno != ESRCH)
        log_warn("instance %s: kill(-%d, SIGKILL) failed: %s", inst->uuid,
                 proc->pid, strerror(errno));
    proc__drain(proc, &proc->out, proc->out_open);
    proc__drain(proc, &proc->err, proc->err_open);
    proc__close_pipe(proc, &proc->out, &proc->out_open);
    proc__close_pipe(proc, &proc->err, &proc->err_open);
    proc__close_pipe(proc, &proc->in, &proc->in_open);
    uv_close((uv_handle_t *)&proc->process, proc__handle_closed);
    if (inst->proc == proc)
        inst->proc = NULL;

    if (term_signal != 0)
        log_info("instance %s: process %d ended by signal %d", inst->uuid,
                 proc->pid, term_signal);
    else
        log_info("instance %s: process %d exited with code %lld", inst->uuid,
                 proc->pid, (long long)exit_status);
    if (inst->freeing)
        return;

    uv_timer_stop(&inst->stop_timer);
    uv_timer_stop(&inst->expiry_timer);
    output_feed_end(inst->output);
    instance__print(inst, "INFO", "The instance has been stopped.");
    inst->exit_requested = 0;
    restart = inst->restart_pending;
    inst->restart_pending = 0;
    instance__set_status(inst, INSTANCE_STOPPED);
    if (inst->freeing || inst->status != INSTANCE_STOPPED)
        return; /* a callback freed or started the instance */

    if (restart) {
        inst->auto_restarted = 0;
        instance__spawn(inst, NULL);
    } else if (!requested) {
        instance__after_crash(inst, ran_ms);
    }
}

static void instance__expiry_cb(uv_timer_t *timer)
{
    instance_t *inst = timer->data;

    instance__print(inst, "ERROR", "The instance has expired (endTime); "
                                   "killing it");
    inst->exit_requested = 1;
    inst->restart_pending = 0;
    instance__signal_group(inst, SIGKILL);
}

/* The placeholder table of the start command (strings owned by vars). */
static size_t instance__vars(instance_t *inst, const char *cwd,
                             cmdline_var_t **vars_out)
{
    int base = (int)cfg_num(inst->config, "basePort");
    size_t n = 0, count = 8 + (size_t)(inst->port_count > 0
                                           ? inst->port_count
                                           : 0);
    cmdline_var_t *vars = xcalloc(count, sizeof(*vars));
    char random[33];
    int k;

    ident_uuid32(random);
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_workspace"), xstrdup(cwd)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_cwd"), xstrdup(cwd)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_uuid"), xstrdup(inst->uuid)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_instance_id"),
                                xstrdup(inst->uuid)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_instance_name"),
                                xstrdup(instance_nickname(inst))};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_instance_base_port"),
                                xasprintf("%d", base)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_random"), xstrdup(random)};
    vars[n++] = (cmdline_var_t){xstrdup("mcsm_run_as"),
                                xstrdup(cfg_str(inst->config, "runAs"))};
    /*
     * NOTE: {mcsm_port1} is taken to be basePort itself, so that ports 1..N
     * fill the block [basePort, basePort + portAssignInterval) that the
     * daemon reserved.
     */
    for (k = 1; k <= inst->port_count; k++)
        vars[n++] = (cmdline_var_t){xasprintf("mcsm_port%d", k),
                                    xasprintf("%d", base + k - 1)};
    *vars_out = vars;
    return n;
}

static void free_vars(cmdline_var_t *vars, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free((char *)vars[i].name);
        free((char *)vars[i].value);
    }
    free(vars);
}

/* Expands placeholders and splits the start command. */
static int instance__argv(instance_t *inst, const char *cwd,
                          cmdline_argv_t *argv, char **msg)
{
    cmdline_var_t *vars;
    size_t n = instance__vars(inst, cwd, &vars);
    char *command = cmdline_expand(cfg_str(inst->config, "startCommand"),
                                   vars, n);
    int rc = cmdline_split(command, argv, msg);

    free(command);
    free_vars(vars, n);
    return rc;
}

/*
 * Spawns the start command. The caller checked the status (stopped, or
 * starting for an automatic restart). Returns 0 with status 3, or a
 * negative errno with status 0 and the failure reported.
 */
static int instance__spawn(instance_t *inst, char **err)
{
    uv_stdio_container_t stdio[3];
    uv_process_options_t options;
    cmdline_argv_t argv = {0, NULL};
    struct proc *proc;
    char *cwd, *msg = NULL;
    double end_time = cfg_num(inst->config, "endTime");
    int rc;

    if (strcmp(cfg_str(inst->config, "processType"), "general") != 0) {
        instance__set_status(inst, INSTANCE_STOPPED);
        return instance__fail(inst, err, -ENOTSUP,
                              "Failed to start the instance: processType "
                              "\"%s\" is not supported by Hearth; use "
                              "\"general\"",
                              cfg_str(inst->config, "processType"));
    }
    if (end_time > 0 && end_time <= (double)util_now_ms()) {
        instance__set_status(inst, INSTANCE_STOPPED);
        return instance__fail(inst, err, -EPERM,
                              "The instance has expired (its endTime has "
                              "passed); ask an administrator to extend it");
    }

    instance__set_status(inst, INSTANCE_STARTING);
    inst->started++;
    instance__print(inst, "INFO", "Preparing to start...");
    cwd = instance__cwd(inst);
    /* Usually one stat of an existing folder; small enough for the loop. */
    rc = fs_mkdir_p(cwd);
    if (rc < 0) {
        instance__set_status(inst, INSTANCE_STOPPED);
        rc = instance__fail(inst, err, rc,
                            "Failed to start the instance: cannot create "
                            "the working folder \"%s\": %s",
                            cwd, strerror(-rc));
        free(cwd);
        return rc;
    }
    rc = instance__argv(inst, cwd, &argv, &msg);
    if (rc < 0) {
        instance__set_status(inst, INSTANCE_STOPPED);
        rc = instance__fail(inst, err, rc, "Failed to start the instance: %s",
                            msg);
        free(msg);
        free(cwd);
        return rc;
    }

    proc = xcalloc(1, sizeof(*proc));
    proc->inst = inst;
    uv_pipe_init(inst->loop, &proc->in, 0);
    uv_pipe_init(inst->loop, &proc->out, 0);
    uv_pipe_init(inst->loop, &proc->err, 0);
    proc->in.data = proc->out.data = proc->err.data = proc;
    proc->process.data = proc;
    proc->in_open = proc->out_open = proc->err_open = 1;
    proc->handles_open = 4;
    inst->procs_open++;

    memset(&options, 0, sizeof(options));
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&proc->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&proc->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&proc->err;
    options.file = argv.argv[0];
    options.args = argv.argv;
    options.cwd = cwd;
    options.exit_cb = proc__exit_cb;
    /* setsid() in the child: its own session and process group. */
    options.flags = UV_PROCESS_DETACHED;
    options.stdio = stdio;
    options.stdio_count = 3;
    /* NOTE: terminalOption.pty is treated as false: the process gets pipes. */
    rc = uv_spawn(inst->loop, &proc->process, &options);
    if (rc < 0) {
        /* libuv reports an exec failure here through its CLOEXEC pipe. */
        proc__close_pipe(proc, &proc->in, &proc->in_open);
        proc__close_pipe(proc, &proc->out, &proc->out_open);
        proc__close_pipe(proc, &proc->err, &proc->err_open);
        uv_close((uv_handle_t *)&proc->process, proc__handle_closed);
        instance__set_status(inst, INSTANCE_STOPPED);
        rc = instance__fail(inst, err, rc,
                            "Failed to start the instance: cannot run "
                            "\"%s\": %s",
                            argv.argv[0], strerror(-rc));
        cmdline_argv_clear(&argv);
        free(cwd);
        return rc;
    }

    proc->pid = uv_process_get_pid(&proc->process);
    proc->start_ms = util_now_ms();
    inst->proc = proc;
    inst->exit_requested = 0;
    uv_read_start((uv_stream_t *)&proc->out, proc__alloc_cb, proc__read_cb);
    uv_read_start((uv_stream_t *)&proc->err, proc__alloc_cb, proc__read_cb);
    log_info("instance %s: started process %d (%s) in %s", inst->uuid,
             proc->pid, argv.argv[0], cwd);
    cmdline_argv_clear(&argv);
    free(cwd);

    json_object_set_new(inst->config, "lastDatetime",
                        json_integer((json_int_t)util_now_ms()));
    if (instance__save_config(inst, inst->config, &msg) < 0) {
        log_warn("instance %s: %s", inst->uuid, msg);
        free(msg);
    }
    if (output_set_encoding(inst->output, cfg_str(inst->config, "oe")) < 0)
        instance__print(inst, "ERROR",
                        "Unknown output encoding \"%s\" (oe); the output "
                        "is decoded as UTF-8",
                        cfg_str(inst->config, "oe"));
    if (end_time > 0) {
        double delay = end_time - (double)util_now_ms();

        uv_timer_start(&inst->expiry_timer, instance__expiry_cb,
                       delay > 0 ? (uint64_t)delay : 0, 0);
    }
    instance__print(inst, "INFO", "The instance has been started...");
    instance__set_status(inst, INSTANCE_RUNNING);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Operations                                                             */
/* ---------------------------------------------------------------------- */

int instance_start(instance_t *inst, char **err)
{
    switch (inst->status) {
    case INSTANCE_STOPPED:
        break;
    case INSTANCE_BUSY:
        return instance__fail(inst, err, -EBUSY,
                              "The instance is busy with a task (update or "
                              "install) and cannot be started now");
    default:
        return instance__fail(inst, err, -EBUSY,
                              "The instance is running and cannot be "
                              "started again");
    }
    inst->auto_restarted = 0;
    return instance__spawn(inst, err);
}

static int is_ctrl_c(const char *text)
{
    return strcasecmp(text, "^c") == 0;
}

static void instance__write_cb(uv_write_t *req, int status)
{
    struct stdin_write *w = (struct stdin_write *)req;

    if (status < 0 && status != UV_ECANCELED)
        log_debug("instance: writing to the process input failed: %s",
                  uv_strerror(status));
    free(w);
}

/* Queues bytes on stdin. Returns 0 or a negative errno with *msg set. */
static int instance__write(instance_t *inst, const char *bytes, size_t len,
                           char **msg)
{
    struct proc *proc = inst->proc;
    struct stdin_write *w;
    uv_buf_t buf;
    int rc;

    if (proc == NULL || proc->exited || !proc->in_open) {
        *msg = xstrdup("Command execution failed because the instance's "
                       "actual process does not exist");
        return -ESRCH;
    }
    if (proc->in.write_queue_size + len > INSTANCE_STDIN_QUEUE_MAX) {
        *msg = xasprintf("Command rejected: the instance is not reading its "
                         "input (%zu bytes are waiting)",
                         proc->in.write_queue_size);
        return -ENOBUFS;
    }
    w = xmalloc(sizeof(*w) + len);
    memcpy(w->data, bytes, len);
    buf = uv_buf_init(w->data, (unsigned int)len);
    rc = uv_write(&w->req, (uv_stream_t *)&proc->in, &buf, 1,
                  instance__write_cb);
    if (rc < 0) {
        free(w);
        *msg = xasprintf("Writing to the instance's input failed: %s",
                         uv_strerror(rc));
        return rc;
    }
    return 0;
}

/*
 * Converts text from UTF-8 to the ie encoding. Characters that ie cannot
 * represent become '?'. Returns a new buffer (caller frees) or NULL when
 * ie is unknown to iconv.
 */
static char *encode_input(const char *ie, const char *text, size_t *len)
{
    size_t in_left = strlen(text), cap = in_left * 4 + 16, out_left = cap;
    char *out = xmalloc(cap), *dst = out, *in = (char *)text;
    iconv_t cd;

    if (strcasecmp(ie, "utf8") == 0 || strcasecmp(ie, "utf-8") == 0) {
        memcpy(out, text, in_left);
        *len = in_left;
        return out;
    }
    cd = iconv_open(ie, "UTF-8");
    if (cd == (iconv_t)-1) {
        free(out);
        return NULL;
    }
    while (in_left > 0 && out_left > 0) {
        if (iconv(cd, &in, &in_left, &dst, &out_left) != (size_t)-1)
            break;
        /*
         * E2BIG: the buffer has 4 bytes per input byte plus 16, enough for
         * UTF-32 with a byte order mark; stop rather than loop.
         */
        if (errno == E2BIG)
            break;
        /* Unrepresentable or invalid: one '?' per UTF-8 character. */
        *dst++ = '?';
        out_left--;
        do {
            in++;
            in_left--;
        } while (in_left > 0 && ((unsigned char)*in & 0xc0) == 0x80);
    }
    iconv(cd, NULL, NULL, &dst, &out_left);
    iconv_close(cd);
    *len = (size_t)(dst - out);
    return out;
}

/* The command path without status checks or failure reporting. */
static int instance__send(instance_t *inst, const char *text, char **msg)
{
    const char *ie = cfg_str(inst->config, "ie");
    int crlf = (int)cfg_num(inst->config, "crlf");
    size_t len;
    char *bytes;
    int rc;

    if (inst->proc == NULL || inst->proc->exited) {
        *msg = xstrdup("Command execution failed because the instance's "
                       "actual process does not exist");
        return -ESRCH;
    }
    if (is_ctrl_c(text)) {
        /*
         * A real SIGINT to the process group. MCSManager's kill helper
         * sends SIGKILL instead for pipe processes on Linux.
         */
        instance__signal_group(inst, SIGINT);
        return 0;
    }
    bytes = encode_input(ie, text, &len);
    if (bytes == NULL) {
        *msg = xasprintf("Command execution failed: unknown input encoding "
                         "\"%s\" (ie)",
                         ie);
        return -EINVAL;
    }
    bytes = xrealloc(bytes, len + 2);
    if (crlf == 2)
        bytes[len++] = '\r';
    bytes[len++] = '\n';
    rc = instance__write(inst, bytes, len, msg);
    free(bytes);
    return rc;
}

int instance_command(instance_t *inst, const char *text, char **err)
{
    char *msg = NULL;
    int rc = instance__send(inst, text, &msg);

    if (rc < 0) {
        rc = instance__fail(inst, err, rc, "%s", msg);
        free(msg);
    }
    return rc;
}

int instance_write(instance_t *inst, const char *bytes, size_t len,
                   char **err)
{
    char *msg = NULL;
    int rc = instance__write(inst, bytes, len, &msg);

    if (rc < 0)
        set_err(err, msg);
    return rc;
}

static void instance__stop_timeout_cb(uv_timer_t *timer)
{
    instance_t *inst = timer->data;

    if (inst->proc == NULL || inst->proc->exited)
        return;
    instance__print(inst, "ERROR",
                    "The instance did not stop within %g seconds; killing "
                    "its process group",
                    inst->stop_timeout_s);
    instance__signal_group(inst, SIGKILL);
}

/* Sends the stop command lines and arms the stop timeout. */
static void instance__begin_stop(instance_t *inst)
{
    const char *stop = cfg_str(inst->config, "stopCommand");
    double timeout = cfg_num(inst->config, "stopTimeout");
    char *lines = xstrdup(stop), *save = NULL, *line;
    int sent = 0;

    inst->exit_requested = 1;
    instance__set_status(inst, INSTANCE_STOPPING);
    for (line = strtok_r(lines, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *msg = NULL;
        size_t len = strlen(line);

        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        if (line[0] == '\0')
            continue;
        instance__print(inst, "INFO", "Stop command has been executed: %s",
                        line);
        if (instance__send(inst, line, &msg) < 0) {
            instance__print(inst, "ERROR", "%s", msg);
            free(msg);
        }
        sent++;
    }
    free(lines);
    if (timeout <= 0)
        timeout = INSTANCE_DEFAULT_STOP_TIMEOUT;
    if (sent == 0)
        instance__print(inst, "INFO",
                        "The stop command is empty; the process group will "
                        "be killed in %g seconds",
                        timeout);
    inst->stop_timeout_s = timeout;
    uv_timer_start(&inst->stop_timer, instance__stop_timeout_cb,
                   (uint64_t)(timeout * 1000), 0);
}

/* Cancels a pending automatic restart (status 2 with no process). */
static void instance__cancel_auto_restart(instance_t *inst)
{
    uv_timer_stop(&inst->restart_timer);
    instance__print(inst, "INFO", "The pending automatic restart was "
                                  "cancelled.");
    instance__set_status(inst, INSTANCE_STOPPED);
}

int instance_stop(instance_t *inst, char **err)
{
    switch (inst->status) {
    case INSTANCE_RUNNING:
        inst->restart_pending = 0;
        instance__begin_stop(inst);
        return 0;
    case INSTANCE_STOPPING:
        inst->restart_pending = 0;
        return 0;
    case INSTANCE_STARTING:
        instance__cancel_auto_restart(inst);
        return 0;
    default:
        return instance__fail(inst, err, -ESRCH,
                              "Instance not running and cannot be stopped.");
    }
}

int instance_kill(instance_t *inst, char **err)
{
    switch (inst->status) {
    case INSTANCE_STOPPED:
        return 0;
    case INSTANCE_BUSY:
        set_err(err, xstrdup("The instance is busy with a task (update or "
                             "install); stop the task instead"));
        return -EBUSY;
    case INSTANCE_STARTING:
        if (inst->proc == NULL) {
            instance__cancel_auto_restart(inst);
            return 0;
        }
        break;
    default:
        break;
    }
    inst->exit_requested = 1;
    inst->restart_pending = 0;
    uv_timer_stop(&inst->stop_timer);
    instance__print(inst, "INFO", "Killing the instance's processes...");
    instance__set_status(inst, INSTANCE_STOPPING);
    instance__signal_group(inst, SIGKILL);
    return 0;
}

int instance_restart(instance_t *inst, char **err)
{
    switch (inst->status) {
    case INSTANCE_STOPPED:
        instance__print(inst, "INFO", "Starting to execute the restart "
                                      "event.");
        return instance_start(inst, err);
    case INSTANCE_RUNNING:
        instance__print(inst, "INFO", "Starting to execute the restart "
                                      "event.");
        instance__begin_stop(inst);
        inst->restart_pending = 1;
        return 0;
    case INSTANCE_STOPPING:
        inst->restart_pending = 1;
        return 0;
    case INSTANCE_STARTING:
        return 0; /* an automatic restart is about to start it */
    default:
        return instance__fail(inst, err, -EBUSY,
                              "The instance is busy with a task (update or "
                              "install) and cannot be restarted now");
    }
}

int instance_set_busy(instance_t *inst, int busy, char **err)
{
    if (!busy) {
        if (inst->status == INSTANCE_BUSY)
            instance__set_status(inst, INSTANCE_STOPPED);
        return 0;
    }
    if (inst->status != INSTANCE_STOPPED) {
        set_err(err, xasprintf("The instance is %s; stop it before running "
                               "this task",
                               status_name(inst->status)));
        return -EBUSY;
    }
    instance__set_status(inst, INSTANCE_BUSY);
    return 0;
}
