# syntax=docker/dockerfile:1
# tollgate, built with cgo (the SQLite ledger uses mattn/go-sqlite3).
#   docker build -t tollgate .
#   docker run -p 8080:8080 -v tollgate-data:/data tollgate
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/tollgate ./cmd/server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data tollgate \
    && mkdir -p /data && chown tollgate /data
COPY --from=build /out/tollgate /usr/local/bin/tollgate
USER tollgate
WORKDIR /data
VOLUME /data
EXPOSE 8080
# Inside a container the gateway must listen on all interfaces.
ENTRYPOINT ["tollgate", "-listen", "0.0.0.0:8080", "-data", "/data"]
