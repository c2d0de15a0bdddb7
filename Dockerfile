# Production image, built the same way as scripts/setup.sh builds a machine:
# Debian 12 packages, Node 24, npm dependencies, mediasoup's worker compiled
# against Debian's libraries (no download), the TypeScript build.
# Keep this file in step with scripts/setup.sh (this project's CI has no Docker
# engine, so the image is not built there).
FROM debian:12-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl python3 python3-pip g++ make pkg-config ninja-build \
      libssl-dev libuv1-dev libsrtp2-dev libabsl-dev nlohmann-json3-dev libusrsctp-dev catch2 \
      npm \
    && python3 -m pip install --break-system-packages 'meson>=1.1' \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
# Debian's Node is 18: install Node 24 from npm, as setup.sh does.
RUN npm install --prefix .tools --no-save node@24 \
    && PATH=/app/.tools/node_modules/.bin:$PATH MEDIASOUP_WORKER_BIN=/app/node_modules/mediasoup/worker/out/Release/mediasoup-worker npm ci \
    && PATH=/app/.tools/node_modules/.bin:$PATH bash scripts/build-mediasoup-worker.sh
COPY src ./src
COPY public ./public
RUN PATH=/app/.tools/node_modules/.bin:$PATH npm run build \
    && PATH=/app/.tools/node_modules/.bin:$PATH npm prune --omit=dev

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates ffmpeg util-linux libssl3 libuv1 libsrtp2-1 libabsl20220623 libusrsctp2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/.tools/node_modules/node/bin/node /usr/local/bin/node
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public
COPY package.json ./
ENV NODE_ENV=production \
    BROADCAST_RELAY_HOST=0.0.0.0 \
    BROADCAST_RELAY_LISTEN_IP=0.0.0.0
EXPOSE 8080 40000-49999/udp 40000-49999/tcp
USER nobody
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
