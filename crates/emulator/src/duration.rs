//! ISO-8601 durations as `Config.json` writes them (`PT1M`, `P10675199DT2H48M5.4775807S`).

use std::time::Duration;

/// Anything at or above this is "forever": .NET's `TimeSpan.MaxValue`
/// (`P10675199DT2H48M5.4775807S`) is how Service Bus spells an unlimited time to live.
pub const FOREVER: Duration = Duration::from_secs(10_675_199 * 86_400);

/// Parses `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`. Years count 365 days and months 30, as
/// .NET's XML duration parser does. The error text says what is wrong, without the value
/// (the caller names the field and the value).
pub fn parse(text: &str) -> Result<Duration, String> {
    let rest = text.strip_prefix('P').ok_or("must start with P")?;
    if rest.is_empty() {
        return Err("has no components".into());
    }
    let mut seconds = 0f64;
    let mut in_time = false;
    let mut number = String::new();
    let mut seen_component = false;
    for c in rest.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let factor = match (in_time, unit) {
                    (false, 'Y') => 365.0 * 86_400.0,
                    (false, 'M') => 30.0 * 86_400.0,
                    (false, 'W') => 7.0 * 86_400.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return Err(format!("unexpected '{unit}'")),
                };
                let value: f64 = number
                    .parse()
                    .map_err(|_| format!("missing number before '{unit}'"))?;
                seconds += value * factor;
                number.clear();
                seen_component = true;
            }
        }
    }
    if !number.is_empty() {
        return Err("ends with a number without a unit".into());
    }
    if !seen_component {
        return Err("has no components".into());
    }
    if !seconds.is_finite() || seconds >= FOREVER.as_secs_f64() {
        return Ok(FOREVER);
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration as `PT…S` (or `P10675199DT2H48M5.4775807S` for [`FOREVER`]).
pub fn format(d: Duration) -> String {
    if d >= FOREVER {
        return "P10675199DT2H48M5.4775807S".into();
    }
    let millis = d.as_millis();
    if millis.is_multiple_of(1000) {
        format!("PT{}S", millis / 1000)
    } else {
        format!("PT{}.{:03}S", millis / 1000, millis % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_config_files_use() {
        assert_eq!(parse("PT1M"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("PT1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("PT20S"), Ok(Duration::from_secs(20)));
        assert_eq!(parse("PT0.5S"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("P1DT1H"), Ok(Duration::from_secs(90_000)));
        assert_eq!(parse("P2W"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("P10675199DT2H48M5.4775807S"), Ok(FOREVER));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "1H", "P", "PT", "PT1X", "PT1", "P1H", "PTM"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_secs(60),
            Duration::from_millis(1500),
            FOREVER,
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
