//! The hash functions the IPVS schedulers use, as pure functions the XDP
//! program mirrors in C (and is differential-tested against).
//!
//! Conventions for every function here:
//!
//! * Addresses and ports are **host byte order** integers, i.e. the value
//!   after `ntohl()` / `ntohs()`. `10.0.0.1` is `0x0a000001`.
//! * All arithmetic is unsigned 32-bit (or 64-bit where stated) and wraps
//!   modulo 2^32 (2^64), exactly like C `u32` (`u64`) arithmetic.
//!
//! Nothing here is copied from the kernel; each function restates what the
//! kernel computes (file and function named in its doc comment).

use std::net::IpAddr;

/// The 32-bit value every hashing scheduler takes of an address, host
/// order: an IPv4 address itself; an IPv6 address's four words XORed
/// (`addr->ip6[0] ^ addr->ip6[1] ^ addr->ip6[2] ^ addr->ip6[3]` before
/// `ntohl`, the same as XORing the host-order words). The kernel folds by
/// the service's family; for the one case where that differs from the
/// address's own (an IPv6 dest of an IPv4 service, which IPVS allows for
/// tunnels, hashed by mh's permutation) it takes the first word only.
pub fn addr_fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |x, w| x ^ w)
        }
    }
}

/// `GOLDEN_RATIO_32` from `include/linux/hash.h` (since Linux 4.7).
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// Linux `hash_32(val, bits)`: multiply by [`GOLDEN_RATIO_32`] modulo 2^32
/// and keep the top `bits` bits.
///
/// C: `(u32)(val * 0x61C88647u) >> (32 - bits)`, `1 <= bits <= 32`.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    let h = val.wrapping_mul(GOLDEN_RATIO_32);
    if bits >= 32 {
        h
    } else {
        h >> (32 - bits)
    }
}

/// Bits of the sh bucket table (`CONFIG_IP_VS_SH_TAB_BITS`, default 8).
pub const SH_TAB_BITS: u32 = 8;
/// Buckets in the sh table (256).
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
/// Bits of the dh bucket table (`CONFIG_IP_VS_DH_TAB_BITS`, default 8).
pub const DH_TAB_BITS: u32 = 8;
/// Buckets in the dh table (256).
pub const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;
/// Bits of the lblc/lblcr hash tables (`CONFIG_IP_VS_LBLC(R)_TAB_BITS`, 10).
/// Only the garbage collector's bucket walk order depends on it.
pub const LBLC_TAB_BITS: u32 = 10;
/// Buckets in the lblc/lblcr hash tables (1024).
pub const LBLC_TAB_SIZE: usize = 1 << LBLC_TAB_BITS;

/// `ip_vs_sh_hashkey` (`ip_vs_sh.c`, IPv4): the sh bucket for a source.
///
/// `addr` is the client (source) address, `port` the client source port when
/// the service has `sh-port` (scheduler flag 2) and the protocol is
/// TCP/UDP/SCTP, else 0. `offset` is 0 for the primary lookup and the probe
/// offset during `sh-fallback`.
///
/// C:
/// ```c
/// u32 sh_hashkey(u32 addr, u16 port, u32 offset)
/// {
///         u32 h = (u32)((u32)port + addr) * 0x61C88647u >> (32 - 8);
///         return (offset + h) & 255;
/// }
/// ```
pub fn sh_hashkey(addr: u32, port: u16, offset: u32) -> usize {
    let h = hash_32((port as u32).wrapping_add(addr), SH_TAB_BITS);
    (offset.wrapping_add(h) & (SH_TAB_SIZE as u32 - 1)) as usize
}

/// `ip_vs_dh_hashkey` (`ip_vs_dh.c`, IPv4): the dh bucket for the packet's
/// destination address `addr`.
///
/// C: `return (addr * 0x61C88647u) >> 24;`
pub fn dh_hashkey(addr: u32) -> usize {
    hash_32(addr, DH_TAB_BITS) as usize
}

/// `ip_vs_lblc_hashkey` / `ip_vs_lblcr_hashkey`: the bucket of a locality
/// cache entry keyed by destination address `addr`
/// (C: `(addr * 0x61C88647u) >> 22`). The cache contents never depend on
/// it; only the order in which the over-size garbage collector walks entries.
pub fn lblc_hashkey(addr: u32) -> usize {
    hash_32(addr, LBLC_TAB_BITS) as usize
}

/// SipHash initialisation constants ("somepseudorandomlygeneratedbytes").
const SIP_C0: u64 = 0x736f_6d65_7073_6575;
const SIP_C1: u64 = 0x646f_7261_6e64_6f6d;
const SIP_C2: u64 = 0x6c79_6765_6e65_7261;
const SIP_C3: u64 = 0x7465_6462_7974_6573;

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// Linux `hsiphash(data, len, key)` as built on 64-bit kernels: SipHash-1-3
/// (one compression round, three finalisation rounds) with a 128-bit key
/// `key = [k0, k1]`, returning the low 32 bits of the 64-bit result.
///
/// `data` is read as little-endian 64-bit words, the tail bytes go into the
/// low bytes of the final block whose top byte is `len & 0xff`.
pub fn hsiphash(data: &[u8], key: [u64; 2]) -> u32 {
    let mut v = [
        SIP_C0 ^ key[0],
        SIP_C1 ^ key[1],
        SIP_C2 ^ key[0],
        SIP_C3 ^ key[1],
    ];
    let mut b: u64 = (data.len() as u64) << 56;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        v[3] ^= m;
        sipround(&mut v);
        v[0] ^= m;
    }
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        b |= (byte as u64) << (8 * i);
    }
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    ((v[0] ^ v[1]) ^ (v[2] ^ v[3])) as u32
}

/// [`hsiphash`] of one `u32` stored in memory on a little-endian machine,
/// which is what `hsiphash(&v, sizeof(v), key)` computes on x86-64.
///
/// C (64-bit arithmetic, `rol64` = rotate left):
/// ```c
/// u32 hsiphash_u32(u32 v, u64 k0, u64 k1)
/// {
///         u64 v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
///         u64 v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
///         u64 b = (4ULL << 56) | v;
///         v3 ^= b; SIPROUND; v0 ^= b;
///         v2 ^= 0xff; SIPROUND; SIPROUND; SIPROUND;
///         return (u32)(v0 ^ v1 ^ v2 ^ v3);
/// }
/// /* SIPROUND:
///  * v0 += v1; v1 = rol64(v1, 13); v1 ^= v0; v0 = rol64(v0, 32);
///  * v2 += v3; v3 = rol64(v3, 16); v3 ^= v2;
///  * v0 += v3; v3 = rol64(v3, 21); v3 ^= v0;
///  * v2 += v1; v1 = rol64(v1, 17); v1 ^= v2; v2 = rol64(v2, 32); */
/// ```
pub fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    hsiphash(&v.to_le_bytes(), key)
}

/// `hash1` key of the mh scheduler (`generate_hash_secret` in `ip_vs_mh.c`):
/// both words are 2654435761. The kernel's key is a constant, not random,
/// so mh picks are reproducible and xvs matches the kernel exactly.
pub const MH_HASH1_KEY: [u64; 2] = [2_654_435_761, 2_654_435_761];
/// `hash2` key of the mh scheduler: both words are 2654446892.
pub const MH_HASH2_KEY: [u64; 2] = [2_654_446_892, 2_654_446_892];

/// `ip_vs_mh_hashkey` (`ip_vs_mh.c`, IPv4):
/// `hsiphash_u32(offset + port + addr, key)` with wrapping `u32` additions.
///
/// * Lookup: `addr`/`port` are the client source address and (with `mh-port`
///   on TCP/UDP/SCTP, else 0) source port, `key` is [`MH_HASH1_KEY`],
///   `offset` is 0 (or the probe offset with `mh-fallback`); the table slot
///   is the result `% table_size`.
/// * Permutation of a real server: `addr`/`port` are the real server's,
///   `offset` 0; with [`MH_HASH1_KEY`] it gives the permutation offset, with
///   [`MH_HASH2_KEY`] the skip.
pub fn mh_hashkey(addr: u32, port: u16, key: [u64; 2], offset: u32) -> u32 {
    hsiphash_u32(offset.wrapping_add(port as u32).wrapping_add(addr), key)
}

/// Linux `get_random_u32_below(ceil)` (used by `twos`), with the random
/// source made an input: draws `r = rand()`, returns `(r * ceil) >> 32`
/// computed in 64 bits. When the low 32 bits of the product are below
/// `(2^32 - ceil) % ceil` it rejects and draws again (Lemire's unbiased
/// method, as the kernel does); `ceil == 0` returns `r` itself.
///
/// C:
/// ```c
/// u32 random_below(u32 ceil)
/// {
///         u32 r = bpf_get_prandom_u32();
///         u64 m;
///         if (!ceil) return r;
///         m = (u64)ceil * r;
///         if ((u32)m < ceil) {
///                 u32 bound = -ceil % ceil;
///                 while ((u32)m < bound)
///                         m = (u64)ceil * bpf_get_prandom_u32();
///         }
///         return m >> 32;
/// }
/// ```
pub fn random_below(ceil: u32, rand: &mut dyn FnMut() -> u32) -> u32 {
    let r = rand();
    if ceil == 0 {
        return r;
    }
    let mut m = (ceil as u64) * (r as u64);
    if (m as u32) < ceil {
        let bound = ceil.wrapping_neg() % ceil;
        while (m as u32) < bound {
            m = (ceil as u64) * (rand() as u64);
        }
    }
    (m >> 32) as u32
}

/// Linux `fls()`: 1-based index of the most significant set bit, 0 for 0.
pub fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_values() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        assert_eq!(hash_32(1, 8), 0x61);
        // 10.0.0.1 * 0x61C88647 = 0x...; checked by hand: top 8 bits.
        let v = 0x0a00_0001u32.wrapping_mul(0x61C8_8647);
        assert_eq!(hash_32(0x0a00_0001, 8), v >> 24);
        assert_eq!(dh_hashkey(0x0a00_0001), (v >> 24) as usize);
        assert_eq!(sh_hashkey(0x0a00_0001, 0, 0), (v >> 24) as usize);
        assert_eq!(
            sh_hashkey(0x0a00_0001, 0, 3),
            (((v >> 24) + 3) & 255) as usize
        );
        // port participates by addition before hashing
        assert_eq!(sh_hashkey(0x0a00_0001, 5, 0), sh_hashkey(0x0a00_0006, 0, 0));
        assert_eq!(lblc_hashkey(0x0a00_0001), (v >> 22) as usize);
    }

    /// The kernel's `lib/test_siphash.c` vectors for hsiphash on 64-bit:
    /// key bytes 00..0f, message `i` is the bytes 00..i-1.
    #[test]
    fn hsiphash_kernel_vectors() {
        let key = [0x0706_0504_0302_0100u64, 0x0f0e_0d0c_0b0a_0908u64];
        let expect: [u32; 45] = [
            0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
            0x9bb11140, 0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7,
            0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040,
            0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35,
            0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e,
            0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944,
            0xc8138825, 0xc28949a6, 0xfaf8876b,
        ];
        let msg: Vec<u8> = (0u8..64).collect();
        for (i, &e) in expect.iter().enumerate() {
            assert_eq!(hsiphash(&msg[..i], key), e, "len {i}");
        }
        // the u32 form is the 4-byte message
        assert_eq!(hsiphash_u32(0x0302_0100, key), 0x88d38328);
    }

    /// Golden vectors for the C side (cross-checked with an independent
    /// Python transcription).
    #[test]
    fn golden_vectors() {
        let cases: [(u32, u16, usize, usize, u32, u32); 3] = [
            (0x0a00_0001, 0, 39, 39, 0x0308_0ce4, 0x48f9_d0c1),
            (0xc0a8_0164, 40000, 253, 89, 0xc030_d6af, 0x5d57_c6a1),
            (0xffff_ffff, 65535, 194, 158, 0xb802_d367, 0xb1ff_32a3),
        ];
        for (addr, port, sh, dh, mh1, mh2) in cases {
            assert_eq!(sh_hashkey(addr, port, 0), sh);
            assert_eq!(dh_hashkey(addr), dh);
            assert_eq!(mh_hashkey(addr, port, MH_HASH1_KEY, 0), mh1);
            assert_eq!(mh_hashkey(addr, port, MH_HASH2_KEY, 0), mh2);
        }
        assert_eq!(mh_hashkey(0xc0a8_0164, 40000, MH_HASH1_KEY, 0) % 4093, 1689);
    }

    #[test]
    fn random_below_is_multiply_shift() {
        let mut it = [0u32, u32::MAX, 0x8000_0001].into_iter();
        let mut r = || it.next().unwrap();
        // rand 0 with ceil 10: m = 0, (u32)m = 0 < 10, bound = (2^32-10)%10 = 6 -> reject
        // next draw u32::MAX: m = 10*(2^32-1) -> low = 2^32-10 >= 6 -> 9
        assert_eq!(random_below(10, &mut r), 9);
        assert_eq!(random_below(10, &mut r), 5);
        let mut one = || 7u32;
        assert_eq!(random_below(1, &mut one), 0);
        assert_eq!(random_below(0, &mut one), 7);
    }

    #[test]
    fn fls_values() {
        assert_eq!(fls(0), 0);
        assert_eq!(fls(1), 1);
        assert_eq!(fls(3), 2);
        assert_eq!(fls(64), 7);
        assert_eq!(fls(u32::MAX), 32);
    }

    #[test]
    fn ipv6_addresses_fold_by_xor_of_their_words() {
        let v6 = |t: &str| addr_fold(t.parse().unwrap());
        assert_eq!(addr_fold("10.0.0.1".parse().unwrap()), 0x0a00_0001);
        // 0x20010db8 ^ 0 ^ 0 ^ 0x00000001
        assert_eq!(v6("2001:db8::1"), 0x2001_0db9);
        // 0x20010db8 ^ 0x00010002 ^ 0x00030004 ^ 0x00050006
        assert_eq!(
            v6("2001:db8:1:2:3:4:5:6"),
            0x2001_0db8 ^ 0x0001_0002 ^ 0x0003_0004 ^ 0x0005_0006
        );
        // words that cancel collide, by the kernel's design
        assert_eq!(v6("2001:db8:1:2:1:2::"), v6("2001:db8::"));
        // a v4-mapped address is not its IPv4 address
        assert_ne!(v6("::ffff:10.0.0.1"), 0x0a00_0001);
    }
}
