//! Durations as workflows write them: `250ms`, `2s`, `5m`, `1h`, `1h30m`.

use std::time::Duration;

/// Parses `250ms`, `2s`, `5m`, `1h`, `1d` and sums like `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write a number and a unit, like 250ms, 30s, 5m, 1h");
    let text_trimmed = text.trim();
    if text_trimmed.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u128 = 0;
    let mut rest = text_trimmed;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.saturating_add(number.saturating_mul(unit_ms));
    }
    let ms = u64::try_from(total_ms).map_err(|_| format!("`{text}` is too long a duration"))?;
    Ok(Duration::from_millis(ms))
}

/// Writes a duration the way [`parse_duration`] reads it, shortest form.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// A measured span for people: `850ms`, `3.2s`, `4m05s`, `1h02m`.
pub fn format_elapsed_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1_000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_spans_read_at_a_glance() {
        let shown: Vec<String> = [850, 3_210, 245_000, 3_725_000].into_iter().map(format_elapsed_ms).collect();
        assert_eq!(shown, ["850ms", "3.2s", "4m05s", "1h02m"]);
    }

    #[track_caller]
    fn check(text: &str, ms: Option<u64>) {
        assert_eq!(parse_duration(text).ok().map(|d| d.as_millis() as u64), ms, "{text}");
    }

    #[test]
    fn durations() {
        check("250ms", Some(250));
        check("2s", Some(2_000));
        check("5m", Some(300_000));
        check("1h", Some(3_600_000));
        check("1h30m", Some(5_400_000));
        check("0s", Some(0));
        check("", None);
        check("10", None);
        check("ten s", None);
        check("5 m", None);
        check("1w", None);
        check("-1s", None);
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [1, 250, 1_000, 90_000, 5_400_000, 3_723_004] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
