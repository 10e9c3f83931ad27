//! The org's clock, as the `Date` header of Salesforce's answers tells it.
//!
//! A read's upper bound is "now minus `cursor_lag`", and its STATE saves that bound as the
//! cursor the next read starts from. The rows it compares with carry the org's timestamps, so
//! "now" must be the org's. When this machine's clock runs ahead of the org's by more than
//! `cursor_lag`, the bound lies in the org's future: a row the org changes after the read, but
//! stamps before that bound, is behind the saved cursor and never read (unless
//! `lookback_window` reaches back over it). A container or laptop whose clock drifted is enough.
//!
//! Every HTTP answer carries a `Date` header (RFC 9110 §6.6.1; Salesforce's API answers show one
//! in its documentation's examples), to the second. Each answer bounds how far ahead this
//! machine can be: the org wrote the header before the answer arrived, so at arrival the org's
//! time was at least the header's, and `local arrival time - Date` is at least the machine's
//! lead. The least such value over a run's answers is the tightest bound; past
//! [`TOLERANCE`] it is taken as the lead, and a read's "now" is this machine's time minus it.
//!
//! A machine running behind loses no row (its bounds are earlier than they could be), but every
//! read stops that far short of the org's latest changes. The same least value, negative then,
//! is still never more than the machine is behind (less the header's second), so past
//! [`TOLERANCE`] a read's "now" moves forward by it and stays within the org's present.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// How far this machine's clock may be from the org's, ahead or behind, before reads follow
/// the org's clock instead. Below it, a lead is the header's rounding to the second and the
/// answer's time in flight, not a wrong clock; and `cursor_lag` (2 minutes by default) covers
/// it anyway.
pub const TOLERANCE: TimeDelta = TimeDelta::seconds(10);

/// What the answers so far said about the org's clock; shared by a client's clones.
#[derive(Debug, Default)]
pub struct OrgClock {
    /// The least `local arrival time - Date` over the answers seen, in milliseconds: at least
    /// this machine's lead over the org (negative when it runs behind).
    lead_ms: Mutex<Option<i64>>,
    /// Whether the run's warning about a wrong clock was handed out.
    warned: AtomicBool,
}

impl OrgClock {
    /// Notes an answer's `Date` header, the answer having arrived at `arrived` by this
    /// machine's clock. An answer without one, or with one that is not an HTTP date, says
    /// nothing.
    pub fn note(&self, headers: &reqwest::header::HeaderMap, arrived: DateTime<Utc>) {
        let Some(lead) = crate::transport::date_lead(headers, arrived) else {
            return;
        };
        let lead = lead.num_milliseconds();
        let mut least = self.lead_ms.lock().unwrap_or_else(|e| e.into_inner());
        *least = Some(least.map_or(lead, |l| l.min(lead)));
    }

    /// How far this machine's clock is ahead of the org's (negative: behind), when more than
    /// [`TOLERANCE`] either way.
    pub fn lead(&self) -> Option<TimeDelta> {
        let least = *self.lead_ms.lock().unwrap_or_else(|e| e.into_inner());
        least
            .map(TimeDelta::milliseconds)
            .filter(|lead| lead.abs() > TOLERANCE)
    }

    /// The org's "now" at `local` (this machine's time): `local` itself, or, when this machine
    /// is more than [`TOLERANCE`] off, `local` minus the lead (never later than the org's own
    /// time, so a bound taken from it never lies in the org's future).
    pub fn now(&self, local: DateTime<Utc>) -> DateTime<Utc> {
        match self.lead() {
            Some(lead) => local - lead,
            None => local,
        }
    }

    /// The warning for a wrong clock, once per client (every stream's read takes its bounds
    /// from the same clock); `None` when the clock is right or the warning was given.
    pub fn warning_once(&self) -> Option<String> {
        let lead = self.lead()?;
        if self.warned.swap(true, Ordering::SeqCst) {
            return None;
        }
        Some(lead_warning(lead))
    }
}

/// What to tell a user whose clock runs `lead` ahead of the org's (negative: behind).
pub fn lead_warning(lead: TimeDelta) -> String {
    let so = if lead > TimeDelta::zero() {
        "so no row changed in between is skipped"
    } else {
        "so they reach the org's latest changes"
    };
    format!(
        "this machine's clock is {} the org's (by the Date header of Salesforce's answers): reads take now from the org's clock instead, {so}; set this machine's clock right (NTP)",
        crate::transport::lead_words(lead)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{DATE, HeaderMap, HeaderValue};

    fn answer(date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(DATE, HeaderValue::from_str(date).unwrap());
        h
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn an_answers_date_is_read_to_the_second() {
        let lead = crate::transport::date_lead(
            &answer("Tue, 06 Aug 2013 16:46:10 GMT"),
            at("2013-08-06T16:46:12.500Z"),
        );
        assert_eq!(lead, Some(TimeDelta::milliseconds(2_500)));
        assert_eq!(
            crate::transport::date_lead(&answer("yesterday"), at("2013-08-06T16:46:12Z")),
            None
        );
    }

    #[test]
    fn a_clock_within_the_tolerance_is_taken_as_it_is() {
        let clock = OrgClock::default();
        let local = at("2026-12-05T12:00:09.900Z");
        assert_eq!(clock.now(local), local, "no answer yet");
        // The header's rounding down to the second and the time in flight: 9.9 s, then 0.9 s.
        clock.note(&answer("Sat, 05 Dec 2026 12:00:00 GMT"), local);
        clock.note(&answer("Sat, 05 Dec 2026 12:00:09 GMT"), local);
        assert_eq!(clock.lead(), None);
        assert_eq!(clock.now(local), local);
        assert_eq!(clock.warning_once(), None);
        // Behind by at most the tolerance (the header 9.5 s after this machine's time).
        clock.note(&answer("Sat, 05 Dec 2026 12:00:19 GMT"), local);
        assert_eq!(clock.lead(), None);
        assert_eq!(clock.now(local), local);
    }

    #[test]
    fn a_clock_behind_moves_reads_forward_no_further_than_the_orgs_time() {
        let clock = OrgClock::default();
        // The org's time is 12:05:00.5 at each arrival: its headers say 12:05:00.
        clock.note(
            &answer("Sat, 05 Dec 2026 12:05:00 GMT"),
            at("2026-12-05T12:00:00.500Z"),
        );
        assert_eq!(clock.lead(), Some(TimeDelta::milliseconds(-299_500)));
        assert_eq!(
            clock.now(at("2026-12-05T12:00:10.500Z")),
            at("2026-12-05T12:05:10Z"),
            "half a second short of the org's 12:05:10.5"
        );
        assert_eq!(
            clock.warning_once().as_deref(),
            Some(
                "this machine's clock is 299.5 s behind the org's (by the Date header of Salesforce's answers): reads take now from the org's clock instead, so they reach the org's latest changes; set this machine's clock right (NTP)"
            )
        );
    }

    #[test]
    fn a_clock_ahead_takes_the_least_lead_of_the_answers() {
        let clock = OrgClock::default();
        clock.note(
            &answer("Sat, 05 Dec 2026 11:50:00 GMT"),
            at("2026-12-05T12:00:03.000Z"),
        );
        clock.note(&HeaderMap::new(), at("2026-12-05T12:00:04.000Z"));
        clock.note(
            &answer("Sat, 05 Dec 2026 11:50:01 GMT"),
            at("2026-12-05T12:00:01.250Z"),
        );
        assert_eq!(clock.lead(), Some(TimeDelta::milliseconds(600_250)));
        assert_eq!(
            clock.now(at("2026-12-05T12:01:00.250Z")),
            at("2026-12-05T11:51:00Z")
        );
        assert_eq!(
            clock.warning_once().as_deref(),
            Some(
                "this machine's clock is 600.2 s ahead of the org's (by the Date header of Salesforce's answers): reads take now from the org's clock instead, so no row changed in between is skipped; set this machine's clock right (NTP)"
            )
        );
        assert_eq!(clock.warning_once(), None, "once per client");
    }
}
