"""Flow export (NetFlow v9 / IPFIX) in: the collector decodes routers' export into `FlowRecord`s, the
flow policy maps them to LGWAN connections and judges them against each connection's allow-list."""
