//! Where rr and wrr continue after their dest list changes.
//!
//! The kernel keeps a cursor: rr the last picked dest (or the list head),
//! wrr the last pick `cl` and the current weight `cw`. The data plane
//! instead cycles through one precomputed period (the ring, [`super::ring_for`])
//! from a position counter. Between changes the two agree; at a change the
//! kernel moves its cursor ([`ip_vs_rr_del_dest`], [`ip_vs_wrr_dest_changed`]:
//! back to the head, `cw` adjusted) and this module finds the ring position
//! that continues exactly where the kernel's next pick would be.
//!
//! [`ip_vs_rr_del_dest`]: super::reference::Rr
//! [`ip_vs_wrr_dest_changed`]: super::reference::Wrr

/// One dest as the cursor sees it: id and weight, in kernel list order
/// (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorDest {
    /// Dest id (stable across changes).
    pub id: u32,
    /// Weight.
    pub weight: u32,
}

/// The kernel's cursor as of the last change, and the ring position the
/// data plane was given then: while the position has not moved, no pick
/// happened and the cursor is still this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memo {
    /// Position written at the change.
    pub pos: u64,
    /// rr: the dest the cursor is on (`None`: the list head).
    pub rr_cursor: Option<u32>,
    /// wrr: the current weight `cw`.
    pub wrr_cw: i64,
}

/// One period of wrr with the pass level (`cw`) of every entry.
pub fn wrr_ring_levels(weights: &[u32]) -> (Vec<usize>, Vec<i64>) {
    let (di, mw) = di_mw(weights);
    let (mut ring, mut levels) = (Vec::new(), Vec::new());
    let mut cw = mw;
    while cw > 0 {
        for (i, &w) in weights.iter().enumerate() {
            if w as i64 >= cw {
                ring.push(i);
                levels.push(cw);
            }
        }
        cw -= di;
    }
    (ring, levels)
}

/// `ip_vs_wrr_gcd_weight` (1 when no weight is positive) and
/// `mw = max_weight - (di - 1)`.
fn di_mw(weights: &[u32]) -> (i64, i64) {
    let mut g: u64 = 0;
    for &w in weights.iter().filter(|&&w| w > 0) {
        let (mut a, mut b) = (w as u64, g);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        g = a;
    }
    let di = if g == 0 { 1 } else { g as i64 };
    let max = weights.iter().copied().max().unwrap_or(0) as i64;
    (di, max - (di - 1))
}

/// `ip_vs_wrr_dest_changed`'s new `cw` for the list `weights`.
fn wrr_changed(cw: i64, weights: &[u32]) -> i64 {
    let (di, mw) = di_mw(weights);
    if cw > mw || cw == 0 {
        mw
    } else if di > 1 {
        (cw / di) * di + 1
    } else {
        cw
    }
}

/// The kernel's wrr `cw` before a change: the memo's when no pick has
/// happened since, else the level of the last pick.
fn wrr_cw_now(old: &[CursorDest], pos: u64, memo: Option<Memo>) -> i64 {
    if let Some(m) = memo.filter(|m| m.pos == pos) {
        return m.wrr_cw;
    }
    let w: Vec<u32> = old.iter().map(|d| d.weight).collect();
    let (ring, levels) = wrr_ring_levels(&w);
    if ring.is_empty() || pos == 0 {
        return 0;
    }
    levels[((pos - 1) % ring.len() as u64) as usize]
}

/// The weights of `new` as the kernel's list held them after each add, in
/// the order the adds happened: the dests of `new` absent from `old` were
/// added oldest first (the list is newest first), then the rest changed.
fn steps(old: &[CursorDest], new: &[CursorDest]) -> Vec<Vec<u32>> {
    let added: Vec<usize> = (0..new.len())
        .rev()
        .filter(|&i| !old.iter().any(|o| o.id == new[i].id))
        .collect();
    let mut out = Vec::new();
    let mut present: Vec<bool> = new
        .iter()
        .map(|d| old.iter().any(|o| o.id == d.id))
        .collect();
    for i in added {
        present[i] = true;
        out.push(
            new.iter()
                .zip(&present)
                .filter(|(_, &p)| p)
                .map(|(d, _)| d.weight)
                .collect(),
        );
    }
    let all: Vec<u32> = new.iter().map(|d| d.weight).collect();
    if out.last() != Some(&all) {
        out.push(all);
    }
    out
}

/// wrr's `cw` after the list went from `old` to `new`, starting from
/// `cw`: one `ip_vs_wrr_dest_changed` per dest added (oldest first), then
/// one for the other changes.
pub fn wrr_cw_after(mut cw: i64, old: &[CursorDest], new: &[CursorDest]) -> i64 {
    for weights in steps(old, new) {
        cw = wrr_changed(cw, &weights);
    }
    cw
}

/// wrr: the ring position (into [`wrr_ring_levels`] of `new`) the next pick
/// starts from after the list changed from `old` to `new` (`old` empty and
/// `memo` `None` for a service just created: the kernel's `init_svc`
/// leaves `cw` 0), given the data plane's position `pos` now; and the memo
/// of the change.
pub fn wrr_after_change(
    old: &[CursorDest],
    new: &[CursorDest],
    pos: u64,
    memo: Option<Memo>,
) -> (u64, Memo) {
    let cw = wrr_cw_after(wrr_cw_now(old, pos, memo), old, new);
    let w: Vec<u32> = new.iter().map(|d| d.weight).collect();
    let (_, levels) = wrr_ring_levels(&w);
    let start = levels.iter().position(|&l| l == cw).unwrap_or(0) as u64;
    (
        start,
        Memo {
            pos: start,
            rr_cursor: None,
            wrr_cw: cw,
        },
    )
}

/// rr: the ring position (into [`super::rr_ring_weighted`] of `new`) the
/// next pick starts from after the list changed from `old` to `new`,
/// given the data plane's position `pos` now; and the memo of the change.
/// The cursor stays on its dest; a removed one hands it to its
/// predecessor in the old list (the head when none is left).
pub fn rr_after_change(
    old: &[CursorDest],
    new: &[CursorDest],
    pos: u64,
    memo: Option<Memo>,
) -> (u64, Memo) {
    let cursor = match memo.filter(|m| m.pos == pos) {
        Some(m) => m.rr_cursor,
        None => {
            let ring: Vec<&CursorDest> = old.iter().filter(|d| d.weight > 0).collect();
            if ring.is_empty() || pos == 0 {
                None
            } else {
                Some(ring[((pos - 1) % ring.len() as u64) as usize].id)
            }
        }
    };
    // Removed: the predecessor that is still there (or the head).
    let cursor = cursor.and_then(|c| {
        let at = old.iter().position(|d| d.id == c);
        match at {
            Some(i) => old[..=i]
                .iter()
                .rev()
                .find(|d| new.iter().any(|n| n.id == d.id))
                .map(|d| d.id),
            None => new.iter().any(|n| n.id == c).then_some(c),
        }
    });
    let idx = cursor.and_then(|c| new.iter().position(|d| d.id == c));
    // The next pick: the first dest with weight > 0 after the cursor.
    let ring: Vec<usize> = (0..new.len()).filter(|&i| new[i].weight > 0).collect();
    let start = match idx {
        None => 0,
        Some(j) => ring.iter().position(|&i| i > j).unwrap_or(0),
    } as u64;
    (
        start,
        Memo {
            pos: start,
            rr_cursor: cursor,
            wrr_cw: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: u32, weight: u32) -> CursorDest {
        CursorDest { id, weight }
    }

    /// Picks from `pos` on through the ring (ids).
    fn picks(ring: &[usize], list: &[CursorDest], pos: u64, n: usize) -> Vec<u32> {
        (0..n)
            .map(|k| list[ring[((pos as usize) + k) % ring.len()]].id)
            .collect()
    }

    #[test]
    fn wrr_added_one_by_one_starts_where_ipvs_does() {
        // -A -s wrr; -a rs1 -w 3; -a rs2 -w 2; -a rs3 -w 1 (ids 1, 2, 3):
        // IPVS picks rs3 rs2 rs1 rs1 rs2 rs1 rs3 ... (measured in the VM).
        let mut list: Vec<CursorDest> = Vec::new();
        let mut memo = None;
        let mut pos = 0;
        for (id, w) in [(1, 3), (2, 2), (3, 1)] {
            let old = list.clone();
            list.insert(0, d(id, w));
            let (p, m) = wrr_after_change(&old, &list, pos, memo);
            (pos, memo) = (p, Some(m));
        }
        let w: Vec<u32> = list.iter().map(|d| d.weight).collect();
        let (ring, _) = wrr_ring_levels(&w);
        assert_eq!(
            picks(&ring, &list, pos, 12),
            [3, 2, 1, 1, 2, 1, 3, 2, 1, 1, 2, 1]
        );
        // The same three in one batch (ipvsadm -R) give the same start.
        let (p, _) = wrr_after_change(&[], &list, 0, None);
        assert_eq!(p, pos);
    }

    #[test]
    fn wrr_change_after_picks_adjusts_the_pass_level() {
        // weights 4, 2 (di 2, mw 3): ring by level 3: [1], 1: [1, 2].
        let list = [d(1, 4), d(2, 2)];
        // Made in one batch (2 added first): cw 0 -> 1 -> 1, level 1.
        let (p, m) = wrr_after_change(&[], &list, 0, None);
        assert_eq!((p, m.wrr_cw), (1, 1));
        // One pick at level 3 (position 1, no memo), then 2's weight
        // becomes 4: di 4, mw 1, cw 3 > mw -> mw.
        let edited = [d(1, 4), d(2, 4)];
        let (p, m) = wrr_after_change(&list, &edited, 1, None);
        assert_eq!((p, m.wrr_cw), (0, 1));
        // With di 2 and cw 2 (not a level), dest_changed rounds to 3.
        assert_eq!(wrr_changed(2, &[4, 2]), 3);
    }

    #[test]
    fn rr_cursor_stays_on_its_dest_and_moves_back_when_it_goes() {
        // list (newest first): 3, 2, 1; ring = list order.
        let list = [d(3, 1), d(2, 1), d(1, 1)];
        let (p, m) = rr_after_change(&[], &list, 0, None);
        assert_eq!(p, 0);
        // two picks (3, 2), then dest 4 is added at the head: the cursor
        // stays on 2, the next pick is 1.
        let grown = [d(4, 1), d(3, 1), d(2, 1), d(1, 1)];
        let (p, m) = rr_after_change(&list, &grown, 2, Some(m));
        assert_eq!(grown[p as usize].id, 1);
        // no pick; dest 1's removal does not move a cursor on 2...
        let less = [d(4, 1), d(3, 1), d(2, 1)];
        let (p2, m2) = rr_after_change(&grown, &less, p, Some(m));
        assert_eq!((p2, m2.rr_cursor), (0, Some(2)), "wraps to 4");
        // ...but removing 2 hands the cursor to 3: next is... 2 is gone,
        // so after 3 comes nothing but the wrap to 4.
        let fewer = [d(4, 1), d(3, 1)];
        let (p3, m3) = rr_after_change(&less, &fewer, p2, Some(m2));
        assert_eq!(m3.rr_cursor, Some(3));
        assert_eq!(fewer[p3 as usize].id, 4);
        // Weight-0 dests are not in the ring: the next one with weight.
        let quiesced = [d(4, 0), d(3, 1)];
        let (p4, _) = rr_after_change(&fewer, &quiesced, p3, Some(m3));
        assert_eq!(p4, 0, "the ring is [3]");
    }

    #[test]
    fn without_a_memo_the_last_pick_is_the_cursor() {
        let list = [d(3, 1), d(2, 1), d(1, 1)];
        // five picks: 3 2 1 3 2 -> cursor on 2, next 1.
        let (p, _) = rr_after_change(&list, &list, 5, None);
        assert_eq!(list[p as usize].id, 1);
        // wrr 3:2:1 with the list 1, 2, 3: ring 1 | 1 2 | 1 2 3 by level.
        let wl = [d(1, 3), d(2, 2), d(3, 1)];
        let (p, m) = wrr_after_change(&wl, &wl, 4, None);
        // last pick index 3 is at level 1 -> cw stays 1, start of level 1.
        assert_eq!(m.wrr_cw, 1);
        assert_eq!(p, 3);
    }
}
