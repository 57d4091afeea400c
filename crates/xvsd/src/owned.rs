//! What a keepalived.conf owns in the table: its services and its mark
//! rules. A reload brings exactly these to the configuration and never
//! touches what `xvsadm` added (services with `-A`, rules with
//! `--add-mark`).

use std::collections::BTreeSet;

use xvs_core::api::{ApiError, ErrorKind};
use xvs_core::fwmark::{compile, MarkRule};
use xvs_core::model::ServiceKey;

use crate::table::Model;

/// The configuration's share of the table, handed over with a reload's
/// changes ([`crate::director::Director::commit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// The config-owned services (`Model::owned`).
    pub services: BTreeSet<ServiceKey>,
    /// The configuration's mark rules (`@xvsd match`), in file order.
    pub marks: Vec<MarkRule>,
}

impl Owned {
    /// Makes `self` the configuration's share of `m`: the services become
    /// the owned set; the rules the previous configuration added leave
    /// `m.mark_rules` and this configuration's join them. A rule that is
    /// already there and was not the configuration's (an `xvsadm
    /// --add-mark` one) stays `xvsadm`'s, so a later configuration without
    /// it does not remove it. Refused, `m` unchanged, when the resulting
    /// rules conflict.
    pub fn apply(self, m: &mut Model) -> Result<(), ApiError> {
        let old = &m.owned_marks;
        // Unchanged rules keep their place, so listings do not reorder.
        let mut rules: Vec<MarkRule> = m
            .mark_rules
            .iter()
            .filter(|r| !old.contains(r) || self.marks.contains(r))
            .cloned()
            .collect();
        let mut owned = Vec::new();
        for r in self.marks {
            if owned.contains(&r) {
                continue;
            }
            if !rules.contains(&r) {
                rules.push(r.clone());
                owned.push(r);
            } else if old.contains(&r) {
                owned.push(r);
            }
        }
        compile(&rules).map_err(|e| ApiError::with(ErrorKind::Invalid, e.to_string()))?;
        m.owned = self.services;
        m.mark_rules = rules;
        m.owned_marks = owned;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use xvs_core::model::Protocol;

    fn rule(mark: u32, last: u8) -> MarkRule {
        MarkRule {
            mark,
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(10, 0, 0, last),
            prefix_len: 32,
            ports: vec![],
        }
    }

    fn own(marks: &[MarkRule]) -> Owned {
        Owned {
            services: BTreeSet::new(),
            marks: marks.to_vec(),
        }
    }

    #[test]
    fn a_reload_replaces_its_own_rules_and_keeps_xvsadms() {
        let mut m = Model::default();
        // xvsadm --add-mark -t 10.0.0.9 -f 9
        m.mark_rules.push(rule(9, 9));
        own(&[rule(1, 1), rule(1, 2)]).apply(&mut m).unwrap();
        assert_eq!(m.mark_rules, [rule(9, 9), rule(1, 1), rule(1, 2)]);
        assert_eq!(m.owned_marks, [rule(1, 1), rule(1, 2)]);
        // The next configuration drops 10.0.0.1 and adds 10.0.0.3.
        own(&[rule(1, 2), rule(1, 3)]).apply(&mut m).unwrap();
        assert_eq!(m.mark_rules, [rule(9, 9), rule(1, 2), rule(1, 3)]);
        // The same again changes nothing.
        let before = m.clone();
        own(&[rule(1, 2), rule(1, 3)]).apply(&mut m).unwrap();
        assert_eq!(m, before);
        assert_eq!(m.owned_marks, [rule(1, 2), rule(1, 3)]);
        // A configuration without rules removes only its own.
        own(&[]).apply(&mut m).unwrap();
        assert_eq!(m.mark_rules, [rule(9, 9)]);
        assert!(m.owned_marks.is_empty());
    }

    #[test]
    fn a_rule_xvsadm_added_first_stays_xvsadms() {
        let mut m = Model::default();
        m.mark_rules.push(rule(9, 9));
        own(&[rule(9, 9)]).apply(&mut m).unwrap();
        assert_eq!(m.mark_rules, [rule(9, 9)]);
        assert!(m.owned_marks.is_empty());
        own(&[]).apply(&mut m).unwrap();
        assert_eq!(
            m.mark_rules,
            [rule(9, 9)],
            "not the configuration's to remove"
        );
    }

    #[test]
    fn a_conflict_with_xvsadms_rules_is_refused_unchanged() {
        let mut m = Model::default();
        m.mark_rules.push(rule(9, 1));
        let before = m.clone();
        let e = own(&[rule(1, 1)]).apply(&mut m).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.to_string().contains("conflicts with mark 9"), "{e}");
        assert_eq!(m, before);
    }
}
