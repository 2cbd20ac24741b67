# syntax=docker/dockerfile:1
# The image of docker-compose.yml's `worker` and `router` services: `rollout worker` and
# `rollout router` (ENTRYPOINT is the `rollout` command; compose gives the subcommand).
# Three stages: the router's Rust build, the TypeScript build, and a runtime with only what runs.

# 1. The router (native/router): the binary src/router/binary.ts looks for at
#    <package root>/native/router/target/release/rollout-router, as `npm run setup` builds it.
FROM rust:1.95.0-slim-bookworm AS router
WORKDIR /src/native/router
COPY native/router/Cargo.toml native/router/Cargo.lock ./
COPY native/router/src ./src
RUN cargo build --release --locked

# 2. dist/ (tsc), with the dev dependencies the build needs.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (tsc) runs below, once the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# 3. The runtime: production dependencies, dist/, bin/, the router binary.
FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=router /src/native/router/target/release/rollout-router ./native/router/target/release/rollout-router
COPY bin ./bin
# The example model server, so that examples/llm-service.yaml runs on the local provider.
COPY examples ./examples
COPY deploy/compose/worker-healthcheck.js ./deploy/compose/worker-healthcheck.js
# State on volumes, owned by the unprivileged user the image runs as (replicas of the local
# provider then run as that user too: ROLLOUT_REPLICA_USER's default for a non-root worker).
RUN mkdir -p /var/lib/rollout /var/lib/rollout-router && chown node:node /var/lib/rollout /var/lib/rollout-router
USER node
ENTRYPOINT ["node", "/app/bin/rollout.js"]
CMD ["--help"]
