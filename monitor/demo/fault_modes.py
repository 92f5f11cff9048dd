"""The lab's and the demo's fault modes, apart from the fault engine so that the command line can list them
without importing it (and aiohttp, dnspython, cryptography with it): `monitor --help` stays fast."""

OCSP_MODES = ("ocsp-trylater", "ocsp-stale", "ocsp-wrong-signer", "ocsp-unknown")  # faults of a JPKI responder
API_MODES = ("api-ng", "api-login")  # faults of the intermediate-server platform's API (national_api.py)
MODES = ("up", "down", "kill", "cut", "degrade", "slow", "error", "reboot", "snmp-down", "link-down", "link-up",
         "flap", "fill", *OCSP_MODES, *API_MODES, "intrude")  # fmt: skip
INTRUDE_KINDS = ("scan", "disallowed-port", "exfil")  # intrude: what the organisation's terminal does (flow_lab.py)
INTERFACE_MODES = ("link-down", "link-up", "fill")  # faults of one interface of a device
UNREACHABLE = ("down", "kill", "cut")  # faults after which nothing of the host answers
