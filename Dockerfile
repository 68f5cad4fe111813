# The hpc-wps service: `hpc-wps serve` (gunicorn + the dispatcher) as an unprivileged user.
#
#   scripts/build-service-image.sh            builds localhost/hpc-wps/service:latest with Podman
#   podman run -p 127.0.0.1:5000:5000 -v hpc-wps:/var/lib/hpc-wps localhost/hpc-wps/service
#
# Configuration: the file named by HPC_WPS_CONFIG (the image's own, service-image/hpc-wps.cfg, unless you
# mount another one there or point the variable elsewhere), overridden by HPC_WPS_<SECTION>_<KEY>
# variables. The job database (SQLite unless [database] url names PostgreSQL) and the job directories
# with their outputs live in the volume /var/lib/hpc-wps. See docs/docker.md.
#
# The build needs the network for apt and pip (`podman build --network=host`) and, where pip must
# trust a local CA, the machine's CA bundle mounted read-only at /run/hpc-wps-build-ca.crt (not at
# /etc/ssl/certs/ca-certificates.crt, which the image's own ca-certificates package writes).
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

ARG EXTRAS=postgres,scheduler,docker
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# tini as PID 1 reaps the children a restarted dispatcher leaves behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 999 --user-group --home-dir /var/lib/hpc-wps --no-create-home \
        --shell /usr/sbin/nologin hpc-wps \
    && install -d -o hpc-wps -g hpc-wps -m 0750 /var/lib/hpc-wps

COPY . /tmp/src
RUN if [ -f /run/hpc-wps-build-ca.crt ]; then export PIP_CERT=/run/hpc-wps-build-ca.crt; fi \
    && python3 -m venv /opt/hpc-wps \
    && /opt/hpc-wps/bin/pip install --quiet "/tmp/src[${EXTRAS}]" \
    && install -D -m 0644 /tmp/src/service-image/hpc-wps.cfg /etc/hpc-wps/hpc-wps.cfg \
    && install -m 0755 /tmp/src/service-image/healthcheck.py /opt/hpc-wps/bin/hpc-wps-healthcheck \
    && rm -rf /tmp/src \
    && /opt/hpc-wps/bin/hpc-wps --config /etc/hpc-wps/hpc-wps.cfg config check

ENV PATH=/opt/hpc-wps/bin:$PATH \
    HPC_WPS_CONFIG=/etc/hpc-wps/hpc-wps.cfg
USER hpc-wps
WORKDIR /var/lib/hpc-wps
VOLUME ["/var/lib/hpc-wps"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["hpc-wps-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "hpc-wps"]
CMD ["serve"]
