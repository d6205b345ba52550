# Berth server image. Build: docker build -t berth . ; run: see deploy/k8s or README (Operations).
# The build stage runs the same scripts/setup.sh as CI, so the image is built the way CI builds.

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY . .
RUN scripts/setup.sh

FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (no compilers, no headers); OpenBLAS in its OpenMP flavour for all
# three BLAS alternatives, as scripts/setup.sh selects it (see DESIGN.md, Pitfalls).
RUN apt-get update && apt-get install -y --no-install-recommends \
      libtorch1.13 libopenblas0-openmp libgrpc++1.51 libprotobuf32 libabsl20220623 \
      libprometheus-cpp-core1.0 libsqlite3-0 libcurl4 libutf8proc2 libssl3 libsentencepiece0 ca-certificates \
 && for alt in libblas.so.3 liblapack.so.3 libopenblas.so.0; do \
      update-alternatives --set "${alt}-x86_64-linux-gnu" "/usr/lib/x86_64-linux-gnu/openblas-openmp/${alt}"; \
    done \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/berth --create-home berth
# libberth_sentencepiece.so (XLM-R's tokenizer, loaded with dlopen) sits beside the executables.
COPY --from=build /src/build/berth-server /src/build/berth /src/build/libberth_sentencepiece.so /usr/local/bin/
COPY --from=build /src/data /usr/share/berth
ENV BERTH_SHARE_DIR=/usr/share/berth \
    BERTH_DATA_DIR=/var/lib/berth \
    BERTH_LISTEN=0.0.0.0:50051 \
    BERTH_METRICS_LISTEN=0.0.0.0:9090 \
    BERTH_LOG_FORMAT=json \
    HF_HOME=/var/lib/berth/hf
USER berth
VOLUME ["/var/lib/berth"]
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/berth-server"]
