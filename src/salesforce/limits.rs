//! The org's daily API usage, from the `Sforce-Limit-Info` header every REST answer carries.

/// `api-usage=USED/MAX`: calls in the rolling 24 hours and the org's daily allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Calls used in the last 24 hours.
    pub used: u64,
    /// The org's daily limit.
    pub max: u64,
}

impl ApiUsage {
    /// Usage as a percentage of the limit.
    pub fn percent(&self) -> f64 {
        if self.max == 0 {
            100.0
        } else {
            self.used as f64 * 100.0 / self.max as f64
        }
    }
}

impl std::fmt::Display for ApiUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} daily API calls used", self.used, self.max)
    }
}

/// Parses `api-usage=18/5000` out of a header such as
/// `api-usage=18/5000; per-app-api-usage=17/250(appName=x)`.
pub fn parse_limit_info(header: &str) -> Option<ApiUsage> {
    header.split(';').find_map(|part| {
        let value = part.trim().strip_prefix("api-usage=")?;
        let (used, max) = value.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            max: max.trim().parse().ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            parse_limit_info("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            parse_limit_info(
                "per-app-api-usage=17/250(appName=x); api-usage=25/5000; api-bursts=1/750"
            ),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x)"),
            None
        );
        assert_eq!(parse_limit_info("api-usage=x/5000"), None);
    }
}
