#!/bin/sh
# Builds the test stand-in for `rust:1-slim-bookworm` (the Dockerfile's build stage), where no
# image can be pulled. tests/common/images.rs runs this in a container of the local
# debian:bookworm-slim stand-in, with the host's Rust toolchain (rustc, cargo, their shared
# libraries and the x86_64 standard library; no docs, sources or rustup) mounted at
# /toolchain and the host's CA bundle at /host-ca-certificates.crt, then exports the container and imports it as one layer (the test dockerd's vfs
# storage copies every layer in full) with the official image's variables:
# RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo, cargo and rustc on PATH.
set -eu
apt-get update
# gcc and libc6-dev: the linker and C runtime cargo builds need; ca-certificates: cargo's
# https to crates.io.
apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates
rm -rf /var/lib/apt/lists/*
# The host's CA bundle, mounted at /host-ca-certificates.crt: where the machine reaches
# crates.io through a TLS proxy with its own CA, cargo in the build must trust that CA too.
cp /host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
cp -a /toolchain /usr/local/rust
/usr/local/rust/bin/rustc --version
/usr/local/rust/bin/cargo --version
