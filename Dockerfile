# The reference server. Used by docker-compose.yml; not exercised by CI
# (no Docker engine there), which runs the same binary from scripts/.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ticket-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ticket-server /usr/local/bin/ticket-server
ENV LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["ticket-server"]
