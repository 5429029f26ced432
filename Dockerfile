# DWBase node image: multi-stage (build a wheel, install it into a slim runtime), non-root.
#   docker build -t dwbase .
#   docker run -p 8080:8080 -v dwbase-data:/var/lib/dwbase dwbase
#   docker exec <container> dwbase token create agent-1 --read 'demo*'
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DWBASE_DATA_DIR=/var/lib/dwbase/data
RUN groupadd --system --gid 10001 dwbase \
 && useradd --system --uid 10001 --gid dwbase --home-dir /var/lib/dwbase --create-home \
      --shell /usr/sbin/nologin dwbase
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/edge.toml /etc/dwbase/dwbase.toml
USER 10001:10001
WORKDIR /var/lib/dwbase
VOLUME ["/var/lib/dwbase"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["dwbase"]
CMD ["node", "--config", "/etc/dwbase/dwbase.toml"]
