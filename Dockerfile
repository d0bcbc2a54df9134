# syntax=docker/dockerfile:1
# The engine's image: the worker (casn-worker run), the notification deliverer (casn-worker
# deliver-notifications), the gateway (casn-gateway), the codec server (casn-audit serve-codec)
# and the operators' and auditors' commands (casn-starter, casn-audit).
#
#   docker build -t casn-engine:0.1.0 .
#
# Only requirements.lock goes in (the runtime set: no embedded servers, no test or lint tools),
# then the project itself with --no-deps, so the image holds exactly the locked versions.
# .dockerignore lets in only what the build needs: never .venv, .data, keys or secrets.
# Keys and passwords come at run time, from the environment or from files (docker-compose.yml).

# The same Python minor as the lock (its wheels are cp311); a patch release pinned, not "3.11".
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/casn
COPY requirements.lock /src/requirements.lock
RUN /opt/casn/bin/pip install -r /src/requirements.lock
COPY . /src
RUN /opt/casn/bin/pip install --no-deps /src \
    && /opt/casn/bin/pip check \
    && /opt/casn/bin/python -m compileall -q /opt/casn/lib

FROM ${PYTHON_IMAGE} AS runtime
# A system user without a login shell; uid/gid 10001 so that secret files can be given to it
# (chgrp 10001 secrets/*; chmod 0640) and Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 casn \
    && useradd --system --uid 10001 --gid casn --home-dir /var/lib/casn --no-create-home \
       --shell /usr/sbin/nologin casn \
    && install -d -m 0700 -o casn -g casn /var/lib/casn
COPY --from=build /opt/casn /opt/casn
ENV PATH=/opt/casn/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CASN_DATA_DIR=/var/lib/casn \
    CASN_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/casn
# gateway, worker /metrics, notification deliverer /metrics, codec server
EXPOSE 8000 9464 9465 8088
# The worker drains its running tasks on SIGTERM (docker stop), then exits.
STOPSIGNAL SIGTERM
CMD ["casn-worker", "run"]
