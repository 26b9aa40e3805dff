#!/bin/bash
# rtenv for Slurm without the SPANK plugin: the Epilog (docs/slurm.md, "Without the plugin").
#
# slurm.conf:  Epilog=/usr/local/share/rtenv/slurm/epilog.sh
# At job end on each node, as root: gives back every reference the job's steps took on this node
# (holders slurm:<job>.*), as the job's user, in that user's node home. A user who never used rtenv
# on this node has no home there, and nothing runs.
#
# Settings: as task_prolog.sh (RTENV, RTENV_NODE_HOME, RTENV_NODE_STORE).
set -u
# A job submitted with --export=NONE gives this script an empty environment.
export PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
rtenv=${RTENV:-/usr/local/bin/rtenv}
user=${SLURM_JOB_USER:-$(id -nu "$SLURM_JOB_UID")}
userhome=$(getent passwd "$user" | cut -d: -f6)
if [ -n "${RTENV_NODE_HOME:-}" ]; then
  home=${RTENV_NODE_HOME//%u/$user}
  home=${home//%n/${SLURMD_NODENAME:-$(hostname -s)}}
else
  home=$userhome/.cache/rtenv
fi
[ -d "$home" ] || exit 0
store=()
[ -z "${RTENV_NODE_STORE:-}" ] || store=(RTENV_STORE="$RTENV_NODE_STORE")
as_user=()
[ "$(id -u)" = "$(id -u "$user")" ] || as_user=(runuser -u "$user" --)
"${as_user[@]}" env HOME="$userhome" RTENV_HOME="$home" "${store[@]}" \
  "$rtenv" env release --holder "slurm:${SLURM_JOB_ID}.*" >/dev/null
exit 0
