//! Expected layouts are written from `struct ip_vs_sync_mesg` and
//! `struct ip_vs_sync_v4`/`_v6` in `ip_vs_sync.c`, not from the encoder.

use super::*;
use conn_flags::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// TCP 10.0.0.1:40000 -> 192.168.1.100:80 -> 10.1.1.2:8080, DR, established.
fn conn_v4() -> SyncConn {
    SyncConn {
        protocol: 6,
        caddr: v4([10, 0, 0, 1]),
        cport: 40000,
        vaddr: v4([192, 168, 1, 100]),
        vport: 80,
        daddr: v4([10, 1, 1, 2]),
        dport: 8080,
        flags: DROUTE,
        state: tcp_state::ESTABLISHED,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_name: None,
        pe_data: None,
    }
}

fn seq_sample() -> SeqData {
    SeqData {
        in_seq: Seq {
            init_seq: 0x1111_1111,
            delta: 4,
            previous_delta: 0,
        },
        out_seq: Seq {
            init_seq: 0x2222_2222,
            delta: 0xffff_fffc,
            previous_delta: 2,
        },
    }
}

/// NAT connection with sequence adjustment (as after an FTP PORT rewrite).
fn conn_seq() -> SyncConn {
    SyncConn {
        flags: MASQ | IN_SEQ | OUT_SEQ,
        seq: Some(seq_sample()),
        ..conn_v4()
    }
}

/// Template of a fwmark-7 persistent DR service: protocol IPPROTO_IP, the
/// fwmark as virtual address, ports 0, persistence timeout 360 s.
fn conn_template() -> SyncConn {
    SyncConn {
        protocol: 0,
        caddr: v4([10, 0, 0, 1]),
        cport: 0,
        vaddr: v4([0, 0, 0, 7]),
        vport: 0,
        daddr: v4([10, 1, 1, 2]),
        dport: 0,
        flags: TEMPLATE | DROUTE,
        state: tpl_state::ASSURED,
        fwmark: 7,
        timeout: 360,
        seq: None,
        pe_name: None,
        pe_data: None,
    }
}

/// SIP persistence template (`--pe sip`) on UDP 5060.
fn conn_sip() -> SyncConn {
    SyncConn {
        protocol: 17,
        cport: 0,
        vport: 5060,
        dport: 5060,
        flags: TEMPLATE | MASQ,
        state: tpl_state::NONE,
        timeout: 300,
        pe_data: Some(b"call-1@x".to_vec()),
        pe_name: Some(b"sip".to_vec()),
        ..conn_v4()
    }
}

fn conn_v6() -> SyncConn {
    SyncConn {
        protocol: 132,
        caddr: v6(1),
        cport: 5000,
        vaddr: v6(0x100),
        vport: 3868,
        daddr: v6(0x200),
        dport: 3868,
        flags: TUNNEL | INACTIVE,
        state: sctp_state::COOKIE_ECHOED,
        fwmark: 0x1234_5678,
        timeout: 10,
        seq: None,
        pe_name: None,
        pe_data: None,
    }
}

fn encode_one(conn: &SyncConn) -> Vec<u8> {
    let mut out = encode(5, 1472, std::slice::from_ref(conn)).unwrap();
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

/// The fixed-part bytes of `conn_v4()` after `type, protocol, ver_size`.
const V4_BODY: [u8; 32] = [
    0x00, 0x00, 0x00, 0x03, // flags: IP_VS_CONN_F_DROUTE
    0x00, 0x01, 0x9c, 0x40, // state ESTABLISHED, cport 40000
    0x00, 0x50, 0x1f, 0x90, // vport 80, dport 8080
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x03, 0x84, // timeout 900 s
    10, 0, 0, 1, // caddr
    192, 168, 1, 100, // vaddr
    10, 1, 1, 2, // daddr
];

#[test]
fn layout_v4_entry() {
    let mut want = vec![
        0x00, 0x05, 0x00, 0x2c, // reserved 0, syncid 5, size 44
        0x01, 0x01, 0x00, 0x00, // nr_conns 1, version 1, spare
        0x00, 0x06, 0x00, 0x24, // type v4, TCP, ver_size: version 0, size 36
    ];
    want.extend_from_slice(&V4_BODY);
    assert_eq!(encode_one(&conn_v4()), want);
}

#[test]
fn layout_v4_entry_with_seq() {
    let mut want = vec![
        0x00, 0x05, 0x00, 0x46, // size 8 + 62 = 70
        0x01, 0x01, 0x00, 0x00, //
        0x00, 0x06, 0x00, 0x3e, // size 36 + 2 + 24 = 62
        0x00, 0x00, 0x06, 0x00, // flags: MASQ | IN_SEQ | OUT_SEQ
    ];
    want.extend_from_slice(&V4_BODY[4..]);
    want.extend_from_slice(&[
        0x01, 0x18, // IPVS_OPT_SEQ_DATA, 24 bytes
        0x11, 0x11, 0x11, 0x11, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // in_seq
        0x22, 0x22, 0x22, 0x22, 0xff, 0xff, 0xff, 0xfc, 0x00, 0x00, 0x00, 0x02, // out_seq
    ]);
    assert_eq!(encode_one(&conn_seq()), want);
}

#[test]
fn layout_template_entry() {
    let want = vec![
        0x00, 0x05, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00, // header, size 44
        0x00, 0x00, 0x00, 0x24, // type v4, protocol 0 (IPPROTO_IP), size 36
        0x00, 0x00, 0x10, 0x03, // flags: TEMPLATE | DROUTE
        0x00, 0x01, 0x00, 0x00, // state ASSURED, cport 0
        0x00, 0x00, 0x00, 0x00, // vport 0, dport 0
        0x00, 0x00, 0x00, 0x07, // fwmark 7
        0x00, 0x00, 0x01, 0x68, // timeout 360 s
        10, 0, 0, 1, // caddr
        0, 0, 0, 7, // vaddr: the fwmark
        10, 1, 1, 2, // daddr
    ];
    assert_eq!(encode_one(&conn_template()), want);
}

#[test]
fn layout_v6_entry() {
    let m = encode_one(&conn_v6());
    assert_eq!(m.len(), 8 + 72);
    assert_eq!(&m[..4], &[0x00, 0x05, 0x00, 0x50]);
    // type STYPE_F_INET6, SCTP, size 72, flags TUNNEL | INACTIVE, state 7.
    assert_eq!(
        &m[8..18],
        &[0x01, 132, 0x00, 0x48, 0x00, 0x00, 0x01, 0x02, 0x00, 0x07]
    );
    assert_eq!(&m[24..28], &[0x12, 0x34, 0x56, 0x78]);
    assert_eq!(
        &m[32..48],
        &Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets()
    );
    assert_eq!(
        &m[64..80],
        &Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200).octets()
    );
}

#[test]
fn layout_pe_options_and_padding() {
    let m = encode(5, 1472, &[conn_sip(), conn_v4()]).unwrap().remove(0);
    // 8 header + 51 (36 + 2 + 8 + 2 + 3) + 1 pad + 36
    assert_eq!(m.len(), 96);
    assert_eq!(&m[..6], &[0x00, 0x05, 0x00, 0x60, 0x02, 0x01]);
    assert_eq!(&m[8..12], &[0x00, 17, 0x00, 0x33]);
    assert_eq!(
        &m[44..60],
        &[
            0x02, 0x08, b'c', b'a', b'l', b'l', b'-', b'1', b'@', b'x', // PE_DATA
            0x03, 0x03, b's', b'i', b'p', // PE_NAME
            0x00, // padding to the next 4-byte boundary
        ]
    );
    assert_eq!(&m[60..64], &[0x00, 0x06, 0x00, 0x24]);
}

#[test]
fn round_trips() {
    let conns = vec![
        conn_v4(),
        conn_seq(),
        conn_template(),
        conn_sip(),
        conn_v6(),
    ];
    let msgs = encode(42, 1472, &conns).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = decode(&msgs[0]).unwrap();
    assert_eq!(
        m.header,
        Header {
            version: SyncVersion::V1,
            syncid: 42,
            nr_conns: 5,
            size: msgs[0].len() as u16,
        }
    );
    assert_eq!(m.conns, conns);
    assert!(m.skipped.is_empty());
}

#[test]
fn v6_with_seq_and_pe_round_trips() {
    let c = SyncConn {
        flags: MASQ | IN_SEQ | TEMPLATE,
        seq: Some(seq_sample()),
        pe_data: Some(vec![0xab; 255]),
        pe_name: Some(b"0123456789abcdef".to_vec()),
        ..conn_v6()
    };
    let m = encode_one(&c);
    assert_eq!(m.len(), 8 + 72 + 26 + 257 + 18);
    assert_eq!(decode(&m).unwrap().conns, vec![c]);
}

#[test]
fn encoder_splits_at_maxlen() {
    let conns: Vec<SyncConn> = (0..7)
        .map(|i| SyncConn {
            cport: 1000 + i,
            ..conn_v4()
        })
        .collect();
    let maxlen = 8 + 3 * 36;
    let msgs = encode(1, maxlen, &conns).unwrap();
    let counts: Vec<u8> = msgs.iter().map(|m| m[4]).collect();
    assert_eq!(counts, vec![3, 3, 1]);
    let mut back = Vec::new();
    for m in &msgs {
        assert!(m.len() <= maxlen);
        back.extend(decode(m).unwrap().conns);
    }
    assert_eq!(back, conns);
    // One byte less: two per datagram.
    assert_eq!(encode(1, maxlen - 1, &conns).unwrap().len(), 4);
}

#[test]
fn encoder_counts_padding_against_maxlen() {
    // 8 + 51 = 59; the next entry needs 1 pad + 36, i.e. 96 in all.
    assert_eq!(encode(1, 96, &[conn_sip(), conn_v4()]).unwrap().len(), 1);
    assert_eq!(encode(1, 95, &[conn_sip(), conn_v4()]).unwrap().len(), 2);
}

#[test]
fn encoder_caps_at_255_entries() {
    let conns = vec![conn_v4(); 300];
    let msgs = encode(1, 65507, &conns).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0][4], 255);
    assert_eq!(msgs[1][4], 45);
    assert_eq!(decode(&msgs[0]).unwrap().conns.len(), 255);
}

#[test]
fn encoder_push_and_finish() {
    let mut enc = Encoder::new(3, 8 + 36);
    assert_eq!(enc.finish(), None);
    assert_eq!(enc.push(&conn_v4()).unwrap(), None);
    assert_eq!(enc.pending(), 1);
    let first = enc.push(&conn_v4()).unwrap().unwrap();
    assert_eq!(first, {
        let mut m = encode_one(&conn_v4());
        m[1] = 3;
        m
    });
    assert_eq!(enc.pending(), 1);
    assert_eq!(enc.finish().unwrap().len(), 44);
    assert_eq!(enc.pending(), 0);
    assert_eq!(Encoder::new(0, 1 << 20).maxlen(), 65535);
}

#[test]
fn encoder_clears_hashed() {
    let c = SyncConn {
        flags: DROUTE | HASHED | NFCT,
        ..conn_v4()
    };
    let m = encode_one(&c);
    assert_eq!(&m[12..16], &[0x00, 0x01, 0x00, 0x03]);
}

#[test]
fn encode_errors() {
    let mixed = SyncConn {
        daddr: v6(2),
        ..conn_v4()
    };
    assert_eq!(entry_len(&mixed), Err(EncodeError::MixedFamily));
    let no_seq = SyncConn {
        flags: IN_SEQ,
        ..conn_v4()
    };
    assert_eq!(entry_len(&no_seq), Err(EncodeError::SeqMismatch));
    let no_flags = SyncConn {
        seq: Some(SeqData::default()),
        ..conn_v4()
    };
    assert_eq!(entry_len(&no_flags), Err(EncodeError::SeqMismatch));
    let empty = SyncConn {
        pe_data: Some(vec![]),
        ..conn_sip()
    };
    assert_eq!(entry_len(&empty), Err(EncodeError::PeData(0)));
    let big = SyncConn {
        pe_data: Some(vec![1; 256]),
        ..conn_sip()
    };
    assert_eq!(entry_len(&big), Err(EncodeError::PeData(256)));
    let long = SyncConn {
        pe_name: Some(vec![b'x'; 17]),
        ..conn_sip()
    };
    assert_eq!(entry_len(&long), Err(EncodeError::PeName(17)));
    let half = SyncConn {
        pe_name: None,
        ..conn_sip()
    };
    assert_eq!(entry_len(&half), Err(EncodeError::PeIncomplete));
    let mut enc = Encoder::new(0, 43);
    assert_eq!(
        enc.push(&conn_v4()),
        Err(EncodeError::TooLarge {
            need: 44,
            maxlen: 43
        })
    );
    assert_eq!(enc.pending(), 0);
    assert_eq!(
        encode(0, 1472, &[conn_v4(), half]),
        Err(EncodeError::PeIncomplete)
    );
}

/// A v1 datagram of raw entries, each padded to 4 bytes, size fixed up.
fn raw_msg(nr: u8, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 5, 0, 0, nr, 1, 0, 0];
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            m.resize(m.len().next_multiple_of(4), 0);
        }
        m.extend_from_slice(e);
    }
    let size = (m.len() as u16).to_be_bytes();
    m[2..4].copy_from_slice(&size);
    m
}

/// `conn_v4()`'s entry followed by `opts`, with its size updated.
fn entry_with(opts: &[u8]) -> Vec<u8> {
    let mut e = encode_one(&conn_v4())[8..].to_vec();
    e.extend_from_slice(opts);
    let size = (e.len() as u16).to_be_bytes();
    e[2..4].copy_from_slice(&size);
    e
}

fn entry_err(m: &[u8]) -> (usize, EntryError) {
    match decode(m) {
        Err(SyncError::Entry { index, error }) => (index, error),
        other => panic!("expected an entry error, got {other:?}"),
    }
}

fn skip_reason(m: &[u8]) -> SkipReason {
    let d = decode(m).unwrap();
    assert!(d.conns.is_empty(), "{d:?}");
    assert_eq!(d.skipped.len(), 1);
    d.skipped[0].1.clone()
}

#[test]
fn header_errors() {
    let one = encode_one(&conn_v4());
    for len in 0..4 {
        assert_eq!(decode(&one[..len]), Err(SyncError::HeaderTooShort { len }));
    }
    let mut long = one.clone();
    long.push(0);
    assert_eq!(
        decode(&long),
        Err(SyncError::SizeMismatch { size: 44, len: 45 })
    );
    assert_eq!(
        decode(&one[..43]),
        Err(SyncError::SizeMismatch { size: 44, len: 43 })
    );
    let e = SyncError::SizeMismatch { size: 44, len: 45 };
    assert_eq!(e.to_string(), "header says 44 bytes, 45 were received");
}

#[test]
fn missing_entry_is_truncated() {
    let mut m = encode_one(&conn_v4());
    m[4] = 2;
    let err = decode(&m).unwrap_err();
    assert_eq!(
        err,
        SyncError::Entry {
            index: 1,
            error: EntryError::Truncated { need: 36, have: 0 }
        }
    );
    assert_eq!(
        err.to_string(),
        "entry 1: only 0 bytes left where an entry needs 36"
    );
    // The kernel has applied entry 0 by then; the iterator says so.
    let view = MessageView::new(&m).unwrap();
    let items: Vec<_> = view.entries().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok(Entry::Conn(conn_v4())));
    assert!(items[1].is_err());
}

#[test]
fn size_past_end_is_overrun() {
    let mut m = encode_one(&conn_v4());
    m[11] = 37;
    assert_eq!(
        entry_err(&m),
        (0, EntryError::Overrun { size: 37, have: 36 })
    );
}

#[test]
fn nonzero_entry_version() {
    let mut m = encode_one(&conn_v4());
    m[10] = 0x10;
    assert_eq!(entry_err(&m), (0, EntryError::Version(1)));
}

#[test]
fn entry_type() {
    let mut m = encode_one(&conn_v4());
    m[8] = 0x02;
    assert_eq!(entry_err(&m), (0, EntryError::Type(2)));
    // Any type with bit 0 is IPv6, whose fixed part is 72 bytes.
    m[8] = 0x03;
    assert_eq!(
        entry_err(&m),
        (0, EntryError::Undersized { size: 36, need: 72 })
    );
    let mut m6 = encode_one(&conn_v6());
    m6[8] = 0xff;
    assert_eq!(decode(&m6).unwrap().conns, vec![conn_v6()]);
}

#[test]
fn undersized_entry() {
    let mut m = encode_one(&conn_v4());
    m[11] = 20;
    assert_eq!(
        entry_err(&m),
        (0, EntryError::Undersized { size: 20, need: 36 })
    );
    m[11] = 0;
    assert_eq!(
        entry_err(&m),
        (0, EntryError::Undersized { size: 0, need: 36 })
    );
}

#[test]
fn option_errors() {
    let cases: Vec<(Vec<u8>, EntryError)> = vec![
        (vec![0x01], EntryError::OptionHeader { offset: 36 }),
        (
            vec![0x02, 0x00],
            EntryError::OptionLength {
                offset: 36,
                ptype: 2,
                len: 0,
            },
        ),
        (
            vec![0x02, 0x05, 1, 2],
            EntryError::OptionLength {
                offset: 36,
                ptype: 2,
                len: 5,
            },
        ),
        (vec![0x01, 0x04, 0, 0, 0, 0], EntryError::SeqLength(4)),
        (
            [[0x01, 24].as_slice(), &[0; 24], &[0x41, 24], &[0; 24]].concat(),
            EntryError::Duplicate(OptionKind::SeqData),
        ),
        (
            vec![0x02, 0x01, 7, 0x02, 0x01, 8],
            EntryError::Duplicate(OptionKind::PeData),
        ),
        (
            vec![0x03, 0x01, b's', 0x03, 0x01, b's'],
            EntryError::Duplicate(OptionKind::PeName),
        ),
        (
            [[0x03, 17].as_slice(), &[b'n'; 17]].concat(),
            EntryError::PeNameTooLong(17),
        ),
    ];
    for (opts, want) in cases {
        let m = raw_msg(1, &[entry_with(&opts)]);
        assert_eq!(entry_err(&m), (0, want), "options {opts:?}");
    }
}

#[test]
fn optional_unknown_options_are_ignored() {
    let m = raw_msg(1, &[entry_with(&[0x49, 0x02, 0xaa, 0xbb])]);
    assert_eq!(decode(&m).unwrap().conns, vec![conn_v4()]);
    // OPT_F_PARAM on a known type still selects it.
    let seq: Vec<u8> = [[0x41, 24].as_slice(), &[0; 24]].concat();
    let m = raw_msg(1, &[entry_with(&seq)]);
    assert_eq!(decode(&m).unwrap().conns[0].seq, Some(SeqData::default()));
}

#[test]
fn unknown_mandatory_option_skips_entry() {
    // The bad option after it is never read.
    let m = raw_msg(1, &[entry_with(&[0x09, 0x01, 0xaa, 0x02, 0x00])]);
    assert_eq!(skip_reason(&m), SkipReason::UnknownOption(9));
    // The next entry is still processed.
    let m = raw_msg(2, &[entry_with(&[0x09, 0x01, 0xaa]), entry_with(&[])]);
    let d = decode(&m).unwrap();
    assert_eq!(d.conns, vec![conn_v4()]);
    assert_eq!(d.skipped, vec![(0, SkipReason::UnknownOption(9))]);
}

fn with_proto_state(protocol: u8, state: u16, flags: u32) -> Vec<u8> {
    let mut e = entry_with(&[]);
    e[1] = protocol;
    e[4..8].copy_from_slice(&flags.to_be_bytes());
    e[8..10].copy_from_slice(&state.to_be_bytes());
    raw_msg(1, &[e])
}

#[test]
fn protocol_and_state_checks() {
    let skip = |p, s| skip_reason(&with_proto_state(p, s, DROUTE));
    let ok = |p, s, f| decode(&with_proto_state(p, s, f)).unwrap().conns.len() == 1;
    assert_eq!(skip(1, 0), SkipReason::Protocol(1));
    assert_eq!(skip(0, 0), SkipReason::Protocol(0));
    assert_eq!(
        skip(6, tcp_state::LAST),
        SkipReason::State {
            protocol: 6,
            state: 11
        }
    );
    assert!(ok(6, tcp_state::SYNACK, DROUTE));
    assert_eq!(
        skip(17, 1),
        SkipReason::State {
            protocol: 17,
            state: 1
        }
    );
    assert!(ok(17, udp_state::NORMAL, DROUTE));
    assert!(ok(132, sctp_state::CLOSED, DROUTE));
    assert_eq!(
        skip(132, sctp_state::LAST),
        SkipReason::State {
            protocol: 132,
            state: 14
        }
    );
    assert!(ok(50, 0, DROUTE) && ok(51, 0, DROUTE));
    // Templates: any protocol, and a bad state is only logged.
    assert!(ok(0, tpl_state::ASSURED, TEMPLATE));
    assert!(ok(1, 5, TEMPLATE | DROUTE));
    assert_eq!(
        SkipReason::State {
            protocol: 6,
            state: 11
        }
        .to_string(),
        "state 11 is out of range for protocol 6"
    );
}

#[test]
fn pe_data_without_name_is_skipped() {
    let m = raw_msg(1, &[entry_with(&[0x02, 0x02, b'a', b'b'])]);
    assert_eq!(skip_reason(&m), SkipReason::PeDataWithoutName);
    // A name alone is carried (the kernel ignores it).
    let m = raw_msg(1, &[entry_with(&[0x03, 0x03, b's', b'i', b'p'])]);
    assert_eq!(decode(&m).unwrap().conns[0].pe_name, Some(b"sip".to_vec()));
}

#[test]
fn fatal_error_after_good_entries() {
    let m = raw_msg(
        3,
        &[entry_with(&[]), entry_with(&[0x02, 0x00]), entry_with(&[])],
    );
    assert_eq!(
        decode(&m),
        Err(SyncError::Entry {
            index: 1,
            error: EntryError::OptionLength {
                offset: 36,
                ptype: 2,
                len: 0
            }
        })
    );
    let items: Vec<_> = MessageView::new(&m).unwrap().entries().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok(Entry::Conn(conn_v4())));
}

#[test]
fn trailing_bytes_after_entries_are_ignored() {
    let mut m = encode_one(&conn_v4());
    m.extend_from_slice(&[0xde, 0xad]);
    m[3] = 46;
    assert_eq!(decode(&m).unwrap().conns, vec![conn_v4()]);
}

/// A v0 datagram: `nr`, syncid 9, then raw entries.
fn v0_msg(nr: u8, entries: &[&[u8]]) -> Vec<u8> {
    let mut m = vec![nr, 9, 0, 0];
    for e in entries {
        m.extend_from_slice(e);
    }
    let size = (m.len() as u16).to_be_bytes();
    m[2..4].copy_from_slice(&size);
    m
}

/// `struct ip_vs_sync_conn_v0` for `conn_v4()` with 16-bit `flags`.
fn v0_entry(flags: u16, protocol: u8, state: u16) -> Vec<u8> {
    let mut e = vec![
        0x00, protocol, // reserved, protocol
        0x9c, 0x40, 0x00, 0x50, 0x1f, 0x90, // cport, vport, dport
        10, 0, 0, 1, 192, 168, 1, 100, 10, 1, 1, 2, // caddr, vaddr, daddr
    ];
    e.extend_from_slice(&flags.to_be_bytes());
    e.extend_from_slice(&state.to_be_bytes());
    e
}

#[test]
fn decodes_version_0() {
    let plain = v0_entry(0x0003, 6, 1);
    let mut with_seq = v0_entry(0x0600, 6, 1);
    // Sequence data in the sender's (little-endian) order.
    for w in [0x1111_1111u32, 4, 0, 0x2222_2222, 0xffff_fffc, 2] {
        with_seq.extend_from_slice(&w.to_le_bytes());
    }
    let m = v0_msg(2, &[&plain, &with_seq]);
    let d = decode(&m).unwrap();
    assert_eq!(d.header.version, SyncVersion::V0);
    assert_eq!(d.header.syncid, 9);
    let base = SyncConn {
        timeout: 0,
        ..conn_v4()
    };
    assert_eq!(
        d.conns,
        vec![
            base.clone(),
            SyncConn {
                flags: 0x0600,
                seq: Some(seq_sample()),
                ..base
            }
        ]
    );
}

#[test]
fn version_0_errors_and_skips() {
    let e = v0_entry(0x0003, 6, 1);
    assert_eq!(
        entry_err(&v0_msg(2, &[&e])),
        (1, EntryError::Truncated { need: 24, have: 0 })
    );
    let seq = v0_entry(0x0400, 6, 1);
    assert_eq!(
        entry_err(&v0_msg(1, &[&seq])),
        (0, EntryError::Truncated { need: 48, have: 24 })
    );
    assert_eq!(
        skip_reason(&v0_msg(1, &[&v0_entry(3, 1, 0)])),
        SkipReason::Protocol(1)
    );
    assert_eq!(
        skip_reason(&v0_msg(1, &[&v0_entry(3, 6, 11)])),
        SkipReason::State {
            protocol: 6,
            state: 11
        }
    );
    let tpl = v0_msg(1, &[&v0_entry(0x1003, 0, 9)]);
    assert_eq!(decode(&tpl).unwrap().conns.len(), 1);
}

#[test]
fn tells_v0_from_v1_as_the_kernel() {
    let v1 = encode_one(&conn_v4());
    for (i, b) in [(0, 1u8), (5, 2), (6, 1), (7, 1)] {
        let mut m = v1.clone();
        m[i] = b;
        let h = MessageView::new(&m).unwrap().header();
        assert_eq!(h.version, SyncVersion::V0, "byte {i} = {b}");
        assert_eq!(h.nr_conns, m[0]);
    }
    // Too short for a v1 header: v0 with no entries.
    for len in 4..8 {
        let mut m = vec![0u8; len];
        m[3] = len as u8;
        let d = decode(&m).unwrap();
        assert_eq!(d.header.version, SyncVersion::V0);
        assert!(d.conns.is_empty());
    }
}

#[test]
fn backup_flags_masks() {
    let c = SyncConn {
        flags: DROUTE | TEMPLATE | HASHED | NFCT | ONE_PACKET | INACTIVE | BYPASS,
        ..conn_v4()
    };
    assert_eq!(
        c.backup_flags(SyncVersion::V1),
        (DROUTE | BYPASS) | TEMPLATE | INACTIVE | SYNC
    );
    assert_eq!(
        c.backup_flags(SyncVersion::V0),
        DROUTE | TEMPLATE | NFCT | ONE_PACKET | INACTIVE | BYPASS | SYNC
    );
    assert!(c.is_template());
    assert!(!c.is_ipv6() && conn_v6().is_ipv6());
    assert_eq!(BACKUP_MASK, 0x1f87);
    assert_eq!(BACKUP_UPD_MASK, 0x0700);
}

#[test]
fn syncid_filter_and_maxlen() {
    assert!(accepts_syncid(0, 200));
    assert!(accepts_syncid(7, 7));
    assert!(!accepts_syncid(7, 8));
    assert_eq!(sync_maxlen(Role::Master, 0, 9000, false), 1472);
    assert_eq!(sync_maxlen(Role::Master, 0, 1500, true), 1452);
    assert_eq!(sync_maxlen(Role::Backup, 0, 9000, false), 8972);
    assert_eq!(sync_maxlen(Role::Backup, 0, 1400, false), 1472);
    assert_eq!(sync_maxlen(Role::Master, 100, 1500, false), 100);
    assert_eq!(sync_maxlen(Role::Backup, 100, 1500, false), 1024);
    assert_eq!(sync_maxlen(Role::Master, 65535, 1500, false), 65507);
    assert_eq!(sync_maxlen(Role::Master, 65535, 1500, true), 65487);
    assert_eq!(num_states(6), Some(11));
    assert_eq!(num_states(1), None);
    assert_eq!(check_state(1, TEMPLATE, 99), Ok(()));
}

fn rich_conns() -> Vec<SyncConn> {
    vec![
        conn_seq(),
        conn_sip(),
        SyncConn {
            pe_data: Some(b"id".to_vec()),
            pe_name: Some(b"sip".to_vec()),
            flags: TEMPLATE | OUT_SEQ,
            seq: Some(seq_sample()),
            ..conn_v6()
        },
        conn_template(),
    ]
}

#[test]
fn truncation_at_every_length_never_panics() {
    let conns = rich_conns();
    let full = encode(1, 1472, &conns).unwrap().remove(0);
    for cut in 0..full.len() {
        let t = &full[..cut];
        assert!(decode(t).is_err(), "cut {cut}");
        if cut < 4 {
            continue;
        }
        // With the size field patched the decoder gets past the header.
        let mut t = t.to_vec();
        t[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
        match decode(&t) {
            Ok(d) => assert!(cut < 8 && d.conns.is_empty(), "cut {cut}: {d:?}"),
            Err(SyncError::Entry { index, .. }) => assert!(index < conns.len()),
            Err(e) => panic!("cut {cut}: {e}"),
        }
        // Whatever comes before the cut decodes as it was sent.
        if cut >= 8 {
            let good: Vec<SyncConn> = MessageView::new(&t)
                .unwrap()
                .entries()
                .map_while(|e| match e {
                    Ok(Entry::Conn(c)) => Some(c),
                    _ => None,
                })
                .collect();
            assert_eq!(good[..], conns[..good.len()], "cut {cut}");
        }
    }
    assert_eq!(decode(&full).unwrap().conns, conns);
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn random_conn(r: &mut Rng) -> SyncConn {
    let v6 = r.below(3) == 0;
    let addr = |r: &mut Rng| {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(r.next() as u128 | (r.next() as u128) << 64))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.next() as u32))
        }
    };
    let template = r.below(4) == 0;
    let (protocol, state) = if template {
        (r.next() as u8, r.below(3) as u16)
    } else {
        let p = [6u8, 17, 132, 50, 51][r.below(5) as usize];
        (p, r.below(u64::from(num_states(p).unwrap())) as u16)
    };
    let mut flags = (r.next() as u32) & !(HASHED | TEMPLATE);
    if template {
        flags |= TEMPLATE;
    }
    let seq = (flags & SEQ_MASK != 0).then(|| SeqData {
        in_seq: Seq {
            init_seq: r.next() as u32,
            delta: r.next() as u32,
            previous_delta: r.next() as u32,
        },
        out_seq: Seq {
            init_seq: r.next() as u32,
            delta: r.next() as u32,
            previous_delta: r.next() as u32,
        },
    });
    let pe = r.below(5) == 0;
    let pe_len = 1 + r.below(255) as usize;
    let name_len = 1 + r.below(16) as usize;
    SyncConn {
        protocol,
        caddr: addr(r),
        cport: r.next() as u16,
        vaddr: addr(r),
        vport: r.next() as u16,
        daddr: addr(r),
        dport: r.next() as u16,
        flags,
        state,
        fwmark: r.next() as u32,
        timeout: r.next() as u32,
        seq,
        pe_data: pe.then(|| r.bytes(pe_len)),
        pe_name: pe.then(|| r.bytes(name_len)),
    }
}

#[test]
fn random_connections_round_trip() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let conns: Vec<SyncConn> = (0..r.below(40)).map(|_| random_conn(&mut r)).collect();
        let maxlen = 400 + r.below(3000) as usize;
        let syncid = r.next() as u8;
        let msgs = encode(syncid, maxlen, &conns).unwrap();
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= maxlen);
            let d = decode(m).unwrap();
            assert_eq!(d.header.syncid, syncid);
            assert!(d.skipped.is_empty());
            back.extend(d.conns);
        }
        assert_eq!(back, conns);
    }
}

/// Anything that decodes re-encodes to the same connections.
fn reencode_check(buf: &[u8]) {
    let Ok(d) = decode(buf) else { return };
    for c in d.conns {
        if c.flags & HASHED != 0 || entry_len(&c).is_err() {
            continue;
        }
        let again = decode(&encode_one(&c)).unwrap();
        assert_eq!(again.conns, vec![c]);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut r = Rng(0x0123_4567_89ab_cdef);
    for i in 0..30_000 {
        let len = r.below(600) as usize;
        let mut m = r.bytes(len);
        if i % 2 == 0 && len >= 8 {
            // A believable v1 header so the entries get parsed.
            m[0] = 0;
            m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            m[5] = 1;
            m[6] = 0;
            m[7] = 0;
            if len >= 12 && i % 4 == 0 {
                m[8] &= 1;
                m[10] &= 0x0f;
            }
        } else if i % 3 == 0 && len >= 4 {
            m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        reencode_check(&m);
        if let Ok(v) = MessageView::new(&m) {
            assert!(v.entries().count() <= usize::from(v.header().nr_conns));
        }
    }
}

#[test]
fn mutated_messages_never_panic() {
    let mut r = Rng(42);
    let full = encode(1, 1472, &rich_conns()).unwrap().remove(0);
    for _ in 0..30_000 {
        let mut m = full.clone();
        for _ in 0..1 + r.below(4) {
            let at = 4 + r.below(m.len() as u64 - 4) as usize;
            m[at] = r.next() as u8;
        }
        reencode_check(&m);
    }
}

/// TCP [2001:db8::1]:40000 -> [2001:db8::100]:80 -> [2001:db8::200]:8080,
/// DR, established, with sequence data and a SIP Call-ID.
fn conn_v6_full() -> SyncConn {
    SyncConn {
        protocol: 6,
        caddr: v6(1),
        cport: 40000,
        vaddr: v6(0x100),
        vport: 80,
        daddr: v6(0x200),
        dport: 8080,
        flags: DROUTE | IN_SEQ | OUT_SEQ,
        state: tcp_state::ESTABLISHED,
        fwmark: 0,
        timeout: 900,
        seq: Some(seq_sample()),
        pe_data: Some(b"c@x".to_vec()),
        pe_name: Some(b"sip".to_vec()),
    }
}

#[test]
fn layout_v6_entry_byte_exact() {
    let a = |last: u8| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b[14] = (u16::from(last) >> 8) as u8;
        b[15] = last;
        b
    };
    // struct ip_vs_sync_v6: 72 bytes, then SEQ (2 + 24), PE_DATA (2 + 3),
    // PE_NAME (2 + 3): size 72 + 26 + 5 + 5 = 108.
    let mut want = vec![
        0x00, 0x05, 0x00, 0x74, // reserved 0, syncid 5, size 8 + 108 = 116
        0x01, 0x01, 0x00, 0x00, // nr_conns 1, version 1, spare
        0x01, 0x06, 0x00, 0x6c, // type STYPE_F_INET6, TCP, version 0, size 108
        0x00, 0x00, 0x06, 0x03, // flags: DROUTE | IN_SEQ | OUT_SEQ
        0x00, 0x01, 0x9c, 0x40, // state ESTABLISHED, cport 40000
        0x00, 0x50, 0x1f, 0x90, // vport 80, dport 8080
        0x00, 0x00, 0x00, 0x00, // fwmark
        0x00, 0x00, 0x03, 0x84, // timeout 900 s
    ];
    want.extend_from_slice(&a(1)); // caddr at 24
    let mut v = a(0);
    v[14] = 0x01; // 2001:db8::100
    want.extend_from_slice(&v); // vaddr at 40
    let mut d = a(0);
    d[14] = 0x02; // 2001:db8::200
    want.extend_from_slice(&d); // daddr at 56
    want.extend_from_slice(&[
        0x01, 0x18, // IPVS_OPT_SEQ_DATA, 24 bytes
        0x11, 0x11, 0x11, 0x11, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // in_seq
        0x22, 0x22, 0x22, 0x22, 0xff, 0xff, 0xff, 0xfc, 0x00, 0x00, 0x00, 0x02, // out_seq
        0x02, 0x03, b'c', b'@', b'x', // IPVS_OPT_PE_DATA
        0x03, 0x03, b's', b'i', b'p', // IPVS_OPT_PE_NAME
    ]);
    let m = encode_one(&conn_v6_full());
    assert_eq!(m, want);
    assert_eq!(decode(&m).unwrap().conns, vec![conn_v6_full()]);
}

#[test]
fn v6_entries_pad_and_mix_with_v4_in_one_datagram() {
    // 108 bytes: the next entry starts at 8 + 108 = 116, already aligned;
    // with a 3-byte Call-ID changed to 4 bytes the entry is 109 and gets
    // 3 bytes of padding.
    let c = SyncConn {
        pe_data: Some(b"c@xy".to_vec()),
        ..conn_v6_full()
    };
    let m = encode(5, 1472, &[c.clone(), conn_v4(), conn_v6()])
        .unwrap()
        .remove(0);
    assert_eq!(m.len(), 8 + 109 + 3 + 36 + 72);
    assert_eq!(&m[117..120], &[0, 0, 0]);
    assert_eq!(&m[120..124], &[0x00, 0x06, 0x00, 0x24]);
    assert_eq!(&m[156..160], &[0x01, 132, 0x00, 0x48]);
    let d = decode(&m).unwrap();
    assert_eq!(d.conns, vec![c, conn_v4(), conn_v6()]);
}

#[test]
fn malformed_v6_entries() {
    let m6 = encode_one(&conn_v6());
    // A v6 entry whose size covers only the v4 fixed part, or one byte
    // short of the 72-byte one (ip_vs_proc_sync_conn's -20).
    for size in [36u8, 71] {
        let mut m = m6.clone();
        m[11] = size;
        assert_eq!(
            entry_err(&m),
            (
                0,
                EntryError::Undersized {
                    size: usize::from(size),
                    need: 72
                }
            )
        );
    }
    // The datagram cut inside the addresses: the entry runs past it.
    let mut cut = m6[..8 + 60].to_vec();
    cut[2..4].copy_from_slice(&68u16.to_be_bytes());
    assert!(matches!(
        entry_err(&cut),
        (0, EntryError::Overrun { size: 72, have: 60 })
    ));
    // An option header cut short after the fixed part.
    let mut m = m6.clone();
    m.push(OPT_SEQ_DATA);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m[11] = 73;
    assert_eq!(entry_err(&m), (0, EntryError::OptionHeader { offset: 72 }));
    // A sequence option of the wrong length.
    let mut m = m6.clone();
    m.extend_from_slice(&[OPT_SEQ_DATA, 2, 0, 0]);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m[11] = 76;
    assert_eq!(entry_err(&m), (0, EntryError::SeqLength(2)));
    // An unknown mandatory option: skipped, as for IPv4.
    let mut m = m6.clone();
    m.extend_from_slice(&[9, 1, 0]);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m[11] = 75;
    assert_eq!(skip_reason(&m), SkipReason::UnknownOption(9));
    // A bad state for its protocol: skipped.
    let mut m = m6.clone();
    m[16..18].copy_from_slice(&99u16.to_be_bytes());
    assert!(matches!(skip_reason(&m), SkipReason::State { .. }));
}

#[test]
fn v6_mixed_family_cannot_be_encoded() {
    for (c, v, d) in [
        (v6(1), v4([1, 2, 3, 4]), v6(2)),
        (v4([1, 2, 3, 4]), v6(1), v6(2)),
        (v6(1), v6(2), v4([1, 2, 3, 4])),
    ] {
        let mixed = SyncConn {
            caddr: c,
            vaddr: v,
            daddr: d,
            ..conn_v6()
        };
        assert_eq!(entry_len(&mixed), Err(EncodeError::MixedFamily));
        assert_eq!(encode(5, 1472, &[mixed]), Err(EncodeError::MixedFamily));
    }
}
