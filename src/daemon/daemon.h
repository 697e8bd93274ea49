#ifndef HEARTH_DAEMON_DAEMON_H
#define HEARTH_DAEMON_DAEMON_H

/*
 * Runs the node daemon until SIGTERM or SIGINT: loads or creates
 * data_dir/Config/global.json, adopts data_dir/InstanceConfig/, serves HTTP
 * and Socket.IO on host:port, and logs one "ready" line when it serves.
 * Returns the process exit status.
 */
int daemon_run(const char *data_dir, const char *host, int port);

#endif
