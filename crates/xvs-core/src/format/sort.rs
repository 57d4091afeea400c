//! Sorting exactly as ipvsadm does: qsort (glibc's merge sort) with
//! ipvs_cmp_services / ipvs_cmp_dests. The comparators subtract addresses as
//! unsigned 32-bit values and read the result as a signed int, so addresses
//! 2^31 or more apart compare "the wrong way"; reproducing glibc's merge
//! order keeps even that identical to ipvsadm.

use crate::api::{DestEntry, ServiceEntry};
use std::net::IpAddr;

/// The address as libipvs holds it: `union nf_inet_addr`'s four 32-bit
/// words in network order, an IPv4 address in the first and zeros after.
fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// libipvs's address comparison, the branch chosen by `a`'s family: one
/// word for IPv4, up to four for IPv6, each `ntohl(x) - ntohl(y)` read as
/// an int. `ipvs_cmp_dests` does not compare families first, so an IPv4
/// dest meets an IPv6 one word 0 against word 0 (and, with the IPv6 one
/// first, its other words against the IPv4 one's zeros).
fn addr_cmp(a: IpAddr, b: IpAddr) -> i32 {
    let (x, y) = (words(a), words(b));
    let n = if a.is_ipv6() { 4 } else { 1 };
    for i in 0..n {
        let r = x[i].wrapping_sub(y[i]) as i32;
        if r != 0 {
            return r;
        }
    }
    0
}

/// `AF_INET` is 2, `AF_INET6` 10.
fn af(a: IpAddr) -> i32 {
    if a.is_ipv6() {
        10
    } else {
        2
    }
}

fn cmp_services(a: &ServiceEntry, b: &ServiceEntry) -> i32 {
    let (x, y) = (&a.service.key, &b.service.key);
    // `s1->fwmark - s2->fwmark` as an int: marks of 2^31 and more sort
    // before address services (mark 0). Then the family: IPv4 first.
    let r = x.fwmark.wrapping_sub(y.fwmark) as i32;
    if r != 0 {
        return r;
    }
    let r = af(x.addr) - af(y.addr);
    if r != 0 {
        return r;
    }
    // libipvs sees protocol 0, address 0 and port 0 for every fwmark
    // service; two of one family with the same mark do not exist.
    let r = x.proto.number() as i32 - y.proto.number() as i32;
    if r != 0 {
        return r;
    }
    let r = addr_cmp(x.addr, y.addr);
    if r != 0 {
        return r;
    }
    x.port as i32 - y.port as i32
}

fn cmp_dests(a: &DestEntry, b: &DestEntry) -> i32 {
    let r = addr_cmp(a.dest.addr, b.dest.addr);
    if r != 0 {
        return r;
    }
    a.dest.port as i32 - b.dest.port as i32
}

/// glibc `msort_with_tmp`: top-down merge sort, left half `n/2`, ties and
/// "less or equal" taken from the left.
fn msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort(&mut v[..n1], cmp);
    msort(&mut v[n1..], cmp);
    let mut tmp = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i].clone());
            i += 1;
        } else {
            tmp.push(v[j].clone());
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    tmp.extend_from_slice(&v[j..]);
    v.clone_from_slice(&tmp);
}

/// Sorts services as `ipvs_sort_services(ipvs_cmp_services)` does.
pub fn sort_services(v: &mut [ServiceEntry]) {
    msort(v, &cmp_services);
}

/// Sorts destinations as `ipvs_sort_dests(ipvs_cmp_dests)` does.
pub fn sort_dests(v: &mut [DestEntry]) {
    msort(v, &cmp_dests);
}
