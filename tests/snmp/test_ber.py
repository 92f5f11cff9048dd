"""The fast BER codec agrees with pysnmp's (pyasn1) both ways, and rejects garbage with BerError only."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902

from probes.snmp import ber

V2 = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

oids = st.tuples(st.sampled_from([0, 1, 2]), st.integers(0, 39), st.lists(st.integers(0, 2**32 - 1), max_size=14)).map(
    lambda t: (t[0], t[1], *t[2])
)
values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda v: (ber.INTEGER, v)),
    st.binary(max_size=300).map(lambda v: (ber.OCTET_STRING, v)),
    st.integers(0, 2**32 - 1).map(lambda v: (ber.COUNTER32, v)),
    st.integers(0, 2**32 - 1).map(lambda v: (ber.GAUGE32, v)),
    st.integers(0, 2**32 - 1).map(lambda v: (ber.TIMETICKS, v)),
    st.integers(0, 2**64 - 1).map(lambda v: (ber.COUNTER64, v)),
    st.binary(min_size=4, max_size=4).map(lambda v: (ber.IP_ADDRESS, v)),
    oids.map(lambda v: (ber.OBJECT_IDENTIFIER, v)),
    st.sampled_from([(ber.NULL, None), (ber.NO_SUCH_OBJECT, None), (ber.NO_SUCH_INSTANCE, None),
                     (ber.END_OF_MIB_VIEW, None)]),
)  # fmt: skip
varbinds = st.lists(st.tuples(oids, values), max_size=30)


def to_pysnmp(value: ber.Value) -> Any:
    tag, raw = value
    return {
        ber.INTEGER: lambda: rfc1902.Integer32(raw),
        ber.OCTET_STRING: lambda: rfc1902.OctetString(raw),
        ber.COUNTER32: lambda: rfc1902.Counter32(raw),
        ber.GAUGE32: lambda: rfc1902.Gauge32(raw),
        ber.TIMETICKS: lambda: rfc1902.TimeTicks(raw),
        ber.COUNTER64: lambda: rfc1902.Counter64(raw),
        ber.IP_ADDRESS: lambda: rfc1902.IpAddress(raw),
        ber.OBJECT_IDENTIFIER: lambda: rfc1902.ObjectName(raw),
        ber.NULL: lambda: V2.Null(""),
        ber.NO_SUCH_OBJECT: lambda: V2.NoSuchObject(""),
        ber.NO_SUCH_INSTANCE: lambda: V2.NoSuchInstance(""),
        ber.END_OF_MIB_VIEW: lambda: V2.EndOfMibView(""),
    }[tag]()


def from_pysnmp(value: Any) -> ber.Value:
    tag = value.tagSet[-1]
    code = int(tag.tagClass | tag.tagFormat | tag.tagId)
    if code in ber.EXCEPTIONS or code == ber.NULL:
        return code, None
    if code == ber.OBJECT_IDENTIFIER:
        return code, tuple(value)
    if code in (ber.OCTET_STRING, ber.IP_ADDRESS):
        return code, bytes(value.asOctets())
    return code, int(value)


@settings(max_examples=150, deadline=None)
@given(varbinds, st.integers(0, 2**31 - 1))
def test_pysnmp_decodes_what_we_encode(vbs: list[ber.VarBind], request_id: int) -> None:
    """A response encoded by the codec decodes in pyasn1 to the same request id and varbinds."""
    data = ber.encode(ber.V2C, b"public", ber.RESPONSE, request_id, vbs)
    message, rest = decoder.decode(data, asn1Spec=V2.Message())
    assert rest == b""
    pdu = V2.apiMessage.get_pdu(message)
    assert int(V2.apiPDU.get_request_id(pdu)) == request_id
    got = [(tuple(o), from_pysnmp(v)) for o, v in V2.apiPDU.get_varbinds(pdu)]
    assert got == vbs


@settings(max_examples=150, deadline=None)
@given(varbinds, st.integers(0, 2**31 - 1))
def test_we_decode_what_pysnmp_encodes(vbs: list[ber.VarBind], request_id: int) -> None:
    """A response encoded by pyasn1 decodes in the codec to the same message."""
    pdu = V2.GetResponsePDU()
    V2.apiPDU.set_defaults(pdu)
    V2.apiPDU.set_request_id(pdu, request_id)
    V2.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(o), to_pysnmp(v)) for o, v in vbs])
    message = V2.Message()
    V2.apiMessage.set_defaults(message)
    V2.apiMessage.set_community(message, "public")
    V2.apiMessage.set_pdu(message, pdu)
    decoded = ber.decode(encoder.encode(message))
    assert (decoded.version, decoded.community, decoded.pdu, decoded.request_id) == (1, b"public", ber.RESPONSE,
                                                                                     request_id)  # fmt: skip
    assert decoded.varbinds == vbs


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_ber_error(data: bytes) -> None:
    """Random bytes never crash the decoder with anything but BerError."""
    with contextlib.suppress(ber.BerError):
        ber.decode(data)


@settings(max_examples=200, deadline=None)
@given(varbinds.filter(bool), st.data())
def test_truncated_messages_are_rejected(vbs: list[ber.VarBind], data: st.DataObject) -> None:
    """Any proper prefix of a valid message is rejected (never read past the datagram)."""
    message = ber.encode(ber.V2C, b"public", ber.RESPONSE, 1, vbs)
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(ber.BerError):
        ber.decode(message[:cut])


def test_getbulk_request_fields() -> None:
    """A GETBULK request carries non-repeaters and max-repetitions where the error fields are."""
    data = ber.encode(ber.V2C, b"c", ber.GET_BULK, 77, [(1, 3, 6, 1, 2, 1, 2, 2, 1, 8)], 0, 25)
    message, _ = decoder.decode(data, asn1Spec=V2.Message())
    pdu = V2.apiMessage.get_pdu(message)
    assert int(V2.apiBulkPDU.get_non_repeaters(pdu)) == 0 and int(V2.apiBulkPDU.get_max_repetitions(pdu)) == 25
