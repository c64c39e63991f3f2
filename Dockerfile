# Two stages: a Debian 12 build image made by scripts/bootstrap, and a slim runtime image with
# only the shared libraries the binary loads. Build from the repo root: docker build -t orderengine .

FROM debian:12-slim AS build
WORKDIR /src
# Bootstrap first and alone, so the package layer stays cached while the sources change.
COPY scripts/bootstrap scripts/bootstrap
RUN scripts/bootstrap && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build -j2 --target orderengine \
    && install -D -m 0755 "$(find build -name orderengine -type f -perm -u+x | head -n 1)" \
        /out/orderengine

FROM debian:12-slim
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libsqlite3-0 libpqxx-6.4 libhiredis0.14 libfmt9 libboost-json1.81.0 libboost-url1.81.0 \
        libssl3 libjemalloc2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/orderengine --create-home --shell /usr/sbin/nologin \
        orderengine
COPY --from=build /out/orderengine /usr/local/bin/orderengine
# Fail the image build, not the first request, when a runtime library is missing.
RUN if ldd /usr/local/bin/orderengine | grep 'not found'; then exit 1; fi

USER orderengine
WORKDIR /var/lib/orderengine
# The embedded SQLite store by default; set DATABASE_URL=postgresql://... (and REDIS_URL) in
# production. Mount a volume at /var/lib/orderengine to keep the SQLite file.
ENV DATABASE_URL=sqlite:///var/lib/orderengine/orderengine.db \
    PORT=8080
EXPOSE 8080
CMD ["orderengine", "serve"]
