# Berth server image. Build: docker build -t berth . ; run: see deploy/k8s or docs/operations.md.
# The build stage runs the same scripts/setup.sh as CI, so the image is built the way CI builds.
#
# One image for CPU and GPU nodes: LibTorch is the PyPI torch wheel, which carries the CUDA 13
# runtime libraries (cuBLAS, cuDNN, NCCL, ...) as its nvidia-* packages, so no CUDA base image is
# needed; on a GPU node the NVIDIA container toolkit adds the driver. Variants:
#   docker build -t berth:cpu .                          (default: BERTH_DEVICE=cpu)
#   docker build -t berth:cuda --build-arg DEVICE=cuda . (BERTH_DEVICE=cuda)
# Both set the variables that make the NVIDIA container toolkit mount a GPU and its driver
# where one is granted (deploy/k8s/gpu asks for nvidia.com/gpu); elsewhere they do nothing.
ARG DEVICE=cpu
# nvcc and the CUDA headers: the CUDA-enabled wheel's CMake config needs them to configure.
ARG CUDA_TOOLKIT_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04

FROM ${CUDA_TOOLKIT_IMAGE} AS cuda-toolkit

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive PATH=/usr/local/cuda/bin:$PATH
COPY --from=cuda-toolkit /usr/local/cuda /usr/local/cuda
WORKDIR /src
COPY . .
RUN scripts/setup.sh
# The programs, and the wheel's libraries with their relative layout (libtorch_cuda finds the
# nvidia-* libraries at $ORIGIN/../../nvidia).
RUN site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && mkdir -p /opt/berth/bin /opt/berth/site/torch \
 && cp build/berth-server build/berth build/libberth_sentencepiece.so /opt/berth/bin/ \
 && cp -a "$site/torch/lib" /opt/berth/site/torch/lib \
 && cp -a "$site/nvidia" /opt/berth/site/nvidia \
 && scripts/starter-model.sh --cache /opt/berth/hf/hub

FROM debian:12-slim AS runtime
ARG DEVICE
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (no compilers, no headers); LibTorch, its OpenMP, MKL and oneDNN come
# from the wheel (/opt/berth/site).
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 \
      libprometheus-cpp-core1.0 libsqlite3-0 libpq5 libcurl4 libutf8proc2 libssl3 libsentencepiece0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/berth --create-home berth
COPY --from=build /opt/berth /opt/berth
COPY --from=build /src/data /usr/share/berth
# The starter model (all-MiniLM-L6-v2) in the Hub cache under the data volume, so that the
# quick start works offline: a new named volume starts with it (a Kubernetes volume does not;
# there the server downloads it, or the cache is mounted).
COPY --from=build --chown=10001:10001 /opt/berth/hf /var/lib/berth/hf
ENV PATH=/opt/berth/bin:$PATH \
    LD_LIBRARY_PATH=/opt/berth/site/torch/lib \
    BERTH_DEVICE=${DEVICE} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    BERTH_SHARE_DIR=/usr/share/berth \
    BERTH_DATA_DIR=/var/lib/berth \
    BERTH_LISTEN=0.0.0.0:50051 \
    BERTH_METRICS_LISTEN=0.0.0.0:9090 \
    BERTH_HTTP_LISTEN=0.0.0.0:8080 \
    BERTH_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2 \
    HF_HOME=/var/lib/berth/hf
USER berth
VOLUME ["/var/lib/berth"]
EXPOSE 50051 8080 9090
ENTRYPOINT ["/opt/berth/bin/berth-server"]
