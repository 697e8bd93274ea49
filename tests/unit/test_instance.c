#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "core/fsutil.h"
#include "core/util.h"
#include "daemon/instance.h"

/* InstanceConfig/<uuid>.json as MCSManager daemon 4.18.2 wrote it. */
static const char mcsm_instance_json[] =
    "{\n"
    "    \"nickname\": \"echo-owned\",\n"
    "    \"startCommand\": \"bash -c \\\"while read l; do echo got:$l; done\\\"\",\n"
    "    \"stopCommand\": \"^C\",\n"
    "    \"stopTimeout\": 0,\n"
    "    \"cwd\": \"/opt/mcsmanager/daemon/data/InstanceData/a1719aa23a85441abe39c610a6481a17\",\n"
    "    \"ie\": \"utf8\",\n"
    "    \"oe\": \"utf8\",\n"
    "    \"createDatetime\": 1796398085767,\n"
    "    \"lastDatetime\": 1796401819923,\n"
    "    \"type\": \"universal\",\n"
    "    \"tag\": [],\n"
    "    \"endTime\": 0,\n"
    "    \"fileCode\": \"utf8\",\n"
    "    \"processType\": \"general\",\n"
    "    \"updateCommand\": \"\",\n"
    "    \"runAs\": \"\",\n"
    "    \"crlf\": 1,\n"
    "    \"category\": 0,\n"
    "    \"basePort\": 10015,\n"
    "    \"enableRcon\": false,\n"
    "    \"rconPassword\": \"\",\n"
    "    \"rconPort\": 0,\n"
    "    \"rconIp\": \"\",\n"
    "    \"actionCommandList\": [],\n"
    "    \"terminalOption\": {\n"
    "        \"haveColor\": false,\n"
    "        \"pty\": false,\n"
    "        \"ptyWindowCol\": 164,\n"
    "        \"ptyWindowRow\": 40\n"
    "    },\n"
    "    \"eventTask\": {\n"
    "        \"autoStart\": false,\n"
    "        \"autoRestart\": false,\n"
    "        \"autoRestartMaxTimes\": -1,\n"
    "        \"ignore\": true\n"
    "    },\n"
    "    \"java\": {\n"
    "        \"id\": \"\"\n"
    "    },\n"
    "    \"docker\": {\n"
    "        \"updateCommandImage\": \"HOST\",\n"
    "        \"containerName\": \"\",\n"
    "        \"image\": \"\",\n"
    "        \"uploadSpeedLimit\": 0,\n"
    "        \"downloadSpeedLimit\": 0,\n"
    "        \"ports\": [],\n"
    "        \"extraVolumes\": [],\n"
    "        \"capAdd\": [],\n"
    "        \"capDrop\": [],\n"
    "        \"devices\": [],\n"
    "        \"privileged\": false,\n"
    "        \"memory\": 0,\n"
    "        \"networkMode\": \"bridge\",\n"
    "        \"networkAliases\": [],\n"
    "        \"cpusetCpus\": \"\",\n"
    "        \"cpuUsage\": 0,\n"
    "        \"maxSpace\": 0,\n"
    "        \"io\": 0,\n"
    "        \"network\": 0,\n"
    "        \"workingDir\": \"/data\",\n"
    "        \"env\": [],\n"
    "        \"changeWorkdir\": true,\n"
    "        \"labels\": [],\n"
    "        \"gpuEnabled\": false,\n"
    "        \"gpuCount\": -1,\n"
    "        \"gpuDeviceIds\": [],\n"
    "        \"gpuDriver\": \"nvidia\",\n"
    "        \"deviceReadBps\": [],\n"
    "        \"deviceWriteBps\": []\n"
    "    },\n"
    "    \"pingConfig\": {\n"
    "        \"ip\": \"\",\n"
    "        \"port\": 25565,\n"
    "        \"type\": 1\n"
    "    },\n"
    "    \"extraServiceConfig\": {\n"
    "        \"openFrpTunnelId\": \"\",\n"
    "        \"openFrpToken\": \"\"\n"
    "    }\n"
    "}";

#define MAX_EVENTS 256

struct fixture {
    uv_loop_t loop;
    char *dir;
    char *config_dir;
    char *log_dir;
    char *data_dir;
    instance_options_t opts;
    instance_callbacks_t callbacks;
    int next_port;
    /* Everything the callbacks reported. */
    int statuses[MAX_EVENTS];
    int status_count;
    int opened;
    int stopped;
    int failures;
    char *last_failure;
    size_t output_bytes; /* live output received */
    int output_calls;
    int output_dropped;  /* a drop notice was received */
    instance_t *inst;
};

static void on_status(instance_t *inst, int old_status, int new_status,
                      void *data)
{
    struct fixture *f = data;

    if (f->status_count < MAX_EVENTS)
        f->statuses[f->status_count++] = new_status;
}

static void on_opened(instance_t *inst, void *data)
{
    ((struct fixture *)data)->opened++;
}

static void on_stopped(instance_t *inst, void *data)
{
    ((struct fixture *)data)->stopped++;
}

static void on_failure(instance_t *inst, const char *message, void *data)
{
    struct fixture *f = data;

    f->failures++;
    free(f->last_failure);
    f->last_failure = xstrdup(message);
}

static void on_output(instance_t *inst, const char *text, size_t len,
                      void *data)
{
    struct fixture *f = data;

    f->output_bytes += len;
    f->output_calls++;
    if (strstr(text, "output truncated") != NULL)
        f->output_dropped = 1;
}

static int alloc_port(void *data)
{
    struct fixture *f = data;
    int port = f->next_port;

    f->next_port += 5;
    return port;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char tmpl[] = "/tmp/hearth-instance-XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return -1;
    f->dir = xstrdup(tmpl);
    f->config_dir = xasprintf("%s/InstanceConfig", f->dir);
    f->log_dir = xasprintf("%s/InstanceLog", f->dir);
    f->data_dir = xasprintf("%s/InstanceData", f->dir);
    fs_mkdir_p(f->config_dir);
    fs_mkdir_p(f->log_dir);
    fs_mkdir_p(f->data_dir);
    uv_loop_init(&f->loop);
    f->next_port = 10010;
    f->callbacks.on_status = on_status;
    f->callbacks.on_opened = on_opened;
    f->callbacks.on_stopped = on_stopped;
    f->callbacks.on_failure = on_failure;
    f->callbacks.on_output = on_output;
    f->opts.loop = &f->loop;
    f->opts.config_dir = f->config_dir;
    f->opts.log_dir = f->log_dir;
    f->opts.data_dir = f->data_dir;
    f->opts.port_count = 5;
    f->opts.alloc_base_port = alloc_port;
    f->opts.callbacks = &f->callbacks;
    f->opts.data = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    instance_free(f->inst);
    /* Every handle must be closed, or uv_loop_close reports UV_EBUSY. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fs_remove_tree(f->dir);
    free(f->dir);
    free(f->config_dir);
    free(f->log_dir);
    free(f->data_dir);
    free(f->last_failure);
    free(f);
    return 0;
}

/* Runs the loop until the status is want or timeout_ms passed. */
static int wait_status(struct fixture *f, int want, int timeout_ms)
{
    int64_t end = util_now_ms() + timeout_ms;

    while (instance_status(f->inst) != want && util_now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    return instance_status(f->inst) == want;
}

static void run_for(struct fixture *f, int ms)
{
    int64_t end = util_now_ms() + ms;

    while (util_now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

/* Runs the loop until the outputlog contains text (or timeout_ms). */
static int wait_output(struct fixture *f, const char *text, int timeout_ms)
{
    int64_t end = util_now_ms() + timeout_ms;

    for (;;) {
        char *log = instance_outputlog(f->inst, 0, NULL);
        int found = strstr(log, text) != NULL;

        free(log);
        if (found || util_now_ms() >= end)
            return found;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

/* Creates f->inst from a JSON config text; asserts success. */
static void create(struct fixture *f, const char *config_text)
{
    json_error_t jerr;
    json_t *config = json_loads(config_text, 0, &jerr);
    char *err = NULL;

    assert_non_null(config);
    f->inst = instance_create(&f->opts, NULL, config, &err);
    if (f->inst == NULL)
        fail_msg("instance_create: %s", err);
    json_decref(config);
}

static int count_occurrences(const char *haystack, const char *needle)
{
    int n = 0;

    while ((haystack = strstr(haystack, needle)) != NULL) {
        n++;
        haystack += strlen(needle);
    }
    return n;
}

/* Returns 1 when a process that is not a zombie is in group pgid. */
static int group_has_live_member(int pgid)
{
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    int found = 0;

    assert_non_null(proc);
    while (!found && (entry = readdir(proc)) != NULL) {
        char *path, *text, *p, state;
        int pgrp;

        if (entry->d_name[0] < '1' || entry->d_name[0] > '9')
            continue;
        path = xasprintf("/proc/%s/stat", entry->d_name);
        text = fs_read_all(path, NULL);
        free(path);
        p = text != NULL ? strrchr(text, ')') : NULL;
        if (p != NULL && sscanf(p + 2, "%c %*d %d", &state, &pgrp) == 2 &&
            pgrp == pgid && state != 'Z')
            found = 1;
        free(text);
    }
    closedir(proc);
    return found;
}

/*
 * Returns 1 when group pgid still has a live member after waiting up to
 * 2 s: SIGKILL takes a moment, and killed orphans stay zombies until
 * their new parent reaps them, so kill(-pgid, 0) alone is not enough.
 */
static int group_alive(int pgid)
{
    int64_t end = util_now_ms() + 2000;

    while (group_has_live_member(pgid)) {
        if (util_now_ms() >= end)
            return 1;
        usleep(10000);
    }
    return 0;
}

static char *cwd_file(struct fixture *f, const char *name)
{
    const json_t *config = instance_config(f->inst);

    return xasprintf("%s/%s",
                     json_string_value(json_object_get(config, "cwd")),
                     name);
}

/* --- config ------------------------------------------------------------ */

static void config_defaults_on_create(void **state)
{
    struct fixture *f = *state;
    const json_t *c, *term, *events, *docker;
    char *expected_cwd, *path, *text, *err = NULL;
    json_t *empty = json_object();

    f->inst = instance_create(&f->opts, NULL, empty, &err);
    json_decref(empty);
    assert_non_null(f->inst);
    assert_int_equal(strlen(instance_uuid(f->inst)), 32);
    c = instance_config(f->inst);
    assert_string_equal(instance_nickname(f->inst), "Undefined");
    assert_string_equal(json_string_value(json_object_get(c, "startCommand")),
                        "");
    assert_string_equal(json_string_value(json_object_get(c, "stopCommand")),
                        "^C");
    assert_string_equal(json_string_value(json_object_get(c, "ie")), "utf8");
    assert_string_equal(json_string_value(json_object_get(c, "oe")), "utf8");
    assert_string_equal(json_string_value(json_object_get(c, "fileCode")),
                        "utf8");
    assert_string_equal(json_string_value(json_object_get(c, "type")),
                        "universal");
    assert_string_equal(json_string_value(json_object_get(c, "processType")),
                        "general");
    assert_int_equal(json_integer_value(json_object_get(c, "crlf")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "basePort")),
                     10010);
    assert_int_equal(json_integer_value(json_object_get(c, "stopTimeout")),
                     0);
    assert_true(json_integer_value(json_object_get(c, "createDatetime")) >
                1700000000000LL);
    expected_cwd = xasprintf("%s/%s", f->data_dir, instance_uuid(f->inst));
    assert_string_equal(json_string_value(json_object_get(c, "cwd")),
                        expected_cwd);
    free(expected_cwd);

    term = json_object_get(c, "terminalOption");
    assert_true(json_is_true(json_object_get(term, "pty")));
    assert_int_equal(json_integer_value(json_object_get(term,
                                                        "ptyWindowCol")),
                     164);
    events = json_object_get(c, "eventTask");
    assert_int_equal(
        json_integer_value(json_object_get(events, "autoRestartMaxTimes")),
        -1);
    docker = json_object_get(c, "docker");
    assert_string_equal(
        json_string_value(json_object_get(docker, "workingDir")), "/data");
    assert_null(json_object_get(docker, "memorySwap"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(c, "pingConfig"), "port")),
                     25565);

    /* Saved at once, 4-space indent, MCSManager's key order. */
    path = xasprintf("%s/%s.json", f->config_dir, instance_uuid(f->inst));
    text = fs_read_all(path, NULL);
    assert_non_null(text);
    assert_memory_equal(text, "{\n    \"nickname\": \"Undefined\",\n", 31);
    assert_non_null(strstr(text, "\n    \"extraServiceConfig\": {\n"));
    assert_int_equal(text[strlen(text) - 1], '}');
    free(text);
    free(path);
}

static void config_create_normalises(void **state)
{
    struct fixture *f = *state;

    create(f, "{\"nickname\":\"n\",\"ie\":\"UTF-8\",\"oe\":\"gbk\","
              "\"fileCode\":\"utf-8\",\"cwd\":\"/srv/x\",\"basePort\":25000,"
              "\"terminalOption\":{\"pty\":false}}");
    const json_t *c = instance_config(f->inst);

    assert_string_equal(json_string_value(json_object_get(c, "ie")), "utf8");
    assert_string_equal(json_string_value(json_object_get(c, "oe")), "gbk");
    assert_string_equal(json_string_value(json_object_get(c, "fileCode")),
                        "utf8");
    assert_string_equal(json_string_value(json_object_get(c, "cwd")),
                        "/srv/x");
    assert_int_equal(json_integer_value(json_object_get(c, "basePort")),
                     25000);
    assert_false(json_is_true(
        json_object_get(json_object_get(c, "terminalOption"), "pty")));
    assert_true(json_is_false(
        json_object_get(json_object_get(c, "terminalOption"), "haveColor")));
}

static void config_adopts_mcsmanager_file(void **state)
{
    struct fixture *f = *state;
    const char *uuid = "a1719aa23a85441abe39c610a6481a17";
    char *path = xasprintf("%s/%s.json", f->config_dir, uuid);
    char *err = NULL, *text;
    json_t *patch = json_object();

    assert_int_equal(fs_write_atomic(path, mcsm_instance_json,
                                     strlen(mcsm_instance_json)),
                     0);
    f->inst = instance_load(&f->opts, uuid, &err);
    if (f->inst == NULL)
        fail_msg("instance_load: %s", err);
    assert_string_equal(instance_nickname(f->inst), "echo-owned");
    assert_int_equal(json_integer_value(json_object_get(
                         instance_config(f->inst), "basePort")),
                     10015);

    /* An empty update saves the same bytes that MCSManager wrote. */
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    text = fs_read_all(path, NULL);
    assert_string_equal(text, mcsm_instance_json);
    free(text);
    json_decref(patch);
    free(path);
}

static void config_load_keeps_unknown_keys(void **state)
{
    struct fixture *f = *state;
    const char *file = "{\"nickname\":\"x\",\"futureKey\":{\"a\":1}}";
    char *path = xasprintf("%s/u1.json", f->config_dir), *err = NULL;

    fs_write_atomic(path, file, strlen(file));
    f->inst = instance_load(&f->opts, "u1", &err);
    assert_non_null(f->inst);
    assert_non_null(json_object_get(instance_config(f->inst), "futureKey"));
    /* No creation rules when adopting: cwd stays as stored. */
    assert_string_equal(json_string_value(json_object_get(
                            instance_config(f->inst), "cwd")),
                        ".");
    free(path);
}

static void config_load_rejects_bad_files(void **state)
{
    struct fixture *f = *state;
    char *path = xasprintf("%s/bad.json", f->config_dir), *err = NULL;

    assert_null(instance_load(&f->opts, "missing", &err));
    assert_non_null(strstr(err, "missing.json"));
    free(err);
    err = NULL;
    fs_write_atomic(path, "{\"crlf\":\"x\"}", 12);
    assert_null(instance_load(&f->opts, "bad", &err));
    assert_non_null(strstr(err, "crlf"));
    free(err);
    err = NULL;
    assert_null(instance_load(&f->opts, "../etc/passwd", &err));
    assert_non_null(err);
    free(err);
    free(path);
}

static void config_update_merges_and_coerces(void **state)
{
    struct fixture *f = *state;
    json_t *patch;
    const json_t *c;
    char *err = NULL;

    create(f, "{\"nickname\":\"a\",\"startCommand\":\"{mcsm_java} -jar x\","
              "\"java\":{\"id\":\"j17\"}}");
    patch = json_loads("{\"nickname\":5,\"stopTimeout\":\"12\","
                       "\"terminalOption\":{\"haveColor\":true},"
                       "\"eventTask\":{\"autoRestart\":1},\"crlf\":\"2\","
                       "\"endTime\":null,\"category\":\"\","
                       "\"tag\":[\" a \",\"b\"],\"unknownKey\":1}",
                       0, NULL);
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    c = instance_config(f->inst);
    assert_string_equal(instance_nickname(f->inst), "5");
    assert_int_equal(json_integer_value(json_object_get(c, "stopTimeout")),
                     12);
    assert_int_equal(json_integer_value(json_object_get(c, "crlf")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "category")), 0);
    assert_true(json_is_true(
        json_object_get(json_object_get(c, "terminalOption"), "haveColor")));
    /* Merged key by key: pty keeps its default. */
    assert_true(json_is_true(
        json_object_get(json_object_get(c, "terminalOption"), "pty")));
    assert_true(json_is_true(
        json_object_get(json_object_get(c, "eventTask"), "autoRestart")));
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(c, "tag"), 0)), "a");
    assert_null(json_object_get(c, "unknownKey"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(c, "java"), "id")),
                        "j17");

    /* Clamping and flooring of stopTimeout. */
    patch = json_pack("{s:f}", "stopTimeout", 99999.7);
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    assert_int_equal(json_integer_value(json_object_get(
                         instance_config(f->inst), "stopTimeout")),
                     86400);
    patch = json_pack("{s:f}", "stopTimeout", 3.7);
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    assert_int_equal(json_integer_value(json_object_get(
                         instance_config(f->inst), "stopTimeout")),
                     3);

    /* A start command without {mcsm_java} first clears java.id. */
    patch = json_pack("{s:s}", "startCommand", "java -jar x");
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(instance_config(f->inst), "java"),
                            "id")),
                        "");
}

/* Asserts that a rejected update left config and file as they were. */
static void assert_rejected(struct fixture *f, const char *patch_text,
                            int want_rc, const char *want_text)
{
    char *path = xasprintf("%s/%s.json", f->config_dir,
                           instance_uuid(f->inst));
    char *before_file = fs_read_all(path, NULL), *after_file, *err = NULL;
    json_t *before = instance_config_json(f->inst);
    json_t *patch = json_loads(patch_text, 0, NULL);

    assert_non_null(patch);
    assert_int_equal(instance_update(f->inst, patch, &err), want_rc);
    assert_non_null(err);
    if (strstr(err, want_text) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, want_text);
    assert_true(json_equal(before, (json_t *)instance_config(f->inst)));
    after_file = fs_read_all(path, NULL);
    assert_string_equal(before_file, after_file);
    free(err);
    free(after_file);
    free(before_file);
    free(path);
    json_decref(before);
    json_decref(patch);
}

static void config_update_rejects_keep_config(void **state)
{
    struct fixture *f = *state;

    create(f, "{\"nickname\":\"keep\",\"startCommand\":\"sh -c 'sleep 1'\"}");
    assert_rejected(f, "{\"nickname\":\"changed\",\"stopTimeout\":\"abc\"}",
                    -EINVAL, "stopTimeout");
    assert_rejected(f, "{\"nickname\":\"changed\",\"stopTimeout\":\"abc\"}",
                    -EINVAL, "\"abc\"");
    assert_rejected(f, "{\"nickname\":\"changed\","
                       "\"startCommand\":\"sh -c 'sleep 100'\\n\"}",
                    -EINVAL, "newline");
    assert_rejected(f, "{\"startCommand\":\"a\\rb\"}", -EINVAL,
                    "carriage return");
    assert_rejected(f, "{\"crlf\":3}", -EINVAL, "crlf");
    assert_rejected(f, "{\"basePort\":70000}", -EINVAL, "basePort");
    assert_rejected(f, "{\"eventTask\":{\"autoRestartMaxTimes\":[1]}}",
                    -EINVAL, "eventTask.autoRestartMaxTimes");
    assert_rejected(f, "{\"docker\":\"x\"}", -EINVAL, "docker");
    assert_rejected(f, "{\"tag\":\"x\"}", -EINVAL, "tag");
    assert_rejected(f, "{\"nickname\":{\"a\":1}}", -EINVAL, "nickname");
    assert_string_equal(instance_nickname(f->inst), "keep");
}

/* --- process life cycle ------------------------------------------------- */

static void start_and_stop_with_ctrl_c(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    json_t *detail;
    int pid, i, saw_stopping = 0;

    create(f, "{\"startCommand\":\"sh -c \\\"echo started; echo err >&2; "
              "while :; do sleep 0.1; done\\\"\",\"stopCommand\":\"^C\","
              "\"terminalOption\":{\"pty\":false},"
              "\"eventTask\":{\"autoRestart\":true}}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    /* No wait: the call returns with the process spawned. */
    assert_int_equal(instance_status(f->inst), INSTANCE_RUNNING);
    assert_int_equal(f->opened, 1);
    assert_int_equal(instance_started(f->inst), 1);
    pid = instance_pid(f->inst);
    assert_true(pid > 0);
    assert_true(wait_output(f, "started\n", 3000));
    assert_true(wait_output(f, "err\n", 3000));

    detail = instance_detail_json(f->inst, 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(detail, "processInfo"), "pid")),
                     pid);
    assert_true(json_integer_value(json_object_get(
                    json_object_get(detail, "processInfo"), "memory")) > 0);
    assert_int_equal(json_integer_value(json_object_get(detail, "status")),
                     3);
    json_decref(detail);

    assert_int_equal(instance_stop(f->inst, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPING);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    assert_false(group_alive(pid));
    assert_int_equal(f->stopped, 1);
    for (i = 0; i < f->status_count; i++) {
        if (f->statuses[i] == INSTANCE_STOPPING)
            saw_stopping = 1;
        else if (saw_stopping)
            assert_int_equal(f->statuses[i], INSTANCE_STOPPED);
    }
    assert_true(saw_stopping);
    assert_true(wait_output(f, "Stop command has been executed: ^C", 10));

    /* Requested stop: no auto restart although it is enabled. */
    run_for(f, 2300);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_started(f->inst), 1);

    detail = instance_process_info_json(f->inst);
    assert_int_equal(json_integer_value(json_object_get(detail, "pid")), 0);
    assert_int_equal(json_integer_value(json_object_get(detail, "memory")),
                     0);
    json_decref(detail);
}

static void stop_timeout_escalates_to_kill(void **state)
{
    struct fixture *f = *state;
    int64_t t0;
    char *err = NULL;
    int pid, i;

    /* Ignored SIGINT is inherited by sleep too, so ^C does nothing. */
    create(f, "{\"startCommand\":\"sh -c \\\"trap '' INT; while :; do sleep "
              "0.1; done\\\"\",\"stopTimeout\":1,"
              "\"eventTask\":{\"autoRestart\":true}}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 200);
    t0 = util_now_ms();
    assert_int_equal(instance_stop(f->inst, &err), 0);
    run_for(f, 600);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPING);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    assert_true(util_now_ms() - t0 >= 1000);
    assert_true(util_now_ms() - t0 < 2500);
    assert_false(group_alive(pid));
    assert_true(wait_output(f, "did not stop within 1 seconds", 10));
    /* Never claimed running after the stop request. */
    for (i = 0; i < f->status_count; i++)
        if (f->statuses[i] == INSTANCE_STOPPING)
            break;
    for (; i < f->status_count; i++)
        assert_int_not_equal(f->statuses[i], INSTANCE_RUNNING);
    run_for(f, 2500);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
}

static void kill_leaves_no_group_member(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c 'sleep 7771 & sleep 7772 & wait'\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 300);
    assert_true(group_alive(pid));
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
    assert_false(group_alive(pid));

    /* Kill on a stopped instance succeeds (MCSManager returns 200). */
    assert_int_equal(instance_kill(f->inst, &err), 0);

    /* ^C ends only sh; cleanup after its exit takes the sleeps. */
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 300);
    assert_int_equal(instance_stop(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    assert_false(group_alive(pid));
}

static void external_kill_is_noticed(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c 'sleep 30 & wait'\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 200);
    kill(pid, SIGKILL);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
    assert_false(group_alive(pid));
    assert_int_equal(instance_stop(f->inst, &err), -ESRCH);
    assert_string_equal(err, "Instance not running and cannot be stopped.");
    free(err);
    err = NULL;
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
}

static void auto_restart_after_crash_only(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *flag;
    int pid, fd;

    create(f, "{\"startCommand\":\"sh -c \\\"trap 'exit 0' INT TERM; while :;"
              " do if [ -e crash.flag ]; then rm -f crash.flag; exit 7; fi; "
              "sleep 0.1; done\\\"\",\"eventTask\":{\"autoRestart\":true}}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 300);
    flag = cwd_file(f, "crash.flag");
    fd = open(flag, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    /* Stopped and starting follow each other within one loop turn. */
    assert_true(wait_status(f, INSTANCE_STARTING, 3000));
    assert_int_equal(f->statuses[f->status_count - 2], INSTANCE_STOPPED);
    assert_int_equal(f->stopped, 1);
    assert_true(wait_status(f, INSTANCE_RUNNING, 4000));
    assert_int_not_equal(instance_pid(f->inst), pid);
    assert_int_equal(instance_auto_restarted(f->inst), 1);
    assert_int_equal(instance_started(f->inst), 2);
    assert_true(wait_output(f, "auto restart", 10));

    /* A requested stop and a kill are not followed by a restart. */
    assert_int_equal(instance_stop(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    run_for(f, 2300);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_int_equal(instance_auto_restarted(f->inst), 0);
    run_for(f, 200);
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
    run_for(f, 2300);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_started(f->inst), 3);
    free(flag);
}

static void auto_restart_respects_limit(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *log;

    create(f, "{\"startCommand\":\"sh -c 'exit 3'\",\"eventTask\":"
              "{\"autoRestart\":true,\"autoRestartMaxTimes\":1}}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STARTING, 2000));
    assert_true(wait_output(f, "limit of 1 restarts", 5000));
    run_for(f, 2500);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_started(f->inst), 2);
    assert_int_equal(instance_auto_restarted(f->inst), 1);
    log = instance_outputlog(f->inst, 0, NULL);
    assert_int_equal(count_occurrences(log, "probably wrong"), 2);
    free(log);
}

static void stop_cancels_pending_auto_restart(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    create(f, "{\"startCommand\":\"sh -c 'exit 3'\",\"eventTask\":"
              "{\"autoRestart\":true}}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STARTING, 2000));
    assert_int_equal(instance_start(f->inst, &err), -EBUSY);
    free(err);
    err = NULL;
    assert_int_equal(instance_stop(f->inst, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    run_for(f, 2500);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_started(f->inst), 1);
}

/* Polls the file until it has len bytes (the process writes it). */
static char *wait_file(struct fixture *f, const char *path, size_t want,
                       size_t *len)
{
    int64_t end = util_now_ms() + 3000;
    char *data = NULL;

    for (;;) {
        free(data);
        data = fs_read_all(path, len);
        if ((data != NULL && *len >= want) || util_now_ms() >= end)
            return data;
        run_for(f, 20);
    }
}

static void command_line_endings(struct fixture *f, int crlf,
                                 const char *expected, size_t expected_len)
{
    char *err = NULL, *path, *data, *config;
    size_t len = 0;

    config = xasprintf("{\"startCommand\":\"sh -c 'cat > stdin.bin'\","
                       "\"crlf\":%d,\"ie\":\"gbk\"}",
                       crlf);
    create(f, config);
    free(config);
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_int_equal(instance_command(f->inst, "list", &err), 0);
    assert_int_equal(instance_command(f->inst, "say hi", &err), 0);
    assert_int_equal(instance_command(f->inst, "你好", &err), 0);
    path = cwd_file(f, "stdin.bin");
    data = wait_file(f, path, expected_len, &len);
    assert_non_null(data);
    assert_int_equal(len, expected_len);
    assert_memory_equal(data, expected, expected_len);
    free(data);
    free(path);
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
}

static void command_crlf_lf(void **state)
{
    static const char want[] = "list\nsay hi\n\xc4\xe3\xba\xc3\n";

    command_line_endings(*state, 1, want, sizeof(want) - 1);
}

static void command_crlf_crlf(void **state)
{
    static const char want[] = "list\r\nsay hi\r\n\xc4\xe3\xba\xc3\r\n";

    command_line_endings(*state, 2, want, sizeof(want) - 1);
}

static void command_when_stopped_fails(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    create(f, "{\"startCommand\":\"sh -c 'sleep 1'\"}");
    assert_int_equal(instance_command(f->inst, "x", &err), -ESRCH);
    assert_string_equal(err, "Command execution failed because the "
                             "instance's actual process does not exist");
    free(err);
    assert_int_equal(f->failures, 1);
    assert_true(wait_output(f, "[ERROR] Command execution failed", 10));
}

static void command_queue_bounded(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *big = xmalloc(256 * 1024 + 1);
    int i, rc = 0;

    /* The process never reads stdin, so writes pile up. */
    create(f, "{\"startCommand\":\"sleep 30\"}");
    memset(big, 'x', 256 * 1024);
    big[256 * 1024] = '\0';
    assert_int_equal(instance_start(f->inst, &err), 0);
    for (i = 0; i < 40 && rc == 0; i++) {
        rc = instance_command(f->inst, big, &err);
        run_for(f, 5);
    }
    assert_int_equal(rc, -ENOBUFS);
    assert_non_null(strstr(err, "not reading its input"));
    free(err);
    err = NULL;
    free(big);
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
}

/* Number of open file descriptors of this process. */
static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(dir);
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n;
}

static void exec_failure_is_synchronous(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int fds, i;

    create(f, "{\"startCommand\":\"no-such-program-hearth --flag\"}");
    assert_int_equal(instance_start(f->inst, &err), -ENOENT);
    assert_non_null(err);
    assert_non_null(strstr(err, "no-such-program-hearth"));
    assert_non_null(strstr(err, "No such file or directory"));
    free(err);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(f->opened, 0);
    assert_int_equal(f->stopped, 0);
    assert_int_equal(f->failures, 1);
    assert_true(wait_output(f, "[ERROR] Failed to start the instance", 10));
    /* The status went 2 then back to 0. */
    assert_int_equal(f->status_count, 2);
    assert_int_equal(f->statuses[0], INSTANCE_STARTING);
    assert_int_equal(f->statuses[1], INSTANCE_STOPPED);

    /* Failed spawns leave no pipe behind. */
    run_for(f, 50);
    fds = count_fds();
    for (i = 0; i < 20; i++) {
        assert_int_equal(instance_start(f->inst, NULL), -ENOENT);
        run_for(f, 5);
    }
    assert_int_equal(count_fds(), fds);
}

static void restart_after_stop_timeout(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c \\\"trap '' INT; while :; do sleep "
              "0.1; done\\\"\",\"stopTimeout\":1}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 100);
    assert_int_equal(instance_restart(f->inst, &err), 0);
    run_for(f, 700);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPING);
    assert_true(wait_status(f, INSTANCE_RUNNING, 3000));
    assert_int_not_equal(instance_pid(f->inst), pid);
    assert_false(group_alive(pid));
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
}

static void start_command_errors(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    json_t *patch;

    create(f, "{}");
    assert_int_equal(instance_start(f->inst, &err), -ENOENT);
    assert_non_null(strstr(err, "empty"));
    free(err);
    err = NULL;
    patch = json_pack("{s:s}", "startCommand", "echo \"abc");
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    assert_int_equal(instance_start(f->inst, &err), -EINVAL);
    assert_non_null(strstr(err, "unmatched double quote"));
    free(err);
    err = NULL;
    patch = json_pack("{s:s, s:I}", "startCommand", "sleep 5", "endTime",
                      (json_int_t)1000);
    assert_int_equal(instance_update(f->inst, patch, &err), 0);
    json_decref(patch);
    assert_int_equal(instance_start(f->inst, &err), -EPERM);
    assert_non_null(strstr(err, "expired"));
    free(err);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
}

static void placeholders_expanded(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *want;

    create(f, "{\"nickname\":\"nick\",\"basePort\":20000,\"startCommand\":"
              "\"sh -c \\\"echo [{mcsm_instance_name},{MCSM_UUID},"
              "{mcsm_instance_base_port},{mcsm_port1},{mcsm_port5},"
              "{mcsm_cwd}]\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    want = xasprintf("[nick,%s,20000,20000,20004,%s/%s]\n",
                     instance_uuid(f->inst), f->data_dir,
                     instance_uuid(f->inst));
    assert_true(wait_output(f, want, 3000));
    free(want);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
}

static void double_open_spawns_once(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c \\\"trap 'exit 0' INT; while :; do "
              "sleep 0.1; done\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    assert_int_equal(instance_start(f->inst, &err), -EBUSY);
    assert_string_equal(err, "The instance is running and cannot be "
                             "started again");
    free(err);
    assert_int_equal(instance_pid(f->inst), pid);
    assert_int_equal(f->opened, 1);
    assert_int_equal(instance_started(f->inst), 1);
}

static void restart_starts_new_process(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c \\\"trap 'exit 0' INT; while :; do "
              "sleep 0.1; done\\\"\"}");
    /* Restart of a stopped instance starts it. */
    assert_int_equal(instance_restart(f->inst, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_RUNNING);
    pid = instance_pid(f->inst);
    run_for(f, 200);
    assert_int_equal(instance_restart(f->inst, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPING);
    assert_true(wait_status(f, INSTANCE_RUNNING, 3000));
    assert_int_not_equal(instance_pid(f->inst), pid);
    assert_false(group_alive(pid));
    assert_int_equal(instance_started(f->inst), 2);
}

static void overlapping_actions_settle(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int64_t stable_since;
    int last, pid;

    create(f, "{\"startCommand\":\"sh -c \\\"trap 'exit 0' INT; while :; do "
              "sleep 1; done\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    run_for(f, 200);
    assert_int_equal(instance_restart(f->inst, &err), 0);
    run_for(f, 200);
    instance_stop(f->inst, NULL);
    run_for(f, 200);
    assert_int_equal(instance_kill(f->inst, &err), 0);

    /* Wait until the status has not changed for 2 s. */
    last = instance_status(f->inst);
    stable_since = util_now_ms();
    while (util_now_ms() - stable_since < 2000) {
        run_for(f, 50);
        if (instance_status(f->inst) != last) {
            last = instance_status(f->inst);
            stable_since = util_now_ms();
        }
    }
    assert_int_equal(last, INSTANCE_STOPPED);

    /* Two opens at the same time: one process, one prompt refusal. */
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    assert_int_equal(instance_start(f->inst, &err), -EBUSY);
    free(err);
    err = NULL;
    assert_int_equal(instance_pid(f->inst), pid);
    assert_int_equal(instance_stop(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    assert_int_equal(instance_start(f->inst, &err), 0);
}

static void kill_during_restart_cancels_start(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    /* The trap keeps the process alive 0.5 s after ^C. */
    create(f, "{\"startCommand\":\"sh -c \\\"trap 'sleep 0.5; exit 0' INT; "
              "while :; do sleep 0.1; done\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    run_for(f, 200);
    assert_int_equal(instance_restart(f->inst, &err), 0);
    run_for(f, 100);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPING);
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
    run_for(f, 1500);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
    assert_int_equal(instance_started(f->inst), 1);
}

static void gbk_output_from_process(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *log;

    create(f, "{\"oe\":\"gbk\",\"startCommand\":\"sh -c \\\"printf '\\\\304';"
              " sleep 0.3; printf '\\\\343\\\\272\\\\303\\\\n'\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    log = instance_outputlog(f->inst, 0, NULL);
    assert_int_equal(count_occurrences(log, "你好\n"), 1);
    free(log);
}

static void ansi_and_outputlog_size(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *log;
    size_t len;

    create(f, "{\"startCommand\":\"sh -c \\\"printf '\\\\033[36mINFO"
              "\\\\033[0m ready\\\\n'\\\"\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    log = instance_outputlog(f->inst, 0, NULL);
    assert_non_null(strstr(log, "\x1b[36mINFO\x1b[0m ready\n"));
    free(log);
    log = instance_outputlog(f->inst, 20, &len);
    assert_int_equal(len, 20);
    assert_int_equal(strlen(log), 20);
    free(log);
}

static void output_flood_bounded(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *log;
    int64_t t0 = util_now_ms();
    size_t len;

    /* 20 MB as fast as the pipe takes it. */
    create(f, "{\"startCommand\":\"sh -c 'yes 0123456789abcdef0123456789"
              "abcdef | head -c 20000000; echo END'\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 20000));
    run_for(f, 100);
    log = instance_outputlog(f->inst, 0, &len);
    assert_true(len <= 256 * 1024);
    assert_non_null(strstr(log, "END\n[INFO] The instance has been stopped."));
    free(log);
    assert_true(f->output_dropped);
    assert_true(f->output_bytes < 20000000);
    print_message("flood: %lld ms, %zu live bytes in %d calls\n",
                  (long long)(util_now_ms() - t0), f->output_bytes,
                  f->output_calls);
}

static void history_survives_reload(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *uuid;

    create(f, "{\"startCommand\":\"sh -c 'for i in 1 2 3; do echo line$i; "
              "done'\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 3000));
    uuid = xstrdup(instance_uuid(f->inst));
    instance_free(f->inst);
    /* The log file is written by output_free before memory is released. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->inst = instance_load(&f->opts, uuid, &err);
    assert_non_null(f->inst);
    free(uuid);
    assert_true(wait_output(f, "line1\nline2\nline3\n", 2000));
}

static void delete_rejects_running_then_removes(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *config_path, *cwd;
    struct stat st;

    create(f, "{\"startCommand\":\"sleep 30\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_int_equal(instance_delete(f->inst, 1, &err), -EBUSY);
    assert_non_null(strstr(err, "stop it first"));
    free(err);
    err = NULL;
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
    run_for(f, 600);

    config_path = xasprintf("%s/%s.json", f->config_dir,
                            instance_uuid(f->inst));
    cwd = xstrdup(json_string_value(
        json_object_get(instance_config(f->inst), "cwd")));
    assert_int_equal(stat(cwd, &st), 0);
    assert_int_equal(instance_delete(f->inst, 1, &err), 0);
    f->inst = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(stat(config_path, &st), -1);
    assert_int_equal(stat(cwd, &st), -1);
    free(config_path);
    free(cwd);
}

static void delete_rejects_shared_folder(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *config;

    config = xasprintf("{\"cwd\":\"%s\"}", f->dir);
    create(f, config);
    free(config);
    assert_int_equal(instance_delete(f->inst, 1, &err), -EPERM);
    assert_non_null(strstr(err, "refusing"));
    free(err);
    assert_int_equal(access(f->data_dir, F_OK), 0);
}

static void free_while_running(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    int pid;

    create(f, "{\"startCommand\":\"sh -c 'sleep 7773 & sleep 7774; wait'\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    pid = instance_pid(f->inst);
    run_for(f, 200);
    instance_free(f->inst);
    f->inst = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(group_alive(pid));
    /* No callback after the release. */
    assert_int_equal(f->stopped, 0);
}

static void busy_blocks_start(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    create(f, "{\"startCommand\":\"sleep 1\"}");
    assert_int_equal(instance_set_busy(f->inst, 1, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_BUSY);
    assert_int_equal(instance_start(f->inst, &err), -EBUSY);
    assert_non_null(strstr(err, "busy"));
    free(err);
    err = NULL;
    assert_int_equal(instance_set_busy(f->inst, 0, &err), 0);
    assert_int_equal(instance_status(f->inst), INSTANCE_STOPPED);
}

static void update_rejects_type_change_while_running(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    create(f, "{\"startCommand\":\"sleep 30\"}");
    assert_int_equal(instance_start(f->inst, &err), 0);
    assert_rejected(f, "{\"processType\":\"docker\"}", -EBUSY,
                    "processType");
    assert_rejected(f, "{\"terminalOption\":{\"pty\":false}}", -EBUSY,
                    "terminalOption.pty");
    assert_int_equal(instance_kill(f->inst, &err), 0);
    assert_true(wait_status(f, INSTANCE_STOPPED, 2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(config_defaults_on_create),
        T(config_create_normalises),
        T(config_adopts_mcsmanager_file),
        T(config_load_keeps_unknown_keys),
        T(config_load_rejects_bad_files),
        T(config_update_merges_and_coerces),
        T(config_update_rejects_keep_config),
        T(start_and_stop_with_ctrl_c),
        T(stop_timeout_escalates_to_kill),
        T(kill_leaves_no_group_member),
        T(external_kill_is_noticed),
        T(auto_restart_after_crash_only),
        T(auto_restart_respects_limit),
        T(stop_cancels_pending_auto_restart),
        T(command_crlf_lf),
        T(command_crlf_crlf),
        T(command_when_stopped_fails),
        T(command_queue_bounded),
        T(exec_failure_is_synchronous),
        T(start_command_errors),
        T(placeholders_expanded),
        T(double_open_spawns_once),
        T(restart_starts_new_process),
        T(restart_after_stop_timeout),
        T(overlapping_actions_settle),
        T(kill_during_restart_cancels_start),
        T(gbk_output_from_process),
        T(ansi_and_outputlog_size),
        T(output_flood_bounded),
        T(history_survives_reload),
        T(delete_rejects_running_then_removes),
        T(delete_rejects_shared_folder),
        T(free_while_running),
        T(busy_blocks_start),
        T(update_rejects_type_change_while_running),
#undef T
    };

    /* A write to the stdin of an exited process must not end the test. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
