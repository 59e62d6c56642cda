# One image per function, chosen with a build argument:
#   docker build --build-arg FUNCTION=proxy -t llm-proxy-proxy .
#   docker build --build-arg FUNCTION=llm-proxy -t llm-proxy .      # the single binary (serve, migrate, …)
# FUNCTION is one of: proxy, manage-projects, manage-tokens, admin-ui, dispatcher, llm-proxy.
# The result is a static binary (CGO_ENABLED=0) on distroless/static as a non-root user; it
# writes nothing to its root filesystem, so readOnlyRootFilesystem works.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ARG FUNCTION=proxy
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN set -eu; \
    if [ "$FUNCTION" = "llm-proxy" ]; then pkg=./local/cmd/llm-proxy; else pkg=./functions/$FUNCTION/cmd; fi; \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/llm-proxy/llm-proxy/shared/buildinfo.version=$VERSION -X github.com/llm-proxy/llm-proxy/shared/buildinfo.commit=$COMMIT" \
      -o /out/app "$pkg"

FROM gcr.io/distroless/static-debian12:nonroot
ARG FUNCTION=proxy
ENV FUNCTION_TARGET=${FUNCTION} PORT=8080
COPY --from=build /out/app /app
# distroless nonroot is uid/gid 65532; numeric, so that runAsNonRoot can verify it
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app"]
