//! keepalived's per-checker state machine.

/// keepalived's per-checker state (`checker_t`: `is_up`, `has_run`,
/// `retry_it`) and the rule of `tcp_epilog` shared by every checker kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    pub is_up: bool,
    pub has_run: bool,
    pub retry_it: u32,
    pub weight: Option<u32>,
}

/// What one attempt's result did to a checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Wait `delay_before_retry` (a retry is due) rather than `delay_loop`.
    pub retry_next: bool,
    /// A failure confirmed a checker that started down and had never run
    /// (keepalived then runs `notify_down` once: `update_svr_checker_state`).
    pub confirmed_initial_down: bool,
    /// The failure ended a series of retries.
    pub after_retries: bool,
}

impl Machine {
    /// A checker as keepalived sets it up at start (`check_data.c`): alpha
    /// checkers start down; every checker has `retry_it = retry`, so that
    /// "one failure is enough initially".
    pub fn new(alpha: bool, retry: u32) -> Machine {
        Machine {
            is_up: !alpha,
            has_run: false,
            retry_it: retry,
            weight: None,
        }
    }

    /// Apply one attempt's result (`tcp_epilog` in `check_tcp.c`; the
    /// other checkers' epilogs are equivalent).
    pub fn step(&mut self, ok: bool, weight: Option<u32>, retry: u32) -> Step {
        let mut st = Step {
            retry_next: false,
            confirmed_initial_down: false,
            after_retries: false,
        };
        if ok || ((self.is_up || !self.has_run) && self.retry_it >= retry) {
            if ok {
                self.is_up = true;
                self.weight = weight;
            } else {
                st.confirmed_initial_down = !self.is_up && !self.has_run;
                st.after_retries = self.has_run && retry > 0;
                self.is_up = false;
                self.weight = None;
            }
            self.retry_it = 0;
        } else if self.is_up {
            st.retry_next = true;
            self.retry_it += 1;
        }
        self.has_run = true;
        st
    }

    /// keepalived's `migrate_checkers` for a checker kept across a reload.
    pub fn migrate(old: &Machine, fresh: Machine, retry: u32) -> Machine {
        let mut m = fresh;
        if old.has_run {
            m.is_up = old.is_up;
        }
        m.has_run = old.has_run;
        m.weight = old.weight;
        m.retry_it = if !m.is_up {
            retry + 1
        } else if old.retry_it >= retry {
            retry
        } else {
            old.retry_it
        };
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_alpha_one_failure_is_enough_initially() {
        let mut m = Machine::new(false, 3);
        assert!(m.is_up);
        let st = m.step(false, None, 3);
        assert!(!m.is_up && !st.retry_next && !st.after_retries);
        assert!(!st.confirmed_initial_down);
    }

    #[test]
    fn up_checker_retries_then_goes_down() {
        let mut m = Machine::new(false, 2);
        m.step(true, None, 2);
        assert!(m.is_up && m.retry_it == 0);
        assert!(m.step(false, None, 2).retry_next);
        assert!(m.is_up);
        assert!(m.step(false, None, 2).retry_next);
        assert!(m.is_up);
        let st = m.step(false, None, 2);
        assert!(!m.is_up && !st.retry_next && st.after_retries);
        // Down: failures do not retry.
        assert!(!m.step(false, None, 2).retry_next);
        // One success is enough to come back.
        m.step(true, None, 2);
        assert!(m.is_up);
    }

    #[test]
    fn a_success_resets_the_retries() {
        let mut m = Machine::new(false, 1);
        m.step(true, None, 1);
        assert!(m.step(false, None, 1).retry_next);
        m.step(true, None, 1);
        assert_eq!(m.retry_it, 0);
        assert!(m.step(false, None, 1).retry_next);
        assert!(m.is_up);
    }

    #[test]
    fn alpha_starts_down_and_confirms() {
        let mut m = Machine::new(true, 1);
        assert!(!m.is_up);
        let st = m.step(false, None, 1);
        assert!(st.confirmed_initial_down && !m.is_up);
        let mut m = Machine::new(true, 1);
        m.step(true, Some(4), 1);
        assert!(m.is_up);
        assert_eq!(m.weight, Some(4));
    }

    #[test]
    fn zero_retry() {
        let mut m = Machine::new(false, 0);
        m.step(true, None, 0);
        let st = m.step(false, None, 0);
        assert!(!m.is_up && !st.retry_next && !st.after_retries);
    }

    #[test]
    fn migrate_rules() {
        let mut old = Machine::new(false, 3);
        old.step(true, None, 3);
        old.step(false, None, 3);
        assert_eq!(old.retry_it, 1);
        let m = Machine::migrate(&old, Machine::new(false, 1), 1);
        assert!(m.is_up && m.has_run && m.retry_it == 1);
        let m = Machine::migrate(&old, Machine::new(false, 5), 5);
        assert_eq!(m.retry_it, 1);
        let mut down = Machine::new(false, 0);
        down.step(false, None, 0);
        let m = Machine::migrate(&down, Machine::new(false, 2), 2);
        assert!(!m.is_up && m.retry_it == 3);
        // A checker that never ran keeps its fresh state.
        let m = Machine::migrate(&Machine::new(false, 1), Machine::new(true, 1), 1);
        assert!(!m.is_up && !m.has_run);
    }
}
