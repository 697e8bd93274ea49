#ifndef HEARTH_DAEMON_REGISTRY_H
#define HEARTH_DAEMON_REGISTRY_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "daemon/config.h"
#include "daemon/instance.h"

/*
 * The instances of one daemon, kept in MCSManager's data folder layout:
 * DATA/InstanceConfig/<uuid>.json, DATA/InstanceLog/<uuid>.log and the
 * default working folders DATA/InstanceData/<uuid>/ (or
 * defaultInstancePath/<uuid>/ when the settings name one).
 *
 * The registry always contains the hidden global instance "global0001" (the
 * host shell, working folder "/"): it can be reached by its id but is left
 * out of every list and count, as in MCSManager.
 */

#define REGISTRY_GLOBAL_UUID "global0001"
/* First automatic start after boot, then one instance per interval. */
#define REGISTRY_AUTOSTART_DELAY_MS 1000
#define REGISTRY_AUTOSTART_INTERVAL_MS 1000

typedef struct registry registry_t;

/*
 * Creates the registry for data_dir (created when missing) and loads every
 * InstanceConfig/<uuid>.json; files that fail to load are logged and skipped.
 * Creates global0001 when it is missing. cfg is borrowed and must outlive
 * the registry: base ports are allocated from it (and it is saved) when an
 * instance config is saved with basePort 0. daemon_port is the port the
 * daemon listens on, kept out of allocated port blocks. callbacks and data
 * go to every instance (see instance.h). Returns NULL (after logging) when
 * the folders cannot be created.
 */
registry_t *registry_new(uv_loop_t *loop, const char *data_dir, dconfig_t *cfg,
                         int daemon_port, const instance_callbacks_t *callbacks,
                         void *data);

/*
 * Releases every instance (instance_free: live process groups are killed)
 * and the registry. The instances finish closing while the loop runs.
 */
void registry_free(registry_t *reg);

/* The instance with this id (global0001 included), or NULL. */
instance_t *registry_get(const registry_t *reg, const char *uuid);

/* 1 if inst is the hidden global instance. */
int registry_is_global(const instance_t *inst);

/*
 * Visible instances (global0001 excluded) in load/creation order. Returns
 * the count and sets *list to a borrowed array valid until the next
 * create or delete.
 */
size_t registry_list(const registry_t *reg, instance_t *const **list);

/* Number of visible instances whose status is running (3). */
size_t registry_count_running(const registry_t *reg);

/* Number of instances, global0001 included, whose process is alive or
 * starting (status other than 0 and -1). */
size_t registry_count_active(const registry_t *reg);

/*
 * Creates an instance from an `instance/new` config (see instance_create)
 * and adds it. Returns it, or NULL with *err set (caller frees).
 */
instance_t *registry_create(registry_t *reg, const json_t *config, char **err);

/*
 * Deletes the instances named in uuids (an array of strings) as one batch:
 * when any id is unknown ("The target instance does not exist!") or any
 * instance is not stopped, nothing is deleted and -ENOENT or -EBUSY is
 * returned with *err set. Otherwise each instance's config and log are
 * removed, and its working folder too when delete_files is nonzero (in the
 * thread pool). global0001 cannot be deleted. *deleted receives
 * [{instanceUuid, nickname}] of the deleted instances (new reference; NULL
 * after a rejected batch). When removing an instance's files fails, the
 * error is returned and the instances before it stay deleted.
 */
int registry_delete(registry_t *reg, const json_t *uuids, int delete_files,
                    json_t **deleted, char **err);

/*
 * Builds the `instance/select` reply: filters the visible instances by
 * condition.instanceName (case-insensitive substring of the nickname),
 * condition.status and condition.tag (all listed tags present), sorts by
 * status (descending) then nickname, and returns the page as
 * {page, pageSize, maxPage, allTags, data: [InstanceDetail]} (new
 * reference).
 */
json_t *registry_select(const registry_t *reg, const json_t *query);

/* Starts the instances whose eventTask.autoStart is true, one per
 * REGISTRY_AUTOSTART_INTERVAL_MS, beginning after
 * REGISTRY_AUTOSTART_DELAY_MS. */
void registry_autostart(registry_t *reg);

/* Cancels pending automatic starts (shutdown). */
void registry_autostart_cancel(registry_t *reg);

#endif
