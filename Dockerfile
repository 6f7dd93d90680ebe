# The mailover worker image (used by docker-compose.yml).
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.js ./scripts/
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
# No tests, dev stack or local ESP emulators in the image (scripts/build.js --production).
RUN npm run build:production && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build ./build
COPY package.json ./
COPY deploy ./deploy
USER node
# A heap cap keeps the worker's memory flat however large the campaign (BENCHMARKS.md).
CMD ["node", "--max-old-space-size=256", "build/src/cli/main.js", "worker"]
