//! ISO 8601 durations (`P30D`, `PT10M`, `P1M`) as the config's slice step and lookback window.
//!
//! Parsing is the `iso8601` crate's; this type adds calendar-correct arithmetic (a month step is
//! a calendar month, not 30 days) and keeps the text the user wrote for messages.

use std::fmt;

use chrono::{DateTime, Months, TimeDelta, Utc};

/// A parsed ISO 8601 duration.
#[derive(Debug, Clone, PartialEq)]
pub struct IsoDuration {
    text: String,
    months: u32,
    exact: TimeDelta,
}

impl IsoDuration {
    /// Parses `P[nY][nM][nW][nD][T[nH][nM][nS]]`. Fractions are accepted on days and smaller
    /// units only; a duration must be longer than zero.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = iso8601::duration(text).map_err(|_| {
            format!("{text:?} is not an ISO 8601 duration (examples: PT10M, PT12H, P7D, P1M)")
        })?;
        let (months, exact) = match parsed {
            iso8601::Duration::Weeks(w) => (0u32, TimeDelta::weeks(i64::from(w))),
            iso8601::Duration::YMDHMS {
                year,
                month,
                day,
                hour,
                minute,
                second,
                millisecond,
            } => {
                let months = year
                    .checked_mul(12)
                    .and_then(|m| m.checked_add(month))
                    .ok_or_else(|| format!("{text:?} is too long a duration"))?;
                let exact = TimeDelta::days(i64::from(day))
                    + TimeDelta::hours(i64::from(hour))
                    + TimeDelta::minutes(i64::from(minute))
                    + TimeDelta::seconds(i64::from(second))
                    + TimeDelta::milliseconds(i64::from(millisecond));
                (months, exact)
            }
        };
        if months == 0 && exact < TimeDelta::zero() {
            return Err(format!("{text:?} is negative"));
        }
        Ok(IsoDuration {
            text: text.to_string(),
            months,
            exact,
        })
    }

    /// Like [`IsoDuration::parse`] but refusing a zero duration (a slice step of zero would
    /// never advance).
    pub fn parse_positive(text: &str) -> Result<Self, String> {
        let d = Self::parse(text)?;
        if d.months == 0 && d.exact <= TimeDelta::zero() {
            return Err(format!(
                "{text:?} is a zero duration; give a positive one such as PT10M"
            ));
        }
        Ok(d)
    }

    /// `t + self`, adding calendar months first.
    pub fn add_to(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let t = if self.months > 0 {
            t.checked_add_months(Months::new(self.months))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        } else {
            t
        };
        t.checked_add_signed(self.exact)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `t - self`, subtracting calendar months first.
    pub fn sub_from(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let t = if self.months > 0 {
            t.checked_sub_months(Months::new(self.months))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        } else {
            t
        };
        t.checked_sub_signed(self.exact)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_days_minutes_and_months() {
        let t = Utc.with_ymd_and_hms(2024, 1, 31, 0, 0, 0).unwrap();
        assert_eq!(
            IsoDuration::parse("P30D").unwrap().add_to(t),
            Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            IsoDuration::parse("PT10M").unwrap().sub_from(t),
            Utc.with_ymd_and_hms(2024, 1, 30, 23, 50, 0).unwrap()
        );
        assert_eq!(
            IsoDuration::parse("P1M").unwrap().add_to(t),
            Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap()
        );
        assert_eq!(
            IsoDuration::parse("P1W").unwrap().add_to(t),
            Utc.with_ymd_and_hms(2024, 2, 7, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn rejects_prose_and_zero() {
        assert!(
            IsoDuration::parse("30 days")
                .unwrap_err()
                .contains("not an ISO 8601 duration")
        );
        assert!(
            IsoDuration::parse_positive("PT0S")
                .unwrap_err()
                .contains("zero duration")
        );
    }
}
