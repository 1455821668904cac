# callq's image: the callq binary on a distroless base, which has glibc, CA certificates,
# tzdata and a non-root user, and no shell or package manager.
#
#   docker build -t callq:latest .
#   docker run --rm --env-file .env.department1 \
#       -v "$PWD/logs:/app/logs" \
#       -v "$PWD/prompts:/app/prompts:ro" \
#       -v "$PWD/acc_google_api:/app/acc_google_api:ro" \
#       callq:latest                      # = callq run; or: callq:latest criteria, … migrate
#
# docker-compose.department1.yml / .department2.yml do the same; crontab.example runs them.
# callq runs in /app as uid 65532, so paths in the env file are relative to /app and the
# host's logs/ folder must be writable by uid 65532 (see the compose files).

# ─── Build ────────────────────────────────────────────────────────────────────
FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, compiled against stub sources: this layer is reused until Cargo.toml,
# fakes/Cargo.toml or Cargo.lock change, so editing callq's code rebuilds only callq.
# (fakes is a workspace member, a test-only crate: its manifest is needed, its code is not.)
COPY Cargo.toml Cargo.lock ./
COPY fakes/Cargo.toml fakes/Cargo.toml
RUN mkdir -p src fakes/src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && : > fakes/src/lib.rs \
 && cargo build --release --locked -p callq \
 && rm -rf src

# callq itself; the SQL migrations in db/ are compiled into the binary.
COPY src src
COPY db db
# COPY keeps the files' modification times, which may be older than the stub build:
# touching the crate roots makes cargo rebuild callq instead of keeping the stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked -p callq \
 && install -D -m 0755 target/release/callq /out/callq \
 && mkdir -p /out/app/logs

# ─── Run ──────────────────────────────────────────────────────────────────────
# Debian 12 like the builder, so the binary finds the glibc it was linked against.
# Time zones (CALLS_TIMEZONE) come from the tz database compiled into callq; the image's
# /usr/share/zoneinfo serves anything else that asks the OS.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=builder /out/callq /usr/local/bin/callq
# /app and an empty /app/logs owned by the non-root user, so file logging works even
# without a mounted logs folder.
COPY --from=builder --chown=65532:65532 /out/app /app
WORKDIR /app
USER 65532:65532

ENTRYPOINT ["/usr/local/bin/callq"]
CMD ["run"]
