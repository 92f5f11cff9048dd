"""`daemon.http`: limits of the HTTP listener, so no client can take the descriptors probing needs.

Every open connection holds a file descriptor; the daemon shares RLIMIT_NOFILE with its probes (one
or two descriptors each), the store and the trap socket. Unset caps are sized from the soft
RLIMIT_NOFILE when the listener starts (see monitor.http.listener.resolve_limits).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from monitor.config.types import Duration


class HttpListenerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # open connections at once, all sources together (None: a quarter of RLIMIT_NOFILE, at most 10,000)
    max_connections: int | None = Field(default=None, ge=1, le=1_000_000)
    # open connections from one source address (None: a quarter of max_connections, at least 8, at most 256)
    max_connections_per_source: int | None = Field(default=None, ge=1, le=1_000_000)
    # a new connection must have sent its first request's headers within this time
    header_timeout: Duration = Field(default=10.0, gt=0.0, le=300.0)
    # a keep-alive connection with no request in flight is closed after this time
    idle_timeout: Duration = Field(default=30.0, gt=0.0, le=3600.0)
    # the expensive reads (board, status.json, target and service lists): served from a cache this old at most
    read_cache_ttl: Duration = Field(default=1.0, ge=0.0, le=60.0)
    # ... and at most this many per second from one source address (a token bucket of read_burst)
    read_rate: float = Field(default=20.0, gt=0.0, le=100_000.0)
    read_burst: int = Field(default=60, ge=1, le=1_000_000)
