# syntax=docker/dockerfile:1
# One image per Hookline service, from one Dockerfile:
#   docker build --build-arg SERVICE=dispatcher -t registry.example.com/hookline/dispatcher:0.1.0 .
# SERVICE is endpoint-registry, event-ingest, dispatcher or portal (docs/deploy.md builds them all).
# Needs BuildKit (the default builder since Docker 23) for the npm cache mount.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, compile every workspace, then drop dev dependencies ----------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# .dockerignore keeps node_modules, dist, caches, tests and docs out of the context.
COPY . .
# `npm ci` also installs the `node` devDependency (a second Node 24 binary, used by our scripts);
# `npm prune --omit=dev` below removes it with the rest of the dev tooling.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
RUN npx tsc -b tsconfig.build.json \
 && npm run --silent build:web -w apps/portal \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf libs/*/src apps/*/src apps/portal/web libs/*/dist/.tsbuildinfo apps/*/dist/.tsbuildinfo

# ---- runtime: production dependencies and one service's compiled code, non-root -------------
FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
# Fail early on a missing or misspelt SERVICE; add the service user; drop npm, npx and yarn,
# which the services never run (fewer binaries, fewer CVEs to triage).
RUN case "${SERVICE}" in endpoint-registry|event-ingest|dispatcher|portal) ;; \
      *) echo "build with --build-arg SERVICE=endpoint-registry|event-ingest|dispatcher|portal (got '${SERVICE}')" >&2; exit 1 ;; esac \
 && groupadd --gid 10001 hookline \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookline \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn* /opt/yarn*
ENV NODE_ENV=production
WORKDIR /app
# Root-owned and not writable by the service user (the chart also mounts the root filesystem
# read-only). node_modules/@hookline/* are symlinks to libs/* and apps/*.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/libs ./libs
COPY --from=build /app/apps/${SERVICE} ./apps/${SERVICE}
WORKDIR /app/apps/${SERVICE}
USER 10001:10001
# The default gRPC ports: endpoint-registry 50051, event-ingest 50052, dispatcher 50053, portal
# 50054 (and its HTTP port 8080).
EXPOSE 50051 50052 50053 50054 8080
# node is PID 1 and handles SIGTERM itself (drains within ~10 s).
CMD ["node", "dist/main.js"]
