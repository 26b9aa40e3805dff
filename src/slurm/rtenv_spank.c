/* rtenv's SPANK plugin: `srun`/`sbatch`/`salloc --runtime-env=JSON|FILE` (docs/slurm.md).
 *
 * A thin C shim that runs the `rtenv` binary and links nothing of rtenv: Slurm loads this object
 * into srun, sbatch, salloc, slurmd and every slurmstepd, so it stays small, throws nothing, and
 * only needs rebuilding for a new Slurm major release, not for a new rtenv. Every decision about
 * the env (validation, packing, locking, installing, the launch plan) is the binary's.
 *
 *   submitting side (srun, sbatch, salloc), after options are parsed:
 *     rtenv env create --no-install -e SPEC   -> the resolved env, put in the job's environment
 *                                               as RTENV_SLURM_ENV (a refusal stops submission)
 *   each node, once per step before tasks start (slurm_spank_user_init, as the job's user):
 *     rtenv env create --holder slurm:JOB.STEP --print-exports -e ENV
 *                                            -> export/unset lines applied to the step's tasks,
 *                                               RTENV_WORKING_DIR their cwd (task_init)
 *   each node at step end (slurm_spank_exit) and job end (slurm_spank_job_epilog, the net for a
 *   step whose slurmstepd was killed): rtenv env release --holder slurm:JOB.STEP (slurm:JOB.*)
 *
 * plugstack.conf arguments: rtenv=PATH (the binary; default RTENV_DEFAULT_BINARY),
 * home=PATTERN (the node's RTENV_HOME; %u user name, %U uid, %n node name, %% a percent sign),
 * and RTENV_NAME=value settings given to every rtenv this plugin runs (RTENV_STORE, ...).
 */

#define _GNU_SOURCE
#include <stdint.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/spank.h>

SPANK_PLUGIN(rtenv, 1);

#ifndef RTENV_DEFAULT_BINARY
#define RTENV_DEFAULT_BINARY "/usr/local/bin/rtenv"
#endif

#define ENV_VAR "RTENV_SLURM_ENV"   /* the resolved env, from the submitting side */
#define SPEC_VAR "RTENV_SLURM_SPEC" /* the --runtime-env value it was resolved from */
#define MAX_SETTINGS 32
#define MAX_STDOUT (8u << 20) /* a resolved env or export lines */
#define MAX_STDERR (64u << 10)
#define MAX_ENV_VALUE (4u << 20)

static char g_binary[PATH_MAX] = RTENV_DEFAULT_BINARY;
static char g_home_pattern[PATH_MAX];
static char* g_settings[MAX_SETTINGS]; /* NAME=value */
static int g_nsettings;

static char* g_spec;    /* the option's value, if given */
static int g_held;      /* remote: this step asked the node's agent (release at exit) */
static char* g_cwd;     /* remote: the working_dir copy tasks start in */
static char* g_failure; /* remote: why setup failed, said in each task's stderr */

/* ---- small helpers -------------------------------------------------------------------------- */

struct buffer {
  char* data;
  size_t len, cap, limit;
  int truncated;
};

static void buffer_add(struct buffer* b, const char* p, size_t n) {
  if (b->len + n > b->limit) {
    n = b->limit > b->len ? b->limit - b->len : 0;
    b->truncated = 1;
  }
  if (n == 0) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char* d = realloc(b->data, cap);
    if (!d) {
      b->truncated = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static const char* buffer_str(const struct buffer* b) { return b->data ? b->data : ""; }

/* The text without its trailing line breaks (for one log line). */
static const char* buffer_line(struct buffer* b) {
  while (b->len > 0 && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
    b->data[--b->len] = '\0';
  return buffer_str(b);
}

static char* format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char* s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

/* An environment array: the base (NULL-terminated) with NAME=value entries replaced or added. */
struct envp {
  char** v;
  int n, cap;
};

static void envp_set(struct envp* e, const char* entry) {
  const char* eq = strchr(entry, '=');
  size_t name_len = eq ? (size_t)(eq - entry) + 1 : strlen(entry);
  for (int i = 0; i < e->n; ++i) {
    if (strncmp(e->v[i], entry, name_len) == 0) {
      free(e->v[i]);
      e->v[i] = strdup(entry);
      return;
    }
  }
  if (e->n + 2 > e->cap) {
    int cap = e->cap ? e->cap * 2 : 64;
    while (cap < e->n + 2) cap *= 2;
    char** v = realloc(e->v, (size_t)cap * sizeof *v);
    if (!v) return;
    e->v = v;
    e->cap = cap;
  }
  e->v[e->n++] = strdup(entry);
  e->v[e->n] = NULL;
}

static void envp_init(struct envp* e, char** base) {
  memset(e, 0, sizeof *e);
  for (char** p = base; p && *p; ++p) envp_set(e, *p);
  for (int i = 0; i < g_nsettings; ++i) envp_set(e, g_settings[i]);
  if (!e->v) envp_set(e, "RTENV_SLURM=1");
}

static void envp_free(struct envp* e) {
  for (int i = 0; i < e->n; ++i) free(e->v[i]);
  free(e->v);
  memset(e, 0, sizeof *e);
}

/* The user to become in the child (when this process runs as root for someone else). */
struct identity {
  int switch_user;
  uid_t uid;
  gid_t gid;
  gid_t groups[256];
  int ngroups;
};

/* ---- running rtenv -------------------------------------------------------------------------- */

/* Runs `argv` (argv[0] is the binary) with `envp`; its stdout is collected into `out`, its
 * stderr into `err` (or left to this process's stderr when `err` is NULL). Returns its exit status
 * (128+N if signal N ended it) or -1 if it could not be started (the reason in `err`). */
static int run_rtenv(char** argv, char** envp, const struct identity* who, struct buffer* out,
                     struct buffer* err, int ignore_term) {
  int po[2], pe[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) != 0) return -1;
  if (err && pipe2(pe, O_CLOEXEC) != 0) {
    close(po[0]);
    close(po[1]);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(po[0]);
    close(po[1]);
    if (err) {
      close(pe[0]);
      close(pe[1]);
    }
    return -1;
  }
  if (pid == 0) {
    /* The child: only async-signal-safe calls from here (slurmstepd has threads). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* A release runs while Slurm is ending the step and signals all of its processes: it must
     * finish (it takes milliseconds; SIGKILL still ends it). */
    if (ignore_term) {
      signal(SIGTERM, SIG_IGN);
      signal(SIGINT, SIG_IGN);
      signal(SIGHUP, SIG_IGN);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(po[1], 1);
    if (err) dup2(pe[1], 2);
    syscall(SYS_close_range, 3, ~0u, 0);
    if (who->switch_user) {
      if (setgroups((size_t)who->ngroups, who->groups) != 0 ||
          setresgid(who->gid, who->gid, who->gid) != 0 ||
          setresuid(who->uid, who->uid, who->uid) != 0)
        _exit(126);
    } else {
      /* slurmstepd drops privileges only for a while (its real and saved ids stay root): drop
       * them for good, so nothing rtenv runs (an installer, a package's build) can get root. */
      uid_t euid = geteuid();
      gid_t egid = getegid();
      if (setresgid(egid, egid, egid) != 0 || setresuid(euid, euid, euid) != 0) _exit(126);
    }
    execve(argv[0], argv, envp);
    const char* msg = "rtenv: cannot run the rtenv binary named in plugstack.conf: ";
    (void)!write(2, msg, strlen(msg));
    (void)!write(2, argv[0], strlen(argv[0]));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  close(po[1]);
  if (err) close(pe[1]);
  struct pollfd fds[2] = {{po[0], POLLIN, 0}, {err ? pe[0] : -1, POLLIN, 0}};
  int open_fds = err ? 2 : 1;
  char chunk[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        buffer_add(i == 0 ? out : err, chunk, (size_t)n);
      }
    }
  }
  for (int i = 0; i < 2; ++i)
    if (fds[i].fd >= 0) close(fds[i].fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/* ---- identity and home ---------------------------------------------------------------------- */

static int job_identity(spank_t sp, struct identity* who, char* user, size_t user_len) {
  memset(who, 0, sizeof *who);
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS) uid = geteuid();
  if (spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) gid = getegid();
  who->uid = uid;
  who->gid = gid;
  struct passwd pw, *found = NULL;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || !found) {
    snprintf(user, user_len, "%u", (unsigned)uid);
  } else {
    snprintf(user, user_len, "%s", pw.pw_name);
  }
  /* Root running this for another user (the exit hooks): become the user in the child. */
  if (geteuid() == 0 && uid != 0) {
    who->switch_user = 1;
    int n = (int)(sizeof who->groups / sizeof who->groups[0]);
    if (found && getgrouplist(pw.pw_name, gid, who->groups, &n) >= 0) {
      who->ngroups = n;
    } else {
      who->groups[0] = gid;
      who->ngroups = 1;
    }
  }
  return 0;
}

/* RTENV_HOME=<home pattern expanded>, or NULL when plugstack.conf names no home. */
static char* home_setting(const char* user, uid_t uid, const char* node) {
  if (!g_home_pattern[0]) return NULL;
  struct buffer b = {.limit = PATH_MAX};
  buffer_add(&b, "RTENV_HOME=", 11);
  char num[32];
  for (const char* p = g_home_pattern; *p; ++p) {
    if (*p != '%' || !p[1]) {
      buffer_add(&b, p, 1);
      continue;
    }
    ++p;
    if (*p == 'u') {
      buffer_add(&b, user, strlen(user));
    } else if (*p == 'U') {
      snprintf(num, sizeof num, "%u", (unsigned)uid);
      buffer_add(&b, num, strlen(num));
    } else if (*p == 'n') {
      buffer_add(&b, node, strlen(node));
    } else {
      buffer_add(&b, p, 1);
    }
  }
  return b.data;
}

/* This node's name: slurmstepd's and the epilog's own SLURMD_NODENAME. Not the job's: a step
 * started inside a job inherits the name of the node its srun ran on. */
static void node_name(char* node, size_t len) {
  const char* env = getenv("SLURMD_NODENAME");
  if (env && *env) {
    snprintf(node, len, "%s", env);
    return;
  }
  if (gethostname(node, len) != 0) snprintf(node, len, "localhost");
  node[len - 1] = '\0';
  char* dot = strchr(node, '.');
  if (dot) *dot = '\0';
}

/* The holder of a step: slurm:<job>.<step> (batch, extern and interactive steps by name). */
static void step_holder(spank_t sp, char* out, size_t len) {
  uint32_t job = 0, step = 0;
  spank_get_item(sp, S_JOB_ID, &job);
  spank_get_item(sp, S_JOB_STEPID, &step);
  if (step == 0xfffffffbu)
    snprintf(out, len, "slurm:%u.batch", job);
  else if (step == 0xfffffffcu)
    snprintf(out, len, "slurm:%u.extern", job);
  else if (step == 0xfffffffau)
    snprintf(out, len, "slurm:%u.interactive", job);
  else
    snprintf(out, len, "slurm:%u.%u", job, step);
}

/* Runs `rtenv env release --holder HOLDER` as the job's user, in the job's environment when there
 * is one (an agent this starts keeps it); failures go to slurmd's log. */
static void release(spank_t sp, const char* holder) {
  struct identity who;
  char user[256], node[256];
  job_identity(sp, &who, user, sizeof user);
  node_name(node, sizeof node);
  struct envp e;
  char** job_env = NULL;
  char* path_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
  if (spank_get_item(sp, S_JOB_ENV, &job_env) != ESPANK_SUCCESS || !job_env) job_env = path_env;
  envp_init(&e, job_env);
  char* home = home_setting(user, who.uid, node);
  if (home) envp_set(&e, home);
  struct passwd pw, *found = NULL;
  char buf[4096];
  if (job_env == path_env && getpwuid_r(who.uid, &pw, buf, sizeof buf, &found) == 0 && found) {
    char* h = format("HOME=%s", pw.pw_dir);
    if (h) envp_set(&e, h);
    free(h);
  }
  char* argv[] = {g_binary, "env", "release", "--holder", (char*)holder, NULL};
  struct buffer out = {.limit = 4096}, err = {.limit = MAX_STDERR};
  int rc = run_rtenv(argv, e.v, &who, &out, &err, 1);
  if (rc != 0) {
    slurm_error("rtenv: releasing %s on %s failed (exit %d): %s", holder, node, rc,
                buffer_line(&err));
  } else {
    slurm_info("rtenv: %s on %s: %s", holder, node, buffer_line(&out));
  }
  free(out.data);
  free(err.data);
  free(home);
  envp_free(&e);
}

/* ---- the option ----------------------------------------------------------------------------- */

static int option_callback(int val, const char* optarg, int remote) {
  (void)val;
  (void)remote;
  /* Called twice per step remotely: keep the last value. */
  free(g_spec);
  g_spec = optarg && *optarg ? strdup(optarg) : NULL;
  if (optarg && !*optarg) {
    slurm_error("rtenv: --runtime-env needs a value: a JSON object, or a .json or .yaml file");
    return -1;
  }
  return 0;
}

static struct spank_option g_option = {
    "runtime-env",
    "JSON|FILE",
    "Run the job's tasks in this rtenv runtime_env (inline JSON, or a .json/.yaml file): its "
    "files, packages and variables are prepared on every node first",
    1,
    0,
    option_callback};

/* plugstack.conf's arguments; every hook Slurm calls gets them (the job epilog is called without
 * slurm_spank_init). */
static int parse_arguments(int ac, char** av) {
  snprintf(g_binary, sizeof g_binary, "%s", RTENV_DEFAULT_BINARY);
  g_home_pattern[0] = '\0';
  for (int i = 0; i < g_nsettings; ++i) free(g_settings[i]);
  g_nsettings = 0;
  for (int i = 0; i < ac; ++i) {
    const char* a = av[i];
    if (strncmp(a, "rtenv=", 6) == 0) {
      snprintf(g_binary, sizeof g_binary, "%s", a + 6);
    } else if (strncmp(a, "home=", 5) == 0) {
      snprintf(g_home_pattern, sizeof g_home_pattern, "%s", a + 5);
    } else if (strncmp(a, "RTENV_", 6) == 0 && strchr(a, '=')) {
      if (g_nsettings == MAX_SETTINGS) {
        slurm_error("rtenv: at most %d RTENV_ settings in plugstack.conf", MAX_SETTINGS);
        return -1;
      }
      g_settings[g_nsettings++] = strdup(a);
    } else {
      slurm_error(
          "rtenv: unknown argument in plugstack.conf: '%s' (known: rtenv=PATH, "
          "home=PATTERN, RTENV_NAME=value)",
          a);
      return -1;
    }
  }
  return 0;
}

int slurm_spank_init(spank_t sp, int ac, char** av) {
  if (parse_arguments(ac, av) != 0) return -1;
  spank_context_t ctx = spank_context();
  if (ctx == S_CTX_SLURMD) return 0;
  if (spank_option_register(sp, &g_option) != ESPANK_SUCCESS) {
    slurm_error("rtenv: could not register --runtime-env");
    /* Where the user types it, say so; elsewhere (a node's epilog) it only means no release. */
    return ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR ? -1 : 0;
  }
  return 0;
}

/* The submitting side: resolve the env once (pack local paths, lock packages) and hand the result
 * to the job through its environment. An inner srun of a job given the same value reuses it. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char** av) {
  (void)sp;
  (void)ac;
  (void)av;
  spank_context_t ctx = spank_context();
  if (!g_spec || (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR)) return 0;
  const char* done = getenv(SPEC_VAR);
  if (done && strcmp(done, g_spec) == 0 && getenv(ENV_VAR)) return 0;
  extern char** environ;
  struct envp e;
  envp_init(&e, environ);
  char* argv[] = {g_binary, "env", "create", "--no-install", "-e", g_spec, NULL};
  struct buffer out = {.limit = MAX_STDOUT};
  struct identity self = {0};
  int rc = run_rtenv(argv, e.v, &self, &out, NULL, 0); /* rtenv's messages go to the terminal */
  envp_free(&e);
  size_t len = out.len;
  while (len > 0 && (out.data[len - 1] == '\n' || out.data[len - 1] == '\r')) out.data[--len] = 0;
  if (rc != 0 || len == 0 || out.truncated || len > MAX_ENV_VALUE) {
    if (rc == 2)
      slurm_error("rtenv: the --runtime-env is not valid (above); nothing was submitted");
    else if (rc == -1 || rc == 127)
      slurm_error("rtenv: could not run %s; nothing was submitted", g_binary);
    else
      slurm_error("rtenv: preparing the --runtime-env failed (exit %d); nothing was submitted", rc);
    free(out.data);
    return -1;
  }
  setenv(ENV_VAR, out.data, 1);
  setenv(SPEC_VAR, g_spec, 1);
  free(out.data);
  return 0;
}

/* Applies `export NAME=value` / `unset NAME` lines to the step's environment. */
static int apply_exports(spank_t sp, char* text) {
  for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "export ", 7) == 0) {
      char *name = line + 7, *eq = strchr(name, '=');
      if (!eq) return -1;
      *eq = '\0';
      if (spank_setenv(sp, name, eq + 1, 1) != ESPANK_SUCCESS) return -1;
      if (strcmp(name, "RTENV_WORKING_DIR") == 0) {
        free(g_cwd);
        g_cwd = strdup(eq + 1);
      }
    } else if (strncmp(line, "unset ", 6) == 0) {
      spank_unsetenv(sp, line + 6);
    } else if (*line) {
      return -1;
    }
  }
  return 0;
}

/* Each node, once per step, as the job's user: the env from the node's agent. A failure is said
 * in every task's stderr (task_init), where the job's output shows it. */
int slurm_spank_user_init(spank_t sp, int ac, char** av) {
  (void)ac;
  (void)av;
  if (!g_spec || !spank_remote(sp)) return 0;
  char holder[128], node[256], user[256];
  step_holder(sp, holder, sizeof holder);
  node_name(node, sizeof node);
  struct identity who;
  job_identity(sp, &who, user, sizeof user);
  who.switch_user = 0; /* already the user (privileges dropped for this hook) */

  /* The resolved env, if the submitting side resolved this value; otherwise the value itself
   * (srun --export=NONE drops the job environment: an inline env without local paths works). */
  char* env = malloc(MAX_ENV_VALUE + 1);
  size_t spec_len = strlen(g_spec) + 2; /* room to see a longer value differ */
  char* spec_seen = malloc(spec_len);
  const char* value = g_spec;
  if (env && spec_seen && spank_getenv(sp, SPEC_VAR, spec_seen, (int)spec_len) == ESPANK_SUCCESS &&
      strcmp(spec_seen, g_spec) == 0 &&
      spank_getenv(sp, ENV_VAR, env, MAX_ENV_VALUE) == ESPANK_SUCCESS && env[0])
    value = env;

  char** job_env = NULL;
  spank_get_item(sp, S_JOB_ENV, &job_env);
  struct envp e;
  envp_init(&e, job_env);
  char* home = home_setting(user, who.uid, node);
  if (home) envp_set(&e, home);
  char* argv[] = {g_binary,          "env", "create",     "--holder", holder,
                  "--print-exports", "-e",  (char*)value, NULL};
  struct buffer out = {.limit = MAX_STDOUT}, err = {.limit = MAX_STDERR};
  g_held = 1;
  int rc = run_rtenv(argv, e.v, &who, &out, &err, 0);
  /* The tasks get the node's rtenv settings too: an `rtenv` run inside the job uses the same
   * home, agent and store. */
  if (home) spank_setenv(sp, "RTENV_HOME", home + strlen("RTENV_HOME="), 1);
  for (int i = 0; i < g_nsettings; ++i) {
    char* eq = strchr(g_settings[i], '=');
    *eq = '\0';
    spank_setenv(sp, g_settings[i], eq + 1, 1);
    *eq = '=';
  }
  free(home);
  envp_free(&e);
  free(env);
  free(spec_seen);
  if (rc != 0 || out.truncated || (out.data && apply_exports(sp, out.data) != 0)) {
    const char* why = err.len ? buffer_str(&err) : "(rtenv said nothing)\n";
    g_failure =
        format("rtenv: setting up the runtime_env on node %s failed (exit %d):\n%s", node, rc, why);
    slurm_error("rtenv: setting up the runtime_env for %s on %s failed (exit %d): %s", holder, node,
                rc, why);
  } else if (err.len) {
    slurm_verbose("rtenv: %s", buffer_str(&err));
  }
  free(out.data);
  free(err.data);
  return 0;
}

/* Each task, as the job's user, just before its command: the failure, or the cwd. */
int slurm_spank_task_init(spank_t sp, int ac, char** av) {
  (void)sp;
  (void)ac;
  (void)av;
  if (!g_spec) return 0;
  if (g_failure) {
    fputs(g_failure, stderr);
    fflush(stderr);
    return -1;
  }
  if (g_cwd && chdir(g_cwd) != 0) {
    fprintf(stderr, "rtenv: cannot enter the working_dir copy %s: %s\n", g_cwd, strerror(errno));
    return -1;
  }
  return 0;
}

/* Step end on each node (also when it was cancelled): the step's reference goes back. */
int slurm_spank_exit(spank_t sp, int ac, char** av) {
  (void)ac;
  (void)av;
  if (spank_context() == S_CTX_REMOTE && g_held) {
    char holder[128];
    step_holder(sp, holder, sizeof holder);
    release(sp, holder);
    g_held = 0;
  }
  return 0;
}

/* Job end on each node (the epilog, as root): every step's reference that is left, such as one
 * whose slurmstepd was killed before its exit hook ran. */
int slurm_spank_job_epilog(spank_t sp, int ac, char** av) {
  if (parse_arguments(ac, av) != 0)
    return 0; /* said in slurmd's log; a job end is no place to fail */
  char* value = NULL;
  if (spank_option_getopt(sp, &g_option, &value) != ESPANK_SUCCESS) return 0;
  uint32_t job = 0;
  if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS) return 0;
  char holder[64];
  snprintf(holder, sizeof holder, "slurm:%u.*", job);
  release(sp, holder);
  return 0;
}
