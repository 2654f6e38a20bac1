/*
 * loop_thread.h - test helper: runs a libuv loop in a thread of its own so that the test thread
 * can play clients and workers with blocking sockets, and run code on the loop thread when it
 * must touch loop-owned state (everything in the controller is loop-thread only).
 *
 * Usage: loop_thread_start() after creating the loop's handles; on_loop(fn, arg) runs fn on the
 * loop thread and waits for it; loop_thread_stop() closes the helper's own handle (the caller has
 * closed or will close all others from on_loop) and joins the thread once the loop runs dry.
 * Header-only and static: each test program includes it once.
 */
#ifndef SHOAL_TESTS_CONTROLLER_LOOP_THREAD_H
#define SHOAL_TESTS_CONTROLLER_LOOP_THREAD_H

#include <pthread.h>
#include <uv.h>

static uv_loop_t loop;
static uv_async_t loop_async;
static pthread_t loop_tid;
/* Guards the job hand-over below and any result the tests exchange with loop callbacks. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void (*loop_job)(void *);
static void *loop_job_arg;
static int loop_job_done;
static void (*loop_exit_hook)(void);

static void loop_on_async(uv_async_t *a)
{
    void (*fn)(void *);
    void *arg;
    (void)a;
    pthread_mutex_lock(&mu);
    fn = loop_job;
    arg = loop_job_arg;
    pthread_mutex_unlock(&mu);
    if (fn == NULL)
        return;
    fn(arg);
    pthread_mutex_lock(&mu);
    loop_job = NULL;
    loop_job_done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Runs fn(arg) on the loop thread and waits until it returned. */
static void on_loop(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&mu);
    loop_job = fn;
    loop_job_arg = arg;
    loop_job_done = 0;
    pthread_mutex_unlock(&mu);
    uv_async_send(&loop_async);
    pthread_mutex_lock(&mu);
    while (!loop_job_done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    if (loop_exit_hook)
        loop_exit_hook();
    return NULL;
}

/* Initialises the loop (call first) ... */
static void loop_thread_init(void)
{
    uv_loop_init(&loop);
    uv_async_init(&loop, &loop_async, loop_on_async);
}

/* ... then starts the thread once the loop's other handles exist. exit_hook (optional) runs on
 * the loop thread after the loop has run dry. */
static void loop_thread_start(void (*exit_hook)(void))
{
    loop_exit_hook = exit_hook;
    pthread_create(&loop_tid, NULL, loop_main, NULL);
}

static void close_async(void *arg)
{
    (void)arg;
    uv_close((uv_handle_t *)&loop_async, NULL);
}

/* Closes the helper's handle and waits for the loop thread to finish. */
static void loop_thread_stop(void)
{
    on_loop(close_async, NULL);
    pthread_join(loop_tid, NULL);
}

#endif
