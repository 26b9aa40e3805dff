#!/bin/bash
# rtenv for Slurm without the SPANK plugin: the TaskProlog (docs/slurm.md, "Without the plugin").
#
# slurm.conf:  TaskProlog=/usr/local/share/rtenv/slurm/task_prolog.sh
# A job that wants an env exports it, resolved on the submitting side:
#   export RTENV_TASK_ENV=$(rtenv env create --no-install -e env.yaml)
#   sbatch job.sh              # the job script starts with: cd "$RTENV_WORKING_DIR"
# Before each task, as the job's user, this gets the env from the node's agent and prints what it
# changes in the task's environment (Slurm reads the `export`/`unset` lines on stdout). The cwd
# cannot be set from here: the task finds its working_dir copy in RTENV_WORKING_DIR.
#
# Settings (environment of slurmd, or edit here): RTENV (the binary), RTENV_NODE_HOME (the node's
# RTENV_HOME: %u user, %n node), RTENV_NODE_STORE (the cluster store, if not the job's RTENV_STORE).
set -u
# A job submitted with --export=NONE gives this script an empty environment.
export PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
[ -n "${RTENV_TASK_ENV:-}" ] || exit 0
rtenv=${RTENV:-/usr/local/bin/rtenv}
if [ -n "${RTENV_NODE_HOME:-}" ]; then
  home=${RTENV_NODE_HOME//%u/$(id -un)}
  export RTENV_HOME=${home//%n/${SLURMD_NODENAME:-$(hostname -s)}}
fi
[ -z "${RTENV_NODE_STORE:-}" ] || export RTENV_STORE=$RTENV_NODE_STORE
err=$(mktemp) || exit 1
if out=$("$rtenv" env create --holder "slurm:${SLURM_JOB_ID}.${SLURM_STEP_ID:-batch}" \
           --print-exports -e "$RTENV_TASK_ENV" 2>"$err"); then
  printf '%s\n' "$out"
  rm -f "$err"
  exit 0
fi
# The task fails ("TaskProlog failed" in its stderr). Slurm shows nothing a failing TaskProlog
# prints, so the reason goes to the node's syslog (tag rtenv) and, when the node's agent failed,
# it is also in $RTENV_HOME/logs/job-slurm_<job>.<step>.log.
if command -v logger >/dev/null; then
  logger -t rtenv -- "slurm:${SLURM_JOB_ID}.${SLURM_STEP_ID:-batch}: $(head -c 4000 "$err")"
fi
rm -f "$err"
exit 1
