//! The Call-ID of a SIP message, found as IPVS's SIP persistence engine
//! finds it (`--pe sip`: `ip_vs_pe_sip.c`'s `get_callid`, which uses
//! netfilter's `ct_sip_get_header` with `callid_len`): the reference the
//! data plane's Call-ID stage is tested against, byte for byte.
//!
//! The kernel's quirks are kept on purpose, since a packet must get the
//! same persistence key (or the same drop) on xvs as on IPVS:
//!
//! * a header only starts a line (after CR, LF or CRLF), so the request
//!   or status line is never one; a line starting with SP or HT is a
//!   continuation and is skipped;
//! * the name is `Call-Id` (any case, as a prefix) or `i` followed by a
//!   byte that is not a letter;
//! * only spaces (no tabs) and line folds may precede and follow the
//!   colon; a matched name without a colon ends the whole search ("no
//!   Call-ID"), and the byte after a fold's blanks is skipped unread;
//! * the value is a run of "word" bytes, optionally `@` and a second
//!   run; an empty value makes the search go on from an offset that the
//!   kernel computes from the packet's start (after the first such value
//!   it lands further than meant: kept);
//! * the value must be at most 255 bytes and followed directly by CR or
//!   LF;
//! * letters and digits are the kernel's `ctype`, which counts Latin-1
//!   letters (0xC0–0xFF but 0xD7 and 0xF7) as letters.

/// `IP_VS_PEDATA_MAXLEN`: the longest Call-ID a template keeps.
pub const CALLID_MAX: usize = 255;

/// Why a payload has no Call-ID for IPVS; a persistent `--pe sip`
/// service drops the packet that was to be scheduled (`NF_DROP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallIdError {
    /// The UDP payload is empty.
    #[error("empty SIP message")]
    Empty,
    /// No parsable `Call-ID` header (or the search ended early).
    #[error("no Call-ID header")]
    NotFound,
    /// The Call-ID is longer than [`CALLID_MAX`] bytes.
    #[error("Call-ID longer than 255 bytes")]
    TooLong,
    /// The Call-ID is not followed directly by CR or LF.
    #[error("Call-ID not followed by the end of its line")]
    BadEnd,
}

/// The Call-ID of the SIP message `payload` (a UDP payload), as the bytes
/// IPVS keeps in the template (case preserved).
pub fn call_id(payload: &[u8]) -> Result<&[u8], CallIdError> {
    if payload.is_empty() {
        return Err(CallIdError::Empty);
    }
    let mut dataoff = 0usize;
    let (off, len) = loop {
        match header(payload, dataoff) {
            Header::Found { off, len } => break (off, len),
            Header::Absent => return Err(CallIdError::NotFound),
            // The kernel adds the value's absolute offset to the relative
            // start it searched from.
            Header::Empty { off } => dataoff = dataoff.saturating_add(off),
        }
    };
    if len > CALLID_MAX {
        return Err(CallIdError::TooLong);
    }
    match payload.get(off + len) {
        Some(b'\r' | b'\n') => Ok(&payload[off..off + len]),
        _ => Err(CallIdError::BadEnd),
    }
}

/// What one `ct_sip_get_header(…, SIP_HDR_CALL_ID, …)` call finds.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// A value at `off` (from the payload's start), `len` bytes.
    Found { off: usize, len: usize },
    /// A header whose value is empty, which starts at `off`.
    Empty { off: usize },
    /// None.
    Absent,
}

/// `ct_sip_get_header` for the Call-ID, from `dataoff` on.
fn header(d: &[u8], dataoff: usize) -> Header {
    let limit = d.len();
    let mut p = dataoff;
    while p < limit {
        if d[p] != b'\r' && d[p] != b'\n' {
            p += 1;
            continue;
        }
        p += 1;
        if p >= limit {
            break;
        }
        if d[p - 1] == b'\r' && d[p] == b'\n' {
            p += 1;
            if p >= limit {
                break;
            }
        }
        if d[p] == b' ' || d[p] == b'\t' {
            p += 1;
            continue;
        }
        if limit - p >= 7 && d[p..p + 7].eq_ignore_ascii_case(b"call-id") {
            p += 7;
        } else if limit - p >= 2 && d[p].eq_ignore_ascii_case(&b'i') && !is_alpha(d[p + 1]) {
            p += 1;
        } else {
            p += 1;
            continue;
        }
        let Some(q) = skip_whitespace(d, p) else {
            break;
        };
        // At the limit the kernel reads the byte after the payload; a
        // colon there still ends the search (`++dptr >= limit`).
        if d.get(q) != Some(&b':') || q + 1 >= limit {
            break;
        }
        let Some(v) = skip_whitespace(d, q + 1) else {
            break;
        };
        return match callid_len(d, v) {
            0 => Header::Empty { off: v },
            len => Header::Found { off: v, len },
        };
    }
    Header::Absent
}

/// `sip_skip_whitespace`: spaces and line folds; None when a line ends
/// without a fold.
fn skip_whitespace(d: &[u8], mut p: usize) -> Option<usize> {
    while p < d.len() {
        match d[p] {
            b' ' => {}
            b'\r' | b'\n' => p = follow_continuation(d, p)?,
            _ => break,
        }
        // The kernel's loop increment, also after a fold: the byte after
        // the fold's blanks is skipped.
        p += 1;
    }
    Some(p)
}

/// `sip_follow_continuation`: past the line end at `p` and the blanks of
/// the continuation line; None when the next line is not one.
fn follow_continuation(d: &[u8], mut p: usize) -> Option<usize> {
    p += 1;
    if p >= d.len() {
        return None;
    }
    if d[p - 1] == b'\r' && d[p] == b'\n' {
        p += 1;
        if p >= d.len() {
            return None;
        }
    }
    if d[p] != b' ' && d[p] != b'\t' {
        return None;
    }
    while p < d.len() && (d[p] == b' ' || d[p] == b'\t') {
        p += 1;
    }
    Some(p)
}

/// `callid_len`: a word, optionally `@` and a non-empty word; 0 when
/// there is none or the part after `@` is empty.
fn callid_len(d: &[u8], p: usize) -> usize {
    let len = word_len(d, p);
    let at = p + len;
    if len == 0 || d.get(at) != Some(&b'@') {
        return len;
    }
    match word_len(d, at + 1) {
        0 => 0,
        domain => len + 1 + domain,
    }
}

fn word_len(d: &[u8], p: usize) -> usize {
    d.get(p..)
        .map_or(0, |s| s.iter().take_while(|&&c| is_word(c)).count())
}

/// The kernel's `isalpha` (lib/ctype.c: ASCII and Latin-1 letters).
pub fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || (c >= 0xc0 && c != 0xd7 && c != 0xf7)
}

/// `iswordc` of nf_conntrack_sip.c, with the kernel's `isalnum`. Its
/// ranges compare a signed `char`, so bytes from 0x80 count only as
/// letters.
pub fn is_word(c: u8) -> bool {
    is_alpha(c)
        || c.is_ascii_digit()
        || matches!(
            c,
            b'!' | b'"' | b'%' | b'('..=b'/' | b':' | b'<' | b'>' | b'?' | b'['..=b']'
                | b'_' | b'`' | b'{' | b'}' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(s: &str) -> Result<&str, CallIdError> {
        call_id(s.as_bytes()).map(|b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn rfc3261_invite() {
        let m = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
                 Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
                 To: Bob <sip:bob@biloxi.com>\r\n\
                 Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
                 CSeq: 314159 INVITE\r\n\r\n";
        assert_eq!(cid(m), Ok("a84b4c76e66710@pc33.atlanta.com"));
    }

    #[test]
    fn names_any_case_and_compact_form() {
        assert_eq!(cid("R\r\ncall-id: x1\r\n"), Ok("x1"));
        assert_eq!(cid("R\r\nCALL-ID:x2\n"), Ok("x2"));
        assert_eq!(cid("R\ni: x3\r"), Ok("x3"));
        assert_eq!(cid("R\r\nI :x4\r\n"), Ok("x4"));
        // `i` must be followed by a non-letter; `If:` is another header.
        assert_eq!(cid("R\r\nIf: y\r\ni: x5\r\n"), Ok("x5"));
        // A prefix match: `Call-IDx` is taken as Call-ID, and the `x`
        // where the colon belongs ends the search.
        assert_eq!(
            cid("R\r\nCall-IDx: a\r\ni: b\r\n"),
            Err(CallIdError::NotFound)
        );
    }

    #[test]
    fn the_first_line_is_never_a_header() {
        assert_eq!(cid("Call-ID: a\r\n"), Err(CallIdError::NotFound));
        assert_eq!(cid("\r\nCall-ID: a\r\n"), Ok("a"));
    }

    #[test]
    fn blanks_and_folds() {
        // Tabs are not whitespace around the colon.
        assert_eq!(cid("R\r\ni\t: a\r\ni: b\r\n"), Err(CallIdError::NotFound));
        assert_eq!(cid("R\r\nCall-ID:\ta\r\n"), Err(CallIdError::NotFound));
        // A fold before the value: the first byte after its blanks is
        // skipped (the kernel's loop increment).
        assert_eq!(cid("R\r\nCall-ID:\r\n  xabc\r\n"), Ok("abc"));
        // A line end without a fold ends the search.
        assert_eq!(cid("R\r\nCall-ID:\r\nabc\r\n"), Err(CallIdError::NotFound));
        // Continuation lines are not headers.
        assert_eq!(cid("R\r\nX: 1\r\n i: no\r\ni: yes\r\n"), Ok("yes"));
    }

    #[test]
    fn the_value_and_its_end() {
        assert_eq!(cid("R\r\ni: abc def\r\n"), Err(CallIdError::BadEnd));
        assert_eq!(cid("R\r\ni: abc \r\n"), Err(CallIdError::BadEnd));
        assert_eq!(cid("R\r\ni: abc"), Err(CallIdError::BadEnd));
        assert_eq!(cid("R\r\ni: a@\r\n"), Err(CallIdError::NotFound));
        assert_eq!(cid("R\r\ni: a@b@c\r\n"), Err(CallIdError::BadEnd));
        let long = format!("R\r\ni: {}\r\n", "a".repeat(255));
        assert_eq!(cid(&long).map(str::len), Ok(255));
        let long = format!("R\r\ni: {}\r\n", "a".repeat(256));
        assert_eq!(cid(&long), Err(CallIdError::TooLong));
        assert_eq!(call_id(b""), Err(CallIdError::Empty));
        // Latin-1 letters are word bytes; other high bytes are not.
        assert_eq!(call_id(b"R\r\ni: a\xe9b\r\n"), Ok(&b"a\xe9b"[..]));
        assert_eq!(call_id(b"R\r\ni: a\xf7b\r\n"), Err(CallIdError::BadEnd));
    }

    #[test]
    fn an_empty_value_searches_on_from_the_kernels_offset() {
        // The first empty value at offset 6: the search goes on from 6.
        assert_eq!(cid("R\r\ni: ;\r\ni: ok\r\n"), Ok("ok"));
        // A second one at absolute offset 12 restarts from 6 + 12 = 18,
        // inside the Call-ID's line (15): it is not seen.
        assert_eq!(
            cid("R\r\ni: ;\r\ni: ;\r\ni: ok\r\n\r\n"),
            Err(CallIdError::NotFound)
        );
    }

    #[test]
    fn word_bytes_follow_iswordc() {
        let words: Vec<u8> = (0u8..=0x7f).filter(|&c| is_word(c)).collect();
        assert_eq!(
            String::from_utf8(words).unwrap(),
            "!\"%()*+,-./0123456789:<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]_`abcdefghijklmnopqrstuvwxyz{}~"
        );
    }
}
