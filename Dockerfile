# imsproxy in a container: a static binary on a distroless base (no shell,
# no package manager, a non-root user). Build from the repository root:
#   docker build -t imsdlg/imsproxy:dev --build-arg VERSION=v0.1.0 .
#   docker run --rm --network host imsdlg/imsproxy:dev
# It runs /etc/imsdlg/imsproxy.yaml, the commented default (loopback only,
# hence --network host); mount your own there (listen on the container's
# address, and set mgmt.token before mgmt.listen leaves loopback).
FROM golang:1.26-bookworm AS build
ARG VERSION=devel
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/imsdlg/imsdlg/internal/buildinfo.version=${VERSION}" \
      -o /out/imsproxy ./cmd/imsproxy && \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/imsdlg/imsdlg/internal/buildinfo.version=${VERSION}" \
      -o /out/dlgctl ./cmd/dlgctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/imsproxy /out/dlgctl /usr/bin/
COPY configs/standalone.yaml /etc/imsdlg/imsproxy.yaml
EXPOSE 5060/udp 5060/tcp 8080/tcp
USER nonroot:nonroot
ENTRYPOINT ["/usr/bin/imsproxy"]
CMD ["--config", "/etc/imsdlg/imsproxy.yaml"]
