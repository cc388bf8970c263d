# The rp-devops image for GitLab CI jobs: the binary, git (tag-library
# reads and pushes tags) and CA certificates, run as a non-root user.
#
#   buildah bud -t rp-devops .     (or: docker build -t rp-devops .)
#
# The repository's own pipeline (.gitlab-ci.yml) builds and pushes it to
# $CI_REGISTRY_IMAGE:<version> and :latest; the templates in ci-templates/
# use that image by default.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/rp-devops /out/usr/local/bin/rp-devops

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rp-devops \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/rp-devops rp-devops
COPY --from=build /out/ /
USER 10001:10001
WORKDIR /home/rp-devops
# No ENTRYPOINT: GitLab runs job scripts through the image's shell.
CMD ["rp-devops", "--help"]
