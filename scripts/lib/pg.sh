# PostgreSQL for scripts/test and scripts/bench; source it, then call `ensure_database_url`.
#
# Keeps DATABASE_URL when it is set (a server whose user may create databases). Otherwise
# starts a throwaway PostgreSQL cluster from the server binaries on this machine (initdb as a
# non-root user when run as root, trust auth, a free loopback port), exports DATABASE_URL
# for it, and removes it when the sourcing script exits (an EXIT trap).
#
# Messages name the sourcing script, e.g. "scripts/test: …".

pg_caller="scripts/$(basename "$0")"

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        echo "$d"
        return
    fi
    command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return
    echo "$pg_caller: no PostgreSQL server binaries (initdb) found; install postgresql or set DATABASE_URL" >&2
    exit 2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000))
}

ensure_database_url() {
    if [ -n "${DATABASE_URL:-}" ]; then
        return 0
    fi
    bindir=$(pg_bindir)
    tmp=$(mktemp -d /tmp/callq-pg.XXXXXX)
    chmod 755 "$tmp"
    as_owner=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root: the cluster belongs to an unprivileged user.
        owner=postgres
        id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
        chown "$owner" "$tmp"
        as_owner=(runuser -u "$owner" --)
    fi
    cleanup() {
        "${as_owner[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$tmp"
    }
    trap cleanup EXIT
    port=$(free_port)
    "${as_owner[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1 \
        || { cat "$tmp/initdb.log" >&2; exit 1; }
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
        -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    export DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "$pg_caller: throwaway PostgreSQL on port $port"
}
