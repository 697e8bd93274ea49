#ifndef HEARTH_DAEMON_CONFIG_H
#define HEARTH_DAEMON_CONFIG_H

#include <stdbool.h>

#include <jansson.h>

/*
 * The daemon settings file DATA/Config/global.json, in MCSManager daemon
 * 4.18's layout and field order, so that an MCSManager data folder can be
 * adopted as it is and handed back later.
 *
 * dconfig_t is plain data: callers read and change the fields directly
 * and call dconfig_save() afterwards. Keys of the file that Hearth does
 * not use (settings of newer MCSManager versions) are kept in `extra` and
 * written back after the known ones.
 */

/* Length of the daemon key: 15 + 32 lowercase hex characters, as
 * MCSManager generates it. */
#define DCONFIG_KEY_LEN 47

typedef struct dconfig {
    char *path; /* absolute or data-folder-relative file path */

    int version;
    char *ip; /* stored listen address; --listen overrides it */
    int port; /* stored listen port; --listen overrides it */
    char *prefix;
    char *key; /* the secret the panel sends in `auth`; never log it */
    int max_file_task;
    int max_zip_file_size; /* GB */
    char *language;
    char *default_instance_path;
    char *default_java_data_path;
    int port_range_start; /* allocatablePortRange[0] */
    int port_range_end;   /* allocatablePortRange[1] */
    int current_allocatable_port;
    int port_assign_interval;
    int upload_speed_rate;   /* N x 64 KB/s, 0 = unlimited */
    int download_speed_rate; /* N x 64 KB/s, 0 = unlimited */
    int max_download_from_url_file_count;
    int output_buffer_size; /* chunks of 256 characters, 16..4096 */
    bool enable_soft_shutdown;
    bool soft_shutdown_skip_docker;
    int soft_shutdown_wait_seconds;
    bool white_list_panel_ip;
    json_t *white_list_panel_ips; /* array of strings, owned */
    bool ssl;
    char *ssl_pem_path;
    char *ssl_key_path;

    json_t *extra; /* unknown keys of the file, owned, never NULL */
} dconfig_t;

/*
 * Loads DATA/Config/global.json, creating the folder and the file with
 * defaults and a fresh random key when the file does not exist. Missing
 * keys take their defaults; a missing or empty key is generated; either
 * way the completed file is saved. Returns 0 and sets *out (caller frees
 * with dconfig_free), or a negative errno; -EINVAL (after logging the
 * parse error) when the file exists but is not a JSON object. A corrupt
 * file is never replaced, because a new key would cut the link
 * to every panel that stores the old one.
 */
int dconfig_load(const char *data_dir, dconfig_t **out);

/* Writes the settings atomically, pretty-printed with 4-space indentation
 * as MCSManager does. Returns 0 or a negative errno. */
int dconfig_save(const dconfig_t *cfg);

/* Frees cfg and everything it owns; NULL is ignored. */
void dconfig_free(dconfig_t *cfg);

/* Returns the settings as the JSON object written to the file (new
 * reference). */
json_t *dconfig_to_json(const dconfig_t *cfg);

/*
 * Hands out the next instance base port: current_allocatable_port, which
 * then advances by port_assign_interval and wraps to port_range_start past
 * port_range_end. A block that would cover daemon_port (the port the
 * daemon actually listens on) moves to daemon_port + 1. The caller saves
 * the settings afterwards. Returns the port.
 */
int dconfig_allocate_port(dconfig_t *cfg, int daemon_port);

/*
 * Applies the fields a panel may change through `info/setting`: language,
 * speed rates, port range, port interval, port, output buffer size and the
 * soft shutdown switches. Each is applied only when present and within
 * MCSManager's limits, and other fields are ignored. Numbers may arrive as
 * JSON numbers or numeric strings. Returns the count of fields changed.
 */
int dconfig_apply_setting(dconfig_t *cfg, const json_t *data);

/* Returns the `config` object of `info/overview` (new reference). */
json_t *dconfig_overview_json(const dconfig_t *cfg);

#endif
