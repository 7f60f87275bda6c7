#!/usr/bin/env bash
# Services Overread's integration tests talk to: PostgreSQL, Redis, a PACS
# (a private Orthanc with the DICOMweb plugin) and Chromium for Playwright.
#
# Run it:
#   out=$(scripts/services.sh env) && eval "$out"  # check/start them all, export the variables
#   make test
#   scripts/services.sh orthanc-stop               # PostgreSQL and Redis stay up
#
# Commands (stdout carries only `export VAR=...` lines, so it can be eval'ed;
# everything meant for people goes to stderr):
#   env            pg + redis + orthanc-start + chromium, print every export
#   pg             use PostgreSQL on 127.0.0.1:5432 (start or install it if needed)
#   redis          use Redis on 127.0.0.1:6379 (start or install it if needed)
#   orthanc-start  start the private Orthanc (or reuse the running one)
#   orthanc-stop   stop it and delete its storage
#   orthanc-status say whether it runs; exit 1 if not
#   chromium       find (or install) Chromium
#   packages       install the system packages CI needs (root)
#
# Or source it (.ci/run does): that only defines the svc_* functions. Each
# "ensure" function exports its variables into the calling shell.
#
# Settings, all optional:
#   DATABASE_URL, CELERY_BROKER_URL  when already set they are used as they are
#                                    (only checked), and nothing is started
#   OVERREAD_PG_PORT (5432), OVERREAD_PG_DB (overread), OVERREAD_REDIS_PORT (6379),
#   OVERREAD_REDIS_DB (15: a database of its own, so tests never meet other data),
#   ORTHANC_HTTP_PORT (8042 when free, else any free port), CHROMIUM_PATH
#
# Packages are installed only when missing, and only when running as root;
# otherwise the functions say what to install and fail.

SVC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC_STATE_DIR=$SVC_ROOT/var/orthanc   # pid, env and log of the private Orthanc
SVC_HOST=127.0.0.1                    # everything stays on loopback

svc_log() { printf 'services: %s\n' "$*" >&2; }
svc_die() { printf 'services: ERROR: %s\n' "$*" >&2; return 1; }

# Milliseconds since the epoch, for the timings we print.
svc_ms() { local t=${EPOCHREALTIME//[.,]/}; printf '%s\n' $((t / 1000)); }

# ---------------------------------------------------------------- packages

svc_pkg_installed() {
    # dpkg -s also succeeds for removed-but-not-purged packages; ask for the state.
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# Install the given Debian packages that are missing. apt-get update runs at
# most once per process, and only when something is to be installed.
svc_apt_install() {
    local missing=() p
    for p in "$@"; do
        svc_pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if ((EUID != 0)); then
        svc_die "missing packages: ${missing[*]} (run: sudo apt-get install --no-install-recommends ${missing[*]})"
        return 1
    fi
    local t0 rc=0 policy=/usr/sbin/policy-rc.d made_policy='' log
    t0=$(svc_ms)
    # apt and dpkg print hundreds of lines; keep them for when it fails.
    log=$(mktemp "${TMPDIR:-/tmp}/overread-apt.XXXXXX") || return 1
    if [[ -z ${SVC_APT_UPDATED:-} ]]; then
        svc_log "apt-get update"
        apt-get update -qq >"$log" 2>&1 || {
            cat "$log" >&2
            rm -f "$log"
            svc_die "apt-get update failed"
            return 1
        }
        SVC_APT_UPDATED=1
    fi
    # Packages such as orthanc, redis-server and postgresql start their system
    # service from the maintainer scripts. We start exactly what we need, the
    # way we need it (loopback, private config), so tell invoke-rc.d "no".
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    svc_log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >"$log" 2>&1 || rc=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    if ((rc != 0)); then
        tail -n 60 "$log" >&2
        rm -f "$log"
        svc_die "apt-get install ${missing[*]} failed ($rc)"
        return 1
    fi
    rm -f "$log"
    svc_log "installed ${missing[*]} in $(($(svc_ms) - t0)) ms"
}

# What CI needs beyond PostgreSQL and Redis (those are installed only when not
# already running, by svc_pg_ensure / svc_redis_ensure).
svc_packages() {
    local pkgs=(ca-certificates curl make
        chromium fonts-dejavu-core # headless browser tests and their screenshots
        orthanc orthanc-dicomweb   # the PACS the integration tests pull from and push to
        shellcheck)                # make lint checks these scripts
    # The Makefile builds its virtualenv with python3.11 and the viewer with
    # node/npm. Those may come from elsewhere (pyenv, NodeSource), so only add
    # Debian's when the command is missing.
    # These scripts themselves need python3 (a minimal Debian image has none).
    command -v python3 >/dev/null || pkgs+=(python3)
    command -v python3.11 >/dev/null || pkgs+=(python3.11)
    if ! command -v python3.11 >/dev/null || ! python3.11 -c 'import ensurepip' 2>/dev/null; then
        pkgs+=(python3.11-venv)
    fi
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v npm >/dev/null || pkgs+=(npm)
    svc_apt_install "${pkgs[@]}"
}

# ---------------------------------------------------------------- PostgreSQL

# Trust auth for the postgres user over loopback: the suite connects without a
# password and needs CREATEDB (pytest-django creates test_<name>). Debian's
# default pg_hba.conf asks for scram-sha-256 on 127.0.0.1. pg_hba.conf is
# first-match, so our lines go on top.
svc_pg_trust() { # version cluster
    local hba=/etc/postgresql/$1/$2/pg_hba.conf
    [[ -f $hba ]] || { svc_die "no $hba"; return 1; }
    if grep -Eq '^host[[:space:]]+all[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        return 0
    fi
    svc_log "adding loopback trust auth for user postgres to $hba"
    local tmp
    tmp=$(mktemp) || return 1
    {
        echo '# Added by Overread scripts/services.sh: tests connect as postgres over loopback without a password.'
        echo 'host    all    postgres    127.0.0.1/32    trust'
        echo 'host    all    postgres    ::1/128         trust'
        cat "$hba"
    } >"$tmp" && cat "$tmp" >"$hba" # cat keeps the file's owner and mode
    rm -f "$tmp"
}

# $1 (a postgres:// URL) with its database replaced by the maintenance
# database "postgres", which always exists (the app's may not yet).
svc_pg_admin_url() {
    python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/postgres")))' "$1"
}

# Can we connect to the server of URL $1 without a password, as a role with
# CREATEDB? (-w: never prompt; a password in the URL itself still works.)
svc_pg_can_createdb() {
    local admin
    admin=$(svc_pg_admin_url "$1") || return 1
    [[ $(psql "$admin" -w -Atc \
        'select rolcreatedb or rolsuper from pg_roles where rolname = current_user' 2>/dev/null) == t ]]
}

svc_pg_ensure() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        svc_log "DATABASE_URL already set: using it as is"
        command -v psql >/dev/null || svc_apt_install postgresql-client || return 1
        svc_pg_can_createdb "$DATABASE_URL" ||
            { svc_die "cannot connect with DATABASE_URL, or its role lacks CREATEDB"; return 1; }
        export DATABASE_URL
        return 0
    fi
    local port=${OVERREAD_PG_PORT:-5432} db=${OVERREAD_PG_DB:-overread}
    local url="postgres://postgres@$SVC_HOST:$port/$db"
    command -v pg_isready >/dev/null || svc_apt_install postgresql-client || return 1

    local ver='' cluster=''
    if pg_isready -q -h "$SVC_HOST" -p "$port"; then
        svc_log "PostgreSQL is running on $SVC_HOST:$port"
    else
        # A server binary and Debian's cluster tools (pg_ctlcluster and friends).
        if ! command -v pg_ctlcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
            svc_apt_install postgresql || return 1
        fi
        # The cluster (Debian's name for one server) that owns the port; a
        # fresh install has created "main" for the newest version.
        read -r ver cluster < <(pg_lsclusters -h | awk -v p="$port" '$3 == p {print $1, $2; exit}') || true
        if [[ -z $ver ]]; then
            if [[ -n $(pg_lsclusters -h) ]]; then
                svc_die "no PostgreSQL cluster on port $port (see pg_lsclusters); set DATABASE_URL"
                return 1
            fi
            ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
            cluster=main
            svc_log "creating PostgreSQL $ver cluster $cluster on port $port"
            pg_createcluster --port "$port" "$ver" "$cluster" >&2 || return 1
        fi
        svc_pg_trust "$ver" "$cluster" || return 1
        svc_log "starting PostgreSQL $ver/$cluster"
        # No systemd in containers: start the cluster directly.
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start >&2 || return 1
        local i
        for ((i = 0; i < 60; i++)); do
            pg_isready -q -h "$SVC_HOST" -p "$port" && break
            sleep 0.5
        done
        pg_isready -q -h "$SVC_HOST" -p "$port" || { svc_die "PostgreSQL did not come up on port $port"; return 1; }
    fi

    if ! svc_pg_can_createdb "$url"; then
        # A running Debian cluster that wants a password: as root we can fix it.
        [[ -n $ver ]] || read -r ver cluster < <(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p {print $1, $2; exit}') || true
        if ((EUID == 0)) && [[ -n $ver ]]; then
            svc_pg_trust "$ver" "$cluster" && pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" reload >&2
        fi
        svc_pg_can_createdb "$url" || {
            svc_die "cannot connect to $url without a password as a role with CREATEDB: add 'host all postgres 127.0.0.1/32 trust' to pg_hba.conf, or set DATABASE_URL"
            return 1
        }
    fi
    # The suite only needs the server (pytest-django makes test_$db); the app's
    # own database is for `make run` against PostgreSQL.
    if [[ $(psql "$(svc_pg_admin_url "$url")" -w -Atc "select 1 from pg_database where datname = '$db'") != 1 ]]; then
        createdb -h "$SVC_HOST" -p "$port" -U postgres -w "$db" || return 1
    fi
    export DATABASE_URL=$url
}

# ---------------------------------------------------------------- Redis

svc_redis_ping() { [[ $(redis-cli -u "$1" ping 2>/dev/null) == PONG ]]; }

svc_redis_ensure() {
    command -v redis-cli >/dev/null || svc_apt_install redis-tools || return 1
    if [[ -n ${CELERY_BROKER_URL:-} ]]; then
        svc_log "CELERY_BROKER_URL already set: using it as is"
        svc_redis_ping "$CELERY_BROKER_URL" || { svc_die "no PONG from CELERY_BROKER_URL"; return 1; }
        export CELERY_BROKER_URL
        return 0
    fi
    local port=${OVERREAD_REDIS_PORT:-6379} db=${OVERREAD_REDIS_DB:-15}
    local url="redis://$SVC_HOST:$port/$db"
    if svc_redis_ping "$url"; then
        svc_log "Redis is running on $SVC_HOST:$port"
    else
        command -v redis-server >/dev/null || svc_apt_install redis-server || return 1
        svc_log "starting redis-server on $SVC_HOST:$port"
        # A throw-away broker: loopback only, nothing persisted to disk.
        redis-server --daemonize yes --bind "$SVC_HOST" --port "$port" \
            --save '' --appendonly no >&2 || return 1
        local i
        for ((i = 0; i < 50; i++)); do
            svc_redis_ping "$url" && break
            sleep 0.1
        done
        svc_redis_ping "$url" || { svc_die "Redis did not answer on port $port"; return 1; }
    fi
    export CELERY_BROKER_URL=$url
}

# ---------------------------------------------------------------- Chromium

svc_chromium_ensure() {
    if [[ -z ${CHROMIUM_PATH:-} ]]; then
        command -v chromium >/dev/null || svc_apt_install chromium fonts-dejavu-core || return 1
        CHROMIUM_PATH=$(command -v chromium)
    fi
    [[ -x $CHROMIUM_PATH ]] || { svc_die "CHROMIUM_PATH=$CHROMIUM_PATH is not executable"; return 1; }
    export CHROMIUM_PATH
}

# ---------------------------------------------------------------- Orthanc

# The DICOMweb plugin as Debian installs it: /usr/lib/orthanc/libOrthancDicomWeb.so.<version>,
# linked from Debian's plugin folder /usr/share/orthanc/plugins. We load that
# one file, not the folder: the folder also holds the worklist and serve-folders
# plugins from the orthanc package, and whatever other Orthanc plugins are
# installed (PostgreSQL index, viewers), none of which the tests want.
svc_orthanc_plugin() {
    local files so
    files=$(dpkg-query -L orthanc-dicomweb 2>/dev/null | grep -E '/libOrthancDicomWeb\.so[.0-9]*$')
    # Prefer the link in the plugin folder (stable across plugin versions).
    so=$(grep -m 1 '/plugins/' <<<"$files" || head -n 1 <<<"$files")
    [[ -n $so && -e $so ]] || { svc_die "DICOMweb plugin not found (dpkg -L orthanc-dicomweb)"; return 1; }
    printf '%s\n' "$so"
}

# $1 when nothing listens on it, else a free port the kernel picks. Orthanc's
# HTTP server binds every interface, so that is what we test.
svc_free_port() {
    python3 - "$1" <<'PY'
import socket, sys

def bind(port):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()

print(bind(int(sys.argv[1])) or bind(0))
PY
}

svc_pid_alive() { # true for a live process, false for none or a zombie
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

svc_orthanc_pid() { # pid of our Orthanc when it runs, else fail
    local pid
    pid=$(cat "$SVC_STATE_DIR/orthanc.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && svc_pid_alive "$pid" &&
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == Orthanc ]] || return 1
    printf '%s\n' "$pid"
}

# HTTP status of GET $ORTHANC_URL$1, with our credentials unless $2 is "noauth".
svc_orthanc_http() {
    local auth=(-u "$PACS_USERNAME:$PACS_PASSWORD")
    [[ ${2:-} == noauth ]] && auth=()
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${auth[@]}" "$ORTHANC_URL$1" || true
}

# Start the private Orthanc and export PACS_DICOMWEB_URL, PACS_USERNAME,
# PACS_PASSWORD and ORTHANC_URL (its REST root, handy for seeding and
# inspecting the PACS in tests). Reuses one that is already running.
svc_orthanc_start() {
    mkdir -p "$SVC_STATE_DIR" || return 1
    local pid
    if pid=$(svc_orthanc_pid); then
        # shellcheck source=/dev/null
        source "$SVC_STATE_DIR/env" || return 1
        if [[ $(svc_orthanc_http /system) == 200 ]]; then
            svc_log "Orthanc already running (pid $pid) at $ORTHANC_URL"
            return 0
        fi
        svc_log "Orthanc pid $pid does not answer: restarting it"
        svc_orthanc_stop
    fi
    svc_apt_install orthanc orthanc-dicomweb curl || return 1

    local plugin port tmp password t0
    t0=$(svc_ms)
    plugin=$(svc_orthanc_plugin) || return 1
    port=${ORTHANC_HTTP_PORT:-$(svc_free_port 8042)} || return 1
    [[ $port =~ ^[0-9]+$ ]] || { svc_die "no free port for Orthanc"; return 1; }
    # A fresh store each start: tests see an empty PACS and leave nothing behind.
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/overread-orthanc.XXXXXX") || return 1
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))') || return 1

    # Not the system service (/etc/orthanc): its own config, port, users and
    # store. No DICOM (DIMSE) listener: the app speaks DICOMweb only. Loopback
    # only and authenticated, even though it only ever holds synthetic data.
    (
        umask 077 # the file holds the password
        cat >"$tmp/orthanc.json" <<EOF
{
  "Name": "OverreadTestPACS",
  "HttpPort": $port,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "overread": "$password" },
  "DicomServerEnabled": false,
  "StorageDirectory": "$tmp/storage",
  "IndexDirectory": "$tmp/index",
  "Plugins": [ "$plugin" ],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
  "HttpsCACertificates": "/etc/ssl/certs/ca-certificates.crt"
}
EOF
    ) || return 1

    # Orthanc does not daemonise itself. stdin/stdout/stderr are redirected so
    # that `$(scripts/services.sh env)` returns instead of waiting for them.
    Orthanc "$tmp/orthanc.json" </dev/null >"$SVC_STATE_DIR/orthanc.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$SVC_STATE_DIR/orthanc.pid"
    printf '%s\n' "$tmp" >"$SVC_STATE_DIR/tmpdir"

    export ORTHANC_URL="http://$SVC_HOST:$port"
    export PACS_DICOMWEB_URL="$ORTHANC_URL/dicom-web"
    export PACS_USERNAME=overread
    export PACS_PASSWORD=$password

    local i code=
    for ((i = 0; i < 300; i++)); do # up to 30 s
        code=$(svc_orthanc_http /system)
        [[ $code == 200 ]] && break
        svc_pid_alive "$pid" || break
        sleep 0.1
    done
    if [[ $code != 200 ]]; then
        svc_log "Orthanc did not answer on $ORTHANC_URL (last HTTP status: ${code:-none}); its log:"
        sed 's/^/    /' "$SVC_STATE_DIR/orthanc.log" >&2
        svc_orthanc_stop
        svc_die "Orthanc failed to start"
        return 1
    fi
    # The plugin must be loaded and behind the same authentication.
    local with without
    with=$(svc_orthanc_http /dicom-web/studies)
    without=$(svc_orthanc_http /dicom-web/studies noauth)
    if [[ $with != 200 || $without != 401 ]]; then
        sed 's/^/    /' "$SVC_STATE_DIR/orthanc.log" >&2
        svc_orthanc_stop
        svc_die "DICOMweb check failed: GET /dicom-web/studies gave $with with auth (want 200), $without without (want 401)"
        return 1
    fi

    (
        umask 077
        svc_print_exports ORTHANC_URL PACS_DICOMWEB_URL PACS_USERNAME PACS_PASSWORD >"$SVC_STATE_DIR/env"
    ) || return 1
    svc_log "Orthanc (pid $pid) answers at $ORTHANC_URL, DICOMweb at $PACS_DICOMWEB_URL, in $(($(svc_ms) - t0)) ms (log: $SVC_STATE_DIR/orthanc.log)"
}

svc_orthanc_stop() {
    local pid tmp i
    if pid=$(svc_orthanc_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do # Orthanc stops in well under a second; wait up to 10 s
            svc_pid_alive "$pid" || break
            sleep 0.1
        done
        if svc_pid_alive "$pid"; then
            svc_log "Orthanc (pid $pid) ignored SIGTERM: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        svc_log "Orthanc (pid $pid) stopped"
    fi
    tmp=$(cat "$SVC_STATE_DIR/tmpdir" 2>/dev/null) || tmp=
    # Only ever delete a folder we made.
    if [[ $tmp == */overread-orthanc.* && -d $tmp ]]; then
        rm -rf -- "$tmp"
    fi
    rm -f "$SVC_STATE_DIR/orthanc.pid" "$SVC_STATE_DIR/tmpdir" "$SVC_STATE_DIR/env"
}

svc_orthanc_status() {
    local pid
    if pid=$(svc_orthanc_pid); then
        # shellcheck source=/dev/null
        source "$SVC_STATE_DIR/env" || return 1
        svc_log "Orthanc running (pid $pid) at $ORTHANC_URL, GET /system -> $(svc_orthanc_http /system)"
    else
        svc_log "Orthanc not running"
        return 1
    fi
}

# ---------------------------------------------------------------- output

svc_print_exports() { # names of variables; prints eval-safe export lines
    local name
    for name in "$@"; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
}

svc_main() {
    case ${1:-help} in
    env)
        svc_pg_ensure && svc_redis_ensure && svc_orthanc_start && svc_chromium_ensure || return 1
        svc_print_exports DATABASE_URL CELERY_BROKER_URL ORTHANC_URL PACS_DICOMWEB_URL \
            PACS_USERNAME PACS_PASSWORD CHROMIUM_PATH
        ;;
    pg) svc_pg_ensure && svc_print_exports DATABASE_URL ;;
    redis) svc_redis_ensure && svc_print_exports CELERY_BROKER_URL ;;
    orthanc-start)
        svc_orthanc_start && svc_print_exports ORTHANC_URL PACS_DICOMWEB_URL PACS_USERNAME PACS_PASSWORD
        ;;
    orthanc-stop | stop) svc_orthanc_stop ;;
    orthanc-status | status) svc_orthanc_status ;;
    chromium) svc_chromium_ensure && svc_print_exports CHROMIUM_PATH ;;
    packages) svc_packages ;;
    help | -h | --help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2 ;;
    *)
        svc_log "ERROR: unknown command '$1' (try: $0 help)"
        return 2
        ;;
    esac
}

# Run as a command (not sourced): strict mode, then dispatch.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    svc_main "$@"
fi
