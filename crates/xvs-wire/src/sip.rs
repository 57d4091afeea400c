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

/// The same search as [`call_id`], by a machine that reads each byte
/// once, in order, and never looks back: the form of the data plane's
/// Call-ID stage, which walks the payload in one bounded loop. Each byte
/// goes through the blocks of [`Scanner::feed`] from top to bottom; a
/// block either takes it or hands it on to a later one, so the C
/// version is the same sequence of `if`s without recursion.
#[derive(Debug, Clone)]
pub struct Scanner {
    mode: Mode,
    /// Index of the next byte.
    pos: usize,
    /// Where the kernel's current `ct_sip_get_header` call started.
    dataoff: usize,
    /// Start of the value being read, and the bytes matched so far.
    start: usize,
    len: usize,
    domain: usize,
    /// `Ws` and folds: whether the colon is behind.
    colon: bool,
    /// `Name`: bytes of `call-id` matched; `Skip`: the index to reach.
    n: usize,
    done: Option<Result<(usize, usize), CallIdError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Looking for a line end.
    Scan,
    /// After CR: LF completes it, anything else starts the line.
    Cr,
    /// The next byte starts a line.
    LineStart,
    /// Inside `call-id` (`n` bytes matched).
    Name,
    /// After a line-starting `i`.
    AfterI,
    /// Spaces and folds before (`colon` false) or after the colon.
    Ws,
    /// The byte after a line end inside blanks (`cr`: it was CR).
    FoldEol { cr: bool },
    /// After CRLF inside blanks: the next byte must be a blank.
    FoldLf,
    /// The blanks of a continuation line.
    FoldBlanks,
    /// The value's first word.
    Word,
    /// The word after `@`.
    Domain,
    /// Bytes before the kernel's next search offset (`n`).
    Skip,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner before the payload's first byte.
    pub fn new() -> Self {
        Scanner {
            mode: Mode::Scan,
            pos: 0,
            dataoff: 0,
            start: 0,
            len: 0,
            domain: 0,
            colon: false,
            n: 0,
            done: None,
        }
    }

    /// Reads the next byte; true once the outcome is known (later bytes
    /// change nothing).
    pub fn feed(&mut self, c: u8) -> bool {
        if self.done.is_some() {
            return true;
        }
        let pos = self.pos;
        self.pos += 1;
        let mut taken = false;
        if self.mode == Mode::AfterI {
            // `i` is the compact name when a non-letter follows; that
            // byte is then the first of the blanks before the colon.
            if is_alpha(c) {
                self.mode = Mode::Scan;
                taken = true;
            } else {
                self.enter_ws(false);
            }
        }
        if !taken && self.mode == Mode::Name {
            if c.eq_ignore_ascii_case(&b"call-id"[self.n]) {
                self.n += 1;
                if self.n == 7 {
                    self.enter_ws(false);
                }
                taken = true;
            } else {
                // The kernel searches on from the line's second byte; the
                // ones matched were no line ends.
                self.mode = Mode::Scan;
            }
        }
        if !taken {
            taken = self.blanks(c, pos);
        }
        if !taken && matches!(self.mode, Mode::Word | Mode::Domain) {
            taken = self.value(c, pos);
        }
        if !taken && self.mode == Mode::Skip {
            if pos < self.n {
                taken = true;
            } else {
                self.mode = Mode::Scan;
            }
        }
        if !taken {
            self.lines(c);
        }
        self.done.is_some()
    }

    /// The outcome after the last byte.
    pub fn finish(&self) -> Result<(usize, usize), CallIdError> {
        if self.pos == 0 {
            return Err(CallIdError::Empty);
        }
        let in_value = match self.mode {
            Mode::Word => true,
            Mode::Domain => self.domain > 0,
            _ => false,
        };
        match self.done {
            Some(r) => r,
            // The payload ends inside the value: no line end follows it.
            None if in_value && self.total() > CALLID_MAX => Err(CallIdError::TooLong),
            None if in_value => Err(CallIdError::BadEnd),
            // Anywhere else the search runs out (an empty domain at the
            // end searches on past the end).
            None => Err(CallIdError::NotFound),
        }
    }

    fn enter_ws(&mut self, colon: bool) {
        self.mode = Mode::Ws;
        self.colon = colon;
    }

    fn total(&self) -> usize {
        match self.mode {
            Mode::Domain => self.len + 1 + self.domain,
            _ => self.len,
        }
    }

    /// `sip_skip_whitespace` and `sip_follow_continuation`; false when
    /// the byte is the value's first, for [`Scanner::value`].
    fn blanks(&mut self, c: u8, pos: usize) -> bool {
        match self.mode {
            Mode::Ws => match c {
                b' ' => true,
                b'\r' | b'\n' => {
                    self.mode = Mode::FoldEol { cr: c == b'\r' };
                    true
                }
                b':' if !self.colon => {
                    self.enter_ws(true);
                    true
                }
                _ if !self.colon => self.end(Err(CallIdError::NotFound)),
                _ => {
                    self.mode = Mode::Word;
                    self.start = pos;
                    self.len = 0;
                    self.domain = 0;
                    false
                }
            },
            Mode::FoldEol { cr } => {
                if cr && c == b'\n' {
                    self.mode = Mode::FoldLf;
                    true
                } else {
                    self.fold_blank(c)
                }
            }
            Mode::FoldLf => self.fold_blank(c),
            Mode::FoldBlanks => {
                // The first byte after the blanks is skipped unread (the
                // kernel's loop increment after a fold).
                if c != b' ' && c != b'\t' {
                    self.mode = Mode::Ws;
                }
                true
            }
            _ => false,
        }
    }

    fn fold_blank(&mut self, c: u8) -> bool {
        if c == b' ' || c == b'\t' {
            self.mode = Mode::FoldBlanks;
            true
        } else {
            self.end(Err(CallIdError::NotFound))
        }
    }

    /// `callid_len` and `get_callid`'s checks; false when the byte goes
    /// on to the line search (an empty value: the kernel searches on).
    fn value(&mut self, c: u8, pos: usize) -> bool {
        if is_word(c) {
            if self.mode == Mode::Word {
                self.len = (self.len + 1).min(CALLID_MAX + 1);
            } else {
                self.domain = (self.domain + 1).min(CALLID_MAX + 1);
            }
            return true;
        }
        if self.mode == Mode::Word && c == b'@' && self.len > 0 {
            self.mode = Mode::Domain;
            return true;
        }
        if self.mode == Mode::Word && self.len == 0 || self.mode == Mode::Domain && self.domain == 0
        {
            // The kernel's next search starts at the relative start plus
            // the value's absolute offset; every byte from the value's
            // start to here is a word byte or `@`, never a line end.
            self.dataoff += self.start;
            if self.dataoff > pos {
                self.mode = Mode::Skip;
                self.n = self.dataoff;
                return true;
            }
            self.mode = Mode::Scan;
            return false;
        }
        let total = self.total();
        if total > CALLID_MAX {
            self.end(Err(CallIdError::TooLong))
        } else if c == b'\r' || c == b'\n' {
            self.end(Ok((self.start, total)))
        } else {
            self.end(Err(CallIdError::BadEnd))
        }
    }

    /// Line ends and the start of a line.
    fn lines(&mut self, c: u8) {
        let line_start = match self.mode {
            Mode::Cr if c == b'\n' => {
                self.mode = Mode::LineStart;
                return;
            }
            Mode::Cr | Mode::LineStart => true,
            _ => false,
        };
        if !line_start {
            match c {
                b'\r' => self.mode = Mode::Cr,
                b'\n' => self.mode = Mode::LineStart,
                _ => {}
            }
            return;
        }
        // The line's first byte is taken whatever it is (a CR or LF here
        // ends no line: the kernel steps over it).
        self.mode = match c {
            b'c' | b'C' => {
                self.n = 1;
                Mode::Name
            }
            b'i' | b'I' => Mode::AfterI,
            _ => Mode::Scan,
        };
    }

    fn end(&mut self, r: Result<(usize, usize), CallIdError>) -> bool {
        self.done = Some(r);
        true
    }
}

/// [`call_id`] through a [`Scanner`].
pub fn call_id_scanned(payload: &[u8]) -> Result<&[u8], CallIdError> {
    let mut s = Scanner::new();
    for &c in payload {
        if s.feed(c) {
            break;
        }
    }
    s.finish().map(|(off, len)| &payload[off..off + len])
}

/// `n` messages made of the bytes and pieces that steer the search
/// every way (line ends, folds, blanks, names and near-names, empty and
/// over-long values, Latin-1), from `seed`: the corpus the scanner and the
/// data plane's Call-ID stage are compared with the reference on.
pub fn steering_messages(n: usize, seed: u64) -> Vec<Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\t",
        b":",
        b"@",
        b"Call-ID",
        b"call-iX",
        b"c",
        b"i",
        b"I",
        b"x",
        b"ab",
        b";",
        b"\xe9",
        b"\xf7",
        b": ",
        b"\r\n ",
        b"i: ",
        b"\ni: ;",
        b"\ni:a@;",
        b"\r\ni: ok\r\n",
    ];
    let mut seed = seed.max(1);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|case| {
            let mut m = b"R".to_vec();
            for _ in 0..next() % 24 {
                m.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            // Now and then a value around the 255-byte limit.
            if case % 7 == 0 {
                let long = b"a".repeat(250 + (next() % 10) as usize);
                m.splice(
                    m.len() / 2..m.len() / 2,
                    b"\ni: ".iter().copied().chain(long),
                );
            }
            m
        })
        .collect()
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

    /// The scanner against the reference on messages made of the bytes
    /// and pieces that steer the search.
    #[test]
    fn the_scanner_finds_what_the_reference_finds() {
        for m in steering_messages(150_000, 0x9e37_79b9_7f4a_7c15) {
            assert_eq!(
                call_id_scanned(&m),
                call_id(&m),
                "{:?}",
                String::from_utf8_lossy(&m)
            );
        }
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
