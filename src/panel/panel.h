#ifndef HEARTH_PANEL_PANEL_H
#define HEARTH_PANEL_PANEL_H

typedef struct panel_options {
    const char *data_dir; /* contains hearth.db (SQLite) */
    const char *host;     /* "127.0.0.1" */
    int port;             /* 23333 */
    /*
     * Set by `hearth up`: the local daemon's data folder. When the store has
     * no node yet, the panel registers this daemon (key and port from its
     * Config/global.json) as MCSManager does with its neighbour daemon.
     */
    const char *local_daemon_dir;
    /*
     * Set by `hearth up`: folder of the demo game server launcher. On first
     * start the panel creates the admin (password printed once), enables
     * API keys, creates the admin's key, creates the demo instance on the
     * local node, and prints the curl line that starts it.
     */
    const char *demo_dir;
} panel_options_t;

/*
 * Runs the panel until SIGTERM or SIGINT and logs one "ready" line when it
 * serves. Returns the process exit status.
 */
int panel_run(const panel_options_t *options);

#endif
