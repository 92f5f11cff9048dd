"""The information elements the collector reads (IANA IPFIX registry; NetFlow v9 field types 1-127 share
the numbers, RFC 7012 / RFC 3954 8). Everything else in a template is skipped by its length."""

from __future__ import annotations

# --- data records: what a FlowRecord is made of --------------------------------------------------
OCTET_DELTA = 1  # octetDeltaCount / IN_BYTES
PACKET_DELTA = 2  # packetDeltaCount / IN_PKTS
PROTOCOL = 4  # protocolIdentifier / PROTOCOL
TCP_FLAGS = 6  # tcpControlBits / TCP_FLAGS
SRC_PORT = 7  # sourceTransportPort / L4_SRC_PORT
SRC_V4 = 8  # sourceIPv4Address / IPV4_SRC_ADDR
INPUT_IF = 10  # ingressInterface / INPUT_SNMP
DST_PORT = 11  # destinationTransportPort / L4_DST_PORT
DST_V4 = 12  # destinationIPv4Address / IPV4_DST_ADDR
OUTPUT_IF = 14  # egressInterface / OUTPUT_SNMP
LAST_UPTIME = 21  # flowEndSysUpTime / LAST_SWITCHED (ms of the exporter's uptime)
FIRST_UPTIME = 22  # flowStartSysUpTime / FIRST_SWITCHED
OUT_OCTETS = 23  # postOctetDeltaCount / OUT_BYTES (some exporters send only these)
OUT_PACKETS = 24  # postPacketDeltaCount / OUT_PKTS
SRC_V6 = 27  # sourceIPv6Address / IPV6_SRC_ADDR
DST_V6 = 28  # destinationIPv6Address / IPV6_DST_ADDR
ICMP_TYPE_CODE_V4 = 32  # icmpTypeCodeIPv4 (type * 256 + code): the "port" of an ICMP flow
ICMP_TYPE_CODE_V6 = 139
OCTET_TOTAL = 85  # octetTotalCount (exporters that report running totals only)
PACKET_TOTAL = 86
START_SECONDS = 150  # flowStartSeconds
END_SECONDS = 151
START_MILLISECONDS = 152  # flowStartMilliseconds (epoch ms)
END_MILLISECONDS = 153
START_MICROSECONDS = 154  # flowStartMicroseconds (NTP timestamp format, RFC 7011 6.1.9)
END_MICROSECONDS = 155
START_NANOSECONDS = 156
END_NANOSECONDS = 157
START_DELTA_MICROSECONDS = 158  # flowStartDeltaMicroseconds (before the message's export time)
END_DELTA_MICROSECONDS = 159
SYSTEM_INIT_MILLISECONDS = 160  # systemInitTimeMilliseconds: the epoch of an IPFIX exporter's sysUpTime fields

# --- sampling: options data records (and, in some exporters, fields of the data records) -----------
SAMPLING_INTERVAL = 34  # samplingInterval / SAMPLING_INTERVAL: 1 in N packets
FLOW_SAMPLER_ID = 48  # flowSamplerId / FLOW_SAMPLER_ID: names an entry of the sampler table
FLOW_SAMPLER_RANDOM_INTERVAL = 50  # flowSamplerRandomInterval / FLOW_SAMPLER_RANDOM_INTERVAL: 1 in N
SELECTOR_ID = 302  # selectorId (RFC 5477): the IPFIX sampler table's key
SAMPLING_PACKET_INTERVAL = 305  # samplingPacketInterval: packets selected in a row ...
SAMPLING_PACKET_SPACE = 306  # samplingPacketSpace: ... then this many not (1 in (interval + space) / interval)

OPTION_FIELDS = frozenset(
    {
        SAMPLING_INTERVAL,
        FLOW_SAMPLER_ID,
        FLOW_SAMPLER_RANDOM_INTERVAL,
        SELECTOR_ID,
        SAMPLING_PACKET_INTERVAL,
        SAMPLING_PACKET_SPACE,
        SYSTEM_INIT_MILLISECONDS,
    }
)

VARIABLE = 65535  # an IPFIX field length: the length precedes each value (RFC 7011 7)
ENTERPRISE_BIT = 0x8000  # an IPFIX field specifier with an enterprise number follows (skipped: not ours to read)
