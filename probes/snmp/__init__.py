"""The SNMP probe kind (v1, v2c, v3): `probe` is the kind the registry names; `ber` (our BER codec),
`transport` (v1/v2c sessions over one shared UDP socket), `usm` (SNMPv3 messages, keys, auth and privacy on
that codec) and `usm_client` (v3 sessions: discovery, time windows, reports), `v3` (pysnmp's names for the
credentials, for traps and SET), `walk`, `ifmib` (interfaces),
`oids` (configured OIDs and thresholds), `counters` (wraps, reboots, rates) and `settings` (the module's
config model) are its parts."""
