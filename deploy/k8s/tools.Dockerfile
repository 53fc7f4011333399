# loadgen and verify, for the load and verdict Jobs in deploy/k8s/jobs/.
# Build from the repository's root:
#   docker build -f deploy/k8s/tools.Dockerfile -t ticketbench/tools:latest .
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p loadgen -p verify

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/loadgen /src/target/release/verify /usr/local/bin/
