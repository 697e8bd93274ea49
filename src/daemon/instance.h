#ifndef HEARTH_DAEMON_INSTANCE_H
#define HEARTH_DAEMON_INSTANCE_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

/*
 * One managed instance: its configuration (MCSManager's InstanceConfig
 * layout, stored as <config_dir>/<uuid>.json), its process and its console
 * output. No networking here: the daemon turns the callbacks into
 * Socket.IO events.
 *
 * Everything runs on the loop given in the options; no function blocks
 * except the small synchronous config saves (fs_write_atomic, a few KiB).
 *
 * Operations return 0 or a negative errno and, on failure, store a message
 * in *err (when err is not NULL; the caller frees it). The messages follow
 * MCSManager's wording where it has one, so the daemon can send them to
 * the panel unchanged. A failed start, stop, restart or command also
 * prints "[ERROR] <message>" into the console output and calls
 * on_failure, as MCSManager does, so the daemon need not do either.
 *
 * The program must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)): a write to
 * the stdin of a process that closed it would otherwise end the daemon.
 */

typedef struct instance instance_t;

/* Status values, MCSManager's numbers. */
enum instance_status {
    INSTANCE_BUSY = -1,    /* an asynchronous task (update, install) runs */
    INSTANCE_STOPPED = 0,
    INSTANCE_STOPPING = 1, /* stop requested, waiting for the exit */
    INSTANCE_STARTING = 2, /* spawn in progress or auto restart pending */
    INSTANCE_RUNNING = 3,  /* the process is alive */
};

/*
 * Seconds between a stop request and the SIGKILL of the process group when
 * the config's stopTimeout is 0. MCSManager never kills in that case and
 * flips the status back to running after 10 minutes; Hearth always ends a
 * stop within a bounded time.
 */
#define INSTANCE_DEFAULT_STOP_TIMEOUT 30
/* Delay before an automatic restart after a crash (avoids a tight loop). */
#define INSTANCE_AUTO_RESTART_DELAY_MS 2000
/* Maximum bytes queued on the process's stdin before commands are rejected. */
#define INSTANCE_STDIN_QUEUE_MAX (1024 * 1024)

/*
 * Callbacks shared by all instances of a daemon. Every pointer may be NULL.
 * They are called on the loop thread, never from inside instance_free or
 * instance_delete, and never for an instance after it was freed.
 */
typedef struct instance_callbacks {
    /* The status changed (also called for the transitions below). */
    void (*on_status)(instance_t *inst, int old_status, int new_status,
                      void *data);
    /* The process was spawned (MCSManager's instance/opened). */
    void (*on_opened)(instance_t *inst, void *data);
    /* The process exited and the status is 0 (instance/stopped). */
    void (*on_stopped)(instance_t *inst, void *data);
    /* An operation failed (instance/failure); message is borrowed. */
    void (*on_failure)(instance_t *inst, const char *message, void *data);
    /*
     * Console text (UTF-8, borrowed), batched at most every 50 ms
     * (instance/stdout).
     */
    void (*on_output)(instance_t *inst, const char *text, size_t len,
                      void *data);
} instance_callbacks_t;

/* Daemon-wide settings for creating and loading instances. */
typedef struct instance_options {
    uv_loop_t *loop;
    const char *config_dir; /* InstanceConfig folder, contains <uuid>.json */
    const char *log_dir;    /* InstanceLog folder, contains <uuid>.log */
    /*
     * Parent of default working folders: a new instance whose cwd is "" or
     * "." gets <data_dir>/<uuid>. Must be absolute.
     */
    const char *data_dir;
    /*
     * Number N of {mcsm_port1}..{mcsm_portN} placeholders, the daemon's
     * portAssignInterval. {mcsm_portK} expands to basePort + K - 1.
     */
    int port_count;
    /*
     * Returns a free base port when a config is saved with basePort 0, or 0
     * to leave it unallocated. May be NULL.
     */
    int (*alloc_base_port)(void *data);
    const instance_callbacks_t *callbacks; /* copied; may be NULL */
    void *data;                            /* passed to every callback */
} instance_options_t;

/*
 * Creates a new instance from a creation request: MCSManager's defaults,
 * then config merged with the update rules of instance_update, then the
 * creation rules (ie/oe/fileCode "utf-8" become "utf8"; cwd "" or "."
 * becomes <data_dir>/<uuid>; createDatetime and lastDatetime now; basePort
 * allocated when 0). uuid may be NULL for a random one. The config is
 * saved before returning; the working folder is created at start. Returns
 * NULL with *err set on an invalid config or a failed save. opts and its
 * strings are copied.
 */
instance_t *instance_create(const instance_options_t *opts, const char *uuid,
                            const json_t *config, char **err);

/*
 * Loads <config_dir>/<uuid>.json written by Hearth or MCSManager: defaults
 * for absent keys, the file's values with the update rules, and no
 * creation rules (the folder is adopted as it is). Returns NULL with *err
 * set when the file is missing or invalid.
 */
instance_t *instance_load(const instance_options_t *opts, const char *uuid,
                          char **err);

/*
 * Releases the instance (daemon shutdown). A live process group is killed
 * with SIGKILL first; call instance_stop and wait for on_stopped before
 * this for a graceful shutdown. No callback fires afterwards. The memory
 * is released once every libuv handle is closed, so the loop must keep
 * running; inst must not be used after the call.
 */
void instance_free(instance_t *inst);

/*
 * Deletes the instance and releases it like instance_free. Removes the
 * config file now, the log file asynchronously and, when delete_files is
 * nonzero, the working folder in the thread pool. Returns -EBUSY unless
 * the instance is stopped, -EPERM when the working folder is "/", relative
 * or contains one of the daemon's data folders, or -errno when the config
 * file cannot be removed. On failure the instance is untouched and usable.
 */
int instance_delete(instance_t *inst, int delete_files, char **err);

/* Instance uuid (32 hex characters, or "global0001"). */
const char *instance_uuid(const instance_t *inst);
/* Current status (enum instance_status). */
int instance_status(const instance_t *inst);
/* Display name (config nickname). Valid until the next update. */
const char *instance_nickname(const instance_t *inst);
/* Process id of the running process, or 0. */
int instance_pid(const instance_t *inst);
/* Number of starts since the daemon started (MCSManager's "started"). */
int instance_started(const instance_t *inst);
/*
 * Automatic restarts since the last explicit start (MCSManager's
 * "autoRestarted"; an explicit start resets it to 0).
 */
int instance_auto_restarted(const instance_t *inst);

/*
 * The stored config in MCSManager's key layout. Borrowed: valid until the
 * next instance_update or the instance's release; never modify it.
 */
const json_t *instance_config(const instance_t *inst);
/* A deep copy of the config (new reference). */
json_t *instance_config_json(const instance_t *inst);
/*
 * MCSManager's `info` object (new reference): mcPingOnline false,
 * currentPlayers 0, maxPlayers 0, version "", fileLock 0, playersChart [],
 * openFrpStatus false, latency 0, allocatedPorts [].
 */
json_t *instance_info_json(const instance_t *inst);
/*
 * MCSManager's `processInfo` (new reference): {cpu, memory, ppid, pid,
 * ctime, elapsed, timestamp}, read from /proc/<pid>/stat; all zeros when
 * no process runs. cpu is the percentage of one CPU averaged over the
 * process's lifetime, memory the resident size in bytes, ctime and elapsed
 * in milliseconds, timestamp the time of reading (ms since the epoch).
 */
json_t *instance_process_info_json(const instance_t *inst);
/*
 * InstanceDetail (new reference): {instanceUuid, started, autoRestarted,
 * status, config, info}; with full nonzero also space 0 and processInfo,
 * as instance/detail returns.
 */
json_t *instance_detail_json(const instance_t *inst, int full);

/*
 * Applies an update (instance/update) to the config. For each known key
 * whose value is not null, the value replaces the old one after coercion.
 * Number fields accept numbers, numeric strings and booleans, and "" means
 * unchanged; anything else is -EINVAL naming the field and the value.
 * String fields take the text of numbers and booleans, and boolean fields
 * take truthiness. Nested objects (terminalOption, eventTask, java, docker,
 * pingConfig, extraServiceConfig) are merged key by key, and unknown keys
 * are ignored. stopTimeout is clamped to 0..86400 and floored. A startCommand
 * containing a newline or carriage return is rejected. Changing type,
 * processType, enableRcon or terminalOption.pty is rejected (-EBUSY)
 * unless the instance is stopped or busy; the PTY window size is then
 * kept unchanged without an error, as MCSManager does. A new
 * startCommand whose first token is not {mcsm_java} clears java.id. The
 * result is saved (basePort allocated when 0); a save failure returns
 * -errno. On any failure the stored config is unchanged. Changing oe
 * affects only output read after the change.
 */
int instance_update(instance_t *inst, const json_t *patch, char **err);

/*
 * Starts the process (instance/open). Rejected unless stopped ("The
 * instance is running and cannot be started again" for starting, running
 * or stopping; busy has its own message), or when endTime has passed.
 * Creates the working folder, expands the placeholders of the start
 * command, splits it (no shell), spawns it with stdin/stdout/stderr pipes
 * as the leader of a new session and process group, in the working folder
 * with the daemon's environment. Returns 0 as soon as the process is
 * spawned (status 3). An exec failure (missing program, no permission) is
 * returned here, with a message naming the program and the error, and the
 * status is back to 0. Other errors: -EBUSY (not stopped), -EPERM
 * (expired), -ENOTSUP (processType docker), -ENOENT (empty command),
 * -EINVAL (unmatched quote). Resets the auto-restart counter, increments
 * started, sets lastDatetime. terminalOption.pty is treated as false.
 */
int instance_start(instance_t *inst, char **err);

/*
 * Stops the process (instance/stop). Rejected with "Instance not running
 * and cannot be stopped." when stopped. Sets status 1, marks the exit as
 * requested (no auto restart) and sends each line of stopCommand as a
 * command, "^C" meaning SIGINT to the process group. After stopTimeout
 * seconds (INSTANCE_DEFAULT_STOP_TIMEOUT when 0) the process group is
 * killed with SIGKILL. A second stop while stopping succeeds and cancels a
 * pending restart. A stop during a pending automatic restart (status 2)
 * cancels it, and the status goes to 0.
 */
int instance_stop(instance_t *inst, char **err);

/*
 * Kills the process group with SIGKILL now (instance/kill), marks the exit
 * as requested and cancels a pending restart or automatic restart. The
 * status becomes 0 when the exit is seen, a few milliseconds later.
 * Succeeds on a stopped instance. Fails only on a busy instance.
 */
int instance_kill(instance_t *inst, char **err);

/*
 * Restarts (instance/restart). A stopped instance is started now. A
 * running one is stopped like instance_stop and started again as soon as
 * its process has exited, and a stop already in progress gets the start
 * added. A later stop or kill cancels the pending start. Busy is rejected.
 */
int instance_restart(instance_t *inst, char **err);

/*
 * Sends a console command (instance/command). "^C" or "^c" sends SIGINT to
 * the process group. Any other text is converted from UTF-8 to the ie
 * encoding, followed by "\n" (crlf 1) or "\r\n" (crlf 2), and written to
 * stdin. Fails with "Command execution failed because the instance's
 * actual process does not exist" when no process runs, and with -ENOBUFS
 * when more than INSTANCE_STDIN_QUEUE_MAX bytes wait for the process.
 */
int instance_command(instance_t *inst, const char *text, char **err);

/*
 * Writes raw bytes to stdin (stream/write): no encoding, no line ending.
 * Same failures as instance_command, without printing or on_failure.
 */
int instance_write(instance_t *inst, const char *bytes, size_t len,
                   char **err);

/*
 * Returns the newest console text (outputlog) as a new NUL-terminated
 * UTF-8 string (caller frees), at most max bytes (0 = everything kept),
 * starting where output_history allows. The text comes from the in-memory
 * history (the newest OUTPUT_HISTORY_MAX bytes), which is seeded from the
 * log file's tail when the instance is loaded. The log file itself lags
 * behind by up to OUTPUT_LOG_FLUSH_MS, so it is not read here. *len (if
 * not NULL) receives the length.
 */
char *instance_outputlog(const instance_t *inst, size_t max, size_t *len);

/*
 * Appends a daemon line "[<level>] <text>\n" to the console output (level
 * "INFO" or "ERROR"), for the daemon's own notices such as schedules.
 */
void instance_print(instance_t *inst, const char *level, const char *text);

/*
 * Enters (busy nonzero) or leaves the busy status (-1) for an asynchronous
 * task such as update. Entering requires status 0 (-EBUSY otherwise);
 * leaving returns to 0.
 */
int instance_set_busy(instance_t *inst, int busy, char **err);

/* Per-instance pointer for the daemon (watchers, subscriptions). */
void instance_set_data(instance_t *inst, void *data);
void *instance_get_data(const instance_t *inst);

#endif
