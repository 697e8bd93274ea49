#ifndef HEARTH_DAEMON_SYSINFO_H
#define HEARTH_DAEMON_SYSINFO_H

#include <jansson.h>
#include <uv.h>

/*
 * Host and daemon process figures for `info/overview`, read through
 * libuv (/proc and uname(2) on Linux). A timer samples the host CPU and memory
 * use every SYSINFO_SAMPLE_MS into a chart of the latest
 * SYSINFO_CHART_SAMPLES points, as MCSManager's daemon keeps one.
 */

#define SYSINFO_SAMPLE_MS 3000
#define SYSINFO_CHART_SAMPLES 200

typedef struct sysinfo sysinfo_t;

/* Starts sampling on loop. */
sysinfo_t *sysinfo_new(uv_loop_t *loop);

/* Stops the timer; the memory is released from its close callback, so the
 * loop must run once more. NULL is ignored. */
void sysinfo_free(sysinfo_t *info);

/*
 * Returns the `system` object of `info/overview` (new reference): type,
 * hostname, platform, release, uptime (s), cwd, loadavg [3], freemem,
 * totalmem (bytes), cpuUsage and memUsage (fractions 0..1), processCpu,
 * processMem.
 */
json_t *sysinfo_system_json(sysinfo_t *info);

/* Returns the `process` object {cpu (system CPU time, us), memory (RSS,
 * bytes), cwd} of this daemon (new reference). */
json_t *sysinfo_process_json(void);

/* Returns the chart as [{cpu, mem}] in percent with one decimal, oldest
 * first (new reference). */
json_t *sysinfo_chart_json(const sysinfo_t *info);

#endif
