/* Unit tests for common/sandbox.c threads after the sandbox ([link] workers, both daemons): threads yes, processes no. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "sandbox.h"

static const struct dd_config_key schema[] = {
	DD_SANDBOX_CONFIG_KEYS,
	{ NULL, NULL, 0, false, NULL, 0, 0, NULL, false },
};

static struct dd_config *cfg;

/* A daemon's sandbox as [process] allow_root = yes sets it up (the children
 * add a link socket). */
static void
role_sandbox(struct dd_sandbox *sb, enum dd_sandbox_role role)
{
	static const char text[] = "[process]\nallow_root = yes\n";
	char err[512];

	if (cfg == NULL)
		assert_int_equal(dd_config_parse(&cfg, "test.conf", text, strlen(text), schema, err,
						 sizeof(err)),
				 0);
	assert_int_equal(dd_sandbox_from_config(sb, cfg, role, err, sizeof(err)), 0);
}

static void
tx_sandbox(struct dd_sandbox *sb)
{
	role_sandbox(sb, DD_SANDBOX_TX);
}


static int
in_child(int (*fn)(void *), void *arg)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* child, run under role's sandbox, is killed by the seccomp filter
 * (SIGSYS), not exited. */
static void
expect_killed(enum dd_sandbox_role role, int (*child)(void *))
{
	struct dd_sandbox sb;
	int status;

#ifdef __SANITIZE_ADDRESS__
	skip(); /* the sanitizer runtime needs clone unrestricted */
#endif
	role_sandbox(&sb, role);
	status = in_child(child, &sb);
	if (WIFEXITED(status))
		fail_msg("not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void *
add_one(void *arg)
{
	int *v = arg;

	(*v)++;
	return NULL;
}

static int
child_threads_after_apply(void *arg)
{
	struct dd_sandbox *sb = arg;
	char err[1024];
	pthread_t t;
	int v = 0, link = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (link < 0)
		return 2;
	dd_sandbox_link_socket(sb, link);
	dd_sandbox_allow_threads(sb);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	for (int i = 0; i < 3; i++) {
		if (pthread_create(&t, NULL, add_one, &v) != 0)
			return 4;
		if (pthread_join(t, NULL) != 0)
			return 5;
	}
	/* libuv's loop yields while another thread's uv_async_send is half done. */
	if (sched_yield() != 0)
		return 7;
	return v == 3 ? 0 : 6;
}

static void
test_sandbox_tx_threads_start_after_apply_when_allowed(void **state)
{
	struct dd_sandbox sb;
	int status;

	tx_sandbox(&sb);
	status = in_child(child_threads_after_apply, &sb);
	if (WIFSIGNALED(status))
		fail_msg("killed by signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
child_fork_after_apply(void *arg)
{
	struct dd_sandbox *sb = arg;
	char err[1024];
	int link = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	if (link < 0)
		return 2;
	dd_sandbox_link_socket(sb, link);
	dd_sandbox_allow_threads(sb);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	/* A new process (clone without CLONE_THREAD) must kill us. */
	pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
	if (pid == 0)
		_exit(0);
	return 4;
}

static void
test_sandbox_tx_threads_allowed_but_never_a_process(void **state)
{
	expect_killed(DD_SANDBOX_TX, child_fork_after_apply);
}

static int
child_threads_not_allowed(void *arg)
{
	struct dd_sandbox *sb = arg;
	char err[1024];
	pthread_t t;
	int v = 0, link = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (link < 0)
		return 2;
	dd_sandbox_link_socket(sb, link);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	(void)pthread_create(&t, NULL, add_one, &v);
	return 4;
}

static void
test_sandbox_tx_no_threads_unless_allowed(void **state)
{
	expect_killed(DD_SANDBOX_TX, child_threads_not_allowed);
}

/* diode-rx's disk thread ([link] workers) is started the same way. */
static void
test_sandbox_rx_threads_start_after_apply_when_allowed(void **state)
{
	struct dd_sandbox sb;
	int status;

	role_sandbox(&sb, DD_SANDBOX_RX);
	status = in_child(child_threads_after_apply, &sb);
	if (WIFSIGNALED(status))
		fail_msg("killed by signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_sandbox_rx_threads_allowed_but_never_a_process(void **state)
{
	expect_killed(DD_SANDBOX_RX, child_fork_after_apply);
}

static void
test_sandbox_rx_no_threads_unless_allowed(void **state)
{
	expect_killed(DD_SANDBOX_RX, child_threads_not_allowed);
}

static int
free_cfg(void **state)
{
	dd_config_free(cfg);
	cfg = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_tx_threads_start_after_apply_when_allowed),
		cmocka_unit_test(test_sandbox_tx_threads_allowed_but_never_a_process),
		cmocka_unit_test(test_sandbox_tx_no_threads_unless_allowed),
		cmocka_unit_test(test_sandbox_rx_threads_start_after_apply_when_allowed),
		cmocka_unit_test(test_sandbox_rx_threads_allowed_but_never_a_process),
		cmocka_unit_test(test_sandbox_rx_no_threads_unless_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, free_cfg);
}
