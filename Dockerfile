# Production image, built the same way as scripts/setup.sh builds a machine:
# Debian 12 packages, Node 24, npm dependencies, mediasoup's worker compiled
# against Debian's libraries (no download); then the package is packed and
# installed without dev dependencies, as test/packedInstall.test.ts does.
# Keep this file in step with scripts/setup.sh (this project's CI has no Docker
# engine, so the image is not built there).
FROM debian:12-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl python3 python3-pip g++ make pkg-config ninja-build \
      libssl-dev libuv1-dev libsrtp2-dev libabsl-dev nlohmann-json3-dev libusrsctp-dev catch2 \
      dpkg-dev npm \
    && python3 -m pip install --break-system-packages 'meson>=1.1' \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
# The worker's SRTP is libsrtp2 from Debian's source package rebuilt on OpenSSL and linked
# statically (build-mediasoup-worker.sh runs scripts/mediasoup-worker/build-libsrtp2.sh, which
# fetches the source through a private apt configuration with its own deb-src line), and the
# patches in scripts/mediasoup-worker/patches/ are applied first: the same steps as setup.sh.
# Debian's Node is 18: install Node 24 from npm, as setup.sh does.
RUN npm install --prefix .tools --no-save node@24 \
    && PATH=/app/.tools/node_modules/.bin:$PATH MEDIASOUP_WORKER_BIN=/app/node_modules/mediasoup/worker/out/Release/mediasoup-worker npm ci \
    && PATH=/app/.tools/node_modules/.bin:$PATH bash scripts/build-mediasoup-worker.sh
COPY src ./src
COPY public ./public
COPY fixtures/README.md ./fixtures/README.md
# The image holds the package as a user installs it, with the steps of test/packedInstall.test.ts (keep the two in step):
# `npm pack` (its prepack builds), then the tarball installed without dev dependencies into an empty project, mediasoup's
# postinstall told to skip its download (MEDIASOUP_WORKER_BIN), and the worker built above copied to where mediasoup
# looks for it. The smoke check at the end is the test's first one.
RUN export PATH=/app/.tools/node_modules/.bin:$PATH \
    && npm pack --pack-destination /tmp \
    && mkdir /srv/relay && cd /srv/relay \
    && echo '{"name":"relay-app","private":true,"type":"module"}' > package.json \
    && MEDIASOUP_WORKER_BIN=/app/node_modules/mediasoup/worker/out/Release/mediasoup-worker \
       npm install --omit=dev --no-package-lock /tmp/broadcast-relay-*.tgz \
    && mkdir -p node_modules/mediasoup/worker/out/Release \
    && cp /app/node_modules/mediasoup/worker/out/Release/mediasoup-worker node_modules/mediasoup/worker/out/Release/ \
    && node node_modules/broadcast-relay/dist/cli/main.js --help > /dev/null

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates ffmpeg util-linux libssl3 libuv1 libabsl20220623 libusrsctp2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/relay
COPY --from=build /app/.tools/node_modules/node/bin/node /usr/local/bin/node
COPY --from=build /srv/relay ./
ENV NODE_ENV=production \
    BROADCAST_RELAY_HOST=0.0.0.0 \
    BROADCAST_RELAY_LISTEN_IP=0.0.0.0
EXPOSE 8080 40000-49999/udp 40000-49999/tcp
USER nobody
ENTRYPOINT ["node", "node_modules/broadcast-relay/dist/cli/main.js"]
CMD ["serve"]
