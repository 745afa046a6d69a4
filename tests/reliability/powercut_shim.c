/* A power cut on demand: an LD_PRELOAD library that keeps, for every file under one
 * directory, what is needed to undo each change not yet made durable by fsync/fdatasync.
 *
 * POWERCUT_DIR names the directory whose files are tracked (any depth); POWERCUT_LOG a
 * directory outside it for the undo logs. For each tracked file (keyed by device and inode,
 * so renames need no bookkeeping):
 *
 *   <dev>_<ino>.undo  records appended before each change: 'U', u64 offset, u64 size of the
 *                     file before the change, u64 n, then the n old bytes at offset that the
 *                     change overwrites or cuts off. Undone newest first: truncate to the old
 *                     size, write the old bytes back.
 *   <dev>_<ino>.new   the file was created and its creation is not durable yet; holds the
 *                     parent directory's "<dev> <ino>".
 *
 * fsync/fdatasync of a file drops its .undo and .new (a file's own fsync persists its new
 * directory entry, as ext4 and XFS do; POSIX would also ask for the directory's fsync).
 * fsync of a directory drops the .new of the files created in it. Renames and unlinks are
 * taken as durable when made; a file unlinked or replaced by a rename loses its logs.
 * Writes through shared writable mappings cannot be seen: such a mapping of a tracked file
 * leaves a <dev>_<ino>.mapped marker (SQLite's -shm index is not tracked at all: it is not
 * durable data, SQLite rebuilds it). The revert itself is done offline by the test helper.
 *
 * Every change is logged (one O_APPEND write) before it is made, under one lock per process,
 * so a SIGKILL between the two leaves a record that undoes nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static char g_dir[PATH_MAX];
static size_t g_dir_len;
static char g_log[PATH_MAX];
static int g_on;
static long g_delay_us; /* POWERCUT_SYNC_DELAY_US: each fsync takes up to this long (a slow disk) */
static unsigned char g_state[MAX_FD]; /* 0 unknown, 1 untracked, 2 tracked, 3 directory */
static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static int r_open(const char *p, int flags, mode_t mode) {
    static int (*f)(const char *, int, ...);
    if (!f) f = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    return f(p, flags, mode);
}
static int r_close(int fd) {
    static int (*f)(int);
    if (!f) f = (int (*)(int))dlsym(RTLD_NEXT, "close");
    return f(fd);
}
static ssize_t r_write(int fd, const void *b, size_t n) {
    static ssize_t (*f)(int, const void *, size_t);
    if (!f) f = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return f(fd, b, n);
}
static int r_unlink(const char *p) {
    static int (*f)(const char *);
    if (!f) f = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    return f(p);
}

__attribute__((constructor)) static void init(void) {
    const char *d = getenv("POWERCUT_DIR"), *l = getenv("POWERCUT_LOG");
    if (!d || !l || !realpath(d, g_dir) || strlen(l) >= sizeof(g_log) - 64) return;
    strcpy(g_log, l);
    g_dir_len = strlen(g_dir);
    const char *delay = getenv("POWERCUT_SYNC_DELAY_US");
    g_delay_us = delay ? atol(delay) : 0;
    srandom((unsigned)getpid());
    g_on = 1;
}

static int under_dir(const char *path) {
    size_t n = strlen(path);
    if (strncmp(path, g_dir, g_dir_len) != 0) return 0;
    if (path[g_dir_len] != '/' && path[g_dir_len] != '\0') return 0;
    if (n > 4 && strcmp(path + n - 4, "-shm") == 0) return 0;
    return 1;
}

/* Decide (once per descriptor) whether writes to fd are tracked. */
static int state(int fd) {
    if (!g_on || fd < 0 || fd >= MAX_FD) return 1;
    if (g_state[fd]) return g_state[fd];
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    int s = 1;
    if (n > 0) {
        path[n] = '\0';
        struct stat st;
        if (path[0] == '/' && under_dir(path) && fstat(fd, &st) == 0)
            s = S_ISREG(st.st_mode) ? 2 : (S_ISDIR(st.st_mode) ? 3 : 1);
    }
    g_state[fd] = (unsigned char)s;
    return s;
}

static void log_name(char *out, dev_t dev, ino_t ino, const char *ext) {
    snprintf(out, PATH_MAX, "%s/%llu_%llu.%s", g_log, (unsigned long long)dev, (unsigned long long)ino, ext);
}

static void forget(dev_t dev, ino_t ino) {
    char p[PATH_MAX];
    log_name(p, dev, ino, "undo");
    r_unlink(p);
    log_name(p, dev, ino, "new");
    r_unlink(p);
}

static void die(const char *what) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "powercut shim: %s failed (errno %d)\n", what, errno);
    r_write(2, msg, (size_t)n);
    abort(); /* a change that cannot be logged must not happen silently */
}

/* Log the old state of [off, off+len) of the file open on fd (len 0: only its size). */
static void save_range(int fd, uint64_t off, uint64_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    uint64_t size = (uint64_t)st.st_size;
    uint64_t n = 0;
    if (off < size) n = (off + len < size ? off + len : size) - off;
    char *buf = malloc(32 + n);
    if (!buf) die("malloc");
    buf[0] = 'U';
    memcpy(buf + 1, &off, 8);
    memcpy(buf + 9, &size, 8);
    memcpy(buf + 17, &n, 8);
    if (n) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        int rfd = r_open(link, O_RDONLY | O_CLOEXEC, 0);
        if (rfd < 0) die("reopen for read");
        uint64_t got = 0;
        while (got < n) {
            ssize_t r = pread(rfd, buf + 25 + got, n - got, (off_t)(off + got));
            if (r <= 0) die("pread");
            got += (uint64_t)r;
        }
        r_close(rfd);
    }
    char p[PATH_MAX];
    log_name(p, st.st_dev, st.st_ino, "undo");
    int lfd = r_open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd < 0) die("open undo log");
    if (r_write(lfd, buf, 25 + n) != (ssize_t)(25 + n)) die("write undo log");
    r_close(lfd);
    free(buf);
}

static uint64_t cur_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    return (uint64_t)st.st_size;
}

static int is_append(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_APPEND);
}

/* Before a write of len bytes at off (-1: the descriptor's position, or the end with O_APPEND). */
static void before_write(int fd, int64_t off, uint64_t len) {
    if (is_append(fd)) off = (int64_t)cur_size(fd);
    else if (off < 0) off = lseek(fd, 0, SEEK_CUR);
    if (off < 0) die("lseek");
    save_range(fd, (uint64_t)off, len);
}

/* ---------------------------------------------------------------- opening and closing */

static int after_open(int fd, int existed, int flags) {
    if (fd < 0 || !g_on || fd >= MAX_FD) return fd;
    g_state[fd] = 0;
    if (state(fd) != 2) return fd;
    struct stat st;
    if (!existed && (flags & O_CREAT) && fstat(fd, &st) == 0) {
        forget(st.st_dev, st.st_ino); /* a reused inode number: the old logs are not this file's */
        char link[64], path[PATH_MAX], parent[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof path - 1);
        struct stat ds;
        if (n > 0) {
            path[n] = '\0';
            strcpy(parent, path);
            char *slash = strrchr(parent, '/');
            if (slash) *slash = '\0';
            if (stat(parent, &ds) == 0) {
                char p[PATH_MAX], body[64];
                log_name(p, st.st_dev, st.st_ino, "new");
                int lfd = r_open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (lfd < 0) die("open creation marker");
                int m = snprintf(body, sizeof body, "%llu %llu", (unsigned long long)ds.st_dev,
                                 (unsigned long long)ds.st_ino);
                r_write(lfd, body, (size_t)m);
                r_close(lfd);
            }
        }
    }
    return fd;
}

/* O_TRUNC of an existing tracked file: log its whole content first. */
static void before_trunc_open(int dirfd, const char *path, int flags) {
    if (!(flags & O_TRUNC)) return;
    static int (*f)(int, const char *, int, ...);
    if (!f) f = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    int fd = f(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (fd < MAX_FD) {
        g_state[fd] = 0;
        if (state(fd) == 2) save_range(fd, 0, cur_size(fd));
        g_state[fd] = 0;
    }
    r_close(fd);
}

static int exists_at(int dirfd, const char *path) {
    struct stat st;
    return fstatat(dirfd, path, &st, 0) == 0;
}

static int do_openat(const char *sym, int dirfd, const char *path, int flags, mode_t mode) {
    static int (*f_openat)(int, const char *, int, ...);
    static int (*f_openat64)(int, const char *, int, ...);
    int (**slot)(int, const char *, int, ...) = strcmp(sym, "openat64") == 0 ? &f_openat64 : &f_openat;
    if (!*slot) *slot = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, sym);
    if (!g_on) return (*slot)(dirfd, path, flags, mode);
    pthread_mutex_lock(&g_lock);
    int existed = exists_at(dirfd, path);
    if (existed) before_trunc_open(dirfd, path, flags);
    int fd = (*slot)(dirfd, path, flags, mode);
    int saved = errno;
    after_open(fd, existed, flags);
    pthread_mutex_unlock(&g_lock);
    errno = saved;
    return fd;
}

static mode_t va_mode(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap);
    return do_openat("openat", AT_FDCWD, path, flags, m);
}
int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap);
    return do_openat("openat64", AT_FDCWD, path, flags, m);
}
int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap);
    return do_openat("openat", dirfd, path, flags, m);
}
int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap);
    return do_openat("openat64", dirfd, path, flags, m);
}
int creat(const char *path, mode_t mode) {
    return do_openat("openat", AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
int creat64(const char *path, mode_t mode) {
    return do_openat("openat64", AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int close(int fd) {
    if (fd >= 0 && fd < MAX_FD) g_state[fd] = 0;
    return r_close(fd);
}
int dup2(int old, int new) {
    REAL(dup2, int, int, int);
    int r = real_dup2(old, new);
    if (r >= 0 && r < MAX_FD) g_state[r] = 0;
    return r;
}
int dup3(int old, int new, int flags) {
    REAL(dup3, int, int, int, int);
    int r = real_dup3(old, new, flags);
    if (r >= 0 && r < MAX_FD) g_state[r] = 0;
    return r;
}

/* ---------------------------------------------------------------- changes */

#define TRACKED_CHANGE(fd, log_stmt, call_stmt) \
    do { \
        if (state(fd) != 2) { call_stmt; } \
        else { \
            pthread_mutex_lock(&g_lock); \
            log_stmt; \
            call_stmt; \
            int saved_ = errno; \
            pthread_mutex_unlock(&g_lock); \
            errno = saved_; \
        } \
    } while (0)

static uint64_t iov_len(const struct iovec *iov, int cnt) {
    uint64_t n = 0;
    for (int i = 0; i < cnt; i++) n += iov[i].iov_len;
    return n;
}

ssize_t write(int fd, const void *b, size_t n) {
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, -1, n), r = r_write(fd, b, n));
    return r;
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, n), r = real_pwrite(fd, b, n, off));
    return r;
}
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t off) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off64_t);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, n), r = real_pwrite64(fd, b, n, off));
    return r;
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, -1, iov_len(iov, cnt)), r = real_writev(fd, iov, cnt));
    return r;
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, iov_len(iov, cnt)), r = real_pwritev(fd, iov, cnt, off));
    return r;
}
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) {
    REAL(pwritev64, ssize_t, int, const struct iovec *, int, off64_t);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, iov_len(iov, cnt)), r = real_pwritev64(fd, iov, cnt, off));
    return r;
}
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
    REAL(pwritev2, ssize_t, int, const struct iovec *, int, off_t, int);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, iov_len(iov, cnt)), r = real_pwritev2(fd, iov, cnt, off, flags));
    return r;
}
ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags) {
    REAL(pwritev64v2, ssize_t, int, const struct iovec *, int, off64_t, int);
    ssize_t r;
    TRACKED_CHANGE(fd, before_write(fd, off, iov_len(iov, cnt)), r = real_pwritev64v2(fd, iov, cnt, off, flags));
    return r;
}

static void before_size_change(int fd, uint64_t len) {
    uint64_t size = cur_size(fd);
    save_range(fd, len < size ? len : size, len < size ? size - len : 0);
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate, int, int, off_t);
    int r;
    TRACKED_CHANGE(fd, before_size_change(fd, (uint64_t)len), r = real_ftruncate(fd, len));
    return r;
}
int ftruncate64(int fd, off64_t len) {
    REAL(ftruncate64, int, int, off64_t);
    int r;
    TRACKED_CHANGE(fd, before_size_change(fd, (uint64_t)len), r = real_ftruncate64(fd, len));
    return r;
}
int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate, int, int, int, off_t, off_t);
    int r;
    TRACKED_CHANGE(fd, save_range(fd, (uint64_t)off, (uint64_t)len), r = real_fallocate(fd, mode, off, len));
    return r;
}
int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(posix_fallocate, int, int, off_t, off_t);
    int r;
    TRACKED_CHANGE(fd, save_range(fd, (uint64_t)off, 0), r = real_posix_fallocate(fd, off, len));
    return r;
}

/* ---------------------------------------------------------------- durability points */

static void made_durable(int fd) {
    int s = state(fd);
    struct stat st;
    if ((s != 2 && s != 3) || fstat(fd, &st) != 0) return;
    if (s == 2) { forget(st.st_dev, st.st_ino); return; }
    /* a directory: the creations in it are durable now */
    char want[64];
    snprintf(want, sizeof want, "%llu %llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    DIR *d = opendir(g_log);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".new") != 0) continue;
        char p[PATH_MAX], body[64] = {0};
        snprintf(p, sizeof p, "%s/%s", g_log, e->d_name);
        int lfd = r_open(p, O_RDONLY | O_CLOEXEC, 0);
        if (lfd < 0) continue;
        ssize_t m = read(lfd, body, sizeof body - 1);
        r_close(lfd);
        if (m > 0 && strcmp(body, want) == 0) r_unlink(p);
    }
    closedir(d);
}

/* A slow disk, whose flushes do not finish in the order they began. */
static void slow_disk(int fd) {
    if (g_delay_us > 0 && state(fd) >= 2) usleep((useconds_t)(random() % g_delay_us));
}

int fsync(int fd) {
    REAL(fsync, int, int);
    int r = real_fsync(fd);
    slow_disk(fd);
    if (r == 0 && g_on) {
        pthread_mutex_lock(&g_lock);
        made_durable(fd);
        pthread_mutex_unlock(&g_lock);
    }
    return r;
}
int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    int r = real_fdatasync(fd);
    slow_disk(fd);
    if (r == 0 && g_on) {
        pthread_mutex_lock(&g_lock);
        made_durable(fd);
        pthread_mutex_unlock(&g_lock);
    }
    return r;
}

/* ---------------------------------------------------------------- names */

static int tracked_path(int dirfd, const char *path, struct stat *st) {
    char full[PATH_MAX], link[64], base[PATH_MAX];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return 0;
        } else {
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0) return 0;
            base[n] = '\0';
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    char *slash = strrchr(full, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash) return 0;
    memcpy(dir, full, (size_t)(slash - full));
    dir[slash - full] = '\0';
    if (!realpath(dir[0] ? dir : "/", real)) return 0;
    size_t len = strlen(real);
    snprintf(real + len, sizeof real - len, "/%s", slash + 1);
    return under_dir(real) && fstatat(dirfd, path, st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st->st_mode);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    struct stat st;
    if (!g_on || flags) return real_unlinkat(dirfd, path, flags);
    pthread_mutex_lock(&g_lock);
    int t = tracked_path(dirfd, path, &st);
    int r = real_unlinkat(dirfd, path, flags);
    int saved = errno;
    if (r == 0 && t && st.st_nlink <= 1) forget(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&g_lock);
    errno = saved;
    return r;
}
int unlink(const char *path) { return unlinkat(AT_FDCWD, path, 0); }

int renameat2(int odir, const char *old, int ndir, const char *new, unsigned int flags) {
    REAL(renameat2, int, int, const char *, int, const char *, unsigned int);
    struct stat st;
    if (!g_on) return real_renameat2(odir, old, ndir, new, flags);
    pthread_mutex_lock(&g_lock);
    int t = tracked_path(ndir, new, &st); /* a file replaced by the rename goes */
    int r = real_renameat2(odir, old, ndir, new, flags);
    int saved = errno;
    if (r == 0 && t && st.st_nlink <= 1 && !(flags & RENAME_EXCHANGE)) forget(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&g_lock);
    errno = saved;
    return r;
}
int renameat(int odir, const char *old, int ndir, const char *new) { return renameat2(odir, old, ndir, new, 0); }
int rename(const char *old, const char *new) { return renameat2(AT_FDCWD, old, AT_FDCWD, new, 0); }

static void note_mapping(int fd, int prot, int flags) {
    if (!(prot & PROT_WRITE) || !(flags & MAP_SHARED) || state(fd) != 2) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    char p[PATH_MAX];
    log_name(p, st.st_dev, st.st_ino, "mapped");
    int lfd = r_open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (lfd >= 0) r_close(lfd);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    REAL(mmap, void *, void *, size_t, int, int, int, off_t);
    if (g_on && fd >= 0) note_mapping(fd, prot, flags);
    return real_mmap(addr, len, prot, flags, fd, off);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
    REAL(mmap64, void *, void *, size_t, int, int, int, off64_t);
    if (g_on && fd >= 0) note_mapping(fd, prot, flags);
    return real_mmap64(addr, len, prot, flags, fd, off);
}
