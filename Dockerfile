# One image with every part's binary; each container runs one (`crm-gateway`, `crm-identity`,
# `crm-segmentation`, `crm-campaign`, `crm-loyalty`). librdkafka is built from source by the
# rdkafka crate, hence make, perl and a C compiler in the build stage.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p crm-gateway -p crm-identity -p crm-segmentation -p crm-campaign -p crm-loyalty \
 && mkdir /out \
 && cp target/release/crm-gateway target/release/crm-identity target/release/crm-segmentation \
       target/release/crm-campaign target/release/crm-loyalty /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 crm
COPY --from=build /out/ /usr/local/bin/
USER 10001
# SIGTERM drains (HTTP stops, consumers commit, the outbox relay flushes).
STOPSIGNAL SIGTERM
