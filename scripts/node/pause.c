/* The pod sandbox's process (what Kubernetes' pause image runs): holds the pod's namespaces,
 * reaps orphaned children, exits on SIGINT/SIGTERM. Built statically by scripts/images.sh pause. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) { puts("freshet-pause 1"); return 0; }
  if (getpid() != 1) fprintf(stderr, "warning: pause should be the first process\n");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = quit;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
