//! UDP probes that speak ASN.1 BER: SNMP (v2c GetBulk, v1 Get) and CLDAP (rootDSE search). Owns a
//! minimal BER writer and a bounds-checked reader — only what these two requests and their replies
//! need, no general ASN.1. Validators match the reply to the request that was sent (request-id or
//! message ID, version, community, reply PDU type), so a reflected request never validates.

use super::payloads::{Params, Reply};

// === BER writer ===

/// Append a BER definite length.
fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One TLV with the given tag and contents.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 4);
    out.push(tag);
    put_len(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// A BER INTEGER (two's complement, minimal length; BER integers are signed, so 255 is `00 ff`).
fn int(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(tag, &bytes[start..])
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

// === BER reader ===

/// One decoded TLV: its tag, its contents and what follows it.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    rest: &'a [u8],
}

/// Read one TLV (single-byte tags, definite lengths up to 4 length bytes); `None` when malformed or
/// truncated.
fn read(buf: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, buf) = buf.split_first()?;
    let (&first, mut buf) = buf.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || buf.len() < n {
            return None;
        }
        let len = buf[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        buf = &buf[n..];
        len
    };
    (buf.len() >= len).then(|| Tlv {
        tag,
        contents: &buf[..len],
        rest: &buf[len..],
    })
}

/// Read a TLV that must carry `tag`.
fn read_tag(buf: &[u8], tag: u8) -> Option<Tlv<'_>> {
    read(buf).filter(|t| t.tag == tag)
}

/// Decode an INTEGER's contents (at most 8 bytes).
fn int_value(contents: &[u8]) -> Option<i64> {
    if contents.is_empty() || contents.len() > 8 {
        return None;
    }
    let neg = contents[0] & 0x80 != 0;
    Some(
        contents
            .iter()
            .fold(if neg { -1i64 } else { 0 }, |a, &b| (a << 8) | b as i64),
    )
}

// === SNMP ===

const PDU_GET: u8 = 0xa0;
const PDU_RESPONSE: u8 = 0xa2;
const PDU_GETBULK: u8 = 0xa5;
/// sysDescr.0, 1.3.6.1.2.1.1.1.0.
const OID_SYSDESCR: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 1, 0];
/// mib-2, 1.3.6.1.2.1: where a GetBulk walks from.
const OID_MIB2: &[u8] = &[0x2b, 6, 1, 2, 1];
/// GetBulk max-repetitions: enough rows to show amplification, as PROTOCOLS.md measured.
const MAX_REPETITIONS: i64 = 30;

/// An SNMP message: version, community, a PDU of `pdu` type with `request_id`, two integers and one
/// varbind (`oid` = NULL).
fn snmp(version: i64, community: &str, pdu: u8, id: u32, a: i64, b: i64, oid: &[u8]) -> Vec<u8> {
    let varbind = seq(&[&tlv(0x06, oid), &[0x05, 0x00]]);
    let varbinds = seq(&[&varbind]);
    let body = [int(0x02, snmp_id(id)), int(0x02, a), int(0x02, b), varbinds].concat();
    seq(&[
        &int(0x02, version),
        &tlv(0x04, community.as_bytes()),
        &tlv(pdu, &body),
    ])
}

/// Request ids are kept positive 31-bit numbers (some agents mishandle negative ones).
fn snmp_id(id: u32) -> i64 {
    (id & 0x7fff_ffff) as i64
}

/// SNMPv2c GetBulk (non-repeaters 0, max-repetitions 30) from mib-2: the amplifying request.
pub(super) fn snmp_v2c_getbulk(p: &Params, id: u32) -> Vec<u8> {
    snmp(
        1,
        &p.snmp_community,
        PDU_GETBULK,
        id,
        0,
        MAX_REPETITIONS,
        OID_MIB2,
    )
}

/// SNMPv1 Get sysDescr.0: for agents that speak only v1.
pub(super) fn snmp_v1_get(p: &Params, id: u32) -> Vec<u8> {
    snmp(0, &p.snmp_community, PDU_GET, id, 0, 0, OID_SYSDESCR)
}

/// Version, community, PDU tag, request-id and error-status of an SNMP message.
fn snmp_fields(msg: &[u8]) -> Option<(i64, &[u8], u8, i64, i64)> {
    let outer = read_tag(msg, 0x30)?;
    let version = read_tag(outer.contents, 0x02)?;
    let community = read_tag(version.rest, 0x04)?;
    let pdu = read(community.rest)?;
    let request_id = read_tag(pdu.contents, 0x02)?;
    let error = read_tag(request_id.rest, 0x02)?;
    Some((
        int_value(version.contents)?,
        community.contents,
        pdu.tag,
        int_value(request_id.contents)?,
        int_value(error.contents)?,
    ))
}

/// A GetResponse (PDU 0xA2) with our version, community and request-id, and error-status 0.
pub(super) fn snmp_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let (version, community, _, id, _) = snmp_fields(request)?;
    let (r_version, r_community, r_pdu, r_id, r_error) = snmp_fields(reply)?;
    (r_pdu == PDU_RESPONSE
        && r_version == version
        && r_community == community
        && r_id == id
        && r_error == 0)
        .then_some(Reply::PLAIN)
}

// === CLDAP ===

/// CLDAP SearchRequest for the rootDSE: base "", scope base, deref never, no limits, filter
/// present(objectClass), all attributes (39 bytes with a 1-byte message ID).
pub(super) fn cldap_rootdse(_: &Params, id: u32) -> Vec<u8> {
    let search = [
        tlv(0x04, b""),
        int(0x0a, 0),
        int(0x0a, 0),
        int(0x02, 0),
        int(0x02, 0),
        tlv(0x01, &[0x00]),
        tlv(0x87, b"objectClass"),
        tlv(0x30, b""),
    ]
    .concat();
    seq(&[&int(0x02, snmp_id(id)), &tlv(0x63, &search)])
}

/// A searchResEntry (0x64) or searchResDone with success (0x65, resultCode 0) for our message ID.
pub(super) fn cldap_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let message_id = |msg: &[u8]| -> Option<(i64, u8, Vec<u8>)> {
        let outer = read_tag(msg, 0x30)?;
        let id = read_tag(outer.contents, 0x02)?;
        let op = read(id.rest)?;
        Some((int_value(id.contents)?, op.tag, op.contents.to_vec()))
    };
    let (id, _, _) = message_id(request)?;
    let (r_id, r_op, r_contents) = message_id(reply)?;
    let ok = match r_op {
        0x64 => true,
        0x65 => read_tag(&r_contents, 0x0a).and_then(|c| int_value(c.contents)) == Some(0),
        _ => false,
    };
    (ok && r_id == id).then_some(Reply::PLAIN)
}

#[cfg(test)]
pub(super) mod build {
    //! Reply builders for the validator tests and the scripted responders.
    use super::*;

    /// A GetResponse answering `request` (same version, community, request-id).
    pub(in crate::scan::udp) fn snmp_response(request: &[u8], error: i64) -> Vec<u8> {
        let (version, community, _, id, _) = snmp_fields(request).unwrap();
        let varbind = seq(&[&tlv(0x06, OID_SYSDESCR), &tlv(0x04, b"Linux test 6.1")]);
        let body = [
            int(0x02, id),
            int(0x02, error),
            int(0x02, 0),
            seq(&[&varbind]),
        ]
        .concat();
        seq(&[
            &int(0x02, version),
            &tlv(0x04, community),
            &tlv(PDU_RESPONSE, &body),
        ])
    }

    /// A searchResEntry + searchResDone for `request`'s message ID (two LDAP messages, one datagram).
    pub(in crate::scan::udp) fn cldap_response(request: &[u8]) -> Vec<u8> {
        let outer = read_tag(request, 0x30).unwrap();
        let id = read_tag(outer.contents, 0x02).unwrap();
        let id = int_value(id.contents).unwrap();
        let attr = seq(&[
            &tlv(0x04, b"namingContexts"),
            &tlv(0x31, &tlv(0x04, b"dc=example,dc=test")),
        ]);
        let entry = seq(&[
            &int(0x02, id),
            &tlv(0x64, &[tlv(0x04, b""), seq(&[&attr])].concat()),
        ]);
        let done = [int(0x0a, 0), tlv(0x04, b""), tlv(0x04, b"")].concat();
        [entry, seq(&[&int(0x02, id), &tlv(0x65, &done)])].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_signed_and_minimal() {
        assert_eq!(int(0x02, 0), vec![0x02, 0x01, 0x00]);
        assert_eq!(int(0x02, 30), vec![0x02, 0x01, 30]);
        assert_eq!(int(0x02, 255), vec![0x02, 0x02, 0x00, 0xff]);
        assert_eq!(int(0x02, -1), vec![0x02, 0x01, 0xff]);
        assert_eq!(int_value(&[0x00, 0xff]), Some(255));
        assert_eq!(int_value(&[0xff]), Some(-1));
        assert_eq!(int_value(&[]), None);
    }

    #[test]
    fn long_lengths_round_trip() {
        let long = tlv(0x04, &[b'x'; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let t = read(&long).unwrap();
        assert_eq!(t.contents.len(), 300);
        assert!(t.rest.is_empty());
        assert!(read(&long[..100]).is_none(), "truncated contents");
        assert!(
            read(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none(),
            "5 length bytes"
        );
    }

    #[test]
    fn snmp_request_shape() {
        let p = Params::default();
        let get = snmp_v1_get(&p, 0x1234_5678);
        // 43 bytes with a 4-byte request-id, as ZMap's snmp1_161.pkt (GET sysDescr.0, "public").
        assert_eq!(get.len(), 43);
        assert_eq!(
            snmp_fields(&get),
            Some((0, &b"public"[..], PDU_GET, 0x1234_5678, 0))
        );
        let bulk = snmp_v2c_getbulk(&p, 0xffff_ffff);
        let (v, _, pdu, id, _) = snmp_fields(&bulk).unwrap();
        assert_eq!((v, pdu, id), (1, PDU_GETBULK, 0x7fff_ffff));
    }

    #[test]
    fn cldap_request_shape() {
        // 39 bytes with a 1-byte message ID: 30 25 02 01 01 63 20 04 00 0a 01 00 0a 01 00 ...
        let req = cldap_rootdse(&Params::default(), 1);
        assert_eq!(req.len(), 39);
        assert_eq!(&req[..7], &[0x30, 0x25, 0x02, 0x01, 0x01, 0x63, 0x20]);
        assert_eq!(&req[24..26], &[0x87, 0x0b]);
    }
}
