//! The token, the authorisation header and the body of a write action.

use super::*;

const SECRET: &str = "0123456789abcdef-secret";

#[test]
fn constant_time_compare_is_equality() {
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"abcd"));
    assert!(!ct_eq(b"", b"a"));
    assert!(ct_eq(b"", b""));
}

#[test]
fn tokens_are_long_enough_and_never_shown() {
    assert!(Token::new("short").is_none());
    let t = Token::new(&format!("  {SECRET}\n")).unwrap();
    assert!(t.matches(SECRET.as_bytes()));
    assert_eq!(format!("{t:?}"), "Token(..)");
}

#[test]
fn the_header_must_carry_the_token() {
    let t = Token::new(SECRET).unwrap();
    let good = format!("Bearer {SECRET}");
    assert_eq!(
        authorize(None, Some(good.as_bytes())),
        Err(Denied::Disabled)
    );
    assert_eq!(authorize(Some(&t), None), Err(Denied::Missing));
    assert_eq!(
        authorize(Some(&t), Some(SECRET.as_bytes())),
        Err(Denied::Missing),
        "no Bearer scheme"
    );
    assert_eq!(
        authorize(Some(&t), Some(b"Bearer 0123456789abcdef-secreT")),
        Err(Denied::Wrong)
    );
    assert_eq!(authorize(Some(&t), Some(good.as_bytes())), Ok(()));
}

#[test]
fn the_token_file_must_be_roots_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("xvsd-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("token");
    std::fs::write(&f, format!("{SECRET}\nignored\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Token::load(&f).unwrap_err();
    assert!(matches!(e, TokenError::Mode { mode: 0o644, .. }), "{e}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Token::load(&f).unwrap().matches(SECRET.as_bytes()));
    std::fs::write(&f, "short\n").unwrap();
    assert!(matches!(Token::load(&f), Err(TokenError::Short { .. })));
    assert!(matches!(
        Token::load(&dir.join("none")),
        Err(TokenError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bodies_name_a_service_a_dest_and_a_weight() {
    let c = parse_body(
        br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80", "weight": 0}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        WeightChange {
            service: ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(198, 51, 100, 10), 80),
            addr: Ipv4Addr::new(203, 0, 113, 11),
            port: 80,
            weight: 0,
        }
    );
    let c = parse_body(br#"{"service": "FWM 5", "dest": "203.0.113.11:0", "weight": 3}"#).unwrap();
    assert_eq!(c.service, ServiceKey::fwmark(5));
    for (bad, says) in [
        (&b"not json"[..], "bad body"),
        (br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80"}"#, "missing field"),
        (br#"{"service": "ICMP 1.2.3.4:0", "dest": "203.0.113.11:80", "weight": 1}"#, "bad service"),
        (br#"{"service": "FWM 0", "dest": "203.0.113.11:80", "weight": 1}"#, "bad service"),
        (br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11", "weight": 1}"#, "bad dest"),
        (br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80", "weight": -1}"#, "bad body"),
        (br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80", "weight": 2147483648}"#, "out of range"),
        (br#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80", "weight": 1, "x": 1}"#, "unknown field"),
    ] {
        let e = parse_body(bad).unwrap_err();
        assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(bad));
    }
}
