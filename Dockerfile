# The imagehost backend: the supervisor and its workers (`imagehost workers`).
# nginx runs in its own container (docker-compose.yml) with the config this container renders.
#
# The base image is a parameter: the official python image by default; the tests build on a
# local Debian image with Debian's python3 + python3-venv (scripts/compose-env.sh).
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/imagehost \
    PATH=/opt/imagehost/bin:$PATH

# The app lives in its own virtualenv, so it never mixes with the base image's Python packages.
RUN python3 -m venv /opt/imagehost

# Dependencies first, exactly as pinned in pyproject.toml (a layer that survives code changes).
COPY pyproject.toml /tmp/build/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt

COPY . /tmp/build/
RUN pip install --no-deps /tmp/build && rm -rf /tmp/build

# The unprivileged user the workers run as.
RUN groupadd --system --gid 10001 imagehost \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin imagehost

# Start-up (imagehost-docker-start), then CMD:
# - as root (the compose file starts it so): create the mounted folders and give them to
#   `imagehost` (bind mounts arrive owned by whoever made them on the host), then drop to
#   `imagehost` with setpriv and carry on;
# - render the nginx config into the volume shared with nginx, copy the frontend files
#   from the installed package into the other shared volume, then exec CMD.
RUN printf '%s\n' \
    '#!/bin/sh' \
    'set -eu' \
    'shared=/srv/shared' \
    'if [ "$(id -u)" = 0 ]; then' \
    '    mkdir -p "$IMAGES_DIR" "$LOG_DIR" "$DATA_DIR" "$shared/nginx" "$shared/web"' \
    '    find "$IMAGES_DIR" "$DATA_DIR" "$shared" ! -user imagehost -exec chown -h imagehost:imagehost {} +' \
    '    find "$LOG_DIR" -maxdepth 1 ! -user imagehost -exec chown -h imagehost:imagehost {} +' \
    '    exec setpriv --reuid=imagehost --regid=imagehost --init-groups --inh-caps=-all "$0" "$@"' \
    'fi' \
    'imagehost nginx-config --docker --output "$shared/nginx/nginx.conf"' \
    'web="$(python3 -c "import imagehost.front; print(imagehost.front.WEB_DIR)")"' \
    'cp -R "$web/." "$shared/web/"' \
    'exec "$@"' \
    > /usr/local/bin/imagehost-docker-start \
    && chmod 755 /usr/local/bin/imagehost-docker-start \
    && mkdir -p /srv/images /srv/data /srv/shared/nginx /srv/shared/web /var/log/imagehost \
    && chown -R imagehost:imagehost /srv /var/log/imagehost

# Paths inside the container; docker-compose.yml mounts the host's folders here.
ENV IMAGES_DIR=/srv/images \
    DATA_DIR=/srv/data \
    LOG_DIR=/var/log/imagehost \
    WORKER_HOST=0.0.0.0 \
    WEB_SERVER_START_PORT=8000

WORKDIR /srv
USER imagehost
EXPOSE 8000

# Ready when the first worker answers /api/health (catalog and store reachable).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('WEB_SERVER_START_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["imagehost-docker-start"]
CMD ["imagehost", "workers"]
