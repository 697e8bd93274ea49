#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

static int fs__fsync_parent(const char *path)
{
    char *copy = xstrdup(path);
    int fd, rc = 0;

    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int fs_write_atomic(const char *path, const char *data, size_t len)
{
    return fs_write_atomic_mode(path, data, len, 0644);
}

int fs_write_atomic_mode(const char *path, const char *data, size_t len,
                         mode_t mode)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = -1, rc = 0;
    size_t off = 0;

    /* A stale temporary file would keep its own mode through O_TRUNC. */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto out;
    }
    rc = fs__fsync_parent(path);

out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

char *fs_read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, used = 0;
    char *buf;

    if (fd < 0)
        return NULL;
    buf = xmalloc(cap);
    for (;;) {
        ssize_t n;

        if (used + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        n = read(fd, buf + used, cap - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;

            free(buf);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    if (len != NULL)
        *len = used;
    return buf;
}

int fs_mkdir_p(const char *path)
{
    char *copy = xstrdup(path);
    char *p;
    int rc = 0;

    for (p = copy + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            goto out;
        }
        *p = '/';
    }
    if (mkdir(copy, 0755) < 0 && errno != EEXIST)
        rc = -errno;
out:
    free(copy);
    return rc;
}

static int fs__remove_entry(const char *path, const struct stat *st,
                            int type, struct FTW *ftw)
{
    return remove(path) < 0 ? -errno : 0;
}

int fs_remove_tree(const char *path)
{
    int rc = nftw(path, fs__remove_entry, 16, FTW_DEPTH | FTW_PHYS);

    if (rc < 0)
        return errno == ENOENT ? 0 : -errno;
    return rc;
}
