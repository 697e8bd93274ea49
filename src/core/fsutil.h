#ifndef HEARTH_CORE_FSUTIL_H
#define HEARTH_CORE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Writes data to path atomically: a temporary file in the same folder,
 * fsync, rename over path, fsync of the folder. A crash leaves either the
 * old or the new content, never a truncated file. Returns 0 or -errno.
 */
int fs_write_atomic(const char *path, const char *data, size_t len);

/* Writes like fs_write_atomic() with the given file mode, for example 0600
 * for files that contain secrets. The file has that mode from its first
 * byte. */
int fs_write_atomic_mode(const char *path, const char *data, size_t len,
                         mode_t mode);

/*
 * Reads a whole file into a new NUL-terminated buffer (caller frees).
 * Returns NULL with errno set on failure; *len may be NULL.
 */
char *fs_read_all(const char *path, size_t *len);

/* Creates path and its missing parents (mode 0755). Returns 0 or -errno. */
int fs_mkdir_p(const char *path);

/* Removes a folder tree. Returns 0 or -errno of the first failure. */
int fs_remove_tree(const char *path);

#endif
