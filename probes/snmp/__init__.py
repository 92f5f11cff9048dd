"""The SNMP probe kind (v1, v2c, v3): `probe` is the kind the registry names; `ber` (our v1/v2c codec) and
`transport` (sessions over one shared UDP socket), `v3` (pysnmp's engine), `walk`, `ifmib` (interfaces),
`oids` (configured OIDs and thresholds), `counters` (wraps, reboots, rates) and `settings` (the module's
config model) are its parts."""
