# The monitoring daemon. ICMP: the compose file allows unprivileged ICMP datagram sockets through the
# net.ipv4.ping_group_range sysctl (cheaper at scale); NET_RAW is added for raw-socket fallback.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/monitor

COPY pyproject.toml requirements.lock README.md ./
COPY monitor ./monitor
COPY probes ./probes
RUN pip install -c requirements.lock . \
 && useradd --system --uid 10001 --home-dir /var/lib/monitor --create-home monitor
COPY config /etc/monitor

USER monitor
VOLUME ["/var/lib/monitor"]
EXPOSE 9310
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9310/readyz', timeout=2).status != 200)"
ENTRYPOINT ["monitor"]
CMD ["run", "--config", "/etc/monitor/monitor.yml", "--listen", "0.0.0.0:9310", "--data-dir", "/var/lib/monitor"]
