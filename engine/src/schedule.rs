//! Cron expressions, parsed by croner with standard (POSIX/Vixie) semantics:
//! 5 fields, or 6 with seconds first; weekday 0 or 7 is Sunday, so `1-5` is
//! Monday to Friday. The `cron` crate numbers weekdays from Sunday = 1 and
//! rejects the 5-field form, which is why it is not used.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Parses a cron expression of 5 fields (minute precision) or 6 (seconds first), or an `@daily`-style alias.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "`{expression}` has {fields} fields; a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|e| {
            let reason = e.to_string();
            let reason = reason.trim_end_matches('.').replace("Component error: ", "").to_lowercase();
            format!(
                "`{expression}` is not a valid cron expression ({reason}); the fields are [second 0-59] minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7 (0 and 7 are Sunday)"
            )
        })
}

/// Checks an IANA time zone name (`Europe/Paris`).
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("`{name}` is not an IANA time zone name (like UTC or Europe/Paris)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn five_and_six_fields() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("*/10 * * * * *").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("* * * *").is_err());
        assert!(parse_cron("0 0 0 1 1 * 2030").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("every day").is_err());
    }

    #[test]
    fn weekdays_are_standard() {
        // 2026-11-28 is a Saturday; `1-5` must skip to Monday 2026-11-30.
        let cron = parse_cron("0 9 * * 1-5").expect("valid");
        let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("valid date");
        let next = cron.find_next_occurrence(&saturday, false).expect("has a next occurrence");
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).single().expect("valid date"));
    }

    #[test]
    fn timezones() {
        assert!(parse_timezone("Europe/Paris").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
