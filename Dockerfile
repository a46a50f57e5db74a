# syntax=docker/dockerfile:1
# trd-sentinel container image: `serve` by default, non-root, no shell at run time.
#
#   docker build -t trd-sentinel:0.1.0 .
#   docker run --rm -p 8080:8080 -e TRD_FHIR_BASE_URL=... -e TRD_NOTIFY_TOKEN=... trd-sentinel:0.1.0
#
# Build stage: the toolchain Cargo.toml asks for (rust-version) and Cargo.lock
# (--locked). Run stage: distroless cc (glibc, CA certificates, tzdata; no shell, no
# package manager), uid/gid 65532. Pin both base images by digest in your registry.

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /build
# The image needs no debug info (the release profile keeps some for profiling).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin trd-sentinel \
 && cp target/release/trd-sentinel /usr/local/bin/trd-sentinel

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="trd-sentinel" \
      org.opencontainers.image.description="Flags treatment-resistant depression (and pseudo-resistance) from an EHR's FHIR data" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /usr/local/bin/trd-sentinel /usr/local/bin/trd-sentinel
# The knowledge files are built into the binary; this copy is the reference for a
# hospital's own `engine.knowledge_dir`.
COPY profiles /usr/share/trd-sentinel/profiles
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/trd-sentinel"]
CMD ["serve"]
