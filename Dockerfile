# syntax=docker/dockerfile:1
# Multi-stage: dependencies are resolved in a build stage; the runtime image has production
# dependencies only and runs as an unprivileged user. TypeScript runs through tsx (a production
# dependency) so there is no separate compile step whose output could drift from the source.
# Node 24 (LTS, supported until April 2028): Node 20 reached its end of life in April 2026. The code
# itself still runs on Node 20.19+ (package.json "engines"), which is what some development machines have.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
# Give it DATABASE_URL. In production the embedded Postgres is refused unless
# ALLOW_EMBEDDED_DB_IN_PRODUCTION=true; then it lives under .data, which the unprivileged user must own.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
