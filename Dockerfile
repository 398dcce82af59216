# regauth container image: the release binary on debian:bookworm-slim, run as a
# non-root user. Used by docker-compose.yml; see docs/docker-compose.md.
#
#   docker build -t regauth .
#   docker run -p 5001:5001 -v regauth-data:/data -v regauth-certs:/certs regauth

FROM rust:1-slim-bookworm AS build
# The context is what .dockerignore lets through: the manifest, the sources and the other
# target directories it may name (cargo wants them present even for a release build).
COPY . /src
# The release profile keeps debug info for profiling; the image does not need it.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=true
# Only the binary stays in the build stage's layer (not the target directory).
RUN cargo build --release --locked --bin regauth --manifest-path /src/Cargo.toml \
    && install -m 0755 /src/target/release/regauth /usr/local/bin/regauth \
    && rm -rf /src/target

FROM debian:bookworm-slim
# No packages added: the binary needs only glibc, and TLS roots are compiled in (rustls).
RUN groupadd --system --gid 10001 regauth \
    && useradd --system --uid 10001 --gid regauth --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin regauth \
    && mkdir -p /data /certs /etc/regauth \
    && chown regauth:regauth /data /certs \
    && chmod 0700 /data
COPY --from=build /usr/local/bin/regauth /usr/local/bin/regauth
COPY deploy/regauth-compose.toml /etc/regauth/regauth.toml
# REGAUTH_CONFIG is read by `serve` and by the client commands alike, so
# `docker compose exec regauth regauth token list` needs no flags.
ENV REGAUTH_CONFIG=/etc/regauth/regauth.toml \
    REGAUTH_LISTEN=0.0.0.0:5001 \
    REGAUTH_DATA_DIR=/data
# /data: token store, generated admin token, signing key (private to regauth).
# /certs: the signing certificate, shared with the registry as its rootcertbundle.
VOLUME ["/data", "/certs"]
EXPOSE 5001
USER 10001:10001
WORKDIR /data
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["regauth", "health", "--server", "http://127.0.0.1:5001"]
ENTRYPOINT ["regauth"]
CMD ["serve"]
