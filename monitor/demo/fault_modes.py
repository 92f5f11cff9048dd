"""The lab's and the demo's fault modes, apart from the fault engine so that the command line can list them
without importing it (and aiohttp, dnspython, cryptography with it): `monitor --help` stays fast."""

MODES = ("up", "down", "kill", "cut", "degrade", "slow", "error", "reboot", "snmp-down", "link-down", "link-up",
         "flap", "fill")  # fmt: skip
INTERFACE_MODES = ("link-down", "link-up", "fill")  # faults of one interface of a device
UNREACHABLE = ("down", "kill", "cut")  # faults after which nothing of the host answers
