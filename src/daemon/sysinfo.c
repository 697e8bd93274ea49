#include "daemon/sysinfo.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct chart_point {
    double cpu; /* percent */
    double mem; /* percent */
};

struct sysinfo {
    uv_timer_t timer;
    uint64_t last_busy; /* sum of non-idle CPU times at the last sample */
    uint64_t last_total;
    double cpu_usage; /* fraction 0..1 over the last interval */
    struct chart_point chart[SYSINFO_CHART_SAMPLES];
    int chart_start;
    int chart_count;
};

/* Sums the CPU times of all cores; returns -1 if libuv cannot read them. */
static int sysinfo_cpu_times(uint64_t *busy, uint64_t *total)
{
    uv_cpu_info_t *cpus;
    int count, i;

    if (uv_cpu_info(&cpus, &count) != 0)
        return -1;
    *busy = 0;
    *total = 0;
    for (i = 0; i < count; i++) {
        const struct uv_cpu_times_s *t = &cpus[i].cpu_times;
        uint64_t b = t->user + t->nice + t->sys + t->irq;

        *busy += b;
        *total += b + t->idle;
    }
    uv_free_cpu_info(cpus, count);
    return 0;
}

static double sysinfo_mem_usage(void)
{
    /* libuv reads MemAvailable from /proc/meminfo here, as Node does. */
    uint64_t total = uv_get_total_memory();
    uint64_t avail = uv_get_free_memory();

    if (total == 0 || avail > total)
        return 0;
    return (double)(total - avail) / (double)total;
}

static double round1(double v)
{
    return round(v * 10) / 10;
}

static void sysinfo_sample(sysinfo_t *info)
{
    uint64_t busy, total;
    struct chart_point *p;
    int slot;

    if (sysinfo_cpu_times(&busy, &total) == 0) {
        if (total > info->last_total && busy >= info->last_busy)
            info->cpu_usage = (double)(busy - info->last_busy) /
                              (double)(total - info->last_total);
        info->last_busy = busy;
        info->last_total = total;
    }
    slot = (info->chart_start + info->chart_count) % SYSINFO_CHART_SAMPLES;
    if (info->chart_count == SYSINFO_CHART_SAMPLES)
        info->chart_start = (info->chart_start + 1) % SYSINFO_CHART_SAMPLES;
    else
        info->chart_count++;
    p = &info->chart[slot];
    p->cpu = round1(info->cpu_usage * 100);
    p->mem = round1(sysinfo_mem_usage() * 100);
}

static void sysinfo_on_timer(uv_timer_t *timer)
{
    sysinfo_sample(timer->data);
}

sysinfo_t *sysinfo_new(uv_loop_t *loop)
{
    sysinfo_t *info = xcalloc(1, sizeof(*info));

    sysinfo_cpu_times(&info->last_busy, &info->last_total);
    uv_timer_init(loop, &info->timer);
    info->timer.data = info;
    uv_timer_start(&info->timer, sysinfo_on_timer, SYSINFO_SAMPLE_MS,
                   SYSINFO_SAMPLE_MS);
    /* The timer must not keep the loop alive during shutdown. */
    uv_unref((uv_handle_t *)&info->timer);
    return info;
}

static void sysinfo_on_close(uv_handle_t *handle)
{
    free(handle->data);
}

void sysinfo_free(sysinfo_t *info)
{
    if (info == NULL)
        return;
    uv_close((uv_handle_t *)&info->timer, sysinfo_on_close);
}

static json_t *string_or_empty(const char *s)
{
    return json_string(s != NULL ? s : "");
}

json_t *sysinfo_system_json(sysinfo_t *info)
{
    char hostname[256] = "", cwd[4096] = "";
    size_t size;
    uv_utsname_t uts;
    double load[3], uptime = 0;
    json_t *sys;

    memset(&uts, 0, sizeof(uts));
    uv_os_uname(&uts);
    size = sizeof(hostname);
    uv_os_gethostname(hostname, &size);
    size = sizeof(cwd);
    uv_cwd(cwd, &size);
    uv_loadavg(load);
    uv_uptime(&uptime);

    sys = json_object();
    json_object_set_new(sys, "type", json_string(uts.sysname));
    json_object_set_new(sys, "hostname", string_or_empty(hostname));
    /* Node's process.platform spelling ("linux"), which panels compare. */
    json_object_set_new(sys, "platform", json_string("linux"));
    json_object_set_new(sys, "release", json_string(uts.release));
    json_object_set_new(sys, "uptime", json_real(round(uptime * 100) / 100));
    json_object_set_new(sys, "cwd", string_or_empty(cwd));
    json_object_set_new(sys, "loadavg",
                        json_pack("[fff]", round(load[0] * 100) / 100,
                                  round(load[1] * 100) / 100,
                                  round(load[2] * 100) / 100));
    json_object_set_new(sys, "freemem",
                        json_integer((json_int_t)uv_get_free_memory()));
    json_object_set_new(sys, "cpuUsage", json_real(info->cpu_usage));
    json_object_set_new(sys, "memUsage", json_real(sysinfo_mem_usage()));
    json_object_set_new(sys, "totalmem",
                        json_integer((json_int_t)uv_get_total_memory()));
    /* NOTE: MCSManager 4.18 reports 0 for both in every recorded reply;
     * their meaning is not documented, so Hearth sends 0 as well. */
    json_object_set_new(sys, "processCpu", json_integer(0));
    json_object_set_new(sys, "processMem", json_integer(0));
    return sys;
}

json_t *sysinfo_process_json(void)
{
    char cwd[4096] = "";
    size_t size = sizeof(cwd), rss = 0;
    uv_rusage_t ru;
    json_int_t sys_us = 0;

    uv_cwd(cwd, &size);
    uv_resident_set_memory(&rss);
    if (uv_getrusage(&ru) == 0)
        sys_us = (json_int_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    return json_pack("{sI sI ss}", "cpu", sys_us, "memory", (json_int_t)rss,
                     "cwd", cwd);
}

json_t *sysinfo_chart_json(const sysinfo_t *info)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; i < info->chart_count; i++) {
        const struct chart_point *p =
            &info->chart[(info->chart_start + i) % SYSINFO_CHART_SAMPLES];

        json_array_append_new(
            arr, json_pack("{sf sf}", "cpu", p->cpu, "mem", p->mem));
    }
    return arr;
}
