/* A disk whose syncs take longer (bench/slow_disk): fsync and fdatasync return SLOW_SYNC_US microseconds after
   the real call, a wait and not work, as a disk's is. Preloaded into the processes that should see such a disk. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static long delay_us(void) {
    static long cached = -1;
    if (cached < 0) {
        const char *text = getenv("SLOW_SYNC_US");
        cached = text ? atol(text) : 0;
    }
    return cached;
}

static void wait_for_disk(void) {
    long us = delay_us();
    if (us > 0) {
        struct timespec left = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&left, &left) != 0) {}
    }
}

/* The real call (looked up once into *real), then the disk's extra wait. */
static int synced(const char *name, int (**real)(int), int fd) {
    if (!*real) *real = (int (*)(int))dlsym(RTLD_NEXT, name);
    int result = (*real)(fd);
    int kept = errno; /* the real call's, which a sleep cut short by a signal would overwrite */
    wait_for_disk();
    errno = kept;
    return result;
}

int fsync(int fd) {
    static int (*real)(int) = 0;
    return synced("fsync", &real, fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = 0;
    return synced("fdatasync", &real, fd);
}
