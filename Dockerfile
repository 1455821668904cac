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
# fakes/Cargo.toml or Cargo.lock change, so editing callq's code rebuilds only callq and the
# fakes. Cargo reads the whole manifest, so every target it names needs a file: the crate
# roots and the bench get empty stubs here.
COPY Cargo.toml Cargo.lock ./
COPY fakes/Cargo.toml fakes/Cargo.toml
RUN mkdir -p src fakes/src benches \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && : > fakes/src/lib.rs \
 && : > benches/pipeline.rs \
 && cargo build --release --locked -p callq \
 && rm -rf src fakes/src benches

# The sources, and what they compile in: the report's templates/, the demo's prompts/ and
# examples/, the SQL migrations in db/, and the fakes crate (the demo's simulators ship in
# the binary). scripts/check-build-context compiles from exactly these COPYs, so a file the
# build needs and this list misses fails ./scripts/test.
COPY src src
COPY fakes fakes
COPY benches benches
COPY db db
COPY templates templates
COPY prompts prompts
COPY examples examples
# COPY keeps the files' modification times, which may be older than the stub build:
# touching the crate roots makes cargo rebuild callq and the fakes instead of keeping the stubs.
RUN touch src/main.rs src/lib.rs fakes/src/lib.rs \
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
